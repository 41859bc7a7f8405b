"""The label prompt template in the recipes that train nothing (issue 14): guided and PE.

A tiny random Llama stands in for SmolLM2. The guided recipe stores the template its
tokenizer asks with, so the served model asks the same; Private Evolution's base writes its
first candidates for the template's request and names a candidate by that request in its
variation prompts (never as a text "about positive"), and the stored population's model asks
the same request. The default template keeps the prompts the recipe was screened with.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

pytest.importorskip("transformers")

from numpy.typing import NDArray
from privsynth.models import presets
from privsynth.models.dp_train import Example
from privsynth.models.evolution_lm import (
    BaseWriter,
    build_private_evolution,
    load_evolved,
)
from privsynth.models.family import load_generator, tokenizer_for_preset
from privsynth.models.guided import build_guided
from privsynth.models.private_evolution import EvolutionConfig
from tiny_llama import tiny_llama_dir

REVIEW = "Write a short {label} review."
EVOLUTION = {**presets.PRIVATE_EVOLUTION, "population": 4, "iterations": 2, "max_new_tokens": 8}


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_llama_dir(tmp_path_factory.mktemp("tiny-llama"))


def _user_turn(tokenizer: Any, ids: Sequence[int]) -> str:
    shown: str = tokenizer.backend.decode(list(ids))
    return shown.split("<|im_start|>user\n", 1)[1].split("<|im_end|>", 1)[0]


def test_the_guided_recipe_stores_its_template_and_its_model_asks_it(
    base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = presets.TrainingPreset("unit-guided", "hf-lora", str(base), "unit", **presets.HF_GUIDED)
    monkeypatch.setitem(presets.PRESETS, "unit-guided", spec)
    tok = tokenizer_for_preset("unit-guided", label_prompt=REVIEW)
    examples = [
        Example(text="the cat sat", label=("positive", "negative")[i % 2]) for i in range(8)
    ]
    result = build_guided(examples, preset="unit-guided", tokenizer=tok, delta=1e-6)
    assert result.model_config["label_prompt"] == REVIEW
    assert result.card["label_prompt"] == REVIEW
    _, served = load_generator(result.weights, result.model_config)
    assert _user_turn(served, served.prompt("positive")) == "Write a short positive review."
    assert served.prompt("positive") == tok.prompt("positive")
    assert _user_turn(served, served.prompt(None)) == "Write a short text."


def _recording(writer: BaseWriter) -> list[list[int]]:
    """Replace the base's generation with a recorder of the prompts it would answer."""
    prompts: list[list[int]] = []

    def complete(batch: Sequence[list[int]], max_new: Sequence[int]) -> list[str]:
        prompts.extend(list(p) for p in batch)
        return ["a fine answer"] * len(batch)

    writer._complete = complete  # type: ignore[method-assign]
    return prompts


@pytest.mark.parametrize(
    ("template", "rewrite", "blank"),
    [
        (
            REVIEW,
            'Rewrite this answer to "Write a short positive review." in different words',
            'Fill in the blanks (_) in this answer to "Write a short positive review." and',
        ),
        (
            None,  # the default: the prompts the recipe was screened with
            "Rewrite this text about positive in different words",
            "Fill in the blanks (_) in this text about positive and",
        ),
    ],
)
def test_private_evolution_asks_the_template_for_candidates_and_in_variations(
    base: Path, template: str | None, rewrite: str, blank: str
) -> None:
    config = EvolutionConfig.from_dict(EVOLUTION)
    kwargs = {} if template is None else {"label_prompt": template}
    writer = BaseWriter(str(base), config=config, rng=random.Random(0), **kwargs)
    tok = writer.tokenizer
    prompts = _recording(writer)
    writer.generate({"positive": 2})
    asked = "Write a short positive review." if template else "Write a short text about positive."
    assert [_user_turn(tok, p) for p in prompts] == [asked, asked]
    for kind, expected in (("rewrite", rewrite), ("blank", blank), ("continue", asked)):
        prompts.clear()
        writer.config = dataclasses.replace(config, variations=(kind,))
        writer.vary({"positive": ["the cat sat on a mat"]})
        (prompt,) = prompts
        assert _user_turn(tok, prompt).startswith(expected), kind
        if template is not None:
            assert "about positive" not in tok.backend.decode(prompt)
    assert prompt[: len(tok.prompt("positive"))] == tok.prompt("positive")  # continue


def _embed(texts: Sequence[str]) -> NDArray[np.float64]:
    return np.array([[float(len(t) % 7), 1.0] for t in texts])


def test_a_private_evolution_model_stores_its_template_and_asks_it_when_loaded(
    base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = presets.TrainingPreset(
        "unit-pe-prompt", "hf-lora", str(base), "unit", **{**presets.HF_PE, "evolution": EVOLUTION}
    )
    monkeypatch.setitem(presets.PRESETS, "unit-pe-prompt", spec)
    fake = SimpleNamespace(
        tokenizer=SimpleNamespace(vocab_size=100, provenance={"name": "fake"}),
        written=0,
        generate=lambda req: {k: [f"text {i}" for i in range(n)] for k, n in req.items()},
        vary=lambda texts: {k: [t + "!" for t in v] for k, v in texts.items()},
    )
    result = build_private_evolution(
        [Example(text="a review", label="positive") for _ in range(40)],
        preset="unit-pe-prompt",
        delta=1e-6,
        noise_multiplier=1.0,
        iterations=2,
        release_labels=lambda kept: {"source": "public", "distribution": {"positive": 1.0}},
        epsilon_after=float,
        writer=fake,  # type: ignore[arg-type]
        embed=_embed,
        label_prompt=REVIEW,
    )
    assert result.model_config["label_prompt"] == REVIEW
    assert result.card["label_prompt"] == REVIEW
    _, served = load_evolved(result.weights, result.model_config)
    assert _user_turn(served, served.prompt("negative")) == "Write a short negative review."
