"""The label distribution Generate samples labels from: released with DP, or declared public.

A model trained with control codes can be asked for records of a given label; asked for records
*without* one, Generate draws each record's label from a distribution. The raw label counts are
private data, so that distribution is either

- ``dp``: released by the Gaussian mechanism — each label's count plus N(0, (σ_L·Δ)²), where Δ
  is the records one privacy unit can contribute (1 per record under add/remove; the per-user
  bound for user-level datasets) — keeping only labels whose noisy count reaches the threshold
  of :func:`privsynth.server.privacy.accounting.label_threshold` (the label *set* is data-dependent
  too, so a label a single unit holds must not be released but with probability ≤ a share of
  δ), then clipped at zero and normalised. It is charged to the job's ε in the ledger; or
- ``public``: the caller declares the label set and mix public (e.g. topic labels assigned from
  a public taxonomy in fixed proportions): either the weights it passes, or the dataset's
  observed frequencies, which it thereby declares public. No ε is spent; the model card says
  who declared it.

Nothing here logs or returns label values except as the released distribution itself.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from privsynth.server.privacy.accounting import label_threshold

__all__ = [
    "MAX_LABELS",
    "MODES",
    "public_distribution",
    "release_dp",
]

MODES = ("dp", "public", "none")
MAX_LABELS = 1000
"""Most labels a declared public mix may name."""


def release_dp(
    labels: Iterable[str | None],
    *,
    noise_multiplier: float,
    sensitivity: float,
    delta: float,
    rng: random.Random | None = None,
) -> dict[str, Any]:
    """Release the label distribution with the thresholded Gaussian mechanism.

    Args:
        labels: Each training record's label (None: unlabelled, not counted); one privacy unit
            contributes at most ``sensitivity`` of them.
        noise_multiplier: σ_L from the job's plan (noise std over the sensitivity).
        sensitivity: Δ, records per privacy unit (the L2 sensitivity of the count vector).
        delta: The job's δ (the threshold is set from its share of it).
        rng: Noise source; by default the OS's CSPRNG (``random.SystemRandom``).

    Returns:
        The card's fields: ``distribution`` (label → frequency, summing to 1, or empty when no
        label passed), ``threshold``, ``noise_std``, ``labels_released``.
    """
    noise = rng if rng is not None else random.SystemRandom()
    counts = Counter(label for label in labels if label)
    std = noise_multiplier * sensitivity
    threshold = label_threshold(
        noise_multiplier=noise_multiplier, sensitivity=sensitivity, delta=delta
    )
    noisy: dict[str, float] = {}
    # Sorted, so the noise drawn for a label does not depend on the data's order.
    for label in sorted(counts):
        value = counts[label] + noise.gauss(0.0, std)
        if value >= threshold:
            noisy[label] = value
    return {
        "distribution": _normalise(noisy),
        "threshold": threshold,
        "noise_std": std,
        "labels_released": len(noisy),
    }


def public_distribution(
    labels: Iterable[str | None], *, declared: Mapping[str, float] | None = None
) -> dict[str, float]:
    """The mix the caller declared public: its weights, else the observed label frequencies."""
    if declared:
        return _normalise({k: float(v) for k, v in declared.items()})
    counts = Counter(label for label in labels if label)
    return _normalise({k: float(v) for k, v in counts.items()})


def _normalise(weights: Mapping[str, float]) -> dict[str, float]:
    clipped = {k: max(0.0, v) for k, v in sorted(weights.items()) if math.isfinite(v)}
    total = math.fsum(clipped.values())
    if total <= 0:
        return {}
    return {k: v / total for k, v in clipped.items() if v > 0}
