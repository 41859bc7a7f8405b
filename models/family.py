"""Generator families: what a preset or a stored model config needs to become a model.

Two families share the DP training loop and the sampler:

* ``tiny`` — privsynth's own transformer with the public BPE tokenizer shipped in the package
  (optionally starting from a base pretrained by ``privsynth pretrain``);
* ``hf-lora`` — a pretrained Hugging Face causal LM with its own (public) tokenizer and LoRA
  adapters (:mod:`privsynth.models.hf_lm`).

Everything that depends on the family (which tokenizer, how to rebuild stored weights) is
decided here, once, from the preset or from the ``family`` field of a model config.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import torch
from privsynth.models.device import resolve_device
from privsynth.models.label_prompt import LabelPromptError
from privsynth.models.presets import PRESETS
from privsynth.models.tokenizer import load_tokenizer
from privsynth.models.transformer import TinyTransformerLM

if TYPE_CHECKING:
    from privsynth.models.hf_lm import HFLoRALM

__all__ = ["Tokenizer", "load_generator", "prompt_positions", "tokenizer_for_preset"]


class Tokenizer(Protocol):
    """What training and sampling need from a tokenizer."""

    @property
    def pad_id(self) -> int: ...  # noqa: D102
    @property
    def bos_id(self) -> int: ...  # noqa: D102
    @property
    def eos_id(self) -> int: ...  # noqa: D102
    @property
    def sep_id(self) -> int: ...  # noqa: D102
    @property
    def vocab_size(self) -> int: ...  # noqa: D102
    @property
    def provenance(self) -> dict[str, Any]: ...  # noqa: D102
    def encode(self, text: str) -> list[int]: ...  # noqa: D102
    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]: ...  # noqa: D102
    def decode(self, ids: Sequence[int]) -> str: ...  # noqa: D102
    def prompt(self, label: str | None) -> list[int]:
        """Token ids written before a record's text: the control code in the family's layout."""
        ...

    @property
    def prompt_end(self) -> tuple[int, int]:
        """Where the prompt ends, as ``(marker, offset)``.

        A record's text starts ``offset`` tokens after its first ``marker`` token; this is how
        the loss finds the prompt in a padded batch.
        """
        ...


def prompt_positions(seq: torch.Tensor, prompt_end: tuple[int, int]) -> torch.Tensor:
    """Which next-token targets of ``seq`` (B, T) lie inside the prompt, as a (B, T-1) mask.

    The prompt is fixed by the record's label, which is public metadata released separately
    (see ``privsynth.server.privacy.labels``): predicting it teaches the model nothing the sampler
    needs, and under DP its gradient would take a share of each record's clipping budget.
    Training and perplexity therefore score the text (and its end) only.
    """
    marker, offset = prompt_end
    start = (seq == marker).int().argmax(dim=1) + offset  # first marker; always in the prompt
    positions = torch.arange(seq.shape[1] - 1, device=seq.device).unsqueeze(0)
    mask: torch.Tensor = positions < (start - 1).unsqueeze(1)
    return mask


def tokenizer_for_preset(preset: str, *, label_prompt: str | None = None) -> Tokenizer:
    """The tokenizer a preset trains with: the base's own for ``hf-lora``, else privsynth's.

    ``label_prompt`` is the request template a label is written into
    (:mod:`privsynth.models.label_prompt`; None: the default). Only ``hf-lora`` prompts in
    words; privsynth's own transformer lays a label out as a control code and takes none.

    Raises:
        KeyError: Unknown preset.
        privsynth.models.hf_lm.BaseLoadError: The preset's base does not load.
        privsynth.models.label_prompt.LabelPromptError: ``label_prompt`` is not a template,
            or the preset's family has no natural-language prompt (rule ``family``).
    """
    p = PRESETS[preset]
    if p.architecture == "hf-lora":
        from privsynth.models.hf_lm import base_tokenizer

        assert p.base is not None
        if label_prompt is None:
            return base_tokenizer(p.base)
        return base_tokenizer(p.base, label_prompt=label_prompt)
    if label_prompt is not None:
        raise LabelPromptError(
            "family",
            f"label_prompt does not fit preset {preset!r}: its model lays a label out as a "
            "control code, not a request in words",
        )
    return load_tokenizer()


def load_generator(
    weights: bytes, model_config: dict[str, Any], *, device: torch.device | str = "cpu"
) -> tuple[TinyTransformerLM | HFLoRALM, Tokenizer]:
    """Rebuild a trained generator (eval mode) and its tokenizer from stored weights.

    Weights are read onto the CPU (wherever they were trained) and the model then moved to
    ``device``: a model trained on a GPU serves from a CPU-only replica and the other way round.

    Args:
        weights: The stored weights artifact.
        model_config: The stored model config (its ``family`` picks the loader).
        device: A :class:`torch.device` or a setting (``auto``, ``cpu``, ``cuda``, ``cuda:N``).

    Raises:
        privsynth.models.hf_lm.BaseLoadError: The base does not load, or the stored model
            was trained with a record layout this version does not sample.
        privsynth.models.device.DeviceUnavailableError: ``device`` names CUDA where there is
            none.
    """
    target = resolve_device(device) if isinstance(device, str) else device
    if model_config.get("recipe") == "private-evolution":
        # The base untouched and the DP-selected population it draws from (CPU: drawing
        # texts needs no device).
        from privsynth.models.evolution_lm import load_evolved

        return load_evolved(weights, model_config)
    if model_config.get("family") == "hf-lora":
        from privsynth.models.hf_lm import HFLoRAConfig, build_model
        from privsynth.models.token_stats import GuidedDecoding, unbundle_weights

        adapters, stats = unbundle_weights(weights)
        settings = {k: v for k, v in model_config.items() if k != "decoding"}
        # A config stored before layouts were recorded used the first, role-as-label layout.
        config = HFLoRAConfig(**{"layout": "role-label", **settings})
        hf_model, hf_tok, _ = build_model(config, adapters=adapters)
        hf_model.to(target)
        hf_model.eval()
        if stats is not None:
            decoding = GuidedDecoding.from_dict(model_config.get("decoding") or {})
            decoding.attach(hf_model, stats, device=target)
        return hf_model, hf_tok
    # Imported here: sampling imports this module for the Tokenizer protocol.
    from privsynth.models.sampling import load_model

    return load_model(weights, model_config).to(target), load_tokenizer()
