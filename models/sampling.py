"""Sampling from a trained generator: temperature and nucleus (top-p), seeded.

Sampling reads only the model, so everything here is post-processing of a DP release and keeps
its guarantee. The same seed and parameters give the same records: a fresh ``torch.Generator``
is seeded per call and nothing else draws from it.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from privsynth.models.family import Tokenizer
from privsynth.models.transformer import TinyTransformerLM, TransformerConfig

if TYPE_CHECKING:
    from privsynth.models.hf_lm import HFLoRALM

__all__ = ["Sample", "SamplingParams", "load_model", "sample"]


@dataclass(frozen=True)
class Sample:
    """One generated record: its text and the label (control code) it was generated under."""

    text: str
    label: str | None


@dataclass(frozen=True, kw_only=True)
class SamplingParams:
    """How to draw records.

    Attributes:
        count: Number of records.
        temperature: Softmax temperature, > 0.
        top_p: Nucleus mass in (0, 1].
        max_tokens: Cap on generated tokens per record.
        seed: Seed of the sampler.
        label: Optional control code to condition on.
        guidance: Classifier-free guidance weight w ≥ 0 on the label (0: off). Each token is
            drawn from ``log p(x|label) + w · (log p(x|label) − log p(x))``, the unlabelled
            prompt giving p(x): it pushes text towards what is specific to the label, which DP
            fine-tuning blurs (its noise erases per-label signal first). Pure post-processing
            of the released model, so it costs no privacy; it doubles the sampling compute.
    """

    count: int
    temperature: float = 1.0
    top_p: float = 0.95
    max_tokens: int = 64
    seed: int = 0
    label: str | None = None
    guidance: float = 0.0


def load_model(weights: bytes, model_config: dict[str, Any]) -> TinyTransformerLM:
    """Rebuild a generator from stored weights and its config, in eval mode."""
    model = TinyTransformerLM(TransformerConfig(**model_config))
    state = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    model.eval()
    return model


NUCLEUS_CANDIDATES = 1024
"""Most probable tokens looked at first for the nucleus; the full sort runs only when a row's
nucleus is larger. Sorting a 49k-token vocabulary took ~1 s per step for a batch of 64 on 2 busy
cores, ``topk(1024)`` ~0.1 s; the result is the same nucleus."""


def _top_p_filter(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the smallest set of most probable tokens whose mass reaches ``top_p``; renormalise.

    A token is kept when the mass of the tokens before it (in descending order) is at most
    ``top_p``. When every row's nucleus lies within its :data:`NUCLEUS_CANDIDATES` most
    probable tokens (the mass before the first left out exceeds ``top_p``), those decide.
    """
    k = min(NUCLEUS_CANDIDATES, probs.shape[-1])
    sorted_p, idx = probs.topk(k, dim=-1)
    cum = sorted_p.cumsum(dim=-1)
    if k < probs.shape[-1] and not bool((cum[:, -1] > top_p).all()):
        sorted_p, idx = probs.sort(dim=-1, descending=True)
        cum = sorted_p.cumsum(dim=-1)
    sorted_p[(cum - sorted_p) > top_p] = 0.0
    filtered = torch.zeros_like(probs).scatter_(-1, idx, sorted_p)
    return filtered / filtered.sum(dim=-1, keepdim=True)


def _fit_bias(logit_bias: torch.Tensor, width: int, eos: int) -> torch.Tensor:
    """The bias cut or zero-padded to the model's output width; end-of-text is never biased."""
    bias = torch.zeros(width)
    n = min(width, int(logit_bias.shape[0]))
    bias[:n] = logit_bias[:n].float()
    if 0 <= eos < width:
        bias[eos] = 0.0
    return bias


@torch.inference_mode()
def sample(
    model: TinyTransformerLM | HFLoRALM,
    tokenizer: Tokenizer,
    params: SamplingParams,
    *,
    batch_size: int = 16,
    logit_bias: torch.Tensor | None = None,
) -> Iterator[Sample]:
    """Yield ``params.count`` records, ``batch_size`` sequences decoded at a time.

    Each record starts from ``tokenizer.prompt(params.label)``: the control code for a label,
    or the unlabelled prompt. A conditional model is asked for labels drawn from its released
    label mix (``privsynth.server.serving.generation``); it is never asked to write a label itself,
    since training scores only the text after the prompt.

    ``logit_bias`` (one value per token id) is added to every step's logits before the
    temperature: the DP-guided decoding of :mod:`privsynth.models.token_stats`, post-processing
    of a DP release like the model itself. Ids past the model's output vocabulary are ignored.
    Without it, a model that carries per-label biases (``label_biases``) gets the label's own;
    such a model may also keep the label out of the prompt (``label_in_prompt``).
    """
    gen = torch.Generator().manual_seed(params.seed)
    biases = getattr(model, "label_biases", None)
    if logit_bias is None and biases and params.label is not None:
        logit_bias = biases.get(params.label)
    in_prompt = bool(getattr(model, "label_in_prompt", True))
    prompt = tokenizer.prompt(params.label if in_prompt else None)
    guided = in_prompt and params.label is not None and params.guidance > 0
    plain = tokenizer.prompt(None) if guided else []
    max_len = model.cfg.max_len
    budget = max(1, min(params.max_tokens, max_len - max(len(prompt), len(plain))))
    eos = tokenizer.eos_id
    bias: torch.Tensor | None = None
    remaining = params.count
    while remaining > 0:
        b = min(batch_size, remaining)
        seq = torch.tensor([prompt] * b, dtype=torch.long)
        done = torch.zeros(b, dtype=torch.bool)
        logits, caches = model.forward_cached(seq, None, 0)
        if guided:
            u_logits, u_caches = model.forward_cached(torch.tensor([plain] * b), None, 0)
        for step in range(budget):
            if guided:
                cond = torch.log_softmax(logits, dim=-1)
                logits = cond + params.guidance * (cond - torch.log_softmax(u_logits, dim=-1))
            if logit_bias is not None:
                if bias is None:
                    bias = _fit_bias(logit_bias, logits.shape[-1], eos)
                logits = logits + bias
            probs = _top_p_filter(torch.softmax(logits / params.temperature, dim=-1), params.top_p)
            nxt = torch.multinomial(probs, 1, generator=gen).squeeze(1)
            nxt = torch.where(done, torch.full_like(nxt, eos), nxt)
            seq = torch.cat([seq, nxt.unsqueeze(1)], dim=1)
            done |= nxt == eos
            if bool(done.all()) or seq.shape[1] >= max_len:
                break
            logits, caches = model.forward_cached(nxt.unsqueeze(1), caches, seq.shape[1] - 1)
            if guided:
                u_logits, u_caches = model.forward_cached(
                    nxt.unsqueeze(1), u_caches, len(plain) + step
                )
        for row in seq.tolist():
            body = row[len(prompt) :]
            if eos in body:
                body = body[: body.index(eos)]
            yield Sample(text=tokenizer.decode(body), label=params.label)
        remaining -= b
