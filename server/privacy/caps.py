"""Bounds on a dataset's budget cap (ε_max, δ), shared by upload and cap changes.

* ``epsilon_cap`` must be finite and in (0, :data:`MAX_EPSILON_CAP`]. ε = 1000 already
  promises nothing (e^1000 is the allowed likelihood ratio); the bound keeps absurd values such
  as 1e308 from reaching the accountant, where they cost minutes of calibration or overflow.
* A job's ``target_epsilon`` must be finite and in (0, :data:`MAX_TARGET_EPSILON`], and (checked
  against its dataset, :meth:`privsynth.server.jobs.runner.JobRunner.create`) at most the dataset's
  ε cap. Both are checked before σ is calibrated, which costs seconds and grows as the target
  does (σ shrinks): ε = 1000 took ~98 s, ε = 1e300 never ended.
* ``delta`` must lie in [:data:`MIN_DELTA_CAP`, 1/n) for n records: at δ ≥ 1/n a mechanism
  that publishes one random record in the clear would satisfy (ε, δ)-DP. The default sits far
  lower (:func:`privsynth.server.scrubbing.ingest.default_delta`). A job's δ must lie in
  [:data:`MIN_DELTA`, 1): below it the accountants' numerics break down (Opacus' PRV overflows
  and fails near 1e-12), so such a δ could only end in an error, never in a guarantee.
"""

from __future__ import annotations

import math

from privsynth.server.errors import InvalidArgument

__all__ = [
    "MAX_EPSILON_CAP",
    "MAX_TARGET_EPSILON",
    "MIN_DELTA",
    "MIN_DELTA_CAP",
    "check_delta_cap",
    "check_epsilon_cap",
    "check_job_delta",
    "check_target_epsilon",
]

MAX_EPSILON_CAP = 1000.0
"""Largest ε cap a dataset may have."""

MIN_DELTA = 1e-10
"""Smallest δ a training job (or audit) may run at: the accountants stay accurate down to it."""

MIN_DELTA_CAP = 1e-9
"""Smallest δ cap: ten times :data:`MIN_DELTA`, so a job's default share (a tenth) still runs."""

MAX_TARGET_EPSILON = 100.0
"""Largest ε one training job may target.

At ε = 100 a job's guarantee already allows a likelihood ratio of e^100 ≈ 10^43 between
neighbouring datasets: no protection anyone can state (deployments use ε ≤ 10; the default cap
is 10). Calibration cost is what the bound is for: it grows as σ shrinks (per PRV evaluation,
40 records × 3 epochs: 0.5 s at σ = 0.2 (ε ≈ 110), 1.6 s at σ = 0.1 (ε ≈ 440), 9 s at σ = 0.05;
the PLD the ledger composes with: 0.7 s, 1.9 s, 7 s), and a search takes 15-25 of them. A cap
above 100 is still useful: several jobs may share it."""


def check_epsilon_cap(epsilon_cap: float) -> None:
    """Refuse an ε cap outside (0, :data:`MAX_EPSILON_CAP`].

    Raises:
        InvalidArgument: On field ``epsilon_cap``.
    """
    if not (math.isfinite(epsilon_cap) and 0 < epsilon_cap <= MAX_EPSILON_CAP):
        raise InvalidArgument(
            f"epsilon_cap must be a number in (0, {MAX_EPSILON_CAP:g}]", field="epsilon_cap"
        )


def check_target_epsilon(target_epsilon: float) -> None:
    """Refuse a job's target ε outside (0, :data:`MAX_TARGET_EPSILON`].

    Raises:
        InvalidArgument: On field ``target_epsilon``.
    """
    if not (math.isfinite(target_epsilon) and 0 < target_epsilon <= MAX_TARGET_EPSILON):
        raise InvalidArgument(
            f"target_epsilon must be a number in (0, {MAX_TARGET_EPSILON:g}]",
            field="target_epsilon",
        )


def check_delta_cap(delta: float, records: int) -> None:
    """Refuse a δ cap outside (0, 1/n) for a dataset of ``records`` records.

    Raises:
        InvalidArgument: On field ``delta``.
    """
    if not (MIN_DELTA_CAP <= delta < 1.0 / max(records, 1)):
        raise InvalidArgument(
            f"delta must lie in [{MIN_DELTA_CAP:g}, 1/n) for n = {records} records", field="delta"
        )


def check_job_delta(delta: float) -> None:
    """Refuse a job's δ outside [:data:`MIN_DELTA`, 1) (the 1/n bound is checked with n).

    Raises:
        InvalidArgument: On field ``delta``.
    """
    if not (MIN_DELTA <= delta < 1.0):
        raise InvalidArgument(f"delta must lie in [{MIN_DELTA:g}, 1)", field="delta")
