"""The Python client: one class over the generated stubs, a deadline on every call.

Errors surface as :class:`~privsynth.client.errors.PrivsynthClientError` with the status code
and decoded details, never as raw ``grpc.RpcError``.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import grpc
from privsynth.client.audit import AuditEntry
from privsynth.client.errors import from_rpc_error
from privsynth.client.pb import (
    datasets_pb2,
    datasets_pb2_grpc,
    generation_pb2,
    generation_pb2_grpc,
    models_pb2,
    models_pb2_grpc,
    privacy_pb2,
    privacy_pb2_grpc,
    scrubbing_pb2,
    scrubbing_pb2_grpc,
    training_pb2,
    training_pb2_grpc,
)

__all__ = ["PrivsynthClient", "RecordIn", "TlsConfig"]

P = ParamSpec("P")
T = TypeVar("T")

UPLOAD_BATCH = 256


@dataclass(frozen=True)
class RecordIn:
    """A record to upload. ``text`` may be bytes (sent as-is) or str (UTF-8 encoded)."""

    text: str | bytes
    label: str = ""
    user_id: str = ""


@dataclass(frozen=True)
class TlsConfig:
    """TLS settings of a client.

    ``root_certificates`` are the PEM bytes of the CA that signed the server's certificate
    (None: the system's roots); ``certificate_chain`` and ``private_key`` are the client's, for
    mutual TLS; ``server_name`` overrides the host name checked against the certificate.
    """

    root_certificates: bytes | None = None
    certificate_chain: bytes | None = None
    private_key: bytes | None = None
    server_name: str = ""

    @classmethod
    def from_files(
        cls,
        *,
        ca: str | None = None,
        cert: str | None = None,
        key: str | None = None,
        server_name: str = "",
    ) -> TlsConfig:
        """Read the PEM files (each optional)."""

        def read(path: str | None) -> bytes | None:
            if not path:
                return None
            with open(path, "rb") as fh:
                return fh.read()

        return cls(read(ca), read(cert), read(key), server_name)


class _BearerToken(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds ``authorization: Bearer <token>`` to every call that does not carry one already."""

    def __init__(self, token: str) -> None:
        self._header = ("authorization", f"Bearer {token}")

    def _details(self, details: Any) -> Any:
        metadata = list(details.metadata or ())
        if not any(k == "authorization" for k, _ in metadata):
            metadata.append(self._header)
        return _CallDetails(
            details.method,
            details.timeout,
            metadata,
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)


@dataclass(frozen=True)
class _CallDetails(grpc.ClientCallDetails):
    method: str
    timeout: float | None
    metadata: Any
    credentials: Any
    wait_for_ready: Any
    compression: Any


def _translate(fn: Callable[P, T]) -> Callable[P, T]:
    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return fn(*args, **kwargs)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None

    return wrapper


def _translate_stream(fn: Callable[P, Iterator[T]]) -> Callable[P, Iterator[T]]:
    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Iterator[T]:
        try:
            yield from fn(*args, **kwargs)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None

    return wrapper


_RETRY_POLICY = {
    "maxAttempts": 5,
    "initialBackoff": "0.2s",
    "maxBackoff": "5s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}
SERVICE_CONFIG = json.dumps(
    {
        "methodConfig": [
            {
                "name": [
                    {"service": f"privsynth.v1.{name}"}
                    for name in (
                        "Datasets",
                        "Training",
                        "Models",
                        "Generation",
                        "Privacy",
                        "Scrubbing",
                    )
                ]
                + [{"service": "grpc.health.v1.Health"}],
                "retryPolicy": _RETRY_POLICY,
            }
        ]
    }
)
"""gRPC's own retries: UNAVAILABLE (server restarting, connection reset) is retried up to 5
times with exponential backoff. Safe for every method: reads are idempotent, and the calls that
create or spend (UploadDataset, CreateTrainingJob) carry a request_id the server deduplicates."""

WATCH_RECONNECTS = 10
"""How often a watch reconnects after losing its stream (UNAVAILABLE) before giving up."""


def _open_channel(target: str, tls: TlsConfig | None) -> grpc.Channel:
    options: list[tuple[str, Any]] = [
        ("grpc.max_send_message_length", 32 * 1024 * 1024),
        ("grpc.enable_retries", 1),
        ("grpc.service_config", SERVICE_CONFIG),
    ]
    if tls is None:
        return grpc.insecure_channel(target, options=options)
    if tls.server_name:
        options.append(("grpc.ssl_target_name_override", tls.server_name))
    credentials = grpc.ssl_channel_credentials(
        root_certificates=tls.root_certificates,
        private_key=tls.private_key,
        certificate_chain=tls.certificate_chain,
    )
    return grpc.secure_channel(target, credentials, options=options)


class PrivsynthClient:
    """Client of a privsynth server.

    Args:
        target: ``host:port`` of the server.
        timeout: Deadline in seconds for unary calls.
        stream_timeout: Deadline in seconds for uploads, watches and generation.
        token: Bearer token sent as ``authorization`` metadata on every call (empty: none,
            for servers in open mode).
        tls: Connect with TLS (mutual TLS when it holds a client certificate); None: plaintext.
        channel: An existing channel; ``target`` and ``tls`` are ignored then.
    """

    def __init__(
        self,
        target: str = "127.0.0.1:50051",
        *,
        timeout: float = 30.0,
        stream_timeout: float = 3600.0,
        token: str = "",
        tls: TlsConfig | None = None,
        channel: grpc.Channel | None = None,
    ) -> None:
        self._own_channel = channel is None
        self._raw_channel = channel or _open_channel(target, tls)
        self.channel: grpc.Channel = self._raw_channel
        if token:
            self.channel = grpc.intercept_channel(self._raw_channel, _BearerToken(token))
        self.timeout = timeout
        self.stream_timeout = stream_timeout
        self.datasets = datasets_pb2_grpc.DatasetsStub(self.channel)
        self.training = training_pb2_grpc.TrainingStub(self.channel)
        self.models = models_pb2_grpc.ModelsStub(self.channel)
        self.generation = generation_pb2_grpc.GenerationStub(self.channel)
        self.privacy = privacy_pb2_grpc.PrivacyStub(self.channel)
        self.scrubbing = scrubbing_pb2_grpc.ScrubbingStub(self.channel)

    def close(self) -> None:
        """Close the channel if this client opened it."""
        if self._own_channel:
            self._raw_channel.close()

    def __enter__(self) -> PrivsynthClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait_until_serving(self, timeout: float = 120.0) -> None:
        """Block until the server's health check says SERVING.

        Raises:
            PrivsynthClientError: The server did not become ready in time.
        """
        import time

        from grpc_health.v1 import health_pb2, health_pb2_grpc

        stub = health_pb2_grpc.HealthStub(self.channel)
        deadline = time.monotonic() + timeout
        while True:
            try:
                resp = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
                if resp.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError as err:
                if time.monotonic() > deadline:
                    raise from_rpc_error(err) from None
            if time.monotonic() > deadline:
                from privsynth.client.errors import PrivsynthClientError

                raise PrivsynthClientError(
                    grpc.StatusCode.DEADLINE_EXCEEDED, "server did not become ready in time"
                )
            time.sleep(0.5)

    # -- datasets ---------------------------------------------------------------------------

    @_translate
    def upload_dataset(
        self,
        records: Iterable[RecordIn],
        *,
        display_name: str = "",
        epsilon_cap: float | None = None,
        delta: float | None = None,
        on_sent: Callable[[int], None] | None = None,
        request_id: str | None = None,
    ) -> datasets_pb2.Dataset:
        """Stream records to the server, which scrubs and stores them.

        Retrying is safe: the upload carries a request id (drawn here unless given), so a retry
        of an upload that reached the server returns its dataset instead of a second copy.

        Args:
            records: The corpus; consumed lazily, so it may be a generator over a large file.
            display_name: Human-readable name.
            epsilon_cap: Budget cap (server default when None).
            delta: δ of the cap (server default when None).
            on_sent: Called with the running count of records sent (progress bars).
            request_id: The id of this logical upload (AIP-155); reuse it only to retry.
        """
        meta = datasets_pb2.DatasetMetadata(
            display_name=display_name, request_id=request_id or uuid.uuid4().hex
        )
        if epsilon_cap is not None:
            meta.epsilon_cap = epsilon_cap
        if delta is not None:
            meta.delta = delta

        def requests() -> Iterator[datasets_pb2.UploadDatasetRequest]:
            yield datasets_pb2.UploadDatasetRequest(metadata=meta)
            batch: list[datasets_pb2.Record] = []
            sent = 0
            for r in records:
                text = r.text.encode("utf-8") if isinstance(r.text, str) else r.text
                batch.append(datasets_pb2.Record(text=text, label=r.label, user_id=r.user_id))
                if len(batch) >= UPLOAD_BATCH:
                    yield datasets_pb2.UploadDatasetRequest(
                        records=datasets_pb2.RecordBatch(records=batch)
                    )
                    sent += len(batch)
                    batch = []
                    if on_sent:
                        on_sent(sent)
            if batch:
                yield datasets_pb2.UploadDatasetRequest(
                    records=datasets_pb2.RecordBatch(records=batch)
                )
                if on_sent:
                    on_sent(sent + len(batch))

        result: datasets_pb2.Dataset = self.datasets.UploadDataset(
            requests(), timeout=self.stream_timeout
        )
        return result

    @_translate
    def get_dataset(self, name: str) -> datasets_pb2.Dataset:
        """One dataset by resource name."""
        result: datasets_pb2.Dataset = self.datasets.GetDataset(
            datasets_pb2.GetDatasetRequest(name=name), timeout=self.timeout
        )
        return result

    @_translate
    def list_datasets(self, *, page_size: int = 0, page_token: str = "") -> Any:
        """One page of datasets."""
        return self.datasets.ListDatasets(
            datasets_pb2.ListDatasetsRequest(page_size=page_size, page_token=page_token),
            timeout=self.timeout,
        )

    @_translate
    def delete_dataset(self, name: str) -> None:
        """Delete a dataset's scrubbed text (its ledger stays)."""
        self.datasets.DeleteDataset(
            datasets_pb2.DeleteDatasetRequest(name=name), timeout=self.timeout
        )

    # -- training ---------------------------------------------------------------------------

    @_translate
    def create_training_job(
        self,
        dataset: str,
        *,
        target_epsilon: float,
        delta: float | None = None,
        epochs: int | None = None,
        preset: str = "",
        label_distribution: str | None = None,
        label_epsilon_share: float | None = None,
        public_label_weights: dict[str, float] | None = None,
        distributed: bool = False,
        request_id: str | None = None,
    ) -> training_pb2.TrainingJob:
        """Reserve budget and start training a generator.

        ``label_distribution`` is ``"dp"`` (default for labelled data: the label mix Generate
        samples from is released with noise, ``label_epsilon_share`` of the ε) or ``"public"``
        (the caller declares the mix public: ``public_label_weights`` or the data's frequencies).
        ``distributed`` reserves the ε now and leaves the job QUEUED for
        ``torchrun -m privsynth.server.jobs.distributed --job <name>`` (the chart's training Job).
        ``request_id`` (drawn here unless given) makes retries safe: a retry returns the job the
        first attempt created and reserves nothing twice.
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
            modes = {
                "dp": training_pb2.LABEL_DISTRIBUTION_DP,
                "public": training_pb2.LABEL_DISTRIBUTION_PUBLIC,
            }
            if label_distribution not in modes:
                raise ValueError("label_distribution must be 'dp' or 'public'")
            req.label_distribution = modes[label_distribution]
        if label_epsilon_share is not None:
            req.label_epsilon_share = label_epsilon_share
        if public_label_weights:
            req.public_label_weights.update(public_label_weights)
        result: training_pb2.TrainingJob = self.training.CreateTrainingJob(
            req, timeout=self.timeout
        )
        return result

    @_translate
    def get_training_job(self, name: str) -> training_pb2.TrainingJob:
        """One job."""
        result: training_pb2.TrainingJob = self.training.GetTrainingJob(
            training_pb2.GetTrainingJobRequest(name=name), timeout=self.timeout
        )
        return result

    @_translate
    def list_training_jobs(
        self, *, dataset: str = "", page_size: int = 0, page_token: str = ""
    ) -> Any:
        """One page of jobs."""
        return self.training.ListTrainingJobs(
            training_pb2.ListTrainingJobsRequest(
                dataset=dataset, page_size=page_size, page_token=page_token
            ),
            timeout=self.timeout,
        )

    @_translate
    def cancel_training_job(self, name: str) -> training_pb2.TrainingJob:
        """Ask a job to stop."""
        result: training_pb2.TrainingJob = self.training.CancelTrainingJob(
            training_pb2.CancelTrainingJobRequest(name=name), timeout=self.timeout
        )
        return result

    @_translate_stream
    def watch_training_job(self, name: str) -> Iterator[training_pb2.TrainingJob]:
        """Job snapshots as it progresses, ending when it reaches a terminal state.

        A stream lost to UNAVAILABLE (a server restart, a dropped connection) is reopened with
        backoff, up to :data:`WATCH_RECONNECTS` times within ``stream_timeout``; the first
        snapshot after a reconnect may repeat the last one seen.
        """
        import time

        deadline = time.monotonic() + self.stream_timeout
        reconnects = 0
        while True:
            try:
                for event in self.training.WatchTrainingJob(
                    training_pb2.WatchTrainingJobRequest(name=name),
                    timeout=max(1.0, deadline - time.monotonic()),
                ):
                    reconnects = 0
                    yield event.job
                return
            except grpc.RpcError as err:
                code = getattr(err, "code", lambda: None)()
                if (
                    code != grpc.StatusCode.UNAVAILABLE
                    or reconnects >= WATCH_RECONNECTS
                    or time.monotonic() >= deadline
                ):
                    raise
                time.sleep(min(5.0, 0.2 * 2**reconnects))
                reconnects += 1

    # -- models and generation --------------------------------------------------------------

    @_translate
    def get_model(self, name: str) -> models_pb2.Model:
        """One model with its card."""
        result: models_pb2.Model = self.models.GetModel(
            models_pb2.GetModelRequest(name=name), timeout=self.timeout
        )
        return result

    @_translate
    def delete_model(self, name: str) -> None:
        """Delete a model's weights (card, ledger and audit trail stay; no refund)."""
        self.models.DeleteModel(models_pb2.DeleteModelRequest(name=name), timeout=self.timeout)

    @_translate
    def list_models(self, *, dataset: str = "", page_size: int = 0, page_token: str = "") -> Any:
        """One page of models."""
        return self.models.ListModels(
            models_pb2.ListModelsRequest(
                dataset=dataset, page_size=page_size, page_token=page_token
            ),
            timeout=self.timeout,
        )

    @_translate_stream
    def generate(
        self,
        model: str,
        *,
        count: int,
        temperature: float | None = None,
        top_p: float | None = None,
        max_tokens: int | None = None,
        seed: int = 0,
        label: str | None = None,
        guidance: float | None = None,
    ) -> Iterator[generation_pb2.SyntheticRecord]:
        """Stream synthetic records, each with its provenance.

        ``guidance`` is the classifier-free guidance weight on the label, in [0, 10] (unset: 0,
        off); it needs a label, given or drawn from the model's label mix, and doubles the
        sampling cost.
        """
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
        yield from self.generation.Generate(req, timeout=self.stream_timeout)

    # -- privacy ----------------------------------------------------------------------------

    @_translate
    def get_budget(self, dataset: str) -> privacy_pb2.Budget:
        """The dataset's privacy budget."""
        result: privacy_pb2.Budget = self.privacy.GetBudget(
            privacy_pb2.GetBudgetRequest(dataset=dataset), timeout=self.timeout
        )
        return result

    @_translate
    def list_ledger_entries(self, dataset: str, *, page_size: int = 0, page_token: str = "") -> Any:
        """One page of the dataset's ledger."""
        return self.privacy.ListLedgerEntries(
            privacy_pb2.ListLedgerEntriesRequest(
                dataset=dataset, page_size=page_size, page_token=page_token
            ),
            timeout=self.timeout,
        )

    @_translate_stream
    def export_audit_log(self, *, start_seq: int = 0) -> Iterator[AuditEntry]:
        """The audit chain in order (verify it with :func:`privsynth.client.audit.verify_chain`)."""
        for e in self.privacy.ExportAuditLog(
            privacy_pb2.ExportAuditLogRequest(start_seq=start_seq), timeout=self.stream_timeout
        ):
            yield AuditEntry(
                seq=e.seq,
                time=e.time,
                actor=e.actor,
                action=e.action,
                dataset=e.dataset,
                job=e.job,
                details=e.details,
                prev_hash=e.prev_hash,
                hash=e.hash,
            )

    @_translate
    def update_budget_cap(
        self,
        dataset: str,
        *,
        epsilon_cap: float,
        delta: float | None = None,
        admin_token: str = "",
    ) -> privacy_pb2.Budget:
        """Change a dataset's cap (admins only); returns the new budget.

        ``admin_token``, when given, is sent instead of the client's own token for this call.
        """
        req = privacy_pb2.UpdateBudgetCapRequest(dataset=dataset, epsilon_cap=epsilon_cap)
        if delta is not None:
            req.delta = delta
        metadata = (("authorization", f"Bearer {admin_token}"),) if admin_token else None
        result: privacy_pb2.Budget = self.privacy.UpdateBudgetCap(
            req, timeout=self.timeout, metadata=metadata
        )
        return result

    @_translate_stream
    def audit_privacy(
        self,
        *,
        target_epsilon: float,
        preset: str = "",
        delta: float | None = None,
        epochs: int | None = None,
        canaries: int | None = None,
        public_records: int | None = None,
        dataset: str = "",
    ) -> Iterator[privacy_pb2.AuditPrivacyEvent]:
        """Run the canary audit of a preset's DP-SGD on the server's public corpus.

        Yields progress events, then one event whose ``result`` holds the claimed ε beside
        the 95%-confidence lower bound. Spends no budget, unless ``dataset`` names a dataset
        to audit on instead of the public corpus: that run trains on private records and is
        charged to the dataset's budget like a training job. Closing the iterator cancels the
        audit on the server.
        """
        req = privacy_pb2.AuditPrivacyRequest(
            preset=preset, target_epsilon=target_epsilon, dataset=dataset
        )
        if delta is not None:
            req.delta = delta
        if epochs is not None:
            req.epochs = epochs
        if canaries is not None:
            req.canaries = canaries
        if public_records is not None:
            req.public_records = public_records
        yield from self.privacy.AuditPrivacy(req, timeout=self.stream_timeout)

    # -- ad hoc scrubbing -------------------------------------------------------------------

    @_translate
    def analyze_text(self, text: str) -> scrubbing_pb2.AnalyzeTextResponse:
        """PII spans the server's scrubber finds in ``text`` (nothing is stored)."""
        result: scrubbing_pb2.AnalyzeTextResponse = self.scrubbing.AnalyzeText(
            scrubbing_pb2.AnalyzeTextRequest(text=text), timeout=self.timeout
        )
        return result

    @_translate
    def scrub_text(self, text: str) -> scrubbing_pb2.ScrubTextResponse:
        """``text`` with PII replaced, and counts per entity type (nothing is stored)."""
        result: scrubbing_pb2.ScrubTextResponse = self.scrubbing.ScrubText(
            scrubbing_pb2.ScrubTextRequest(text=text), timeout=self.timeout
        )
        return result
