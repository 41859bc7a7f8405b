"""Request messages of the client calls, built once for the sync and the asyncio client.

Everything here is plain protobuf construction and argument checking, no I/O, so the two
clients cannot drift apart in what they send.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from privsynth.client.pb import datasets_pb2, generation_pb2, training_pb2

__all__ = [
    "UPLOAD_BATCH",
    "RecordIn",
    "UploadBatcher",
    "create_training_job",
    "dataset_metadata",
    "generate",
]

UPLOAD_BATCH = 256
"""Records per upload message: large enough to amortise framing, small enough to stream."""


@dataclass(frozen=True)
class RecordIn:
    """A record to upload. ``text`` may be bytes (sent as-is) or str (UTF-8 encoded)."""

    text: str | bytes
    label: str = ""
    user_id: str = ""


def dataset_metadata(
    *,
    display_name: str,
    epsilon_cap: float | None,
    delta: float | None,
    request_id: str | None,
    record_format: str = "",
) -> datasets_pb2.UploadDatasetRequest:
    """The first message of an upload; draws a request id unless given (AIP-155 retries)."""
    meta = datasets_pb2.DatasetMetadata(
        display_name=display_name,
        request_id=request_id or uuid.uuid4().hex,
        record_format=record_format,
    )
    if epsilon_cap is not None:
        meta.epsilon_cap = epsilon_cap
    if delta is not None:
        meta.delta = delta
    return datasets_pb2.UploadDatasetRequest(metadata=meta)


class UploadBatcher:
    """Groups records into upload messages of :data:`UPLOAD_BATCH` and reports progress.

    ``add`` returns a message when a batch is full, ``finish`` the last partial one; both call
    ``on_sent`` with the running count of records handed over.
    """

    def __init__(self, on_sent: Callable[[int], None] | None = None) -> None:
        self._batch: list[datasets_pb2.Record] = []
        self._sent = 0
        self._on_sent = on_sent

    def add(self, record: RecordIn) -> datasets_pb2.UploadDatasetRequest | None:
        """Queue one record; a full batch's message, or None."""
        text = record.text.encode("utf-8") if isinstance(record.text, str) else record.text
        self._batch.append(
            datasets_pb2.Record(text=text, label=record.label, user_id=record.user_id)
        )
        return self._flush() if len(self._batch) >= UPLOAD_BATCH else None

    def finish(self) -> datasets_pb2.UploadDatasetRequest | None:
        """The message of the records still queued, or None."""
        return self._flush() if self._batch else None

    def _flush(self) -> datasets_pb2.UploadDatasetRequest:
        message = datasets_pb2.UploadDatasetRequest(
            records=datasets_pb2.RecordBatch(records=self._batch)
        )
        self._sent += len(self._batch)
        self._batch = []
        if self._on_sent:
            self._on_sent(self._sent)
        return message


_LABEL_MODES = {
    "dp": training_pb2.LABEL_DISTRIBUTION_DP,
    "public": training_pb2.LABEL_DISTRIBUTION_PUBLIC,
}


def create_training_job(
    dataset: str,
    *,
    target_epsilon: float,
    delta: float | None,
    epochs: int | None,
    preset: str,
    label_distribution: str | None,
    label_epsilon_share: float | None,
    public_label_weights: dict[str, float] | None,
    distributed: bool,
    request_id: str | None,
    holdout_fraction: float | None = None,
    label_prompt: str | None = None,
) -> training_pb2.CreateTrainingJobRequest:
    """A CreateTrainingJob request; draws a request id unless given.

    Raises:
        ValueError: ``label_distribution`` is neither ``"dp"`` nor ``"public"``.
    """
    req = training_pb2.CreateTrainingJobRequest(
        dataset=dataset,
        target_epsilon=target_epsilon,
        preset=preset,
        distributed=distributed,
        request_id=request_id or uuid.uuid4().hex,
    )
    if delta is not None:
        req.delta = delta
    if epochs is not None:
        req.epochs = epochs
    if label_distribution is not None:
        if label_distribution not in _LABEL_MODES:
            raise ValueError("label_distribution must be 'dp' or 'public'")
        req.label_distribution = _LABEL_MODES[label_distribution]
    if label_epsilon_share is not None:
        req.label_epsilon_share = label_epsilon_share
    if public_label_weights:
        req.public_label_weights.update(public_label_weights)
    if holdout_fraction is not None:
        req.holdout_fraction = holdout_fraction
    if label_prompt is not None:
        req.label_prompt = label_prompt
    return req


def generate(
    model: str,
    *,
    count: int,
    temperature: float | None,
    top_p: float | None,
    max_tokens: int | None,
    seed: int,
    label: str | None,
    guidance: float | None,
) -> generation_pb2.GenerateRequest:
    """A Generate request; unset options keep the server's defaults."""
    req = generation_pb2.GenerateRequest(model=model, count=count, seed=seed)
    if temperature is not None:
        req.temperature = temperature
    if top_p is not None:
        req.top_p = top_p
    if max_tokens is not None:
        req.max_tokens = max_tokens
    if label is not None:
        req.label = label
    if guidance is not None:
        req.guidance = guidance
    return req
