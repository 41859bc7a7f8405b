"""Private Evolution's algorithm with a fake base and a fake embedder (no model, milliseconds).

The fake "texts" are points on a line written as numbers; the fake embedder reads them back
as 1-D vectors, the fake base writes random points and varies a point by a small step. The
private records sit near 10 for label "a" and near -10 for label "b".
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytest
import torch
from numpy.typing import NDArray
from privsynth.models.private_evolution import (
    EvolutionConfig,
    EvolutionStopped,
    Population,
    evolve,
    nearest_votes,
    noisy_histogram,
    select,
)


class FakeBase:
    """Random points in [-20, 20]; a variation moves a point by up to ±1.5."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        self.calls: list[str] = []

    def generate(self, requests: Mapping[str, int]) -> dict[str, list[str]]:
        self.calls.append("generate")
        return {
            label: [f"{self.rng.uniform(-20, 20):.3f}" for _ in range(k)]
            for label, k in requests.items()
        }

    def vary(self, texts: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
        self.calls.append("vary")
        return {
            label: [f"{float(t) + self.rng.uniform(-1.5, 1.5):.3f}" for t in items]
            for label, items in texts.items()
        }


def embed(texts: Sequence[str]) -> NDArray[np.float64]:
    return np.array([[float(t)] for t in texts], dtype=np.float64).reshape(-1, 1)


def _private(n: int = 300) -> list[tuple[str | None, str]]:
    rng = random.Random(5)
    out: list[tuple[str | None, str]] = []
    for _ in range(n):
        out.append(("a", f"{rng.gauss(10, 0.5):.3f}"))
        out.append(("b", f"{rng.gauss(-10, 0.5):.3f}"))
    return out


def _run(config: EvolutionConfig, *, sigma: float = 1.0, **kw: Any) -> Population:
    base = FakeBase()
    args: dict[str, Any] = {
        "labels": ["a", "b"],
        "config": config,
        "noise_multiplier": sigma,
        "generate": base.generate,
        "vary": base.vary,
        "embed": embed,
        "generator": torch.Generator().manual_seed(3),
        "rng": random.Random(4),
    }
    args.update(kw)
    return evolve(_private(), **args)


def _mean_distance(pop: Population, label: str, target: float) -> float:
    texts, weights = pop.texts[label], pop.weights[label]
    return sum(abs(float(t) - target) * w for t, w in zip(texts, weights, strict=True)) / sum(
        weights
    )


def test_votes_pull_each_labels_population_toward_its_private_records() -> None:
    pop = _run(EvolutionConfig(population=30, iterations=6, threshold=2.0))
    assert pop.labels == ["a", "b"]
    # Random points in [-20, 20] lie ~10.5 from either centre on average.
    assert _mean_distance(pop, "a", 10.0) < 2.0
    assert _mean_distance(pop, "b", -10.0) < 2.0


def test_more_iterations_get_closer() -> None:
    one = _run(EvolutionConfig(population=30, iterations=1, threshold=2.0))
    many = _run(EvolutionConfig(population=30, iterations=6, threshold=2.0))
    assert _mean_distance(many, "a", 10.0) < _mean_distance(one, "a", 10.0)


def test_each_record_casts_one_vote_for_its_nearest_candidate() -> None:
    private = np.array([[0.0], [0.9], [5.2], [4.9], [10.0]])
    candidates = np.array([[0.0], [5.0], [100.0]])
    votes = nearest_votes(private, candidates)
    assert votes.tolist() == [2.0, 3.0, 0.0]
    assert nearest_votes(np.zeros((0, 1)), candidates).tolist() == [0.0, 0.0, 0.0]


def test_one_record_moves_one_cell_by_one() -> None:
    """Adding a record changes the exact histogram by a vector of L2 norm 1."""
    rng = np.random.default_rng(0)
    candidates = rng.normal(size=(20, 4))
    private = rng.normal(size=(50, 4))
    extra = rng.normal(size=(1, 4))
    diff = nearest_votes(np.vstack([private, extra]), candidates) - nearest_votes(
        private, candidates
    )
    assert math.isclose(float(np.linalg.norm(diff)), 1.0)


def test_records_of_unreleased_labels_vote_for_nothing() -> None:
    """A record whose label has no candidates changes nothing that is released."""
    config = EvolutionConfig(population=6, iterations=1, threshold=0.0)
    base = FakeBase()
    common: dict[str, Any] = {
        "labels": ["a"],
        "config": config,
        "noise_multiplier": 0.5,
        "generate": base.generate,
        "vary": base.vary,
        "embed": embed,
        "generator": torch.Generator().manual_seed(1),
        "rng": random.Random(1),
    }
    with_other = evolve([*_private(20), ("zzz", "3.0"), (None, "4.0")], **common)
    base.rng.seed(0)
    without = evolve(_private(20), **{**common, "generator": torch.Generator().manual_seed(1)})
    assert with_other == without


def test_noise_comes_from_a_fresh_secret_generator_by_default() -> None:
    votes = np.zeros(20_000)
    a = noisy_histogram(votes, noise_multiplier=2.0)
    b = noisy_histogram(votes, noise_multiplier=2.0)
    assert abs(float(a.std()) - 2.0) < 0.05
    assert not np.array_equal(a, b)  # two releases never share noise


def test_two_runs_with_equal_inputs_differ_without_a_given_generator() -> None:
    config = EvolutionConfig(population=8, iterations=2, threshold=0.0)
    first = _run(config, generator=None, rng=None)
    second = _run(config, generator=None, rng=None)
    assert first.weights != second.weights


def test_a_given_generator_reproduces_the_release_exactly() -> None:
    votes = np.arange(5.0)
    a = noisy_histogram(votes, noise_multiplier=1.0, generator=torch.Generator().manual_seed(9))
    b = noisy_histogram(votes, noise_multiplier=1.0, generator=torch.Generator().manual_seed(9))
    assert np.array_equal(a, b)


@pytest.mark.parametrize("sigma", [0.0, -1.0, math.nan, math.inf])
def test_sigma_must_be_a_positive_number(sigma: float) -> None:
    with pytest.raises(ValueError, match="noise_multiplier"):
        noisy_histogram(np.zeros(3), noise_multiplier=sigma)
    with pytest.raises(ValueError, match="noise_multiplier"):
        _run(EvolutionConfig(population=4, iterations=1), sigma=sigma)


def test_threshold_and_selection_are_post_processing_of_the_release() -> None:
    rng = random.Random(0)
    assert set(select(np.array([0.0, 3.0, 0.0]), count=50, rng=rng)) == {1}
    assert len(set(select(np.zeros(4), count=200, rng=rng))) == 4  # no signal: uniform


def test_stopping_reports_the_iterations_released() -> None:
    asked = iter([False, False, True])
    with pytest.raises(EvolutionStopped) as info:
        _run(EvolutionConfig(population=6, iterations=5), should_stop=lambda: next(asked))
    assert info.value.iterations == 2


def test_a_callback_failing_after_a_release_is_charged_what_was_released() -> None:
    calls = {"n": 0}

    def failing_vary(texts: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
        calls["n"] += 1
        raise RuntimeError("base died")

    with pytest.raises(EvolutionStopped) as info:
        _run(EvolutionConfig(population=6, iterations=3), vary=failing_vary)
    assert info.value.iterations == 1
    assert isinstance(info.value.__cause__, RuntimeError)


def test_a_failure_before_any_release_propagates_unchanged() -> None:
    def failing_embed(texts: Sequence[str]) -> NDArray[np.float64]:
        raise OSError("no model")

    with pytest.raises(OSError, match="no model"):
        _run(EvolutionConfig(population=4, iterations=2), embed=failing_embed)


def test_generation_count_and_batching_across_labels() -> None:
    config = EvolutionConfig(population=10, iterations=3, keep_fraction=0.5)
    assert config.generations() == 10 + 2 * 5
    base = FakeBase()
    _run(config, generate=base.generate, vary=base.vary)
    assert base.calls == ["generate", "vary", "vary"]  # every label in one call each time


def test_population_draws_by_weight_distinct_first_and_round_trips() -> None:
    pop = Population(texts={"a": ["x", "y", "z"]}, weights={"a": [100.0, 1.0, 1.0]})
    rng = random.Random(0)
    assert sorted(pop.draw("a", 3, rng)) == ["x", "y", "z"]
    firsts = [pop.draw("a", 1, rng)[0] for _ in range(200)]
    assert firsts.count("x") > 150
    assert len(pop.draw("a", 7, rng)) == 7
    assert Population.from_bytes(pop.to_bytes()) == pop


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("population", 1),
        ("iterations", 0),
        ("threshold", -1.0),
        ("keep_fraction", 1.0),
        ("max_new_tokens", 0),
        ("temperature", 0.0),
        ("variations", ("paint",)),
        ("blank_probability", 0.0),
    ],
)
def test_config_ranges(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        EvolutionConfig(**{field: value}).validate()  # type: ignore[arg-type]


def test_config_round_trips() -> None:
    config = EvolutionConfig(population=7, variations=("rewrite",))
    assert EvolutionConfig.from_dict({**config.to_dict(), "unknown": 1}) == config
