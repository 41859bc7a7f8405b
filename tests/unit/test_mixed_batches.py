"""Rows of different labels decoded in one batch (``sample_labels``, issue 14's sampling speed).

The service draws a request's labels from the released mix; sampled one label at a time, a
request for twelve records over fifteen labels ran twelve batches of one, and every label's
last batch ran part empty. A model that pads requests of different lengths now decodes them
together. These tests pin what must not change when it does: each row keeps its own label's
request, bias, keyword plan, guidance mask and word cap, and records come in the drawn order.
The stand-in models ignore what they are given, so what the records hold is the sampler's doing.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from list_tokenizer import ListTokenizer
from privsynth.models.sampling import SamplingParams, sample, sample_labels
from torch import nn

COLOURS = ["red", "green", "blue", "gold"]
WORDS = (
    ["<pad>", "<bos>", "<eos>", "<sep>"] + [f"w{i}" for i in range(10)] + COLOURS + ["x", "y", "z"]
)
LABELS = ["x", "y", "z"]
OWN_WORD = {"x": "w1", "y": "w2", "z": "w3"}


class _PaddingLM(nn.Module):
    """Uniform over w0..w9 and the colours at every step; keeps each prompt it was given."""

    mixes_requests = True

    def __init__(self) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))
        self.cfg = type("Cfg", (), {"max_len": 32})()
        self.prompts: list[tuple[list[list[int]], list[int] | None]] = []

    def forward_cached(
        self, seq: torch.Tensor, caches: Any, pos: int, *, pads: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, Any]:
        del pos
        if caches is None:
            self.prompts.append((seq.tolist(), None if pads is None else pads.tolist()))
        logits = torch.full((seq.shape[0], len(WORDS)), -1e9)
        logits[:, 4 : 14 + len(COLOURS)] = 0.0
        return logits, "cache"


class _LabelTokenizer(ListTokenizer):
    """The request is bos, the label's words, sep (so labels differ in length)."""

    def prompt(self, label: str | None) -> list[int]:
        return [self.bos_id, *self.encode(label or ""), self.sep_id]


def _biased(model: _PaddingLM) -> _PaddingLM:
    """Each label's bias writes its own word only (a static bias of 40 logits)."""
    biases = {}
    for label, word in OWN_WORD.items():
        bias = torch.zeros(len(WORDS))
        bias[WORDS.index(word)] = 40.0
        biases[label] = bias
    model.label_biases = biases  # type: ignore[attr-defined]
    return model


def _drawn(n: int, seed: int = 0) -> list[str]:
    return [LABELS[(i * 7 + seed) % 3] for i in range(n)]


def test_one_batch_holds_every_label_and_each_row_keeps_its_own_bias() -> None:
    model = _biased(_PaddingLM())
    tok = _LabelTokenizer(WORDS)
    labels = _drawn(12)
    params = SamplingParams(count=0, seed=1, max_tokens=3)
    out = list(sample_labels(model, tok, params, labels, batch_size=16))  # type: ignore[arg-type]
    assert [s.label for s in out] == labels  # in the drawn order
    assert all(s.text.split() == [OWN_WORD[s.label]] * 3 for s in out if s.label)
    assert len(model.prompts) == 1  # one batch, not one per label
    rows, pads = model.prompts[0]
    assert [row[1] for row in rows] == [WORDS.index(label) for label in labels]
    assert pads is None  # equal requests need no padding


def test_requests_of_different_lengths_are_left_padded() -> None:
    model = _biased(_PaddingLM())
    model.label_biases["x y"] = model.label_biases.pop("x")  # type: ignore[attr-defined]
    labels = ["x y", "z", "x y", "y"]
    params = SamplingParams(count=0, seed=1, max_tokens=2)
    out = list(sample_labels(model, _LabelTokenizer(WORDS), params, labels, batch_size=8))  # type: ignore[arg-type]
    assert [s.text.split() for s in out] == [["w1"] * 2, ["w3"] * 2, ["w1"] * 2, ["w2"] * 2]
    rows, pads = model.prompts[0]
    assert pads == [0, 1, 0, 1]
    assert rows[1][:2] == [WORDS.index("<pad>"), WORDS.index("<bos>")]


def test_a_model_that_cannot_pad_decodes_one_label_per_batch() -> None:
    model = _biased(_PaddingLM())
    model.mixes_requests = False  # type: ignore[misc]
    labels = _drawn(12)
    params = SamplingParams(count=0, seed=1, max_tokens=2)
    out = list(sample_labels(model, _LabelTokenizer(WORDS), params, labels, batch_size=16))  # type: ignore[arg-type]
    assert [s.label for s in out] == labels
    assert all(s.text.split() == [OWN_WORD[s.label]] * 2 for s in out if s.label)
    assert len(model.prompts) == 3
    assert all(len({row[1] for row in rows}) == 1 for rows, _ in model.prompts)


def test_each_row_draws_its_keywords_from_its_own_labels_plan() -> None:
    model = _PaddingLM()
    plans = {"x": ["w1", "w2", "w3"], "y": ["w4", "w5", "w6"], "z": ["w7", "w8", "w9"]}
    model.label_biases = {k: torch.zeros(len(WORDS)) for k in plans}  # type: ignore[attr-defined]
    model.spend_boost = True  # type: ignore[attr-defined]
    model.keyword_plans = {  # type: ignore[attr-defined]
        k: torch.tensor([1.0 if w in words else 0.0 for w in WORDS]) for k, words in plans.items()
    }
    model.plan_words = 2  # type: ignore[attr-defined]
    model.plan_boost = 40.0  # type: ignore[attr-defined]
    labels = _drawn(30, seed=2)
    params = SamplingParams(count=0, seed=4, max_tokens=4)
    out = list(sample_labels(model, _LabelTokenizer(WORDS), params, labels, batch_size=32))  # type: ignore[arg-type]
    assert len(model.prompts) == 1
    for s in out:
        first = s.text.split()[:2]
        assert s.label is not None
        assert len(set(first)) == 2 and set(first) <= set(plans[s.label])


def test_the_word_cap_counts_each_labels_records_on_their_own() -> None:
    # Every record of label x is "red green", of y "red blue", of z "red gold". Counted per
    # label, both words of a record always share one history, so neither is dropped alone (a
    # record that would lose every word is kept whole); counted across labels, "red" would
    # run out first and records would read "green".
    second = {"x": "green", "y": "blue", "z": "gold"}
    model = _PaddingLM()
    biases = {}
    for label, word in second.items():
        bias = torch.zeros(len(WORDS))
        bias[WORDS.index("red")] = 40.0
        bias[WORDS.index(word)] = 30.0
        biases[label] = bias
    model.label_biases = biases  # type: ignore[attr-defined]
    model.spend_boost = True  # type: ignore[attr-defined]
    model.word_cap = 0.5  # type: ignore[attr-defined]
    labels = _drawn(24)
    params = SamplingParams(count=0, seed=1, max_tokens=2)
    out = list(sample_labels(model, _LabelTokenizer(WORDS), params, labels, batch_size=32))  # type: ignore[arg-type]
    assert [s.text for s in out] == [f"red {second[label]}" for label in labels]


@pytest.mark.parametrize("mixes", [True, False])
def test_the_same_seed_gives_the_same_records(mixes: bool) -> None:
    def run() -> list[tuple[str, str | None]]:
        model = _PaddingLM()
        model.mixes_requests = mixes  # type: ignore[misc]
        params = SamplingParams(count=0, seed=9, max_tokens=4)
        labels = _drawn(20)
        return [
            (s.text, s.label)
            for s in sample_labels(model, _LabelTokenizer(WORDS), params, labels, batch_size=8)  # type: ignore[arg-type]
        ]

    assert run() == run()


def test_sample_still_yields_count_records_of_its_label() -> None:
    model = _biased(_PaddingLM())
    params = SamplingParams(count=20, seed=2, max_tokens=2, label="y")
    out = list(sample(model, _LabelTokenizer(WORDS), params, batch_size=8))  # type: ignore[arg-type]
    assert [s.label for s in out] == ["y"] * 20
    assert all(s.text.split() == ["w2", "w2"] for s in out)
    assert len(model.prompts) == 3  # 8 + 8 + 4
