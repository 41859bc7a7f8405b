"""A tokenizer over a short word list: for sampler tests whose stand-in models emit word ids."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class ListTokenizer:
    """Word ``i`` of ``words`` is token ``i``; ids 0-3 are pad, bos, eos and sep.

    Args:
        words: The vocabulary, special tokens first.
        labels: Label name to the token the prompt writes after bos (labels not here, and
            no label, prompt with bos alone).
    """

    pad_id, bos_id, eos_id, sep_id = 0, 1, 2, 3
    prompt_end = (1, 1)

    def __init__(self, words: Sequence[str], labels: dict[str, int] | None = None) -> None:
        self.words = list(words)
        self.labels = labels or {}
        self.vocab_size = len(self.words)

    @property
    def provenance(self) -> dict[str, Any]:
        return {}

    def encode(self, text: str) -> list[int]:
        return [self.words.index(w.lower()) for w in text.split() if w.lower() in self.words]

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]

    def decode(self, ids: Sequence[int]) -> str:
        return " ".join(self.words[i] for i in ids)

    def prompt(self, label: str | None) -> list[int]:
        code = self.labels.get(label) if label is not None else None
        return [self.bos_id] if code is None else [self.bos_id, code]
