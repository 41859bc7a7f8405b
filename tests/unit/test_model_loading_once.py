"""A model (and a base) is loaded once, one load at a time, however many calls ask at once.

Two first Generate calls for a SmolLM2-based model, right after start-up, loaded it twice at
once: 3 runs in 4 ended with one call FAILED_PRECONDITION (an ImportError inside transformers'
lazy imports), once with the model broken until a restart, and the server's memory grew by
2.7 GB for the two copies.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from privsynth.models import hf_lm
from privsynth.server.serving import generation


class _Counting:
    """A stand-in loader that takes a while and counts how many run at once."""

    def __init__(self) -> None:
        self.calls = 0
        self.running = 0
        self.most = 0
        self._lock = threading.Lock()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self.calls += 1
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(0.2)
        with self._lock:
            self.running -= 1
        return ("model", "tokenizer")


def _at_once(fn: Any, n: int = 4) -> list[Any]:
    results: list[Any] = [None] * n
    start = threading.Barrier(n)

    def run(i: int) -> None:
        start.wait()
        results[i] = fn()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def test_a_base_is_loaded_once_when_asked_for_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    loader = _Counting()
    monkeypatch.setattr(hf_lm, "_load_uncached", loader)
    monkeypatch.setattr(hf_lm, "_BASES", type(hf_lm._BASES)())
    results = _at_once(lambda: hf_lm.load_hf_base("some-base"))
    assert loader.calls == 1 and loader.most == 1
    assert all(r is results[0] for r in results)


def test_a_model_is_loaded_once_when_asked_for_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    loader = _Counting()
    monkeypatch.setattr(generation, "load_generator", loader)

    class _Store:
        def get(self, path: str, *, sha256: str | None = None) -> bytes:
            return b"weights"

    class _Runtime:
        store = _Store()
        device = "cpu"

    class _Row:
        id = "m1"
        weights_path = "models/x.pt"
        weights_sha256 = None
        model_config = None

    cache = generation.ModelCache()
    results = _at_once(lambda: cache.get(_Runtime(), _Row()))  # type: ignore[arg-type]
    assert loader.calls == 1 and loader.most == 1
    assert all(r is results[0] for r in results)
