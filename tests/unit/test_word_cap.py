"""The word cap: no word in most of a label's records (issue 14).

A guided decoding wrote its label's nearest words into nearly every record, and a classifier
trained on such records learnt those words alone. The cap drops, from each record as it is
written, the words that already stand in the given share of the request's records.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest
import torch
from list_tokenizer import ListTokenizer
from privsynth.models.sampling import SamplingParams, sample
from privsynth.models.token_stats import GuidedDecoding, TokenStats
from privsynth.models.word_cap import WordCap
from torch import nn

FRUIT = ["apple", "kiwi", "mango", "pear", "plum", "lime", "fig", "date", "melon", "guava"]
WORDS = ["<pad>", "<bos>", "<eos>", "<sep>", *FRUIT]


def _holding(records: list[str]) -> Counter[str]:
    return Counter(w for r in records for w in {x.strip(",.").casefold() for x in r.split()})


def test_no_word_stands_in_more_than_its_share_of_the_records() -> None:
    rng = random.Random(3)
    cap = WordCap(0.2)
    # Every record says "the art world is"; the rest is drawn from a long tail.
    written = [
        cap.apply(f"The art world is {rng.choice(FRUIT)}, {rng.choice(FRUIT)}.") for _ in range(200)
    ]
    holding = _holding(written)
    assert max(holding.values()) <= 0.2 * 200 + 1
    assert holding["art"] >= 0.2 * 200 - 1  # the cap thins a word out, it does not ban it
    assert all(r.strip() for r in written)


def test_a_record_keeps_its_words_while_under_the_cap_and_reads_cleanly() -> None:
    cap = WordCap(0.2)
    first = cap.apply("The art world is alpha, celebre, dialogue.")
    assert first == "The art world is alpha, celebre, dialogue."
    assert cap.apply("The art world is beta, celebre, dialogue.") == "beta."
    # Words compare without case: "ART" was spent with "art".
    assert cap.apply("ART gamma") == "gamma"


def test_a_record_that_would_lose_every_word_is_kept_whole() -> None:
    cap = WordCap(0.1)
    assert [cap.apply("same words here") for _ in range(3)] == ["same words here"] * 3


def test_a_share_of_one_keeps_everything() -> None:
    cap = WordCap(1.0)
    assert [cap.apply("the art world") for _ in range(5)] == ["the art world"] * 5


@pytest.mark.parametrize("share", [0.0, -0.1, 1.5])
def test_a_share_outside_zero_to_one_is_refused(share: float) -> None:
    with pytest.raises(ValueError, match="word cap share"):
        WordCap(share)


class _KiwiLM(nn.Module):
    """Writes "kiwi" first in every record (a label's nearest word), then any fruit."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))
        self.cfg = type("Cfg", (), {"max_len": 32})()

    def forward_cached(self, seq: torch.Tensor, caches: Any, pos: int) -> tuple[torch.Tensor, Any]:
        del caches
        logits = torch.full((seq.shape[0], len(WORDS)), -1e9)
        logits[:, 4:] = 0.0
        if seq.shape[1] > 1 or pos == 0:  # the prompt's last position: the first word
            logits[:, WORDS.index("kiwi")] = 50.0
        return logits, None


def _texts(model: nn.Module) -> list[str]:
    # "kiwi" and one more fruit: each other fruit stands in about a tenth of the records.
    params = SamplingParams(count=50, seed=2, max_tokens=2, label="a")
    out = sample(model, ListTokenizer(WORDS), params, batch_size=10)  # type: ignore[arg-type]
    return [s.text for s in out]


def test_the_sampler_caps_words_per_request_when_the_decoding_asks() -> None:
    plain = _texts(_KiwiLM())
    assert sum("kiwi" in t.split() for t in plain) == 50
    capped_model = _KiwiLM()
    capped_model.word_cap = 0.2  # type: ignore[assignment]
    capped = _texts(capped_model)
    assert len(capped) == 50 and all(t.strip() for t in capped)
    assert sum("kiwi" in t.split() for t in capped) <= 0.2 * 50 + 1


def test_the_guided_decoding_carries_the_cap_to_the_model() -> None:
    decoding = GuidedDecoding.from_dict({**GuidedDecoding().to_dict(), "word_cap": 0.25})
    assert decoding.word_cap == 0.25
    stats = TokenStats(
        labels=("a",), counts=torch.zeros(1, len(WORDS)), noise_std=1.0, max_tokens=4
    )
    model = nn.Module()
    decoding.attach(model, stats, device="cpu")
    assert model.word_cap == 0.25
