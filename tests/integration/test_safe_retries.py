"""Safe retries: request ids make creates happen once; the client retries and reconnects.

* A CreateTrainingJob or an upload retried with the same ``request_id`` returns the first
  attempt's resource and reserves or stores nothing twice, even when the two race.
* The client library draws a request id per logical call and lets gRPC retry UNAVAILABLE with
  backoff (service config); a watch whose stream drops reconnects.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from corpus import fortunes
from job_runtime import add_dataset, job_runtime
from privsynth.client.client import PrivsynthClient
from privsynth.client.errors import PrivsynthClientError
from privsynth.client.pb import datasets_pb2, training_pb2
from privsynth.server.db import JobRow, LedgerRow
from privsynth.server.errors import InvalidArgument
from privsynth.server.jobs.runner import JobRunner, JobSpec
from privsynth.server.runtime import Runtime
from sqlalchemy import func, select


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    with job_runtime(tmp_path, training_workers=0) as rt:
        yield rt


def _reservations(rt: Runtime) -> int:
    with rt.db.session() as s:
        return int(s.scalar(select(func.count()).where(LedgerRow.kind == "reserve")) or 0)


def test_a_retried_create_returns_the_first_job_and_reserves_once(runtime: Runtime) -> None:
    runner = JobRunner(runtime)
    dataset_id = add_dataset(runtime)

    def spec(**kw: object) -> JobSpec:
        base: dict[str, object] = {
            "dataset_id": dataset_id,
            "target_epsilon": 2.0,
            "epochs": 1,
            "preset": "tiny",
            "request_id": "3f1c2a9e-retry",
        }
        return JobSpec(**{**base, **kw})  # type: ignore[arg-type]

    first = runner.create(spec())
    again = runner.create(spec())
    assert again.id == first.id and _reservations(runtime) == 1
    with pytest.raises(InvalidArgument) as exc:
        runner.create(spec(target_epsilon=3.0))  # the same id for another request
    assert exc.value.field == "request_id"
    other = runner.create(spec(request_id="another-id"))
    assert other.id != first.id and _reservations(runtime) == 2
    with pytest.raises(InvalidArgument):
        JobSpec(dataset_id=dataset_id, target_epsilon=1.0, request_id="x" * 129)


def test_racing_retries_create_one_job(runtime: Runtime) -> None:
    runner = JobRunner(runtime)
    dataset_id = add_dataset(runtime)
    barrier = threading.Barrier(4)

    def create() -> str:
        barrier.wait()
        job = runner.create(
            JobSpec(dataset_id=dataset_id, target_epsilon=2.0, preset="tiny", request_id="race-1")
        )
        return job.id

    with futures.ThreadPoolExecutor(4) as pool:
        ids = list(pool.map(lambda _: create(), range(4)))
    assert len(set(ids)) == 1 and _reservations(runtime) == 1
    with runtime.db.session() as s:
        assert s.scalar(select(func.count()).select_from(JobRow)) == 1


def test_a_retried_upload_returns_the_first_dataset(client: PrivsynthClient) -> None:
    records = fortunes(25)
    first = client.upload_dataset(records, display_name="retry", request_id="upload-7")
    again = client.upload_dataset(records, display_name="retry", request_id="upload-7")
    assert again.name == first.name
    with pytest.raises(PrivsynthClientError) as exc:
        client.upload_dataset(records, display_name="other", request_id="upload-7")
    assert exc.value.code == grpc.StatusCode.INVALID_ARGUMENT
    # Without an id given, each call draws its own: two uploads, two datasets.
    a = client.upload_dataset(records[:21], display_name="a")
    b = client.upload_dataset(records[:21], display_name="a")
    assert a.name != b.name


class _Flaky:
    """A Datasets/Training stand-in that fails with UNAVAILABLE before it answers."""

    def __init__(self) -> None:
        self.get_calls = 0
        self.watch_calls = 0

    def get_dataset(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        self.get_calls += 1
        if self.get_calls < 3:
            context.abort(grpc.StatusCode.UNAVAILABLE, "restarting")
        return datasets_pb2.Dataset(name="datasets/x").SerializeToString()

    def watch(self, request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        self.watch_calls += 1
        running = training_pb2.TrainingJob(name="jobs/x", state=training_pb2.JOB_STATE_RUNNING)
        yield training_pb2.TrainingJobEvent(job=running).SerializeToString()
        if self.watch_calls == 1:
            context.abort(grpc.StatusCode.UNAVAILABLE, "connection lost")
        done = training_pb2.TrainingJob(name="jobs/x", state=training_pb2.JOB_STATE_SUCCEEDED)
        yield training_pb2.TrainingJobEvent(job=done).SerializeToString()


def test_the_client_retries_unavailable_and_watches_reconnect() -> None:
    flaky = _Flaky()
    server = grpc.server(futures.ThreadPoolExecutor(4))
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "privsynth.v1.Datasets",
                {"GetDataset": grpc.unary_unary_rpc_method_handler(flaky.get_dataset)},
            ),
            grpc.method_handlers_generic_handler(
                "privsynth.v1.Training",
                {"WatchTrainingJob": grpc.unary_stream_rpc_method_handler(flaky.watch)},
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with PrivsynthClient(f"127.0.0.1:{port}", timeout=10, stream_timeout=30) as c:
            assert c.get_dataset("datasets/x").name == "datasets/x"
            assert flaky.get_calls == 3  # two UNAVAILABLE answers retried by gRPC itself
            states = [j.state for j in c.watch_training_job("jobs/x")]
        assert states[-1] == training_pb2.JOB_STATE_SUCCEEDED
        assert flaky.watch_calls == 2  # the dropped stream was reopened
    finally:
        server.stop(0)
