"""The token-statistics release is planned, charged and composed like every other DP event."""

from __future__ import annotations

import pytest
from privsynth.server.privacy.accounting import JobCharge, compose_epsilon, job_epsilon, plan_dp_sgd

DELTA = 2e-6


@pytest.mark.parametrize("epsilon", [1.0, 8.0])
def test_a_plan_without_dp_sgd_spends_its_target_on_the_releases(epsilon: float) -> None:
    plan = plan_dp_sgd(
        n_records=4000,
        batch_size=512,
        epochs=3,
        target_epsilon=epsilon,
        target_delta=DELTA,
        label_epsilon_share=0.1,
        dp_sgd=False,
    )
    assert plan.steps == 0 and plan.noise_multiplier == 0.0
    assert plan.stats_noise_multiplier is not None and plan.label_noise_multiplier is not None
    # The card's accountant (PRV) and the ledger's (PLD) both find it at, not over, the target.
    card = job_epsilon(
        noise_multiplier=0.0,
        sample_rate=0.0,
        steps=0,
        delta=DELTA,
        accountant="prv",
        label_noise_multiplier=plan.label_noise_multiplier,
        stats_noise_multiplier=plan.stats_noise_multiplier,
    )
    assert 0.98 * epsilon <= card <= epsilon
    charge = JobCharge(
        card, DELTA, 0.0, 0.0, 0, plan.label_noise_multiplier, plan.stats_noise_multiplier
    )
    composed, _, _ = compose_epsilon([charge], delta=DELTA)
    assert 0.97 * epsilon <= composed <= epsilon


def test_the_stats_release_is_composed_into_the_dataset_spend() -> None:
    plan = plan_dp_sgd(
        n_records=4000,
        batch_size=512,
        epochs=3,
        target_epsilon=8.0,
        target_delta=DELTA,
        label_epsilon_share=0.1,
        dp_sgd=False,
    )
    with_stats = JobCharge(
        8.0, DELTA, 0.0, 0.0, 0, plan.label_noise_multiplier, plan.stats_noise_multiplier
    )
    labels_only = JobCharge(8.0, DELTA, 0.0, 0.0, 0, plan.label_noise_multiplier)
    spent_with, _, _ = compose_epsilon([with_stats], delta=DELTA)
    spent_without, _, _ = compose_epsilon([labels_only], delta=DELTA)
    assert spent_with > 4 * spent_without  # the statistics carry most of the job's ε


def test_a_stats_share_beside_dp_sgd_raises_its_noise() -> None:
    common = {
        "n_records": 2000,
        "batch_size": 64,
        "epochs": 2,
        "target_epsilon": 8.0,
        "target_delta": DELTA,
        "label_epsilon_share": 0.1,
    }
    plain = plan_dp_sgd(**common)  # type: ignore[arg-type]
    shared = plan_dp_sgd(**common, stats_epsilon_share=0.3)  # type: ignore[arg-type]
    assert shared.stats_noise_multiplier is not None and plain.stats_noise_multiplier is None
    assert shared.noise_multiplier > plain.noise_multiplier
    total = job_epsilon(
        noise_multiplier=shared.noise_multiplier,
        sample_rate=shared.sample_rate,
        steps=shared.steps,
        delta=DELTA,
        accountant="prv",
        label_noise_multiplier=shared.label_noise_multiplier,
        stats_noise_multiplier=shared.stats_noise_multiplier,
    )
    assert total <= 8.0 + 1e-6
