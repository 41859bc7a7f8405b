"""The Python client: one class over the generated stubs, a deadline on every call.

Errors surface as subclasses of :class:`~privsynth.client.errors.PrivsynthClientError`, one per
status code (``NotFound``, ``BudgetExhausted``, ...), never as raw ``grpc.RpcError``. Every call
takes ``timeout=`` to override the client's default deadline; list calls return a
:class:`~privsynth.client.pagers.Pager` that fetches pages as the caller iterates.
:class:`~privsynth.client.aio.AsyncPrivsynthClient` is the same surface for asyncio.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import grpc
from privsynth.client import requests
from privsynth.client.audit import AuditEntry
from privsynth.client.channel import SERVICE_CONFIG, TlsConfig, open_channel
from privsynth.client.errors import DeadlineExceeded, from_rpc_error
from privsynth.client.pagers import Pager
from privsynth.client.pb import (
    datasets_pb2,
    datasets_pb2_grpc,
    evaluation_pb2,
    evaluation_pb2_grpc,
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
from privsynth.client.requests import UPLOAD_BATCH, RecordIn

__all__ = [
    "SERVICE_CONFIG",
    "UPLOAD_BATCH",
    "WATCH_RECONNECTS",
    "PrivsynthClient",
    "RecordIn",
    "TlsConfig",
]

P = ParamSpec("P")
T = TypeVar("T")


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


def positive(timeout: float) -> float:
    """``timeout`` if it is a deadline; grpcio would read 0 as "none" and never time out.

    Raises:
        ValueError: ``timeout`` is not above 0.
    """
    if not timeout > 0:
        raise ValueError(f"timeout must be > 0 seconds, not {timeout!r}")
    return timeout


WATCH_RECONNECTS = 10
"""How often a watch reconnects after losing its stream (UNAVAILABLE) before giving up."""


def reconnect_delay(code: grpc.StatusCode | None, reconnects: int, deadline: float) -> float | None:
    """Seconds to wait before reopening a watch that ended with ``code``; None: give up.

    Only UNAVAILABLE (a server restart, a dropped connection) is worth another try, with
    exponential backoff, :data:`WATCH_RECONNECTS` times at most and never past ``deadline``
    (a ``time.monotonic()`` value).
    """
    if (
        code != grpc.StatusCode.UNAVAILABLE
        or reconnects >= WATCH_RECONNECTS
        or time.monotonic() >= deadline
    ):
        return None
    return min(5.0, 0.2 * 2.0**reconnects)


class PrivsynthClient:
    """Client of a privsynth server.

    Args:
        target: ``host:port`` of the server.
        timeout: Default deadline in seconds for unary calls (and each page of a list).
        stream_timeout: Default deadline in seconds for uploads, watches and generation.
        token: Bearer token sent as ``authorization`` metadata on every call (empty: none,
            for servers in open mode).
        tls: Connect with TLS (mutual TLS when it holds a client certificate); None: plaintext.
        channel: An existing channel; ``target`` and ``tls`` are ignored then.

    Every method takes ``timeout=`` (seconds) to override the default for that call.
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
        self._raw_channel = channel or open_channel(target, tls)
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
        self.evaluations = evaluation_pb2_grpc.EvaluationsStub(self.channel)

    def close(self) -> None:
        """Close the channel if this client opened it."""
        if self._own_channel:
            self._raw_channel.close()

    def __enter__(self) -> PrivsynthClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _unary(self, timeout: float | None) -> float:
        return self.timeout if timeout is None else positive(timeout)

    def _stream(self, timeout: float | None) -> float:
        return self.stream_timeout if timeout is None else positive(timeout)

    def wait_until_serving(self, timeout: float = 120.0) -> None:
        """Block until the server's health check says SERVING.

        Raises:
            DeadlineExceeded: The server did not become ready in time.
            PrivsynthClientError: The health check kept failing until the deadline.
        """
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
                raise DeadlineExceeded(
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
        timeout: float | None = None,
        record_format: str = "",
    ) -> datasets_pb2.Dataset:
        """Stream records to the server, which scrubs and stores them.

        Retrying is safe: the upload carries a request id (drawn here unless given), so a retry
        of an upload that reached the server returns its dataset instead of a second copy.

        Args:
            records: The corpus; consumed lazily, so it may be a generator over a large file.
                An exception it raises ends the upload (nothing is stored) and is re-raised
                here as it was, not as a gRPC error.
            display_name: Human-readable name.
            epsilon_cap: Budget cap (server default when None).
            delta: δ of the cap (server default when None).
            on_sent: Called with the running count of records sent (progress bars); from
                gRPC's sending thread.
            request_id: The id of this logical upload (AIP-155); reuse it only to retry.
            timeout: Deadline of the whole upload (default: ``stream_timeout``).
            record_format: ``""`` (text) or ``"message/rfc822"``: each record is one e-mail
                message (:func:`~privsynth.client.mailfiles.compact_record`), of which the
                server stores the scrubbed Subject and body.
        """
        first = requests.dataset_metadata(
            display_name=display_name,
            epsilon_cap=epsilon_cap,
            delta=delta,
            request_id=request_id,
            record_format=record_format,
        )
        failure: list[Exception] = []
        started = threading.Event()
        call: list[grpc.Future[datasets_pb2.Dataset]] = []

        def messages() -> Iterator[datasets_pb2.UploadDatasetRequest]:
            yield first
            batcher = requests.UploadBatcher(on_sent)
            try:
                for record in records:
                    message = batcher.add(record)
                    if message is not None:
                        yield message
            except Exception as exc:  # the caller's own: cancel (nothing is stored), keep it
                failure.append(exc)
                started.wait()
                call[0].cancel()
                return
            last = batcher.finish()
            if last is not None:
                yield last

        # A future rather than a blocking call: an exception raised in gRPC's sending thread
        # would reach the caller only as UNKNOWN "Exception iterating requests!".
        call.append(self.datasets.UploadDataset.future(messages(), timeout=self._stream(timeout)))
        started.set()
        try:
            result: datasets_pb2.Dataset = call[0].result()
        except (grpc.RpcError, grpc.FutureCancelledError):
            if failure:
                raise failure[0] from None
            raise
        except BaseException:  # KeyboardInterrupt while waiting: stop the upload too
            call[0].cancel()
            raise
        return result

    @_translate
    def get_dataset(self, name: str, *, timeout: float | None = None) -> datasets_pb2.Dataset:
        """One dataset by resource name."""
        result: datasets_pb2.Dataset = self.datasets.GetDataset(
            datasets_pb2.GetDatasetRequest(name=name), timeout=self._unary(timeout)
        )
        return result

    def list_datasets(
        self, *, page_size: int = 0, timeout: float | None = None
    ) -> Pager[datasets_pb2.Dataset]:
        """Every dataset the caller may see, newest first; pages are fetched while iterating.

        ``page_size`` is the number per request (0: the server's default); ``timeout`` applies
        to each page's request.
        """

        @_translate
        def fetch(token: str) -> datasets_pb2.ListDatasetsResponse:
            result: datasets_pb2.ListDatasetsResponse = self.datasets.ListDatasets(
                datasets_pb2.ListDatasetsRequest(page_size=page_size, page_token=token),
                timeout=self._unary(timeout),
            )
            return result

        return Pager(fetch, lambda page: page.datasets)

    @_translate
    def delete_dataset(self, name: str, *, timeout: float | None = None) -> None:
        """Delete a dataset's scrubbed text (its ledger stays)."""
        self.datasets.DeleteDataset(
            datasets_pb2.DeleteDatasetRequest(name=name), timeout=self._unary(timeout)
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
        holdout_fraction: float | None = None,
        label_prompt: str | None = None,
        timeout: float | None = None,
    ) -> training_pb2.TrainingJob:
        """Reserve budget and start training a generator.

        ``label_distribution`` is ``"dp"`` (default for labelled data: the label mix Generate
        samples from is released with noise, ``label_epsilon_share`` of the ε) or ``"public"``
        (the caller declares the mix public: ``public_label_weights`` or the data's frequencies).
        ``distributed`` reserves the ε now and leaves the job QUEUED for
        ``torchrun -m privsynth.server.jobs.distributed --job <name>`` (the chart's training Job).
        ``request_id`` (drawn here unless given) makes retries safe: a retry returns the job the
        first attempt created and reserves nothing twice. ``holdout_fraction`` (default: the
        server's, 10%) is the share of records kept out of training so the model can be
        evaluated (:meth:`evaluate_model`); 0 keeps none. ``label_prompt`` is the request a
        label is written into for the Hugging Face presets, with ``{label}`` for the label
        (e.g. ``"Write a short {label} review."``; default ``"Write a short text about
        {label}."``); presets ``tiny`` and ``small`` take none.
        """
        req = requests.create_training_job(
            dataset,
            target_epsilon=target_epsilon,
            delta=delta,
            epochs=epochs,
            preset=preset,
            label_distribution=label_distribution,
            label_epsilon_share=label_epsilon_share,
            public_label_weights=public_label_weights,
            distributed=distributed,
            request_id=request_id,
            holdout_fraction=holdout_fraction,
            label_prompt=label_prompt,
        )
        result: training_pb2.TrainingJob = self.training.CreateTrainingJob(
            req, timeout=self._unary(timeout)
        )
        return result

    @_translate
    def get_training_job(
        self, name: str, *, timeout: float | None = None
    ) -> training_pb2.TrainingJob:
        """One job."""
        result: training_pb2.TrainingJob = self.training.GetTrainingJob(
            training_pb2.GetTrainingJobRequest(name=name), timeout=self._unary(timeout)
        )
        return result

    def list_training_jobs(
        self, *, dataset: str = "", page_size: int = 0, timeout: float | None = None
    ) -> Pager[training_pb2.TrainingJob]:
        """Every job the caller may see (of ``dataset`` when given), fetched while iterating."""

        @_translate
        def fetch(token: str) -> training_pb2.ListTrainingJobsResponse:
            result: training_pb2.ListTrainingJobsResponse = self.training.ListTrainingJobs(
                training_pb2.ListTrainingJobsRequest(
                    dataset=dataset, page_size=page_size, page_token=token
                ),
                timeout=self._unary(timeout),
            )
            return result

        return Pager(fetch, lambda page: page.jobs)

    @_translate
    def cancel_training_job(
        self, name: str, *, timeout: float | None = None
    ) -> training_pb2.TrainingJob:
        """Ask a job to stop; returns its state (the ε it consumed so far stays spent)."""
        result: training_pb2.TrainingJob = self.training.CancelTrainingJob(
            training_pb2.CancelTrainingJobRequest(name=name), timeout=self._unary(timeout)
        )
        return result

    @_translate_stream
    def watch_training_job(
        self, name: str, *, timeout: float | None = None
    ) -> Iterator[training_pb2.TrainingJob]:
        """Job snapshots as it progresses, ending when it reaches a terminal state.

        A stream lost to UNAVAILABLE (a server restart, a dropped connection) is reopened with
        backoff, up to :data:`WATCH_RECONNECTS` times within the deadline (``timeout``, default
        ``stream_timeout``); the first snapshot after a reconnect may repeat the last one seen.
        """
        deadline = time.monotonic() + self._stream(timeout)
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
                delay = reconnect_delay(getattr(err, "code", lambda: None)(), reconnects, deadline)
                if delay is None:
                    raise
                time.sleep(delay)
                reconnects += 1

    # -- quality reports ----------------------------------------------------------------------

    @_translate
    def evaluate_model(
        self,
        model: str,
        *,
        sample_count: int = 0,
        canary_audit: bool = False,
        timeout: float | None = None,
    ) -> evaluation_pb2.Evaluation:
        """Start a quality report of ``model`` (a job; follow it with :meth:`watch_evaluation`).

        It reads the model's training records and holdout again, which its DP guarantee does
        not cover (the server records that in the audit log). ``sample_count``: synthetic
        records to draw, 100..5000 (0: 1000). ``canary_audit``: also audit the model's training
        mechanism with canaries (trains once more on public text; no private data, no budget;
        FAILED_PRECONDITION for a model trained without DP-SGD).
        """
        result: evaluation_pb2.Evaluation = self.evaluations.EvaluateModel(
            evaluation_pb2.EvaluateModelRequest(
                model=model, sample_count=sample_count, canary_audit=canary_audit
            ),
            timeout=self._unary(timeout),
        )
        return result

    @_translate
    def get_evaluation(
        self, name: str, *, timeout: float | None = None
    ) -> evaluation_pb2.Evaluation:
        """One evaluation."""
        result: evaluation_pb2.Evaluation = self.evaluations.GetEvaluation(
            evaluation_pb2.GetEvaluationRequest(name=name), timeout=self._unary(timeout)
        )
        return result

    @_translate
    def cancel_evaluation(
        self, name: str, *, timeout: float | None = None
    ) -> evaluation_pb2.Evaluation:
        """Ask an evaluation to stop."""
        result: evaluation_pb2.Evaluation = self.evaluations.CancelEvaluation(
            evaluation_pb2.CancelEvaluationRequest(name=name), timeout=self._unary(timeout)
        )
        return result

    @_translate_stream
    def watch_evaluation(
        self, name: str, *, timeout: float | None = None
    ) -> Iterator[evaluation_pb2.Evaluation]:
        """Evaluation snapshots as it progresses, ending when it has ended."""
        for event in self.evaluations.WatchEvaluation(
            evaluation_pb2.WatchEvaluationRequest(name=name), timeout=self._stream(timeout)
        ):
            yield event.evaluation

    @_translate
    def get_evaluation_report(
        self, name: str, *, timeout: float | None = None
    ) -> evaluation_pb2.EvaluationReport:
        """The finished report as JSON and a self-contained HTML page (the caller's view)."""
        result: evaluation_pb2.EvaluationReport = self.evaluations.GetEvaluationReport(
            evaluation_pb2.GetEvaluationReportRequest(name=name), timeout=self._unary(timeout)
        )
        return result

    # -- models and generation --------------------------------------------------------------

    @_translate
    def get_model(self, name: str, *, timeout: float | None = None) -> models_pb2.Model:
        """One model with its card."""
        result: models_pb2.Model = self.models.GetModel(
            models_pb2.GetModelRequest(name=name), timeout=self._unary(timeout)
        )
        return result

    @_translate
    def delete_model(self, name: str, *, timeout: float | None = None) -> None:
        """Delete a model's weights (card, ledger and audit trail stay; no refund)."""
        self.models.DeleteModel(
            models_pb2.DeleteModelRequest(name=name), timeout=self._unary(timeout)
        )

    def list_models(
        self, *, dataset: str = "", page_size: int = 0, timeout: float | None = None
    ) -> Pager[models_pb2.Model]:
        """Every model the caller may see (of ``dataset`` when given), fetched while iterating."""

        @_translate
        def fetch(token: str) -> models_pb2.ListModelsResponse:
            result: models_pb2.ListModelsResponse = self.models.ListModels(
                models_pb2.ListModelsRequest(
                    dataset=dataset, page_size=page_size, page_token=token
                ),
                timeout=self._unary(timeout),
            )
            return result

        return Pager(fetch, lambda page: page.models)

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
        timeout: float | None = None,
    ) -> Iterator[generation_pb2.SyntheticRecord]:
        """Stream synthetic records, each with its provenance.

        ``guidance`` is the classifier-free guidance weight on the label, in [0, 10] (unset: 0,
        off); it needs a label, given or drawn from the model's label mix, and doubles the
        sampling cost.
        """
        req = requests.generate(
            model,
            count=count,
            temperature=temperature,
            top_p=top_p,
            max_tokens=max_tokens,
            seed=seed,
            label=label,
            guidance=guidance,
        )
        yield from self.generation.Generate(req, timeout=self._stream(timeout))

    # -- privacy ----------------------------------------------------------------------------

    @_translate
    def get_budget(self, dataset: str, *, timeout: float | None = None) -> privacy_pb2.Budget:
        """The dataset's privacy budget."""
        result: privacy_pb2.Budget = self.privacy.GetBudget(
            privacy_pb2.GetBudgetRequest(dataset=dataset), timeout=self._unary(timeout)
        )
        return result

    def list_ledger_entries(
        self, dataset: str, *, page_size: int = 0, timeout: float | None = None
    ) -> Pager[privacy_pb2.LedgerEntry]:
        """The dataset's ledger, oldest first, fetched while iterating."""

        @_translate
        def fetch(token: str) -> privacy_pb2.ListLedgerEntriesResponse:
            result: privacy_pb2.ListLedgerEntriesResponse = self.privacy.ListLedgerEntries(
                privacy_pb2.ListLedgerEntriesRequest(
                    dataset=dataset, page_size=page_size, page_token=token
                ),
                timeout=self._unary(timeout),
            )
            return result

        return Pager(fetch, lambda page: page.entries)

    @_translate_stream
    def export_audit_log(
        self, *, start_seq: int = 0, timeout: float | None = None
    ) -> Iterator[AuditEntry]:
        """The audit chain in order (verify it with :func:`privsynth.client.audit.verify_chain`)."""
        for e in self.privacy.ExportAuditLog(
            privacy_pb2.ExportAuditLogRequest(start_seq=start_seq), timeout=self._stream(timeout)
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
        timeout: float | None = None,
    ) -> privacy_pb2.Budget:
        """Change a dataset's cap (admins only); returns the new budget.

        ``admin_token``, when given, is sent instead of the client's own token for this call.
        """
        req = privacy_pb2.UpdateBudgetCapRequest(dataset=dataset, epsilon_cap=epsilon_cap)
        if delta is not None:
            req.delta = delta
        metadata = (("authorization", f"Bearer {admin_token}"),) if admin_token else None
        result: privacy_pb2.Budget = self.privacy.UpdateBudgetCap(
            req, timeout=self._unary(timeout), metadata=metadata
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
        timeout: float | None = None,
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
        yield from self.privacy.AuditPrivacy(req, timeout=self._stream(timeout))

    # -- ad hoc scrubbing -------------------------------------------------------------------

    @_translate
    def analyze_text(
        self, text: str, *, timeout: float | None = None
    ) -> scrubbing_pb2.AnalyzeTextResponse:
        """PII spans the server's scrubber finds in ``text`` (nothing is stored)."""
        result: scrubbing_pb2.AnalyzeTextResponse = self.scrubbing.AnalyzeText(
            scrubbing_pb2.AnalyzeTextRequest(text=text), timeout=self._unary(timeout)
        )
        return result

    @_translate
    def scrub_text(
        self, text: str, *, timeout: float | None = None
    ) -> scrubbing_pb2.ScrubTextResponse:
        """``text`` with PII replaced, and counts per entity type (nothing is stored)."""
        result: scrubbing_pb2.ScrubTextResponse = self.scrubbing.ScrubText(
            scrubbing_pb2.ScrubTextRequest(text=text), timeout=self._unary(timeout)
        )
        return result
