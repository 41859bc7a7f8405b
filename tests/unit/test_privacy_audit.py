"""Empirical privacy audit: the one-run bound by hand, and proof that the audit bites."""

from __future__ import annotations

import importlib
import math
import pkgutil
import random
from typing import Any

import pytest
from privsynth.models.privacy_audit import (
    GUESS_FRACTIONS,
    AuditConfig,
    audit_bound,
    epsilon_lower_bound,
    one_run_p_value,
    run_privacy_audit,
)


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


@pytest.mark.parametrize("r", [10, 100, 1000])
def test_all_guesses_right_gives_the_closed_form(r: int) -> None:
    # Pure DP, every guess right: P[Bin(r, q) >= r] = q^r < 0.05 iff q < 0.05^(1/r).
    got = epsilon_lower_bound(canaries=r, guesses=r, correct=r, delta=0.0)
    assert got == pytest.approx(_logit(0.05 ** (1 / r)), abs=1e-5)


def test_hand_computed_values() -> None:
    assert epsilon_lower_bound(canaries=100, guesses=100, correct=100, delta=0.0) == (
        pytest.approx(3.4930, abs=1e-4)
    )
    # Chance-level guessing refutes nothing.
    assert epsilon_lower_bound(canaries=1000, guesses=1000, correct=500, delta=1e-5) == 0.0
    # 60/100 right, pure DP: P[Bin(100, 1/2) >= 60] = 0.0284 < 0.05, so ε = 0 is rejected...
    low = epsilon_lower_bound(canaries=100, guesses=100, correct=60, delta=0.0)
    assert 0.0 < low < 0.1
    # ... and the bound is where the tail reaches 0.05 exactly.
    p = one_run_p_value(canaries=100, guesses=100, correct=60, epsilon=low, delta=0.0)
    assert p == pytest.approx(0.05, abs=1e-4)


@pytest.mark.parametrize(
    ("m", "r", "v", "eps", "delta"),
    [(1000, 100, 90, 1.0, 1e-5), (1000, 1000, 620, 0.3, 1e-6), (200, 40, 39, 2.5, 1e-3)],
)
def test_p_value_matches_the_papers_algorithm(
    m: int, r: int, v: int, eps: float, delta: float
) -> None:
    from scipy import stats

    # Steinke, Nasr & Jagielski, Algorithm 2 / Theorem 5.2, written out with scipy.
    q = 1 / (1 + math.exp(-eps))
    beta = stats.binom.sf(v - 1, r, q)
    alpha, total = 0.0, 0.0
    for i in range(1, v + 1):
        total += stats.binom.pmf(v - i, r, q)
        alpha = max(alpha, total / i)
    want = min(1.0, beta + alpha * delta * 2 * m)
    got = one_run_p_value(canaries=m, guesses=r, correct=v, epsilon=eps, delta=delta)
    assert got == pytest.approx(want, rel=1e-9, abs=1e-15)


def test_delta_only_weakens_the_bound() -> None:
    pure = epsilon_lower_bound(canaries=1000, guesses=200, correct=190, delta=0.0)
    approx = epsilon_lower_bound(canaries=1000, guesses=200, correct=190, delta=1e-4)
    assert 0 < approx < pure


def test_counts_out_of_order_are_refused() -> None:
    with pytest.raises(ValueError):
        one_run_p_value(canaries=10, guesses=20, correct=5, epsilon=1.0, delta=0.0)


def test_guess_grid_is_bonferroni_corrected() -> None:
    m = 1000
    included = [i % 2 == 0 for i in range(m)]
    perfect = [1.0 if keep else 0.0 for keep in included]
    perfect = [s + i * 1e-9 for i, s in enumerate(perfect)]  # no ties
    best, grid = audit_bound(perfect, included, delta=0.0)
    assert [o.guesses for o in grid] == [round(f * m) for f in GUESS_FRACTIONS]
    # Every guess right: the largest r wins, tested at 0.05 / |grid|, not at 0.05.
    level = 0.05 / len(GUESS_FRACTIONS)
    assert best.guesses == m and best.correct == m
    assert best.epsilon_lower_bound == pytest.approx(_logit(level ** (1 / m)), abs=1e-5)
    # Scores that carry no information refute nothing (fixed seed: this is not a coin test).
    rng = random.Random(7)
    noise = [rng.random() for _ in range(m)]
    assert audit_bound(noise, included, delta=1e-6)[0].epsilon_lower_bound == 0.0


# -- the audit bites -----------------------------------------------------------------------------


def _switch_noise_off(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Test-only hook: every Opacus optimizer adds zero noise (σ and ε on the card unchanged).

    Opacus' optimizers each import ``_generate_noise`` by name, so every module holding one is
    patched. The returned counter proves the patched function is what training called.
    """
    import opacus.optimizers
    import torch

    calls = [0]

    def zero_noise(std: Any, reference: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        calls[0] += 1
        return torch.zeros_like(reference)

    for info in pkgutil.iter_modules(opacus.optimizers.__path__):
        module = importlib.import_module(f"opacus.optimizers.{info.name}")
        if hasattr(module, "_generate_noise"):
            monkeypatch.setattr(module, "_generate_noise", zero_noise)
    return calls


# The smallest audit that shows it: `tiny` from scratch, 200 canaries beside 100 public records,
# 3 epochs at ε = 1. Without noise, clipping alone leaves each canary's gradient readable and
# about 98 of 100 guesses are right (bound ≈ 2.4); with the real noise the guesses are chance.
_BITES = AuditConfig(preset="tiny", target_epsilon=1.0, canaries=200, public_records=100, epochs=3)


def test_audit_refutes_the_claim_when_noise_is_switched_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = _switch_noise_off(monkeypatch)
    result = run_privacy_audit(_BITES)
    assert calls[0] > 0, "training no longer draws noise through Opacus' _generate_noise"
    assert result.epsilon_claimed == pytest.approx(1.0, rel=0.05)  # the card still says ε = 1
    assert result.epsilon_lower_bound > result.epsilon_claimed
    assert result.refuted


def test_audit_stays_below_the_claim_with_the_real_mechanism() -> None:
    result = run_privacy_audit(_BITES)
    assert result.epsilon_lower_bound < result.epsilon_claimed
    assert not result.refuted
    data = result.to_dict()
    assert data["canaries"] == 200 and len(data["grid"]) == len(GUESS_FRACTIONS)


def test_cli_help_names_the_method(capsys: pytest.CaptureFixture[str]) -> None:
    from privsynth.client.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["audit", "privacy", "--help"])
    assert exc.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "Steinke" in out and "--canaries" in out and "lower bound" in out
