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


def tokenizer_for_preset(preset: str) -> Tokenizer:
    """The tokenizer a preset trains with: the base's own for ``hf-lora``, else privsynth's.

    Raises:
        KeyError: Unknown preset.
        privsynth.models.hf_lm.BaseLoadError: The preset's base does not load.
    """
    p = PRESETS[preset]
    if p.architecture == "hf-lora":
        from privsynth.models.hf_lm import base_tokenizer

        assert p.base is not None
        return base_tokenizer(p.base)
    return load_tokenizer()


def load_generator(
    weights: bytes, model_config: dict[str, Any]
) -> tuple[TinyTransformerLM | HFLoRALM, Tokenizer]:
    """Rebuild a trained generator (eval mode) and its tokenizer from stored weights.

    Raises:
        privsynth.models.hf_lm.BaseLoadError: The base does not load, or the stored model
            was trained with a record layout this version does not sample.
    """
    if model_config.get("family") == "hf-lora":
        from privsynth.models.hf_lm import HFLoRAConfig, build_model
        from privsynth.models.token_stats import GuidedDecoding, unbundle_weights

        adapters, stats = unbundle_weights(weights)
        settings = {k: v for k, v in model_config.items() if k != "decoding"}
        # A config stored before layouts were recorded used the first, role-as-label layout.
        config = HFLoRAConfig(**{"layout": "role-label", **settings})
        hf_model, hf_tok, _ = build_model(config, adapters=adapters)
        hf_model.eval()
        if stats is not None:
            decoding = GuidedDecoding.from_dict(model_config.get("decoding") or {})
            hf_model.label_biases = decoding.biases(stats)
            hf_model.label_in_prompt = decoding.label_in_prompt
        return hf_model, hf_tok
    # Imported here: sampling imports this module for the Tokenizer protocol.
    from privsynth.models.sampling import load_model

    return load_model(weights, model_config), load_tokenizer()
