"""Classifier-free guidance never collapses records onto the label text (issue 14).

A sentiment-style label set is the hard case: "Write a short text about negative" makes the
labelled prompt favour the label word itself far above anything else, and guidance, which
amplifies what the labelled prompt favours over the unlabelled one, used to turn most records
into the bare label (833 of 1,000 records " negative"/"positive" at w = 2, issue 14). The model
here is a hand-written stand-in with exactly that preference, so the test is deterministic and
runs in milliseconds.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import torch
from list_tokenizer import ListTokenizer
from privsynth.models.sampling import SamplingParams, sample, sample_labels
from torch import nn

WORDS = ["<pad>", "<bos>", "<eos>", "<sep>", "positive", "negative"] + [f"w{i}" for i in range(10)]
LABELS = {"positive": 4, "negative": 5}


class _LabelLovingLM(nn.Module):
    """p(label word | labelled prompt) = 0.3 at the first step, 0.001 without the label."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))
        self.cfg = type("Cfg", (), {"max_len": 16})()

    def forward_cached(self, seq: torch.Tensor, caches: Any, pos: int) -> tuple[torch.Tensor, Any]:
        prompt = seq if caches is None else caches
        history = seq if caches is None else torch.cat([caches, seq], dim=1)
        rows = []
        for row in history.tolist():
            label = next((t for t in row if t in LABELS.values()), None)
            p = torch.full((len(WORDS),), 1e-6)
            generated = len(row) - (2 if label is not None else 1)
            if generated == 0:
                p[6:] = 0.07
                p[4] = p[5] = 0.001
                if label is not None:
                    p[label] = 0.3
            else:
                p[2] = 0.5
                p[6:] = 0.05
            rows.append(torch.log(p / p.sum()))
        del prompt, pos
        return torch.stack(rows), history


def _label_only(text: str, label: str) -> bool:
    return text.strip().lower() == label


def test_guided_records_are_never_the_bare_label() -> None:
    model, tok = _LabelLovingLM(), ListTokenizer(WORDS, LABELS)
    for label in LABELS:
        params = SamplingParams(count=200, label=label, guidance=2.0, seed=3, max_tokens=4)
        out = list(sample(model, tok, params, batch_size=50))  # type: ignore[arg-type]
        assert len(out) == 200
        assert not [s for s in out if _label_only(s.text, label)]


def test_without_guidance_the_same_model_does_write_bare_labels() -> None:
    # The stand-in really prefers the label (so the test above can fail): unguided sampling
    # returns some bare labels, which only guidance, the amplifier, redraws.
    params = SamplingParams(count=200, label="negative", guidance=0.0, seed=3, max_tokens=4)
    out = list(sample(_LabelLovingLM(), ListTokenizer(WORDS, LABELS), params, batch_size=50))  # type: ignore[arg-type]
    assert sum(_label_only(s.text, "negative") for s in out) > 10


def test_guided_rows_of_different_labels_in_one_batch_each_keep_their_own_label_unboosted() -> None:
    # A batch that mixes labels (sample_labels) must leave each row's own label unguided: a
    # row guided away from the other label only would collapse onto its own.
    model, tok = _LabelLovingLM(), ListTokenizer(WORDS, LABELS)
    model.mixes_requests = True  # type: ignore[attr-defined]
    labels = ["positive", "negative"] * 100
    params = SamplingParams(count=0, guidance=2.0, seed=3, max_tokens=4)
    out = list(sample_labels(model, tok, params, labels, batch_size=50))  # type: ignore[arg-type]
    assert Counter(s.label for s in out) == Counter(labels)
    assert not [s for s in out if s.label and _label_only(s.text, s.label)]
