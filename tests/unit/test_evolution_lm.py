"""The private-evolution builder a job calls, with a fake base and embedder.

What it releases, in which order, and what a run that stops costs: the label mix first (its
labels decide which candidates exist), then one histogram per iteration; a run stopped or
broken after the label release raises ``EvolutionInterrupted`` carrying the ε of what was
released, so the job's ending charges it.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from privsynth.models import presets
from privsynth.models.dp_train import Example, TrainingConfigError
from privsynth.models.evolution_lm import EvolutionInterrupted, build_private_evolution
from privsynth.models.private_evolution import Population

PRESET = "unit-pe"


class FakeWriter:
    def __init__(self, *, fail_vary: bool = False) -> None:
        self.rng = random.Random(0)
        self.tokenizer = SimpleNamespace(vocab_size=100, provenance={"name": "fake"})
        self.written = 0
        self.fail_vary = fail_vary

    def generate(self, requests: Mapping[str, int]) -> dict[str, list[str]]:
        self.written += sum(requests.values())
        return {
            k: [f"{self.rng.uniform(-5, 5):.2f}" for _ in range(n)] for k, n in requests.items()
        }

    def vary(self, texts: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
        if self.fail_vary:
            raise RuntimeError("base went away")
        return {k: [f"{float(t) + 0.1:.2f}" for t in v] for k, v in texts.items()}


def embed(texts: Sequence[str]) -> NDArray[np.float64]:
    return np.array([[float(t)] for t in texts]).reshape(-1, 1)


@pytest.fixture(autouse=True)
def _preset(monkeypatch: pytest.MonkeyPatch) -> None:
    evolution = {**presets.PRIVATE_EVOLUTION, "population": 4, "iterations": 3}
    spec = presets.TrainingPreset(
        PRESET, "hf-lora", "unused", "unit", **{**presets.HF_PE, "evolution": evolution}
    )
    monkeypatch.setitem(presets.PRESETS, PRESET, spec)


def _examples() -> list[Example]:
    return [Example(text="2.0", label="a") for _ in range(40)] + [
        Example(text="-2.0", label="b") for _ in range(40)
    ]


def _build(**kw: Any) -> Any:
    released: list[int] = []

    def release_labels(kept: list[Example]) -> dict[str, Any]:
        released.append(len(kept))
        return {"source": "dp", "distribution": {"a": 0.5}}  # "b" not released

    args: dict[str, Any] = {
        "preset": PRESET,
        "delta": 1e-6,
        "noise_multiplier": 1.0,
        "iterations": 3,
        "release_labels": release_labels,
        "epsilon_after": lambda k: 0.5 + k,
        "writer": FakeWriter(),
        "embed": embed,
    }
    args.update(kw)
    return build_private_evolution(_examples(), **args), released


def test_the_labels_are_released_once_first_and_only_they_get_candidates() -> None:
    result, released = _build()
    assert released == [80]
    population = Population.from_bytes(result.weights)
    assert population.labels == ["a"]
    card = result.card
    assert card["recipe"] == "private-evolution" and card["steps"] == 3
    assert card["sample_rate"] == 1.0 and card["noise_multiplier"] == 1.0
    assert card["label_distribution"]["distribution"] == {"a": 0.5}
    assert card["private_evolution"]["population"] == 4
    assert result.epsilon_spent == 3.5  # epsilon_after(T)
    assert result.model_config["recipe"] == "private-evolution"


def test_a_stop_after_the_label_release_is_charged_what_was_released() -> None:
    asked = iter([False, True])
    with pytest.raises(EvolutionInterrupted) as info:
        _build(should_stop=lambda: next(asked))
    assert info.value.steps == 1 and info.value.epsilon_spent == 1.5
    assert info.value.cancelled and info.value.labels_released


def test_a_failure_after_a_release_is_charged_and_not_a_cancel() -> None:
    with pytest.raises(EvolutionInterrupted) as info:
        _build(writer=FakeWriter(fail_vary=True))
    assert info.value.steps == 1 and not info.value.cancelled
    assert isinstance(info.value.__cause__, RuntimeError)


def test_a_failure_before_any_histogram_still_charges_the_label_release() -> None:
    def broken(texts: Sequence[str]) -> NDArray[np.float64]:
        raise OSError("embedder gone")

    with pytest.raises(EvolutionInterrupted) as info:
        _build(embed=broken)
    assert info.value.steps == 0 and info.value.epsilon_spent == 0.5


def test_what_cannot_run_reads_and_releases_nothing() -> None:
    with pytest.raises(TrainingConfigError, match="not a private-evolution preset"):
        _build(preset="smollm2")
    released: list[int] = []
    with pytest.raises(TrainingConfigError, match="labelled"):
        build_private_evolution(
            [Example(text="x")],
            preset=PRESET,
            delta=1e-6,
            noise_multiplier=1.0,
            iterations=2,
            release_labels=lambda kept: released.append(1) or {},  # type: ignore[func-returns-value]
            epsilon_after=lambda k: 0.0,
            writer=FakeWriter(),  # type: ignore[arg-type]
            embed=embed,
        )
    assert released == []
