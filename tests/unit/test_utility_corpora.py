"""The utility benchmark's shipped corpora load as their READMEs describe them.

``benchmarks/utility.py --corpus sentiment`` is issue 14's stand-in for the held-out sentiment
corpus; a loader that silently dropped a label, or a split that moved between machines, would
make its rows compare nothing.
"""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("utility_bench", BENCHMARKS / "utility.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_sentiment_corpus_is_the_balanced_uci_set(bench: ModuleType) -> None:
    rows = bench.CORPORA["sentiment"]()
    assert len(rows) == 3000
    assert Counter(r["label"] for r in rows) == {"negative": 1500, "positive": 1500}
    assert all(r["text"] == " ".join(r["text"].split()) and r["text"] for r in rows)
    assert set(rows[0]) == {"text", "label"}  # the source name is not a feature


def test_the_sentiment_split_is_stratified_and_fixed(bench: ModuleType) -> None:
    train, test = bench.load_split(corpus="sentiment")
    assert (len(train), len(test)) == (2400, 600)
    assert Counter(r["label"] for r in test) == {"negative": 300, "positive": 300}
    again, _ = bench.load_split(corpus="sentiment")
    assert [r["text"] for r in again] == [r["text"] for r in train]
