"""The asyncio client: the blocking client's main calls on ``grpc.aio``.

For services that already run an event loop, where a blocking call would stall every other
task.

::

    async with AsyncPrivsynthClient("host:50051", token=...) as client:
        ds = await client.upload_dataset(records, display_name="tickets")
        job = await client.create_training_job(ds.name, target_epsilon=4)
        async for snapshot in client.watch_training_job(job.name):
            ...
        async for record in client.generate(job.model, count=100):
            ...
        names = [d.name async for d in client.list_datasets()]

Same arguments, same defaults, same exceptions (:mod:`privsynth.client.errors`) and the same
request messages (:mod:`privsynth.client.requests`) as the blocking client; every call takes
``timeout=``. Uploads accept a plain or an async iterable of records.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Callable,
    Coroutine,
    Iterable,
)
from typing import Any, ParamSpec, TypeVar

import grpc
import grpc.aio
from privsynth.client import requests
from privsynth.client.channel import TlsConfig, open_aio_channel
from privsynth.client.client import positive, reconnect_delay
from privsynth.client.errors import from_rpc_error
from privsynth.client.pagers import AsyncPager
from privsynth.client.pb import (
    datasets_pb2,
    datasets_pb2_grpc,
    generation_pb2,
    generation_pb2_grpc,
    models_pb2,
    models_pb2_grpc,
    privacy_pb2,
    privacy_pb2_grpc,
    training_pb2,
    training_pb2_grpc,
)
from privsynth.client.requests import RecordIn

__all__ = ["AsyncPrivsynthClient"]

P = ParamSpec("P")
T = TypeVar("T")


def _translate(fn: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except grpc.aio.AioRpcError as err:
            raise from_rpc_error(err) from None

    return wrapper


def _translate_stream(fn: Callable[P, AsyncIterator[T]]) -> Callable[P, AsyncIterator[T]]:
    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> AsyncIterator[T]:
        try:
            async for item in fn(*args, **kwargs):
                yield item
        except grpc.aio.AioRpcError as err:
            raise from_rpc_error(err) from None

    return wrapper


async def _each(records: Iterable[RecordIn] | AsyncIterable[RecordIn]) -> AsyncIterator[RecordIn]:
    if isinstance(records, AsyncIterable):
        async for record in records:
            yield record
    else:
        for record in records:
            yield record


class AsyncPrivsynthClient:
    """asyncio client of a privsynth server (arguments as for ``PrivsynthClient``).

    Args:
        target: ``host:port`` of the server.
        timeout: Default deadline in seconds for unary calls (and each page of a list).
        stream_timeout: Default deadline in seconds for uploads, watches and generation.
        token: Bearer token sent as ``authorization`` metadata on every call.
        tls: Connect with TLS (mutual TLS when it holds a client certificate); None: plaintext.
        channel: An existing ``grpc.aio`` channel; ``target`` and ``tls`` are ignored then.
    """

    def __init__(
        self,
        target: str = "127.0.0.1:50051",
        *,
        timeout: float = 30.0,
        stream_timeout: float = 3600.0,
        token: str = "",
        tls: TlsConfig | None = None,
        channel: grpc.aio.Channel | None = None,
    ) -> None:
        self._own_channel = channel is None
        self.channel = channel or open_aio_channel(target, tls)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else None
        self.timeout = timeout
        self.stream_timeout = stream_timeout
        self.datasets = datasets_pb2_grpc.DatasetsStub(self.channel)
        self.training = training_pb2_grpc.TrainingStub(self.channel)
        self.models = models_pb2_grpc.ModelsStub(self.channel)
        self.generation = generation_pb2_grpc.GenerationStub(self.channel)
        self.privacy = privacy_pb2_grpc.PrivacyStub(self.channel)

    async def close(self) -> None:
        """Close the channel if this client opened it."""
        if self._own_channel:
            await self.channel.close()

    async def __aenter__(self) -> AsyncPrivsynthClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _unary(self, timeout: float | None) -> float:
        return self.timeout if timeout is None else positive(timeout)

    def _stream(self, timeout: float | None) -> float:
        return self.stream_timeout if timeout is None else positive(timeout)

    # -- datasets ---------------------------------------------------------------------------

    @_translate
    async def upload_dataset(
        self,
        records: Iterable[RecordIn] | AsyncIterable[RecordIn],
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

        As the blocking client's (``record_format`` too): a retry with the same ``request_id``
        stores nothing twice, and an exception raised by ``records`` cancels the upload (nothing
        is stored) and is re-raised here as it was.
        """
        call = self.datasets.UploadDataset(timeout=self._stream(timeout), metadata=self._metadata)
        batcher = requests.UploadBatcher(on_sent)
        try:
            await call.write(
                requests.dataset_metadata(
                    display_name=display_name,
                    epsilon_cap=epsilon_cap,
                    delta=delta,
                    request_id=request_id,
                    record_format=record_format,
                )
            )
            async for record in _each(records):
                message = batcher.add(record)
                if message is not None:
                    await call.write(message)
            last = batcher.finish()
            if last is not None:
                await call.write(last)
            await call.done_writing()
        except grpc.aio.AioRpcError:
            raise  # the server ended the call (e.g. a record it refused): its status says why
        except BaseException:  # the caller's records failed, or the task was cancelled
            call.cancel()
            raise
        result: datasets_pb2.Dataset = await call
        return result

    @_translate
    async def get_dataset(self, name: str, *, timeout: float | None = None) -> datasets_pb2.Dataset:
        """One dataset by resource name."""
        result: datasets_pb2.Dataset = await self.datasets.GetDataset(
            datasets_pb2.GetDatasetRequest(name=name),
            timeout=self._unary(timeout),
            metadata=self._metadata,
        )
        return result

    def list_datasets(
        self, *, page_size: int = 0, timeout: float | None = None
    ) -> AsyncPager[datasets_pb2.Dataset]:
        """Every dataset the caller may see; pages are fetched while iterating."""

        @_translate
        async def fetch(token: str) -> datasets_pb2.ListDatasetsResponse:
            result: datasets_pb2.ListDatasetsResponse = await self.datasets.ListDatasets(
                datasets_pb2.ListDatasetsRequest(page_size=page_size, page_token=token),
                timeout=self._unary(timeout),
                metadata=self._metadata,
            )
            return result

        return AsyncPager(fetch, lambda page: page.datasets)

    @_translate
    async def delete_dataset(self, name: str, *, timeout: float | None = None) -> None:
        """Delete a dataset's scrubbed text (its ledger stays)."""
        await self.datasets.DeleteDataset(
            datasets_pb2.DeleteDatasetRequest(name=name),
            timeout=self._unary(timeout),
            metadata=self._metadata,
        )

    # -- training ---------------------------------------------------------------------------

    @_translate
    async def create_training_job(
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
        timeout: float | None = None,
    ) -> training_pb2.TrainingJob:
        """Reserve budget and start training a generator (see ``PrivsynthClient``)."""
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
        )
        result: training_pb2.TrainingJob = await self.training.CreateTrainingJob(
            req, timeout=self._unary(timeout), metadata=self._metadata
        )
        return result

    @_translate
    async def get_training_job(
        self, name: str, *, timeout: float | None = None
    ) -> training_pb2.TrainingJob:
        """One job."""
        result: training_pb2.TrainingJob = await self.training.GetTrainingJob(
            training_pb2.GetTrainingJobRequest(name=name),
            timeout=self._unary(timeout),
            metadata=self._metadata,
        )
        return result

    def list_training_jobs(
        self, *, dataset: str = "", page_size: int = 0, timeout: float | None = None
    ) -> AsyncPager[training_pb2.TrainingJob]:
        """Every job the caller may see (of ``dataset`` when given), fetched while iterating."""

        @_translate
        async def fetch(token: str) -> training_pb2.ListTrainingJobsResponse:
            result: training_pb2.ListTrainingJobsResponse = await self.training.ListTrainingJobs(
                training_pb2.ListTrainingJobsRequest(
                    dataset=dataset, page_size=page_size, page_token=token
                ),
                timeout=self._unary(timeout),
                metadata=self._metadata,
            )
            return result

        return AsyncPager(fetch, lambda page: page.jobs)

    @_translate
    async def cancel_training_job(
        self, name: str, *, timeout: float | None = None
    ) -> training_pb2.TrainingJob:
        """Ask a job to stop; returns its state (the ε it consumed so far stays spent)."""
        result: training_pb2.TrainingJob = await self.training.CancelTrainingJob(
            training_pb2.CancelTrainingJobRequest(name=name),
            timeout=self._unary(timeout),
            metadata=self._metadata,
        )
        return result

    @_translate_stream
    async def watch_training_job(
        self, name: str, *, timeout: float | None = None
    ) -> AsyncIterator[training_pb2.TrainingJob]:
        """Job snapshots until it ends; reconnects after UNAVAILABLE like the blocking client."""
        deadline = time.monotonic() + self._stream(timeout)
        reconnects = 0
        while True:
            try:
                async for event in self.training.WatchTrainingJob(
                    training_pb2.WatchTrainingJobRequest(name=name),
                    timeout=max(1.0, deadline - time.monotonic()),
                    metadata=self._metadata,
                ):
                    reconnects = 0
                    yield event.job
                return
            except grpc.aio.AioRpcError as err:
                delay = reconnect_delay(err.code(), reconnects, deadline)
                if delay is None:
                    raise
                await asyncio.sleep(delay)
                reconnects += 1

    # -- models and generation --------------------------------------------------------------

    @_translate
    async def get_model(self, name: str, *, timeout: float | None = None) -> models_pb2.Model:
        """One model with its card."""
        result: models_pb2.Model = await self.models.GetModel(
            models_pb2.GetModelRequest(name=name),
            timeout=self._unary(timeout),
            metadata=self._metadata,
        )
        return result

    @_translate
    async def delete_model(self, name: str, *, timeout: float | None = None) -> None:
        """Delete a model's weights (card, ledger and audit trail stay; no refund)."""
        await self.models.DeleteModel(
            models_pb2.DeleteModelRequest(name=name),
            timeout=self._unary(timeout),
            metadata=self._metadata,
        )

    def list_models(
        self, *, dataset: str = "", page_size: int = 0, timeout: float | None = None
    ) -> AsyncPager[models_pb2.Model]:
        """Every model the caller may see (of ``dataset`` when given), fetched while iterating."""

        @_translate
        async def fetch(token: str) -> models_pb2.ListModelsResponse:
            result: models_pb2.ListModelsResponse = await self.models.ListModels(
                models_pb2.ListModelsRequest(
                    dataset=dataset, page_size=page_size, page_token=token
                ),
                timeout=self._unary(timeout),
                metadata=self._metadata,
            )
            return result

        return AsyncPager(fetch, lambda page: page.models)

    @_translate_stream
    async def generate(
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
    ) -> AsyncIterator[generation_pb2.SyntheticRecord]:
        """Stream synthetic records, each with its provenance (see ``PrivsynthClient``)."""
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
        async for record in self.generation.Generate(
            req, timeout=self._stream(timeout), metadata=self._metadata
        ):
            yield record

    # -- privacy ----------------------------------------------------------------------------

    @_translate
    async def get_budget(self, dataset: str, *, timeout: float | None = None) -> privacy_pb2.Budget:
        """The dataset's privacy budget."""
        result: privacy_pb2.Budget = await self.privacy.GetBudget(
            privacy_pb2.GetBudgetRequest(dataset=dataset),
            timeout=self._unary(timeout),
            metadata=self._metadata,
        )
        return result

    def list_ledger_entries(
        self, dataset: str, *, page_size: int = 0, timeout: float | None = None
    ) -> AsyncPager[privacy_pb2.LedgerEntry]:
        """The dataset's ledger, oldest first, fetched while iterating."""

        @_translate
        async def fetch(token: str) -> privacy_pb2.ListLedgerEntriesResponse:
            result: privacy_pb2.ListLedgerEntriesResponse = await self.privacy.ListLedgerEntries(
                privacy_pb2.ListLedgerEntriesRequest(
                    dataset=dataset, page_size=page_size, page_token=token
                ),
                timeout=self._unary(timeout),
                metadata=self._metadata,
            )
            return result

        return AsyncPager(fetch, lambda page: page.entries)
