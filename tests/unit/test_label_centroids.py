"""The DP release of per-label embedding centroids and the word prior it gives (issue 14)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from privsynth.models.label_centroids import (
    LabelCentroids,
    WordTable,
    prior_distributions,
    release_label_centroids,
)
from privsynth.models.token_stats import GuidedDecoding, TokenStats, decoding_bias

DIM = 4


def _unit(*xs: float) -> list[float]:
    v = np.array(xs, dtype=float)
    return list(v / np.linalg.norm(v))


def _release(vectors: list[list[float]], labels: list[str | None], seed: int = 3) -> LabelCentroids:
    return release_label_centroids(
        np.array(vectors, dtype=float).reshape(-1, DIM),
        labels,
        labels=["sport", "food"],
        noise_multiplier=0.5,
        generator=torch.Generator().manual_seed(seed),
    )


def test_one_record_moves_the_release_by_at_most_one_in_l2() -> None:
    vectors = [_unit(1, 0, 0, 0), _unit(0, 1, 0, 0)] * 10
    labels: list[str | None] = ["sport", "food"] * 10
    big = [10.0, 10.0, 0.0, 0.0]  # an embedder returning a long vector is clipped to length 1
    with_it = _release([*vectors, big], [*labels, "sport"])
    without = _release(vectors, labels)
    diff = (with_it.sums - without.sums).double()
    assert math.isclose(float(diff.norm()), 1.0, rel_tol=1e-5)
    assert float(diff[with_it.labels.index("food")].norm()) == 0.0


def test_unreleased_labels_count_nothing_and_rows_are_the_released_labels() -> None:
    vectors = [_unit(1, 0, 0, 0)] * 5
    labels: list[str | None] = ["sport"] * 5
    base = _release(vectors, labels)
    more = _release([*vectors, _unit(0, 0, 1, 0), _unit(0, 0, 0, 1)], [*labels, "other", None])
    assert base.labels == ("food", "sport")
    assert torch.equal(base.sums, more.sums)


def test_noise_has_the_planned_standard_deviation_and_is_fresh_by_default() -> None:
    labels = [f"l{i}" for i in range(50)]
    kw = {"labels": labels, "noise_multiplier": 2.0}
    empty = release_label_centroids(np.zeros((0, 384)), [], **kw)  # type: ignore[arg-type]
    assert abs(float(empty.sums.std()) - 2.0) < 0.05
    again = release_label_centroids(np.zeros((0, 384)), [], **kw)  # type: ignore[arg-type]
    assert not torch.equal(empty.sums, again.sums)
    with pytest.raises(ValueError, match="noise_multiplier"):
        release_label_centroids(np.zeros((0, 3)), [], labels=["a"], noise_multiplier=0.0)


def _table() -> WordTable:
    # Token ids 5..9: " ball", " Ball", " goal", " bread", " soup" (two tokens share "ball").
    words = ("ball", "ball", "goal", "bread", "soup")
    vectors = torch.tensor(
        [
            _unit(1, 0, 0, 0),
            _unit(1, 0, 0, 0),
            _unit(0.9, 0, 0.3, 0),
            _unit(0, 1, 0, 0.1),
            _unit(0.1, 0.9, 0, 0.3),
        ],
        dtype=torch.float32,
    )
    return WordTable(torch.arange(5, 10), words, vectors)


def _centroids() -> LabelCentroids:
    sums = torch.tensor([_unit(0, 1, 0, 0), _unit(1, 0, 0, 0)], dtype=torch.float32) * 40
    return LabelCentroids(labels=("food", "sport"), sums=sums, noise_std=0.5)


def test_each_label_gets_the_words_pointing_its_way() -> None:
    prior = prior_distributions(_centroids(), _table(), vocab_size=12, temperature=0.1)
    food, sport = prior[0], prior[1]
    assert torch.allclose(prior.sum(dim=1), torch.ones(2))
    assert int(sport.argmax()) in (5, 6) and int(food.argmax()) == 8
    assert float(sport[5]) == pytest.approx(float(sport[6]))  # tokens of one word weigh alike
    assert float(sport[8]) < float(sport[7]) and float(food[5]) < float(food[9])
    assert float(prior[:, :5].abs().sum()) == 0.0  # tokens outside the table get nothing


def test_top_words_limits_the_distinct_words_and_ids_past_the_vocabulary_are_skipped() -> None:
    prior = prior_distributions(_centroids(), _table(), vocab_size=12, top_words=1)
    assert set(torch.nonzero(prior[1]).flatten().tolist()) == {5, 6}  # one word, both tokens
    cut = prior_distributions(_centroids(), _table(), vocab_size=7, top_words=5)
    assert cut.shape == (2, 7) and torch.allclose(cut.sum(dim=1), torch.ones(2))
    with pytest.raises(ValueError, match="temperature"):
        prior_distributions(_centroids(), _table(), vocab_size=12, temperature=0.0)


def test_a_prior_release_biases_decoding_and_plans_keywords_and_round_trips() -> None:
    prior = prior_distributions(_centroids(), _table(), vocab_size=12, temperature=0.1)
    stats = TokenStats(
        labels=("food", "sport"),
        counts=prior,
        noise_std=0.5,
        max_tokens=0,
        centroids=_centroids().sums,
    )
    bias = decoding_bias(stats, strength=2.0)
    assert float(bias["sport"][5]) > 0 > float(bias["food"][5])
    assert float(bias["sport"][0]) == 0.0  # not in the table: the base decides
    decoding = GuidedDecoding(statistic="label-centroids", plan_words=2, plan_boost=4.0)
    plans = decoding.plans(stats)
    assert plans is not None and torch.allclose(plans["sport"], prior[1])
    back = TokenStats.from_bytes(stats.to_bytes())
    assert back.kind == "prior" and torch.allclose(back.counts, prior)
    assert back.centroids is not None and torch.allclose(back.centroids, stats.centroids)
    assert GuidedDecoding().plans(stats) is None  # no plans unless asked for
