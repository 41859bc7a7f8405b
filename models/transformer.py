"""A small decoder-only transformer that Opacus can train with per-sample gradients.

Opacus' ``DPMultiheadAttention`` cannot serve a causal model (it rejects ``attn_mask`` and gives
wrong gradients with ``batch_first``), so attention here is built from plain ``nn.Linear`` layers
around ``scaled_dot_product_attention(is_causal=True)``; every parameter then lives in a layer that
Opacus' grad samplers support (Linear, Embedding, LayerNorm). Embedding and LM head are not tied,
which fast (ghost) clipping requires.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

__all__ = ["PRESETS", "KVCache", "TinyTransformerLM", "TransformerConfig", "get_preset"]

KVCache = tuple[torch.Tensor, torch.Tensor]
"""Keys and values of one block for the positions generated so far, ``(B, H, T, d)`` each."""


@dataclass(frozen=True)
class TransformerConfig:
    """Shape of a :class:`TinyTransformerLM`.

    Attributes:
        vocab_size: Number of token ids.
        d_model: Width of the residual stream.
        n_layers: Number of transformer blocks.
        n_heads: Attention heads per block; must divide ``d_model``.
        d_ff: Hidden width of the feed-forward layers.
        max_len: Longest sequence (prompt plus generated tokens) the model accepts.
    """

    vocab_size: int
    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 4
    d_ff: int = 512
    max_len: int = 96

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form, stored next to the weights."""
        return asdict(self)


PRESETS: dict[str, dict[str, int]] = {
    # For tests and smoke runs: trains in seconds.
    "tiny": {"d_model": 64, "n_layers": 1, "n_heads": 2, "d_ff": 128, "max_len": 64},
    # The walking skeleton's default: minutes on 2 CPU cores.
    "small": {"d_model": 128, "n_layers": 2, "n_heads": 4, "d_ff": 512, "max_len": 96},
}


def get_preset(name: str, *, vocab_size: int) -> TransformerConfig:
    """Config of a named preset.

    Raises:
        KeyError: If ``name`` is not a known preset.
    """
    if name not in PRESETS:
        raise KeyError(name)
    return TransformerConfig(vocab_size=vocab_size, **PRESETS[name])


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention from Linear layers and fused SDPA."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        if cfg.d_model % cfg.n_heads:
            raise ValueError("d_model must be divisible by n_heads")
        self.n_heads = cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attend over earlier positions only."""
        b, t, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=2)
        h = self.n_heads
        q = q.view(b, t, h, c // h).transpose(1, 2)
        k = k.view(b, t, h, c // h).transpose(1, 2)
        v = v.view(b, t, h, c // h).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).contiguous().view(b, t, c))  # type: ignore[no-any-return]

    def forward_cached(
        self, x: torch.Tensor, cache: KVCache | None
    ) -> tuple[torch.Tensor, KVCache]:
        """Attention for generation, reusing the keys and values of earlier positions.

        Without a cache ``x`` is the whole prompt (causal attention); with one, ``x`` is the
        single newest position, which may attend to everything before it.
        """
        b, t, c = x.shape
        h = self.n_heads
        q, k, v = self.qkv(x).split(c, dim=2)
        q = q.view(b, t, h, c // h).transpose(1, 2)
        k = k.view(b, t, h, c // h).transpose(1, 2)
        v = v.view(b, t, h, c // h).transpose(1, 2)
        if cache is not None:
            if t != 1:
                raise ValueError("with a cache, feed one position at a time")
            k = torch.cat([cache[0], k], dim=2)
            v = torch.cat([cache[1], v], dim=2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=cache is None)
        return self.proj(y.transpose(1, 2).contiguous().view(b, t, c)), (k, v)


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.fc1 = nn.Linear(cfg.d_model, cfg.d_ff)
        self.fc2 = nn.Linear(cfg.d_ff, cfg.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual attention then residual MLP."""
        x = x + self.attn(self.ln1(x))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))  # type: ignore[no-any-return]

    def forward_cached(
        self, x: torch.Tensor, cache: KVCache | None
    ) -> tuple[torch.Tensor, KVCache]:
        """:meth:`forward` for generation with a key/value cache."""
        a, new_cache = self.attn.forward_cached(self.ln1(x), cache)
        x = x + a
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x)))), new_cache


class TinyTransformerLM(nn.Module):
    """Decoder-only language model: token ids ``(B, T)`` to next-token logits ``(B, T, V)``."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos_emb = nn.Embedding(cfg.max_len, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Logits for every position.

        Position ids are expanded to ``(B, T)`` and made contiguous: Opacus computes per-sample
        gradients of an embedding from its batched input.
        """
        b, t = input_ids.shape
        if t > self.cfg.max_len:
            raise ValueError(f"sequence of {t} tokens exceeds max_len {self.cfg.max_len}")
        pos = torch.arange(t, device=input_ids.device).unsqueeze(0).expand(b, t).contiguous()
        x = self.tok_emb(input_ids.contiguous()) + self.pos_emb(pos)
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))  # type: ignore[no-any-return]

    @torch.inference_mode()
    def forward_cached(
        self, input_ids: torch.Tensor, caches: list[KVCache] | None, start: int
    ) -> tuple[torch.Tensor, list[KVCache]]:
        """Logits of the last position, with per-block key/value caches (generation only).

        Args:
            input_ids: The prompt ``(B, P)`` when ``caches`` is None, else the newest token
                ``(B, 1)``.
            caches: Caches returned by the previous call, or None to start.
            start: Position of ``input_ids[:, 0]`` in the sequence.
        """
        b, t = input_ids.shape
        if start + t > self.cfg.max_len:
            raise ValueError(f"sequence exceeds max_len {self.cfg.max_len}")
        input_ids = input_ids.to(self.tok_emb.weight.device)
        pos = torch.arange(start, start + t, device=input_ids.device).unsqueeze(0).expand(b, t)
        x = self.tok_emb(input_ids) + self.pos_emb(pos)
        new: list[KVCache] = []
        for i, module in enumerate(self.blocks):
            block = module if isinstance(module, Block) else None
            assert block is not None
            x, c = block.forward_cached(x, None if caches is None else caches[i])
            new.append(c)
        return self.head(self.ln_f(x[:, -1:, :]))[:, -1, :], new

    def num_parameters(self) -> int:
        """Count of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
