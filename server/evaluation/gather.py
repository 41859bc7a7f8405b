"""Everything a report needs from the server: the model, its corpora, samples and tools.

:func:`gather` loads a READY model, reads its dataset's shard, recovers the holdout its training
job set aside (:mod:`privsynth.server.privacy.holdout`, checked against the card's fingerprint)
and draws a synthetic sample from the model with the label mix on its card; :func:`tools` binds
the generator's per-record loss, the scrubbing analyzer and the embedder for
:func:`~privsynth.server.evaluation.report.build_report`.

Sampling reads only the model (post-processing of its DP release); reading the training records
and the holdout does not, and the report says so.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from privsynth.models.dp_train import Example
from privsynth.models.family import Tokenizer, load_generator
from privsynth.models.hf_lm import BaseLoadError
from privsynth.models.sampling import (
    DEFAULT_MAX_TOKENS,
    SamplingParams,
    default_max_tokens,
    sample_labels,
)
from privsynth.models.scoring import ScoringStopped, record_losses
from privsynth.server.db import DatasetRow, JobRow, ModelRow
from privsynth.server.errors import FailedPrecondition, Reason
from privsynth.server.evaluation.control import EvaluationStopped, StopFn, check
from privsynth.server.evaluation.dp_bow import PublicVocabulary, public_vocabulary
from privsynth.server.evaluation.embeddings import Embedder, default_embedder
from privsynth.server.evaluation.report import DetectFn, EvaluationInputs, Tools
from privsynth.server.evaluation.text import Record
from privsynth.server.privacy import holdout
from privsynth.server.runtime import Runtime
from privsynth.server.shards import read_examples

__all__ = ["Gathered", "gather", "label_counts", "model_tools", "synthesize", "tools"]

SAMPLE_BATCH = 64
SAMPLE_SEED = 15
"""Sampling is post-processing of the released model: a fixed seed makes reports repeatable."""


@dataclass(frozen=True)
class Gathered:
    """The report's inputs plus the loaded generator that scores records."""

    inputs: EvaluationInputs
    model: Any
    tokenizer: Tokenizer


def label_counts(distribution: dict[str, float], count: int) -> dict[str, int]:
    """Split ``count`` records over labels in proportion (largest remainder; no randomness)."""
    weights = {k: v for k, v in distribution.items() if v > 0 and math.isfinite(v)}
    total = math.fsum(weights.values())
    if not weights or total <= 0:
        return {}
    exact = {k: count * v / total for k, v in weights.items()}
    counts = {k: math.floor(x) for k, x in exact.items()}
    rest = count - sum(counts.values())
    for k in sorted(exact, key=lambda k: (counts[k] - exact[k], k))[:rest]:
        counts[k] += 1
    return {k: n for k, n in sorted(counts.items()) if n > 0}


def synthesize(
    model: Any,
    tokenizer: Tokenizer,
    distribution: dict[str, float],
    count: int,
    should_stop: StopFn | None = None,
    *,
    max_tokens: int = DEFAULT_MAX_TOKENS,
) -> list[Record]:
    """``count`` records from the model: per label of ``distribution``, or unlabelled.

    ``max_tokens``: new tokens per record; :func:`gather` passes the model's default, the
    length a request that names none gets from the service.

    Labels come one after another, so a model that mixes labels in a batch
    (:func:`~privsynth.models.sampling.sample_labels`) fills each label's last batch with the
    next label's first records.
    """
    mix = label_counts(distribution, count)
    labels: list[str | None] = [k for k, n in mix.items() for _ in range(n)] or [None] * count
    params = SamplingParams(count=count, seed=SAMPLE_SEED, max_tokens=max_tokens)
    out: list[Record] = []
    stream = sample_labels(model, tokenizer, params, labels, batch_size=SAMPLE_BATCH)
    for j, s in enumerate(stream):
        if j % SAMPLE_BATCH == 0:
            check(should_stop)
        out.append(Record(s.text, s.label))
    return out


def gather(
    runtime: Runtime,
    model_row: ModelRow,
    *,
    sample_count: int,
    should_stop: StopFn | None = None,
) -> Gathered:
    """Load the model and build the three corpora.

    Raises:
        FailedPrecondition: The model has no holdout, its dataset is gone, the holdout cannot
            be recovered (the server's secret changed), or the model does not load.
        EvaluationStopped: ``should_stop`` returned True.
    """
    card = model_row.card
    fraction = float((card.get("holdout") or {}).get("fraction") or 0.0)
    with runtime.db.session() as s:
        job = s.get(JobRow, model_row.job_id)
        dataset = s.get(DatasetRow, model_row.dataset_id)
    if dataset is None or dataset.deleted_at is not None:
        raise FailedPrecondition(
            "the model's dataset was deleted: its training records and holdout are gone, so "
            "the model cannot be evaluated"
        )
    if job is None or not fraction:
        raise FailedPrecondition(
            missing_holdout_message(model_row), reason=Reason.MODEL_HAS_NO_HOLDOUT
        )
    examples = read_examples(runtime.store, dataset)
    split = holdout.split(examples, fraction=fraction, key=runtime.user_key, job_id=job.id)
    if split.fingerprint != card["holdout"].get("fingerprint"):
        raise FailedPrecondition(
            "the model's holdout cannot be recovered (the server's user-id key changed since "
            "it was trained); train a new model to evaluate",
            reason=Reason.MODEL_HAS_NO_HOLDOUT,
        )
    check(should_stop)
    weights = runtime.store.get(model_row.weights_path, sha256=model_row.weights_sha256)
    try:
        model, tokenizer = load_generator(weights, model_row.model_config)
    except BaseLoadError as exc:  # its message names the base, never corpus text
        raise FailedPrecondition(f"model cannot be loaded: {exc}") from exc
    released = dict((card.get("label_distribution") or {}).get("distribution") or {})
    synthetic = synthesize(
        model,
        tokenizer,
        released,
        sample_count,
        should_stop,
        max_tokens=default_max_tokens(model_row.model_config or {}),
    )
    inputs = EvaluationInputs(
        model=f"models/{model_row.id}",
        epsilon=float(card.get("epsilon", 0.0)),
        delta=float(card.get("delta", job.delta)),
        privacy_unit=str(card.get("privacy_unit", dataset.privacy_unit)),
        holdout_fraction=fraction,
        training=[Record(e.text, e.label) for e in split.training],
        holdout=[Record(e.text, e.label) for e in split.holdout],
        synthetic=synthetic,
    )
    return Gathered(inputs=inputs, model=model, tokenizer=tokenizer)


def missing_holdout_message(model_row: ModelRow) -> str:
    """What to do about a model trained without a holdout (FAILED_PRECONDITION's message)."""
    note = str((model_row.card.get("holdout") or {}).get("note") or "")
    why = note or "no holdout: the model was trained before holdouts existed"
    return (
        f"model 'models/{model_row.id}' cannot be evaluated: {why}. Train a new model on a "
        f"dataset of at least {holdout.minimum_units(holdout.DEFAULT_FRACTION)} records "
        "(holdout_fraction > 0; 10% by default) and evaluate that one"
    )


_shared: dict[str, Any] = {}
_shared_lock = threading.Lock()


def _cached(name: str, build: Any) -> Any:
    """One embedder and one vocabulary per process (loading the model takes seconds)."""
    with _shared_lock:
        if name not in _shared:
            _shared[name] = build()
        return _shared[name]


def model_tools(model: Any, tokenizer: Tokenizer, *, detect: DetectFn | None = None) -> Tools:
    """The report's tools for a loaded generator: its loss, ``detect`` and the embedder."""

    def loss(rows: Sequence[Record], should_stop: StopFn | None) -> list[float]:
        try:
            return record_losses(
                model,
                tokenizer,
                [Example(text=r.text, label=r.label) for r in rows],
                should_stop=should_stop,
            )
        except ScoringStopped:
            raise EvaluationStopped from None

    embedder: Embedder = _cached("embedder", default_embedder)
    vocabulary: PublicVocabulary = _cached("vocabulary", public_vocabulary)
    return Tools(embedder=embedder, vocabulary=vocabulary, record_loss=loss, detect_pii=detect)


def tools(runtime: Runtime, gathered: Gathered) -> Tools:
    """Bind the generator's loss, the server's scrubbing analyzer and the embedder."""
    scrubber = runtime.scrubber

    def detect(texts: Sequence[str]) -> list[list[str]]:
        return [[r.entity_type for r in found] for found in scrubber.analyze_batch(list(texts))]

    return model_tools(
        gathered.model, gathered.tokenizer, detect=detect if scrubber is not None else None
    )
