"""Per-label token statistics released with DP, and the decoding bias they give.

A pretrained base already writes fluent English; what it lacks is the corpus' vocabulary per
label (which words a "linux" record uses, which a "politics" one). That is released here
directly, by the Gaussian mechanism, instead of being squeezed through a noisy gradient:

* **Vocabulary**: the base tokenizer's token ids ``[0, vocab_size)``: fixed before any data is
  read, so every cell is released and nothing data-dependent leaks through the index set.
* **Bounded contribution**: each record contributes to its own label's row only, at most
  ``max_tokens`` of its distinct token ids (a secret random choice when it has more), each
  with weight ``1/sqrt(k)`` for its ``k`` chosen ids, so one record's vector has L2 norm
  exactly 1: the L2 sensitivity under adding or removing a record is 1.
* **Noise**: ``N(0, σ²)`` on every cell of every released label's row, drawn from a secret
  generator (:mod:`privsynth.models.secret_rng`). σ comes from the job's plan, which composes
  this release with the job's other events in the ledger.
* **Labels**: only labels already released (by the DP label release, or declared public) get
  a row; a record of any other label contributes nothing. Conditioning on that earlier DP
  output is adaptive composition, which the ledger's accountant covers.

Everything after the release (thresholding, smoothing, the log-ratio bias) is post-processing
and costs nothing. :func:`decoding_bias` turns the noisy counts into one additive logit bias
per label: ``λ · (log p_label(t) − log p_all(t))``, a pointwise mutual information between a
token and the label. Tokens the release did not separate from noise get a bias of zero, so the
base's own distribution decides them (function words, sub-word continuations), and the label's
own name gets no special weight, so decoding cannot collapse onto the label text.
"""

from __future__ import annotations

import io
import math
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from privsynth.models.secret_rng import secret_generator, system_random

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "PRIOR_SMOOTHING",
    "GuidedDecoding",
    "TokenStats",
    "bundle_weights",
    "decoding_bias",
    "release_token_stats",
    "unbundle_weights",
]

DEFAULT_MAX_TOKENS = 32
"""Distinct tokens one record may contribute (more are subsampled, secretly)."""
PRIOR_SMOOTHING = 1e-4
"""Probability added to every cell of a ``"prior"`` distribution before the log-ratio."""


@dataclass(frozen=True)
class TokenStats:
    """A DP release of per-label token counts.

    Attributes:
        labels: Released labels, one row each (sorted).
        counts: ``(len(labels), vocab_size)`` noisy weighted counts; for ``kind`` ``"prior"``,
            each label's word distribution derived from released centroids.
        noise_std: Standard deviation of the noise on every cell of the release (σ,
            sensitivity being 1).
        max_tokens: Distinct tokens a record contributed at most (0 for ``"prior"``).
        centroids: The released noisy per-label centroid sums, when the release was of
            centroids (:mod:`privsynth.models.label_centroids`) and ``counts`` holds the word
            distributions post-processed from them (kept with the model so an auditor can
            recompute the distributions).
    """

    labels: tuple[str, ...]
    counts: torch.Tensor
    noise_std: float
    max_tokens: int
    centroids: torch.Tensor | None = None

    @property
    def kind(self) -> str:
        """``"prior"`` (distributions from released centroids) or ``"counts"`` (released)."""
        return "counts" if self.centroids is None else "prior"

    @property
    def vocab_size(self) -> int:
        """Token ids covered."""
        return int(self.counts.shape[1])

    def to_dict(self) -> dict[str, Any]:
        """Plain containers and one tensor (what ``torch.load(weights_only=True)`` reads)."""
        raw: dict[str, Any] = {
            "labels": list(self.labels),
            "counts": self.counts.to(torch.float16 if self.kind == "counts" else torch.float32),
            "noise_std": self.noise_std,
            "max_tokens": self.max_tokens,
        }
        if self.centroids is not None:
            raw["centroids"] = self.centroids.float()
        return raw

    def to_bytes(self) -> bytes:
        """Serialised (the release itself: safe to publish with the model)."""
        buffer = io.BytesIO()
        torch.save(self.to_dict(), buffer)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> TokenStats:
        """Inverse of :meth:`to_bytes`."""
        return cls.from_dict(torch.load(io.BytesIO(data), map_location="cpu", weights_only=True))

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TokenStats:
        """Inverse of :meth:`to_dict`."""
        return cls(
            labels=tuple(str(x) for x in raw["labels"]),
            counts=raw["counts"].float(),
            noise_std=float(raw["noise_std"]),
            max_tokens=int(raw["max_tokens"]),
            centroids=raw["centroids"].float() if "centroids" in raw else None,
        )


def release_token_stats(
    records: Sequence[tuple[str | None, Sequence[int]]],
    *,
    labels: Sequence[str],
    vocab_size: int,
    noise_multiplier: float,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    generator: torch.Generator | None = None,
    rng: random.Random | None = None,
) -> TokenStats:
    """Release each label's token counts with the Gaussian mechanism (see the module docs).

    Args:
        records: ``(label, token ids of its text)`` per training record (one privacy unit each:
            user-level datasets pass one record per user).
        labels: The labels already released; rows for these only.
        vocab_size: Token ids counted are ``[0, vocab_size)``; others are ignored.
        noise_multiplier: σ (the sensitivity is 1).
        max_tokens: Distinct token ids a record contributes at most.
        generator: Noise source; a fresh secret one by default (tests may pass a seeded one,
            production never does).
        rng: Which of a long record's tokens are kept; the OS's CSPRNG by default.

    Raises:
        ValueError: A parameter out of range.
    """
    if not (math.isfinite(noise_multiplier) and noise_multiplier > 0):
        raise ValueError("noise_multiplier must be > 0")
    if max_tokens < 1 or vocab_size < 1:
        raise ValueError("max_tokens and vocab_size must be >= 1")
    names = tuple(sorted(set(labels)))
    row_of = {name: i for i, name in enumerate(names)}
    counts = torch.zeros(len(names), vocab_size, dtype=torch.float64)
    chooser = rng if rng is not None else system_random()
    for label, ids in records:
        row = row_of.get(label) if label is not None else None
        if row is None:
            continue
        distinct = sorted({int(t) for t in ids if 0 <= int(t) < vocab_size})
        if not distinct:
            continue
        if len(distinct) > max_tokens:
            distinct = chooser.sample(distinct, max_tokens)
        counts[row, distinct] += 1.0 / math.sqrt(len(distinct))
    noise = torch.randn(
        counts.shape,
        generator=generator if generator is not None else secret_generator(),
        dtype=torch.float64,
    )
    noisy = (counts + noise * noise_multiplier).float()
    return TokenStats(labels=names, counts=noisy, noise_std=noise_multiplier, max_tokens=max_tokens)


def decoding_bias(
    stats: TokenStats,
    *,
    strength: float,
    threshold: float = 3.0,
    smoothing: float = 1.0,
) -> dict[str, torch.Tensor]:
    """One additive logit bias per released label (post-processing of the release).

    Each label's counts, kept only above ``threshold`` noise standard deviations (else 0), are
    normalised to a distribution ``q_l``; ``q̄`` is their mean over the labels. The bias is
    ``b_l(t) = strength · (log(q_l(t) + s) − log(q̄(t) + s))`` with ``s`` the probability of
    ``smoothing`` noise standard deviations in an average label's total. Normalising first
    keeps a large label from boosting all its tokens over a small one's; a token no label
    shows above the noise gets 0, so the base decides it.

    For ``"prior"`` statistics the rows already are distributions (their noise is in the
    centroids, not per cell): no threshold applies and ``s`` is ``smoothing · 1e-4``.

    Args:
        stats: The release.
        strength: λ ≥ 0; 0 gives zero biases.
        threshold: Noise standard deviations a count must pass to count.
        smoothing: Additive smoothing, in noise standard deviations.
    """
    if stats.kind == "prior":
        q = stats.counts.float()
        s = smoothing * PRIOR_SMOOTHING
        pmi = torch.log(q + s) - torch.log(q.mean(dim=0) + s)
        return {name: strength * pmi[i] for i, name in enumerate(stats.labels)}
    std = max(stats.noise_std, 1e-12)
    kept = torch.where(stats.counts >= threshold * std, stats.counts, torch.zeros(()))
    totals = kept.sum(dim=1, keepdim=True)
    q = kept / totals.clamp(min=1e-12)
    s = smoothing * std / max(float(totals.mean()), 1e-12)
    pmi = torch.log(q + s) - torch.log(q.mean(dim=0) + s)
    return {name: strength * pmi[i] for i, name in enumerate(stats.labels)}


@dataclass(frozen=True, kw_only=True)
class GuidedDecoding:
    """How a model with released token statistics decodes (stored in its model config).

    Attributes:
        strength: λ of :func:`decoding_bias`.
        threshold: Noise standard deviations a count must pass.
        smoothing: Additive smoothing, in noise standard deviations.
        label_in_prompt: Write the label into the prompt too. Off, the label reaches the base
            through the statistics only: nothing in the prompt for decoding to copy, and any
            label vocabulary (sentiments, opaque codes) conditions the same way.
        statistic: What the job releases: ``"token-counts"`` (per-label token counts) or
            ``"label-centroids"`` (per-label sentence-embedding centroids, turned into word
            distributions; :mod:`privsynth.models.label_centroids`).
        prior_temperature: For centroids: softmax temperature over word scores.
        prior_words: For centroids: distinct words per label given probability.
        spend_boost: A positively biased token loses its boost in a record once written
            there, so a strong bias cannot make the base repeat its top tokens.
        plan_words: Keywords drawn per record from its label's distribution (0: none); each
            gets ``plan_boost`` added to its logit until written (spent, with ``spend_boost``).
        plan_boost: The keywords' extra logit.
        prompt_words: Of each record's keywords, how many its request also names ("Use these
            words: …"; 0: none). Only a base prompted in words (the Hugging Face family)
            reads a request; a boost alone makes a small base force the words in, a request
            lets it write them into a sentence.
        open_with_keyword: Each record's text starts with its first planted keyword (a
            prefilled opening word), so the base writes what *that* word makes it think of
            rather than what the label name does: the label's tail words, not only the
            handful of words nearest the label name, then steer whole records.
        weave_every: Every this many tokens, at the next clause boundary, the record's next
            unwritten keyword is written in place of the drawn token (0: never), so each
            record carries its keywords as independent draws would, joined by the base.
        whole_keywords: A planted keyword, once written, ends its word: the next token may
            not continue it ("celeb" grown into "celebutrix" is no longer the keyword).
        word_cap: The largest share of a request's records (one label's) any word may stand
            in; later records lose the words over it (0: no cap;
            :class:`~privsynth.models.word_cap.WordCap`), so the label's nearest words stop
            being in every record, where a classifier trained on them would learn nothing
            else.
        sample_tokens: New tokens per record when a sampling request names no length (0:
            the service's default, :data:`privsynth.models.sampling.DEFAULT_MAX_TOKENS`). The
            guided preset's utility was measured at 32 and is the same at 64 (fortunes, 0.25×,
            ε = 8: 0.38–0.42 against 0.37), at half the records per second.
        topic_words: The request names the label by its this many most probable released
            words instead of by its name (0: by its name). A label's name only helps when it
            is a word the base knows: an opaque code ("C-17") or a sentiment ("positive")
            asks for the wrong text, while the label's DP word distribution (post-processing,
            no privacy cost) says what its records are about in any label vocabulary.
    """

    strength: float = 2.0
    threshold: float = 3.0
    smoothing: float = 1.0
    label_in_prompt: bool = True
    statistic: str = "token-counts"
    prior_temperature: float = 0.08
    prior_words: int = 1000
    spend_boost: bool = False
    plan_words: int = 0
    plan_boost: float = 0.0
    prompt_words: int = 0
    open_with_keyword: bool = False
    weave_every: int = 0
    whole_keywords: bool = False
    word_cap: float = 0.0
    topic_words: int = 0
    sample_tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable, for the model config and card."""
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> GuidedDecoding:
        """Inverse of :meth:`to_dict` (unknown keys are ignored)."""
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in raw.items() if k in known})

    def biases(self, stats: TokenStats) -> dict[str, torch.Tensor]:
        """The per-label logit biases this decoding adds (:func:`decoding_bias`)."""
        return decoding_bias(
            stats, strength=self.strength, threshold=self.threshold, smoothing=self.smoothing
        )

    def plans(self, stats: TokenStats) -> dict[str, torch.Tensor] | None:
        """Each label's keyword distribution, when the decoding draws keyword plans."""
        if self.plan_words <= 0 and self.topic_words <= 0:
            return None
        if stats.kind == "prior":
            rows = stats.counts.float().clamp(min=0.0)
        else:
            std = max(stats.noise_std, 1e-12)
            rows = torch.where(
                stats.counts >= self.threshold * std, stats.counts.float(), torch.zeros(())
            )
        return {name: rows[i] for i, name in enumerate(stats.labels) if float(rows[i].sum()) > 0}

    def attach(self, model: Any, stats: TokenStats, *, device: torch.device | str) -> None:
        """Set on ``model`` what the sampler reads to decode this way with ``stats``.

        Per-label biases, whether the label goes into the prompt, spent boosts and, when
        asked for, the keyword plans and how many keywords each request names
        (:func:`privsynth.models.sampling.sample`).
        """
        model.label_biases = {name: b.to(device) for name, b in self.biases(stats).items()}
        model.label_in_prompt = self.label_in_prompt
        model.spend_boost = self.spend_boost
        plans = self.plans(stats)
        model.keyword_plans = {n: q.to(device) for n, q in plans.items()} if plans else None
        model.plan_words = self.plan_words
        model.plan_boost = self.plan_boost
        model.prompt_words = self.prompt_words
        model.open_with_keyword = self.open_with_keyword
        model.weave_every = self.weave_every
        model.whole_keywords = self.whole_keywords
        model.word_cap = self.word_cap
        model.topic_words = self.topic_words


def bundle_weights(weights: bytes, stats: TokenStats) -> bytes:
    """One weights artifact holding a model's trained parameters and its token statistics.

    Every reader of a stored model (serving, the quality report) rebuilds it from the weights
    and the model config alone, so the statistics travel inside the weights.
    """
    adapters = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
    buffer = io.BytesIO()
    torch.save({"adapters": adapters, "token_stats": stats.to_dict()}, buffer)
    return buffer.getvalue()


def unbundle_weights(data: bytes) -> tuple[dict[str, torch.Tensor], TokenStats | None]:
    """The trained parameters and, for a bundle, the token statistics."""
    raw = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    if isinstance(raw, dict) and set(raw) == {"adapters", "token_stats"}:
        return raw["adapters"], TokenStats.from_dict(raw["token_stats"])
    return raw, None
