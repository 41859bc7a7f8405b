"""Health and reflection answer quickly however many long-lived streams are open (issue 12).

The server is built but its models are never loaded: health answers NOT_SERVING, which is all
these tests need, and start-up takes a fraction of a second.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from bare_server import bare_server as started_bare_server
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from latency import STALL_S, assert_responsive, health_latencies
from privsynth.client.pb import training_pb2, training_pb2_grpc


@pytest.fixture(scope="module")
def bare_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    with started_bare_server(tmp_path_factory.mktemp("admission")) as srv:
        yield srv  # no model loading: health stays NOT_SERVING


@pytest.fixture
def channel(bare_server: object) -> Iterator[grpc.Channel]:
    port = bare_server.port  # type: ignore[attr-defined]
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        yield ch


def _first_reply(call: object) -> grpc.StatusCode:
    """OK once the stream's first message arrived, else the status it ended with."""
    try:
        next(call)  # type: ignore[call-overload]
    except grpc.RpcError as exc:
        return exc.code()  # type: ignore[attr-defined, no-any-return]
    return grpc.StatusCode.OK


@pytest.mark.parametrize("streams", [16, 64])
def test_health_check_answers_with_many_watch_streams_open(
    bare_server: object, streams: int
) -> None:
    port = bare_server.port  # type: ignore[attr-defined]
    # Each watcher on its own channel, as separate attackers would be.
    channels = [grpc.insecure_channel(f"127.0.0.1:{port}") for _ in range(streams)]
    calls = []
    try:
        for ch in channels:
            call = health_pb2_grpc.HealthStub(ch).Watch(health_pb2.HealthCheckRequest(), timeout=30)
            calls.append(call)
        outcomes = [_first_reply(call) for call in calls]
        assert outcomes.count(grpc.StatusCode.OK) >= 16
        assert set(outcomes) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            assert_responsive(health_latencies(ch))
            # Reflection answers too.
            stub = reflection_pb2_grpc.ServerReflectionStub(ch)
            started = time.perf_counter()
            reply = next(
                stub.ServerReflectionInfo(
                    iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=2
                )
            )
            assert time.perf_counter() - started < STALL_S
            assert reply.list_services_response.service
            # And a privsynth RPC is served (UNAVAILABLE while loading, not a deadline).
            with pytest.raises(grpc.RpcError) as exc:
                training_pb2_grpc.TrainingStub(ch).GetTrainingJob(
                    training_pb2.GetTrainingJobRequest(name="jobs/00000000000000aa"), timeout=2
                )
            assert exc.value.code() != grpc.StatusCode.DEADLINE_EXCEEDED  # type: ignore[attr-defined]
    finally:
        for call in calls:
            call.cancel()
        for ch in channels:
            ch.close()


def test_watch_streams_are_capped_with_resource_exhausted(bare_server: object) -> None:
    port = bare_server.port  # type: ignore[attr-defined]
    from privsynth.server.api.admission import HEALTH_WATCH_LIMIT

    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        calls = [
            stub.Watch(health_pb2.HealthCheckRequest(), timeout=30)
            for _ in range(HEALTH_WATCH_LIMIT)
        ]
        try:
            for call in calls:
                next(call)
            with pytest.raises(grpc.RpcError) as exc:
                next(stub.Watch(health_pb2.HealthCheckRequest(), timeout=5))
            assert exc.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
        finally:
            for call in calls:
                call.cancel()
        # Closed streams free their slots.
        deadline = time.monotonic() + 5
        while True:
            try:
                call = stub.Watch(health_pb2.HealthCheckRequest(), timeout=5)
                next(call)
                call.cancel()
                break
            except grpc.RpcError:
                assert time.monotonic() < deadline
                time.sleep(0.05)


def test_health_list_answers(channel: grpc.Channel) -> None:
    resp = health_pb2_grpc.HealthStub(channel).List(health_pb2.HealthListRequest(), timeout=2)
    assert "" in resp.statuses
    assert "privsynth.v1.Datasets" in resp.statuses


def test_reflection_streams_are_capped_and_say_when_to_retry(bare_server: object) -> None:
    import queue

    from google.rpc import error_details_pb2
    from grpc_status import rpc_status
    from privsynth.server.api.admission import REFLECTION_LIMIT

    port = bare_server.port  # type: ignore[attr-defined]
    held: list[tuple[grpc.Channel, object, queue.Queue[None]]] = []

    def requests(gate: queue.Queue[None]) -> Iterator[reflection_pb2.ServerReflectionRequest]:
        yield reflection_pb2.ServerReflectionRequest(list_services="")
        gate.get()

    def open_stream() -> tuple[grpc.Channel, object, queue.Queue[None]]:
        ch = grpc.insecure_channel(f"127.0.0.1:{port}")
        gate: queue.Queue[None] = queue.Queue()
        call = reflection_pb2_grpc.ServerReflectionStub(ch).ServerReflectionInfo(
            requests(gate), timeout=30
        )
        held.append((ch, call, gate))
        return ch, call, gate

    try:
        for _ in range(REFLECTION_LIMIT):
            next(open_stream()[1])  # type: ignore[call-overload]
        started = time.perf_counter()
        with pytest.raises(grpc.RpcError) as exc:
            next(open_stream()[1])  # type: ignore[call-overload]
        assert time.perf_counter() - started < STALL_S  # refused, not queued
        assert exc.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
        status = rpc_status.from_call(exc.value)  # type: ignore[arg-type]
        assert status is not None
        assert any(d.Is(error_details_pb2.RetryInfo.DESCRIPTOR) for d in status.details)
    finally:
        for ch, call, gate in held:
            call.cancel()  # type: ignore[attr-defined]
            gate.put(None)
            ch.close()


def test_open_mode_callers_share_every_stream_not_half(bare_server: object) -> None:
    # Without tokens every caller is the same anonymous identity: a per-caller share would
    # halve the server's streams for everyone, so only the server-wide bound applies.
    import threading

    from privsynth.client.pb import datasets_pb2, datasets_pb2_grpc

    admission = bare_server.admission  # type: ignore[attr-defined]
    wanted = admission.per_caller + 1
    assert wanted <= admission.limits["streams"]
    release = threading.Event()

    def idle() -> Iterator[datasets_pb2.UploadDatasetRequest]:
        release.wait(60)
        return
        yield  # a generator that sends nothing until released

    port = bare_server.port  # type: ignore[attr-defined]
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = datasets_pb2_grpc.DatasetsStub(ch)
        calls = [stub.UploadDataset.future(idle(), timeout=60) for _ in range(wanted)]
        try:
            deadline = time.monotonic() + 30
            while admission.open_count("streams") < wanted and time.monotonic() < deadline:
                time.sleep(0.05)
            assert admission.open_count("streams") == wanted
        finally:
            release.set()
            for call in calls:
                call.cancel()
    deadline = time.monotonic() + 30
    while admission.open_count("streams") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert admission.open_count("streams") == 0


def test_an_idle_upload_gives_its_place_back(tmp_path: Path) -> None:
    # Uploads that opened and went quiet used to keep their admission place (and a pool
    # thread) until the server restarted; the idle limit ends them.
    import threading

    from privsynth.client.pb import datasets_pb2, datasets_pb2_grpc

    release = threading.Event()

    def quiet() -> Iterator[datasets_pb2.UploadDatasetRequest]:
        release.wait(60)
        return
        yield  # a generator that sends nothing until released

    with started_bare_server(tmp_path, stream_idle_seconds=1) as srv:
        try:
            with grpc.insecure_channel(f"127.0.0.1:{srv.port}") as ch:
                stub = datasets_pb2_grpc.DatasetsStub(ch)
                calls = [stub.UploadDataset.future(quiet(), timeout=60) for _ in range(3)]
                for call in calls:
                    exc = call.exception(timeout=20)
                    assert isinstance(exc, grpc.RpcError)
                    assert exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED  # type: ignore[attr-defined]
                    assert "PRIVSYNTH_STREAM_IDLE_SECONDS" in exc.details()  # type: ignore[attr-defined]
                deadline = time.monotonic() + 10
                while srv.admission.open_count("streams") and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert srv.admission.open_count("streams") == 0
        finally:
            release.set()
