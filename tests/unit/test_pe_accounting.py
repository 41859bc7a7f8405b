"""σ of Private Evolution's vote histograms: T Gaussian mechanisms and the label mix fit ε.

A private-evolution job's ledger event is the DP-SGD event with sampling probability 1: σ,
q = 1, T steps. The planner sets σ so that the T releases and the label release compose to
just under the target under the job's accountant, and the ledger's own composition agrees.
"""

from __future__ import annotations

import math

import pytest
from privsynth.server.privacy.accounting import (
    JobCharge,
    compose_epsilon,
    job_epsilon,
    plan_dp_sgd,
    plan_private_evolution,
)

DELTA = 2.3e-6


@pytest.mark.parametrize("iterations", [1, 3, 5])
@pytest.mark.parametrize("epsilon", [1.0, 8.0])
def test_t_iterations_and_the_label_mix_fit_the_target(iterations: int, epsilon: float) -> None:
    plan = plan_private_evolution(
        n_records=4000,
        iterations=iterations,
        target_epsilon=epsilon,
        target_delta=DELTA,
        label_epsilon_share=0.1,
    )
    assert plan.sample_rate == 1.0 and plan.steps == iterations
    assert plan.label_noise_multiplier is not None
    spent = job_epsilon(
        noise_multiplier=plan.noise_multiplier,
        sample_rate=1.0,
        steps=iterations,
        delta=DELTA,
        accountant="prv",
        label_noise_multiplier=plan.label_noise_multiplier,
    )
    assert 0.98 * epsilon <= spent <= epsilon
    charge = JobCharge(
        epsilon=spent,
        delta=DELTA,
        noise_multiplier=plan.noise_multiplier,
        sample_rate=1.0,
        steps=iterations,
        label_noise_multiplier=plan.label_noise_multiplier,
    )
    composed, _, _ = compose_epsilon([charge], delta=DELTA)
    assert composed <= epsilon


def test_sigma_grows_as_the_square_root_of_the_iterations() -> None:
    def sigma(t: int) -> float:
        return plan_private_evolution(
            n_records=4000, iterations=t, target_epsilon=4.0, target_delta=DELTA
        ).noise_multiplier

    one, four = sigma(1), sigma(4)
    assert math.isclose(four / one, 2.0, rel_tol=0.02)


def test_one_iteration_without_labels_is_one_gaussian_release() -> None:
    """T = 1 is the same single Gaussian the token-statistics planner gives the whole ε."""
    pe = plan_private_evolution(n_records=500, iterations=1, target_epsilon=2.0, target_delta=1e-6)
    stats = plan_dp_sgd(
        n_records=500,
        batch_size=64,
        epochs=1,
        target_epsilon=2.0,
        target_delta=1e-6,
        dp_sgd=False,
    )
    assert stats.stats_noise_multiplier is not None
    assert math.isclose(pe.noise_multiplier, stats.stats_noise_multiplier, rel_tol=0.01)
    assert pe.label_noise_multiplier is None


@pytest.mark.parametrize(("iterations", "epsilon"), [(0, 1.0), (3, 0.0), (3, math.inf)])
def test_bad_parameters_are_refused(iterations: int, epsilon: float) -> None:
    with pytest.raises(ValueError, match=r"iterations|target_epsilon"):
        plan_private_evolution(
            n_records=100, iterations=iterations, target_epsilon=epsilon, target_delta=1e-6
        )
