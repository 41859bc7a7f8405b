"""The label distribution's DP release: calibration, composition with DP-SGD, thresholding."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest
from privsynth.server.privacy.accounting import (
    LABEL_THRESHOLD_DELTA_SHARE,
    MAX_NOISE_MULTIPLIER,
    JobCharge,
    UnreachableEpsilon,
    compose_epsilon,
    gaussian_sigma,
    job_epsilon,
    label_threshold,
    plan_dp_sgd,
)
from privsynth.server.privacy.labels import public_distribution, release_dp

N, EPOCHS, EPS, DELTA = 400, 2, 4.0, 1e-6


def _plan(share: float | None, accountant: str = "rdp") -> object:
    return plan_dp_sgd(
        n_records=N,
        batch_size=64,
        epochs=EPOCHS,
        target_epsilon=EPS,
        target_delta=DELTA,
        accountant=accountant,
        label_epsilon_share=share,
    )


@pytest.mark.parametrize("accountant", ["rdp", "prv"])
def test_sgd_sigma_is_calibrated_with_the_label_release_inside_the_target(
    accountant: str,
) -> None:
    plain, labelled = _plan(None, accountant), _plan(0.05, accountant)
    sigma_l = labelled.label_noise_multiplier  # type: ignore[attr-defined]
    assert plain.label_noise_multiplier is None  # type: ignore[attr-defined]
    assert sigma_l is not None and sigma_l > 0
    # The release costs DP-SGD some noise, far less than its 5% share (composition).
    assert plain.noise_multiplier < labelled.noise_multiplier  # type: ignore[attr-defined]
    assert labelled.noise_multiplier < plain.noise_multiplier * 1.05  # type: ignore[attr-defined]
    total = job_epsilon(
        noise_multiplier=labelled.noise_multiplier,  # type: ignore[attr-defined]
        sample_rate=labelled.sample_rate,  # type: ignore[attr-defined]
        steps=labelled.steps,  # type: ignore[attr-defined]
        delta=DELTA,
        accountant=accountant,
        label_noise_multiplier=sigma_l,
    )
    assert EPS - 0.02 <= total <= EPS + 1e-9


def test_gaussian_sigma_matches_the_analytic_gaussian_and_the_classic_bound() -> None:
    eps, delta = 0.5, 1e-6
    sigma = gaussian_sigma(epsilon=eps, delta=delta)
    classic = math.sqrt(2 * math.log(1.25 / delta)) / eps
    assert 0.7 * classic < sigma < classic
    # dp-accounting's PLD of the same Gaussian agrees (within discretisation).
    from dp_accounting.pld import privacy_loss_distribution as pld  # type: ignore[import-untyped]

    pl = pld.from_gaussian_mechanism(standard_deviation=sigma, sampling_prob=1.0)
    assert pl.get_epsilon_for_delta(delta) == pytest.approx(eps, rel=0.02)


def test_ledger_composes_the_release_as_one_more_gaussian_event() -> None:
    p = _plan(0.05)
    base = {
        "epsilon": EPS,
        "delta": DELTA,
        "noise_multiplier": p.noise_multiplier,  # type: ignore[attr-defined]
        "sample_rate": p.sample_rate,  # type: ignore[attr-defined]
        "steps": p.steps,  # type: ignore[attr-defined]
    }
    without = JobCharge(**base)  # type: ignore[arg-type]
    with_labels = JobCharge(**base, label_noise_multiplier=p.label_noise_multiplier)  # type: ignore[arg-type]
    assert with_labels.threshold_delta == pytest.approx(DELTA * LABEL_THRESHOLD_DELTA_SHARE)
    e_without, _, d1 = compose_epsilon([without, without], delta=2 * DELTA)
    e_with, plain, d2 = compose_epsilon([with_labels, with_labels], delta=2 * DELTA)
    assert d1 == d2 == pytest.approx(2 * DELTA)
    assert e_without < e_with <= plain
    # The thresholds hold their δ outright: at a fixed accounting δ, each job with a release
    # leaves less δ to the PLD, so adding one never lowers the composed ε.
    one, _, _ = compose_epsilon([with_labels], delta=2 * DELTA)
    assert one < e_with


def test_unreachable_epsilon_names_the_smallest_reachable() -> None:
    with pytest.raises(UnreachableEpsilon) as exc:
        plan_dp_sgd(
            n_records=40,
            batch_size=64,
            epochs=3,
            target_epsilon=0.001,
            target_delta=1e-4,
            accountant="rdp",
        )
    smallest = exc.value.smallest_epsilon
    assert 0.001 < smallest < 1
    # σ at the cap does reach that ε: the figure is honest.
    reachable = plan_dp_sgd(
        n_records=40,
        batch_size=64,
        epochs=3,
        target_epsilon=smallest * 1.01,
        target_delta=1e-4,
        accountant="rdp",
    )
    assert reachable.noise_multiplier <= MAX_NOISE_MULTIPLIER


def test_release_keeps_frequent_labels_drops_rare_ones_and_normalises() -> None:
    labels = ["big"] * 5000 + ["mid"] * 2000 + ["rare"] * 1 + [None] * 10
    out = release_dp(
        labels, noise_multiplier=2.0, sensitivity=1.0, delta=1e-6, rng=random.Random(0)
    )
    dist = out["distribution"]
    assert set(dist) == {"big", "mid"}
    assert math.fsum(dist.values()) == pytest.approx(1.0)
    assert dist["big"] == pytest.approx(5 / 7, abs=0.01)
    assert out["threshold"] == pytest.approx(
        label_threshold(noise_multiplier=2.0, sensitivity=1.0, delta=1e-6)
    )
    assert out["threshold"] > 1 + 2.0 * 5  # a label one unit holds almost never passes


def test_a_label_held_by_one_unit_passes_the_threshold_rarely() -> None:
    rng = random.Random(1)
    passed = Counter(
        bool(
            release_dp(["only-me"], noise_multiplier=1.0, sensitivity=1.0, delta=0.5, rng=rng)[
                "distribution"
            ]
        )
        for _ in range(4000)
    )
    # P(pass) <= δ × share = 0.05 by construction (union bound); measured well below.
    assert passed[True] / 4000 <= 0.05 + 0.015


def test_public_distribution_uses_declared_weights_or_observed_frequencies() -> None:
    assert public_distribution(["a", "a", "b"]) == pytest.approx({"a": 2 / 3, "b": 1 / 3})
    declared = public_distribution(["a", "a", "b"], declared={"x": 1.0, "y": 3.0})
    assert declared == pytest.approx({"x": 0.25, "y": 0.75})
