"""Generation: validate a sampling request, load the model (cached) and stream records.

Everything here reads only the trained model and its card, so it is post-processing of the DP
release and spends no budget. Each record is tagged with the model's provenance.

Asked for records without a label, a model whose card carries a label distribution (released
with DP or declared public, see :mod:`privsynth.server.privacy.labels`) draws each record's label
from that mix and conditions on it; the raw label counts are never read. Models without one are
sampled from the unlabelled prompt.
"""

from __future__ import annotations

import math
import random
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from privsynth.models.family import Tokenizer, load_generator
from privsynth.models.hf_lm import BaseLoadError
from privsynth.models.sampling import (
    Sample,
    SamplingParams,
    default_max_tokens,
    sample,
    sample_labels,
)
from privsynth.server.db import ModelRow
from privsynth.server.errors import FailedPrecondition, InvalidArgument, NotFound, Reason
from privsynth.server.runtime import Runtime

__all__ = ["MAX_COUNT", "GenerationRequest", "ModelCache", "generate", "sample_label_mix"]

MAX_COUNT = 10_000
MIN_TEMPERATURE = 0.01
"""Below this, logits / temperature overflows to inf (NaN probabilities); 0.01 is already
greedy decoding in all but name."""


@dataclass(frozen=True)
class GenerationRequest:
    """A sampling request, defaults already applied."""

    model_id: str
    count: int
    temperature: float = 1.0
    top_p: float = 0.95
    max_tokens: int | None = None
    """New tokens per record (None: the model's default, :func:`default_max_tokens`)."""
    seed: int = 0
    label: str | None = None
    guidance: float = 0.0
    """Classifier-free guidance weight on the label, in [0, 10] (0: off). It applies to a given
    label or to labels drawn from the model's mix; with neither it has no effect."""
    tenant: str | None = None
    """Only a model of this tenant may be used (None: any; callers pass the member's tenant)."""

    def validate(self) -> None:
        """Check ranges.

        Raises:
            InvalidArgument: Naming the field.
        """
        if not (1 <= self.count <= MAX_COUNT):
            raise InvalidArgument(f"count must lie in 1..{MAX_COUNT}", field="count")
        if not (math.isfinite(self.temperature) and MIN_TEMPERATURE <= self.temperature <= 5):
            raise InvalidArgument(
                f"temperature must lie in [{MIN_TEMPERATURE}, 5]", field="temperature"
            )
        if not (0 < self.top_p <= 1):
            raise InvalidArgument("top_p must lie in (0, 1]", field="top_p")
        if not (math.isfinite(self.guidance) and 0 <= self.guidance <= 10):
            raise InvalidArgument("guidance must lie in [0, 10]", field="guidance")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise InvalidArgument("max_tokens must be >= 1", field="max_tokens")
        if self.label is not None and (len(self.label) > 100 or not self.label.strip()):
            raise InvalidArgument(
                "label must be 1..100 characters, not only whitespace", field="label"
            )


class ModelCache:
    """A small LRU of loaded generators, keyed by model id."""

    def __init__(self, size: int = 4) -> None:
        self._size = size
        self._items: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        # One load at a time: two first calls for a model used to load it twice at once
        # (twice the memory, and transformers' lazy imports are not thread-safe).
        self._loading = threading.Lock()

    def get(self, runtime: Runtime, row: ModelRow) -> Any:
        """Model and tokenizer for ``row``, loaded (and hash-checked) on first use."""
        cached = self._cached(row.id)
        if cached is not None:
            return cached
        with self._loading:
            cached = self._cached(row.id)  # loaded by the call this one waited for
            if cached is not None:
                return cached
            weights = runtime.store.get(row.weights_path, sha256=row.weights_sha256)
            try:
                model = load_generator(weights, row.model_config, device=runtime.device)
            except BaseLoadError as exc:  # its message names the base, never corpus text
                raise FailedPrecondition(
                    f"model cannot be loaded: {exc}", reason=Reason.MODEL_NOT_READY
                ) from exc
            with self._lock:
                self._items[row.id] = model
                while len(self._items) > self._size:
                    self._items.popitem(last=False)
        return model

    def _cached(self, model_id: str) -> Any:
        with self._lock:
            if model_id in self._items:
                self._items.move_to_end(model_id)
                return self._items[model_id]
        return None


def generate(
    runtime: Runtime, cache: ModelCache, request: GenerationRequest
) -> tuple[ModelRow, Iterator[Sample]]:
    """Check the request and the model, then return the model row and a record iterator.

    Raises:
        InvalidArgument: Bad parameters.
        NotFound: Unknown model.
        FailedPrecondition: The model is still training or its job failed.
    """
    runtime.require_ready()
    request.validate()
    with runtime.db.session() as s:
        row = s.get(ModelRow, request.model_id)
        if row is None or (request.tenant is not None and row.tenant != request.tenant):
            raise NotFound(
                f"model 'models/{request.model_id}' not found", reason=Reason.MODEL_NOT_FOUND
            )
    if row.state == "DELETED":
        raise NotFound(
            f"model 'models/{request.model_id}' not found", reason=Reason.MODEL_NOT_FOUND
        )
    if row.state == "TRAINING":
        raise FailedPrecondition(
            "model is still training; watch its job and retry when done",
            reason=Reason.MODEL_TRAINING,
        )
    if row.state != "READY":
        raise FailedPrecondition(
            "model has no weights: its training job did not succeed",
            reason=Reason.MODEL_NOT_READY,
        )
    model, tokenizer = cache.get(runtime, row)
    if request.label is not None:
        _check_prompt_fits(model, tokenizer, request.label)
    params = SamplingParams(
        count=request.count,
        temperature=request.temperature,
        top_p=request.top_p,
        max_tokens=(
            request.max_tokens
            if request.max_tokens is not None
            else default_max_tokens(row.model_config or {})
        ),
        seed=request.seed,
        label=request.label,
        guidance=request.guidance,
    )
    mix = (row.card.get("label_distribution") or {}).get("distribution") or {}
    batch = runtime.settings.sample_batch_size
    if request.label is None and mix:
        return row, sample_label_mix(model, tokenizer, params, mix, batch_size=batch)
    return row, sample(model, tokenizer, params, batch_size=batch)


def _check_prompt_fits(model: Any, tokenizer: Tokenizer, label: str) -> None:
    """Refuse a label whose prompt leaves the model no room to write (it would not fit at all).

    Raises:
        InvalidArgument: On field ``label``; says how long the model's context is, never the
            label itself.
    """
    max_len = int(model.cfg.max_len)
    tokens = len(tokenizer.prompt(label))
    if tokens >= max_len:
        raise InvalidArgument(
            f"label takes {tokens} tokens, more than this model's context of {max_len} "
            "leaves room for; use a shorter label",
            field="label",
        )


def sample_label_mix(
    model: Any,
    tokenizer: Tokenizer,
    params: SamplingParams,
    mix: Mapping[str, float],
    *,
    batch_size: int,
) -> Iterator[Sample]:
    """``params.count`` records whose labels are drawn from ``mix`` (seeded by ``params.seed``).

    Labels are drawn first, then the records are sampled in the drawn order (so a stream cut
    short still follows the mix), rows of different labels sharing a batch where the model
    allows it (:func:`~privsynth.models.sampling.sample_labels`), ``batch_size`` rows at a
    time (the operator's ``sample_batch_size``; no default, so no caller can bypass it).
    """
    names = sorted(mix)
    drawn = random.Random(params.seed).choices(
        names, weights=[mix[n] for n in names], k=params.count
    )
    return sample_labels(model, tokenizer, params, drawn, batch_size=batch_size)
