"""The guided recipe: the public base, untrained, decoded with DP per-label token statistics.

DP-SGD on a 135M base for a few dozen noisy steps taught it the corpus' style but little of
what tells its labels apart (benchmarks/README.md). This recipe spends no ε on gradients: the
generator is the public base as shipped (adaptation ``"none"``), and everything private it
learns is one Gaussian release of per-label token counts (:mod:`privsynth.models.token_stats`),
made when the job ends beside the label release and charged to the same job. Building the
generator therefore reads no private data at all; the card says so (``steps`` 0, σ 0).
"""

from __future__ import annotations

import io
import random
import time
from collections.abc import Sequence
from typing import Any

import torch
from privsynth.models.dp_train import (
    Example,
    TrainingConfigError,
    TrainResult,
    bound_user_contributions,
)
from privsynth.models.family import Tokenizer
from privsynth.models.label_prompt import DEFAULT_LABEL_PROMPT
from privsynth.models.presets import PRESETS
from privsynth.models.secret_rng import NOISE_SOURCE
from privsynth.models.token_stats import (
    DEFAULT_MAX_TOKENS,
    GuidedDecoding,
    TokenStats,
    release_token_stats,
)

__all__ = ["build_guided", "release_for_model", "untrained_card"]


def untrained_card(
    *, kept: Sequence[Example], user_level: bool, delta: float, preset: str
) -> dict[str, Any]:
    """The card entries every recipe that trains nothing shares (guided, private evolution).

    ``kept`` are the records the releases read (one per user on a user-level dataset).
    """
    return {
        "delta": delta,
        "accountant": "prv",
        "epochs": 0,
        "privacy_unit": "user" if user_level else "record",
        "records_per_user_cap": 1 if user_level else None,
        "training_records": len(kept),
        "secure_rng": True,
        "noise_source": NOISE_SOURCE,
        "preset": preset,
    }


def build_guided(
    examples: Sequence[Example],
    *,
    preset: str,
    tokenizer: Tokenizer,
    delta: float,
    rng: random.Random | None = None,
) -> TrainResult:
    """The untrained generator of a ``guided`` preset, and its card (no private step yet).

    User-level datasets keep one secretly chosen record per user, as DP-SGD would, so the
    token release (made from ``TrainResult.examples``) has sensitivity 1 per user.

    Raises:
        TrainingConfigError: The preset is not a guided one, its base does not load, or no
            record has a label.
    """
    from privsynth.models.hf_lm import BaseLoadError, HFLoRAConfig, build_model

    started = time.monotonic()
    spec = PRESETS.get(preset)
    if spec is None or spec.recipe != "guided" or spec.base is None:
        raise TrainingConfigError("preset", "not a guided preset")
    if not any(e.label for e in examples):
        raise TrainingConfigError("dataset", "the guided recipe needs labelled records")
    user_level = any(e.user for e in examples)
    kept = bound_user_contributions(examples, rng=rng) if user_level else list(examples)
    config = HFLoRAConfig(
        base=spec.base,
        adaptation="none",
        output_vocab=tokenizer.vocab_size,
        # The request the sampler will write each label into: the tokenizer's template.
        label_prompt=getattr(tokenizer, "label_prompt", DEFAULT_LABEL_PROMPT),
    )
    try:
        model, _, provenance = build_model(config)
    except BaseLoadError as exc:
        raise TrainingConfigError("preset", str(exc)) from exc
    buffer = io.BytesIO()
    torch.save({}, buffer)
    decoding = GuidedDecoding.from_dict(spec.decoding or {})
    card: dict[str, Any] = {
        "epsilon": 0.0,
        "recipe": "guided",
        "noise_multiplier": 0.0,
        "sample_rate": 0.0,
        "steps": 0,
        **untrained_card(kept=kept, user_level=user_level, delta=delta, preset=preset),
        "base_model": {**provenance, "fine_tuning": "none (decoded with DP token statistics)"},
        "parameters": model.num_parameters(),
        "train_seconds": time.monotonic() - started,
        "label_conditioning": True,
        "decoding": decoding.to_dict(),
        "tokenizer": tokenizer.provenance,
        "label_prompt": config.label_prompt,
    }
    return TrainResult(
        weights=buffer.getvalue(),
        model_config={**config.to_dict(), "decoding": decoding.to_dict()},
        epsilon_spent=0.0,
        card=card,
        examples=kept,
    )


def release_for_model(
    examples: Sequence[Example],
    *,
    tokenizer: Tokenizer,
    labels: Sequence[str],
    noise_multiplier: float,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    decoding: GuidedDecoding | None = None,
) -> TokenStats:
    """Release the statistics the decoding uses, over the tokenizer's whole vocabulary.

    ``labels`` are the labels already released (the DP label mix, or the declared public one);
    ``noise_multiplier`` is σ_T from the job's plan. The noise is secret (fresh per call).
    ``decoding.statistic`` picks the release: per-label token counts, or per-label sentence
    embedding centroids turned into word distributions (same sensitivity, 1; one release).
    """
    texts = [e.text for e in examples]
    if decoding is not None and decoding.statistic == "label-centroids":
        from privsynth.models.label_centroids import (
            prior_distributions,
            release_label_centroids,
            word_table,
        )
        from privsynth.models.sentence_embeddings import embed_texts

        centroids = release_label_centroids(
            embed_texts(texts),
            [e.label for e in examples],
            labels=labels,
            noise_multiplier=noise_multiplier,
        )
        prior = prior_distributions(
            centroids,
            word_table(tokenizer),
            vocab_size=tokenizer.vocab_size,
            temperature=decoding.prior_temperature,
            top_words=decoding.prior_words,
        )
        return TokenStats(
            labels=centroids.labels,
            counts=prior,
            noise_std=noise_multiplier,
            max_tokens=0,
            centroids=centroids.sums,
        )
    ids = tokenizer.encode_batch(texts) if texts else []
    return release_token_stats(
        [(e.label, x) for e, x in zip(examples, ids, strict=True)],
        labels=labels,
        vocab_size=tokenizer.vocab_size,
        noise_multiplier=noise_multiplier,
        max_tokens=max_tokens,
    )
