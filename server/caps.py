"""Bounds on a dataset's budget cap (ε_max, δ), shared by upload and cap changes.

* ``epsilon_cap`` must be finite and in (0, :data:`MAX_EPSILON_CAP`]. ε = 1000 already
  promises nothing (e^1000 is the allowed likelihood ratio); the bound keeps absurd values such
  as 1e308 from reaching the accountant, where they cost minutes of calibration or overflow.
* ``delta`` must lie in (0, 1/n) for n records: at δ ≥ 1/n a mechanism that publishes one
  random record in the clear would satisfy (ε, δ)-DP. The default sits far lower
  (:func:`privsynth.server.ingest.default_delta`).
"""

from __future__ import annotations

import math

from privsynth.server.errors import InvalidArgument

__all__ = ["MAX_EPSILON_CAP", "check_delta_cap", "check_epsilon_cap"]

MAX_EPSILON_CAP = 1000.0
"""Largest ε cap a dataset may have."""


def check_epsilon_cap(epsilon_cap: float) -> None:
    """Refuse an ε cap outside (0, :data:`MAX_EPSILON_CAP`].

    Raises:
        InvalidArgument: On field ``epsilon_cap``.
    """
    if not (math.isfinite(epsilon_cap) and 0 < epsilon_cap <= MAX_EPSILON_CAP):
        raise InvalidArgument(
            f"epsilon_cap must be a number in (0, {MAX_EPSILON_CAP:g}]", field="epsilon_cap"
        )


def check_delta_cap(delta: float, records: int) -> None:
    """Refuse a δ cap outside (0, 1/n) for a dataset of ``records`` records.

    Raises:
        InvalidArgument: On field ``delta``.
    """
    if not (0.0 < delta < 1.0 / max(records, 1)):
        raise InvalidArgument(
            f"delta must lie in (0, 1/n) for n = {records} records", field="delta"
        )
