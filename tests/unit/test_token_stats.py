"""The DP release of per-label token statistics and the decoding bias it gives."""

from __future__ import annotations

import math
import random

import pytest
import torch
from privsynth.models.token_stats import (
    GuidedDecoding,
    TokenStats,
    decoding_bias,
    release_token_stats,
)

VOCAB = 50


def _records() -> list[tuple[str | None, list[int]]]:
    rng = random.Random(1)
    out: list[tuple[str | None, list[int]]] = []
    for _ in range(200):
        out.append(("pos", [1, 2, 3, *rng.sample(range(10, 50), 3)]))
        out.append(("neg", [4, 5, 6, *rng.sample(range(10, 50), 3)]))
    return out


def _release(
    records: list[tuple[str | None, list[int]]], seed: int = 7, **kw: object
) -> TokenStats:
    args: dict[str, object] = {
        "labels": ["neg", "pos"],
        "vocab_size": VOCAB,
        "noise_multiplier": 0.5,
        "generator": torch.Generator().manual_seed(seed),
        "rng": random.Random(0),
    }
    args.update(kw)
    return release_token_stats(records, **args)  # type: ignore[arg-type]


def test_one_record_moves_the_release_by_at_most_one_in_l2() -> None:
    records = _records()
    long_record = ("pos", list(range(VOCAB)) * 3)  # more distinct ids than max_tokens
    with_it = _release([*records, long_record], max_tokens=8)
    without = _release(records, max_tokens=8)
    diff = (with_it.counts - without.counts).double()
    assert math.isclose(float(diff.norm()), 1.0, rel_tol=1e-4)
    assert int((diff.abs() > 1e-6).sum()) == 8  # its 8 kept tokens, nothing else


def test_records_of_unreleased_labels_and_ids_outside_the_vocabulary_count_nothing() -> None:
    records = _records()
    extra: list[tuple[str | None, list[int]]] = [
        ("other", [1, 2]),
        (None, [3]),
        ("pos", [VOCAB + 5]),
    ]
    assert torch.equal(_release(records).counts, _release([*records, *extra]).counts)


def test_noise_has_the_planned_standard_deviation_and_is_fresh_by_default() -> None:
    empty = release_token_stats([], labels=["a"], vocab_size=20_000, noise_multiplier=2.0)
    assert abs(float(empty.counts.std()) - 2.0) < 0.05
    again = release_token_stats([], labels=["a"], vocab_size=20_000, noise_multiplier=2.0)
    assert not torch.equal(empty.counts, again.counts)  # secret generator, fresh per release


def test_release_rejects_a_missing_noise() -> None:
    with pytest.raises(ValueError, match="noise_multiplier"):
        release_token_stats(_records(), labels=["pos"], vocab_size=VOCAB, noise_multiplier=0.0)


def test_bias_favours_a_labels_own_tokens_and_leaves_noise_alone() -> None:
    stats = _release(_records())
    bias = decoding_bias(stats, strength=2.0)
    assert all(float(bias["pos"][t]) > 0.5 for t in (1, 2, 3))
    assert all(float(bias["pos"][t]) < -0.5 for t in (4, 5, 6))
    assert all(float(bias["neg"][t]) > 0.5 for t in (4, 5, 6))
    # Ids no record used are below the threshold in both rows: no bias, the base decides.
    assert float(bias["pos"][0].abs()) < 1e-6 and float(bias["neg"][9].abs()) < 1e-6
    assert float(decoding_bias(stats, strength=0.0)["pos"].abs().max()) == 0.0


def test_bias_ignores_the_label_text_so_decoding_cannot_collapse_onto_it() -> None:
    # A sentiment-style label set: the bias of "positive" is the bias of the opaque code
    # "L1" over the same records. The label's name enters neither counts nor bias.
    records = _records()
    named = _release(
        [("positive" if lb == "pos" else "negative", ids) for lb, ids in records],
        labels=["negative", "positive"],
    )
    coded = _release(
        [("L1" if lb == "pos" else "L0", ids) for lb, ids in records], labels=["L0", "L1"]
    )
    assert torch.equal(
        decoding_bias(named, strength=2.0)["positive"], decoding_bias(coded, strength=2.0)["L1"]
    )


def test_release_round_trips_through_bytes() -> None:
    stats = _release(_records())
    back = TokenStats.from_bytes(stats.to_bytes())
    assert back.labels == stats.labels and back.max_tokens == stats.max_tokens
    assert torch.allclose(back.counts, stats.counts, atol=1e-2, rtol=1e-3)


def test_a_model_says_how_long_a_request_without_a_length_samples() -> None:
    # The guided preset's figures were measured at 32 new tokens; every other model, and a
    # guided model stored before the field, keeps the service's 64.
    from privsynth.models.presets import GUIDED_DECODING
    from privsynth.models.sampling import DEFAULT_MAX_TOKENS, default_max_tokens

    guided = GuidedDecoding.from_dict(GUIDED_DECODING).to_dict()
    assert default_max_tokens({"decoding": guided}) == 32
    assert default_max_tokens({"decoding": {**guided, "sample_tokens": 0}}) == DEFAULT_MAX_TOKENS
    assert default_max_tokens({"decoding": {"word_cap": 0.2}}) == DEFAULT_MAX_TOKENS == 64
    assert default_max_tokens({}) == 64
