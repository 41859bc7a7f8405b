"""The holdout: privacy units a training job never sees, kept to evaluate its model against.

A quality report (``privsynth.server.evaluation``) compares a model's synthetic records with its
training records *and* with real records it never trained on; only that comparison can tell
learning the distribution from memorising records. When a job starts, a share of the dataset's
privacy units (``holdout_fraction``, 10% by default) is set aside: every record of those units
stays out of training.

Which units: the ``k = round(fraction · units)`` units with the smallest keyed hash
HMAC-SHA256(server key, job id ‖ unit), where the key is derived from the server's secret user-id
key and a unit is a user (records with a user key) or a record (its position in the dataset's
immutable shard). The choice is therefore a uniformly random k-subset that nobody without the
server's secret can predict or reproduce, different for every job, and the same every time the
server recomputes it for that job — when a resumed run reloads its data, and when an evaluation
reads the holdout back — so no list of held-out records is ever written. Training on a random
subset keeps the model's (ε, δ) guarantee (a unit held out contributes nothing; the subset's
randomness only helps). The model card records the fraction, the counts and a fingerprint of the
chosen units, so an evaluation can check it recovered the very same split.

Reading the holdout again (an evaluation) is *not* covered by the DP guarantee: see the report's
honesty section.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from privsynth.models.dp_train import MIN_RECORDS, Example
from privsynth.server.errors import FailedPrecondition, InvalidArgument, Reason

__all__ = [
    "DEFAULT_FRACTION",
    "MAX_FRACTION",
    "MIN_HOLDOUT_UNITS",
    "UNITS_BEYOND_ANY_DATASET",
    "Split",
    "card_entry",
    "check_fraction",
    "check_size",
    "holdout_units",
    "minimum_units",
    "split",
    "training_records",
]

DEFAULT_FRACTION = 0.1
MAX_FRACTION = 0.5
MIN_HOLDOUT_UNITS = 10
"""Fewest units worth holding out: below it the report's comparisons are noise."""

_KEY_LABEL = b"privsynth holdout v1"


def check_fraction(fraction: float) -> None:
    """A requested fraction: 0 (no holdout) or in (0, :data:`MAX_FRACTION`].

    Raises:
        InvalidArgument: Naming ``holdout_fraction``.
    """
    if not (math.isfinite(fraction) and 0.0 <= fraction <= MAX_FRACTION):
        raise InvalidArgument(
            f"holdout_fraction must lie in [0, {MAX_FRACTION:g}] (0: no holdout)",
            field="holdout_fraction",
        )


def holdout_units(units: int, fraction: float) -> int:
    """Units held out of ``units`` at ``fraction`` (round half to even, as Python rounds)."""
    return round(units * fraction)


UNITS_BEYOND_ANY_DATASET = 2**53
"""What :func:`minimum_units` answers for a fraction so small that no dataset could serve it."""


def minimum_units(fraction: float) -> int:
    """The smallest dataset (in units) that can give ``fraction`` as a holdout.

    At least :data:`MIN_HOLDOUT_UNITS` held out and ``MIN_RECORDS`` left to train on. Found
    from a closed-form lower bound, then a few steps up: counting up from ``MIN_RECORDS``
    took ten over ``fraction`` steps, so a request asking for a holdout fraction of 1e-300
    kept a server thread busy for good (the fuzz test found it; every later test in that
    process then ran many times slower for want of the GIL). A fraction no dataset of up to
    2**53 units could serve gets :data:`UNITS_BEYOND_ANY_DATASET`.
    """
    if not fraction > 0.0:
        return MIN_RECORDS  # no holdout: any trainable dataset will do
    # round(x) >= k needs x >= k - 1/2, and n - round(n f) >= m needs n (1 - f) >= m - 1/2.
    lower = max(
        float(MIN_RECORDS),
        (MIN_HOLDOUT_UNITS - 0.5) / fraction,
        (MIN_RECORDS - 0.5) / (1.0 - fraction) if fraction < 1.0 else math.inf,
    )
    if lower >= UNITS_BEYOND_ANY_DATASET:
        return UNITS_BEYOND_ANY_DATASET
    n = max(MIN_RECORDS, math.floor(lower) - 2)
    # Both sides are non-decreasing in n (fraction <= 1/2), so this ends within a few steps.
    while holdout_units(n, fraction) < MIN_HOLDOUT_UNITS or n - holdout_units(n, fraction) < (
        MIN_RECORDS
    ):
        n += 1
    return n


def check_size(units: int, fraction: float, *, unit: str = "record") -> None:
    """Refuse a holdout the dataset is too small for, saying the minimum.

    Raises:
        FailedPrecondition: Fewer than :func:`minimum_units` units.
    """
    needed = minimum_units(fraction)
    if units < needed:
        raise FailedPrecondition(
            f"dataset has {units} {unit}s; a {fraction:.0%} holdout needs at least {needed} "
            f"({MIN_HOLDOUT_UNITS} held out for evaluation, {MIN_RECORDS} left to train on); "
            "upload more records, or set holdout_fraction to 0 to train without a holdout "
            "(the model then cannot be evaluated)",
            reason=Reason.HOLDOUT_TOO_SMALL,
        )


def training_records(*, records: int, units: int, unit: str, fraction: float) -> int:
    """Records a job will train on: the dataset's, less those of the held-out units.

    Exact for record-level datasets (a unit is a record). For user-level ones the held users'
    records are estimated at the dataset's mean records per user; training then bounds each
    user's contribution anyway, so the run's batch is set from this as it was from the record
    count before holdouts.
    """
    if fraction <= 0 or units <= 0:
        return records
    held = holdout_units(units, fraction)
    if unit == "user":
        held = round(held * records / units)
    return records - held


@dataclass(frozen=True)
class Split:
    """A job's training records and its holdout."""

    training: list[Example]
    holdout: list[Example]
    unit: str
    """``user`` or ``record``."""
    units: int
    held_units: int
    fingerprint: str
    """SHA-256 over the held-out units' keyed hashes (reveals nothing about which they are)."""


def _unit_of(index: int, example: Example) -> str:
    return f"u:{example.user}" if example.user else f"r:{index}"


def split(examples: Sequence[Example], *, fraction: float, key: bytes, job_id: str) -> Split:
    """Hold out ``round(fraction · units)`` units chosen by the keyed hash (module docstring).

    Args:
        examples: The dataset's records in shard order.
        fraction: Share of units to hold out (0 gives an empty holdout).
        key: The server's secret (its user-id key); a subkey is derived from it.
        job_id: The training job the split belongs to.
    """
    subkey = hmac.new(key, _KEY_LABEL, hashlib.sha256).digest()
    units = sorted({_unit_of(i, e) for i, e in enumerate(examples)})
    tags = {u: hmac.new(subkey, f"{job_id}|{u}".encode(), hashlib.sha256).digest() for u in units}
    k = holdout_units(len(units), fraction)
    held = set(sorted(units, key=tags.__getitem__)[:k])
    training: list[Example] = []
    holdout: list[Example] = []
    for i, e in enumerate(examples):
        (holdout if _unit_of(i, e) in held else training).append(e)
    fingerprint = hashlib.sha256(b"".join(sorted(tags[u] for u in held))).hexdigest()
    return Split(
        training=training,
        holdout=holdout,
        unit="user" if any(e.user for e in examples) else "record",
        units=len(units),
        held_units=k,
        fingerprint=fingerprint,
    )


def card_entry(result: Split, fraction: float) -> dict[str, Any]:
    """What the model card records about the holdout (counts and a fingerprint only)."""
    return {
        "fraction": fraction,
        "unit": result.unit,
        "units": result.held_units,
        "records": len(result.holdout),
        "training_records": len(result.training),
        "fingerprint": result.fingerprint,
        "chosen": "when the job started, by a keyed hash under the server's secret",
    }
