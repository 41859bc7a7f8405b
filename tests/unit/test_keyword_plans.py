"""Spent boosts and per-record keyword plans in the sampler (issue 14).

A static per-label bias strong enough to carry a label's vocabulary made the base repeat its
top tokens ("computers computers computers …"); spending a token's boost once it is written
stops that, and each record drawing its own keywords from the label's distribution spreads the
records over the label's vocabulary. The stand-in model is uniform over ten words, so what the
records contain is the sampler's doing alone.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import torch
from list_tokenizer import ListTokenizer
from privsynth.models.sampling import SamplingParams, sample
from torch import nn

WORDS = ["<pad>", "<bos>", "<eos>", "<sep>"] + [f"w{i}" for i in range(10)]


class _UniformLM(nn.Module):
    """Every word equally likely at every step; end-of-text never."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))
        self.cfg = type("Cfg", (), {"max_len": 32})()

    def forward_cached(self, seq: torch.Tensor, caches: Any, pos: int) -> tuple[torch.Tensor, Any]:
        del caches, pos
        logits = torch.full((seq.shape[0], len(WORDS)), -1e9)
        logits[:, 4:] = 0.0
        return logits, None


def _uniform_over(size: int) -> Any:
    """A ``forward_cached`` uniform over a vocabulary of ``size`` (specials excluded)."""

    def forward(seq: torch.Tensor, caches: Any, pos: int) -> tuple[torch.Tensor, Any]:
        del caches, pos
        logits = torch.full((seq.shape[0], size), -1e9)
        logits[:, 4:] = 0.0
        return logits, None

    return forward


def _records(model: _UniformLM, **params: Any) -> list[list[str]]:
    settings: dict[str, Any] = {"count": 60, "seed": 5, "max_tokens": 8, "label": "a"}
    settings.update(params)
    out = sample(model, ListTokenizer(WORDS), SamplingParams(**settings), batch_size=20)  # type: ignore[arg-type]
    return [s.text.split() for s in out]


def _plan(model: _UniformLM, weights: dict[str, float], *, words: int, named: int = 0) -> None:
    """Give ``model`` label "a"'s keyword plan over ``weights`` (25 logits up until written)."""
    plan = torch.zeros(len(WORDS))
    for word, weight in weights.items():
        plan[WORDS.index(word)] = weight
    model.label_biases = {"a": torch.zeros(len(WORDS))}  # type: ignore[assignment]
    model.spend_boost = True  # type: ignore[assignment]
    model.keyword_plans = {"a": plan}  # type: ignore[assignment]
    model.plan_words = words  # type: ignore[assignment]
    model.plan_boost = 25.0  # type: ignore[assignment]
    model.prompt_words = named  # type: ignore[assignment]


def test_a_spent_boost_stops_the_repetition_a_static_bias_causes() -> None:
    bias = torch.zeros(len(WORDS))
    bias[WORDS.index("w7")] = 25.0
    static = _UniformLM()
    static.label_biases = {"a": bias}  # type: ignore[assignment]
    repeated = [r.count("w7") for r in _records(static)]
    assert min(repeated) == 8  # the static bias writes nothing else
    spent = _UniformLM()
    spent.label_biases = {"a": bias}  # type: ignore[assignment]
    spent.spend_boost = True  # type: ignore[assignment]
    counts = [r.count("w7") for r in _records(spent)]
    assert all(r[0] == "w7" for r in _records(spent))  # still written, first
    assert sum(counts) / len(counts) < 2.0  # then as often as the uniform model writes it


def test_each_record_writes_its_own_keywords_and_the_records_cover_the_distribution() -> None:
    keywords = ["w1", "w2", "w3", "w4", "w5", "w6"]
    model = _UniformLM()
    _plan(model, dict.fromkeys(keywords, 1.0 / len(keywords)), words=2)
    records = _records(model)
    firsts = [tuple(r[:2]) for r in records]
    assert all(a != b and a in keywords and b in keywords for a, b in firsts)
    used = Counter(w for pair in firsts for w in pair)
    assert set(used) == set(keywords)  # plans differ from record to record
    assert all(8 <= n <= 35 for n in used.values())  # drawn in proportion (20 expected)


class _WordsTokenizer(ListTokenizer):
    """A request in words: bos, the named keywords, sep (a stand-in for the HF family's)."""

    names_keywords = True

    def prompt(self, label: str | None, words: Sequence[str] = ()) -> list[int]:
        return [*super().prompt(label), *self.encode(" ".join(words)), self.sep_id]


class _RecordingLM(_UniformLM):
    """The uniform model, keeping what each forward call received."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[list[list[int]], list[int] | None]] = []

    def forward_cached(  # type: ignore[override]
        self, seq: torch.Tensor, caches: Any, pos: int, *, pads: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, Any]:
        self.calls.append((seq.tolist(), None if pads is None else pads.tolist()))
        return super().forward_cached(seq, caches, pos)


def test_each_request_names_its_own_planted_keywords_left_padded() -> None:
    keywords = ["w1", "w2", "w3", "w4", "w5", "w6"]
    model = _RecordingLM()
    _plan(
        model, dict(zip(keywords, [0.5, 0.3, 0.1, 0.05, 0.03, 0.02], strict=True)), words=3, named=2
    )
    tokenizer = _WordsTokenizer(WORDS)
    params = SamplingParams(count=20, seed=3, max_tokens=6, label="a")
    records = [s.text.split() for s in sample(model, tokenizer, params, batch_size=20)]  # type: ignore[arg-type]
    prompts, pads = model.calls[0]
    assert pads is not None and len(prompts) == len(records) == 20
    assert all(pads == call_pads for _, call_pads in model.calls[1:])  # every step is masked
    for row, pad, record in zip(prompts, pads, records, strict=True):
        assert row[:pad] == [tokenizer.pad_id] * pad
        request = row[pad:]
        assert request[0] == tokenizer.bos_id and request[-1] == tokenizer.sep_id
        named = [WORDS[i] for i in request[1:-1]]
        assert len(named) == 2 and set(named) <= set(keywords)
        # The named keywords are among the record's planted (boosted, written-first) ones,
        # and the record holds only text: no request token is decoded into it.
        assert set(named) <= set(record[:3])
        assert "<bos>" not in record and "<sep>" not in record
    assert len({tuple(r[:2]) for r in records}) > 3  # each record its own keywords


def test_a_tokenizer_without_requests_in_words_names_nothing() -> None:
    model = _RecordingLM()
    _plan(model, {"w1": 1.0}, words=1, named=1)
    params = SamplingParams(count=4, seed=3, max_tokens=4, label="a")
    list(sample(model, ListTokenizer(WORDS), params, batch_size=4))  # type: ignore[arg-type]
    prompts, pads = model.calls[0]
    assert pads is None and prompts == [[ListTokenizer.bos_id]] * 4


def test_a_record_opens_with_its_first_keyword_and_spends_only_the_others_boosts() -> None:
    keywords = ["w1", "w2", "w3", "w4", "w5", "w6"]
    model = _RecordingLM()
    _plan(model, dict.fromkeys(keywords, 1.0 / len(keywords)), words=2)
    model.open_with_keyword = True  # type: ignore[attr-defined]
    records = _records(model, max_tokens=4)
    # The opener is part of the record's text, then the other planted keyword comes next
    # (its boost dominates), and the opener is not boosted again: the uniform rest follows.
    assert all(len(r) == 5 and r[0] in keywords and r[1] in keywords for r in records)
    assert all(r[0] != r[1] for r in records)
    openers = Counter(r[0] for r in records)
    assert set(openers) == set(keywords)  # drawn per record, in proportion
    # One forward over the request plus the opener, then one token at a time.
    first, _ = model.calls[0]
    assert all(row[-1] in {WORDS.index(k) for k in keywords} for row in first)


def test_woven_keywords_are_written_at_clause_boundaries_spread_through_the_record() -> None:
    keywords = ["w1", "w2", "w3", "w4", "w5", "w6"]
    words = [*WORDS, "."]
    model = _UniformLM()
    plan = torch.zeros(len(words))
    for word in keywords:
        plan[words.index(word)] = 1.0 / len(keywords)
    # The model can never write a keyword itself: whatever keyword a record holds was woven.
    bias = torch.zeros(len(words))
    bias[[words.index(w) for w in keywords]] = -1e9
    model.label_biases = {"a": bias}  # type: ignore[assignment]
    model.keyword_plans = {"a": plan}  # type: ignore[assignment]
    model.plan_words = 3  # type: ignore[assignment]
    model.weave_every = 3  # type: ignore[attr-defined]
    model.forward_cached = _uniform_over(len(words))  # type: ignore[method-assign]
    params = SamplingParams(count=40, seed=5, max_tokens=24, label="a")
    records = [s.text.split() for s in sample(model, ListTokenizer(words), params, batch_size=20)]  # type: ignore[arg-type]
    for record in records:
        at = [i for i, w in enumerate(record) if w in keywords]
        assert len(at) == 3 and len({record[i] for i in at}) == 3  # its own three, once each
        gaps = [at[0] + 1] + [b - a for a, b in pairwise(at)]
        for i, gap in zip(at, gaps, strict=True):
            # Due after 3 tokens at a clause boundary, and after 6 whatever came before.
            assert gap >= 4 and (record[i - 1] == "." or gap == 7)
    assert len({tuple(sorted(r)) for r in records}) > 10


class _PieceTokenizer(ListTokenizer):
    """Words led by a space, and "+x" pieces that continue the word before them."""

    def __init__(self, words: Sequence[str]) -> None:
        super().__init__(words)
        self.bodies: list[list[int]] = []

    def decode(self, ids: Sequence[int]) -> str:
        if len(ids) > 1:
            self.bodies.append(list(ids))
        return "".join(
            self.words[i][1:] if self.words[i].startswith("+") else " " + self.words[i] for i in ids
        )


def test_a_written_keyword_ends_its_word_with_whole_keywords() -> None:
    keywords = ["w1", "w2", "w3", "w4", "w5", "w6"]
    words = [*WORDS, "+a", "+b", "+c"]
    pieces = {words.index(p) for p in ("+a", "+b", "+c")}
    planted = {words.index(k) for k in keywords}

    def continued(whole: bool) -> tuple[int, int]:
        model = _UniformLM()
        plan = torch.zeros(len(words))
        plan[sorted(planted)] = 1.0
        model.label_biases = {"a": torch.zeros(len(words))}  # type: ignore[assignment]
        model.spend_boost = True  # type: ignore[assignment]
        model.keyword_plans = {"a": plan}  # type: ignore[assignment]
        model.plan_words = len(keywords)  # every keyword is each record's own
        model.plan_boost = 25.0  # type: ignore[assignment]
        model.whole_keywords = whole  # type: ignore[attr-defined]
        model.forward_cached = _uniform_over(len(words))  # type: ignore[method-assign]
        tokenizer = _PieceTokenizer(words)
        params = SamplingParams(count=60, seed=5, max_tokens=8, label="a")
        list(sample(model, tokenizer, params, batch_size=20))  # type: ignore[arg-type]
        after = [b[i + 1] for b in tokenizer.bodies for i in range(len(b) - 1) if b[i] in planted]
        return len(after), sum(t in pieces for t in after)

    written, grown = continued(False)
    assert written >= 100 and grown > 0  # a uniform base grows some keywords into other words
    written, grown = continued(True)
    assert written >= 100 and grown == 0


class _SubjectTokenizer(_WordsTokenizer):
    """Keeps the subject each request was written for."""

    def __init__(self, words: Sequence[str]) -> None:
        super().__init__(words)
        self.subjects: list[str | None] = []

    def prompt(self, label: str | None, words: Sequence[str] = ()) -> list[int]:
        self.subjects.append(label)
        return super().prompt(label, words)


def test_topic_words_name_the_label_by_its_most_probable_released_words() -> None:
    # An opaque code tells the base nothing; the label's released distribution does.
    model = _RecordingLM()
    _plan(model, {"w3": 0.5, "w7": 0.3, "w1": 0.2}, words=0)
    model.keyword_plans = {"C-17": model.keyword_plans["a"]}  # type: ignore[assignment]
    model.topic_words = 2  # type: ignore[attr-defined]
    tokenizer = _SubjectTokenizer(WORDS)
    params = SamplingParams(count=4, seed=3, max_tokens=3, label="C-17")
    assert len(list(sample(model, tokenizer, params, batch_size=4))) == 4  # type: ignore[arg-type]
    assert tokenizer.subjects == ["w3, w7"]
    # Off (the default), the request is written for the label's name.
    model.topic_words = 0  # type: ignore[attr-defined]
    list(sample(model, tokenizer, params, batch_size=4))  # type: ignore[arg-type]
    assert tokenizer.subjects[-1] == "C-17"


def test_topic_words_leave_a_control_code_prompt_alone() -> None:
    # A tokenizer that lays the label out as a control code has no request to write words into.
    model = _RecordingLM()
    _plan(model, {"w3": 1.0}, words=0)
    model.topic_words = 2  # type: ignore[attr-defined]
    tokenizer = ListTokenizer(WORDS, labels={"a": WORDS.index("w9")})
    list(sample(model, tokenizer, SamplingParams(count=2, seed=1, max_tokens=2, label="a")))  # type: ignore[arg-type]
    prompts, _ = model.calls[0]
    assert prompts == [[ListTokenizer.bos_id, WORDS.index("w9")]] * 2
