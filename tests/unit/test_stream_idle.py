"""A stream that waits on its client past the idle limit is ended, and its thread comes back.

An upload that sent its metadata and then nothing, or a sample stream nobody read, used to hold
its pool thread and its admission place until the server restarted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from privsynth.server.api.idle import IdleLimit
from privsynth.server.api.interceptors import ServerInterceptor
from privsynth.server.metrics import Metrics

LIMIT_S = 1.0


class _Service:
    """Three streams whose only waits are on the client, and one that waits on itself."""

    def __init__(self) -> None:
        self.sent = 0
        self.ended = threading.Event()
        self.server_wait = threading.Event()
        self.completed = False

    def upload(self, requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        try:
            total = sum(len(r) for r in requests)
        finally:
            self.ended.set()
        self.completed = True  # the stream ended as if the client had finished it
        return b"%d" % total

    def download(self, request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        try:
            while True:  # until the client's window is full and it does not read
                self.sent += 1
                yield b"x" * 4096
        finally:
            self.ended.set()

    def slow(self, request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        """A watch: the server waits on its own work for longer than the limit."""
        yield b"started"
        self.server_wait.wait(LIMIT_S * 4)
        yield b"done"


@pytest.fixture
def served() -> Iterator[tuple[grpc.Channel, Metrics, _Service, IdleLimit]]:
    metrics = Metrics()
    idle = IdleLimit(limit_s=LIMIT_S)
    service = _Service()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4),
        interceptors=[ServerInterceptor(metrics, idle=idle)],
    )
    handlers = {
        "Upload": grpc.stream_unary_rpc_method_handler(service.upload),
        "Download": grpc.unary_stream_rpc_method_handler(service.download),
        "Slow": grpc.unary_stream_rpc_method_handler(service.slow),
    }
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("t.Svc", handlers)])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    idle.start()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        yield ch, metrics, service, idle
    idle.stop()
    server.stop(0).wait()


def _handled(metrics: Metrics, kind: str, method: str, code: str) -> float:
    """``grpc_server_handled_total`` for ``method`` ending with ``code``."""
    labels = {"grpc_type": kind, "grpc_service": "t.Svc", "grpc_method": method}
    value = metrics.registry.get_sample_value(
        "grpc_server_handled_total", {**labels, "grpc_code": code}
    )
    return value or 0.0


def _eventually(check: object, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


def test_an_upload_that_goes_quiet_is_ended_with_a_clear_status(
    served: tuple[grpc.Channel, Metrics, _Service, IdleLimit],
) -> None:
    channel, metrics, service, _ = served
    release = threading.Event()

    def requests() -> Iterator[bytes]:
        yield b"metadata"
        release.wait(30)  # a client that stalls after its first message

    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as exc:
        channel.stream_unary("/t.Svc/Upload")(requests(), timeout=30)
    release.set()
    assert exc.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert "PRIVSYNTH_STREAM_IDLE_SECONDS" in exc.value.details()
    assert time.monotonic() - started < 10  # not the client's 30 s deadline
    assert service.ended.wait(5), "the handler's thread is still held"
    assert not service.completed, "an upload ended by the limit looked complete"
    assert _eventually(
        lambda: _handled(metrics, "client_stream", "Upload", "DEADLINE_EXCEEDED") == 1
    )


def test_a_busy_upload_is_not_ended(
    served: tuple[grpc.Channel, Metrics, _Service, IdleLimit],
) -> None:
    channel, _, _, _ = served

    def requests() -> Iterator[bytes]:
        for _ in range(15):  # 15 x 0.1 s: longer than the limit in all, never idle for it
            yield b"ab"
            time.sleep(LIMIT_S * 0.1)

    assert channel.stream_unary("/t.Svc/Upload")(requests(), timeout=30) == b"30"


def test_a_stream_nobody_reads_is_ended(
    served: tuple[grpc.Channel, Metrics, _Service, IdleLimit],
) -> None:
    channel, metrics, service, _ = served
    call = channel.unary_stream("/t.Svc/Download")(b"", timeout=30)
    next(call)  # then stop reading: the server fills the window and blocks in send
    assert service.ended.wait(10), "the server is still blocked sending to a client not reading"
    sent = service.sent
    time.sleep(LIMIT_S)
    assert service.sent == sent
    assert _eventually(
        lambda: _handled(metrics, "server_stream", "Download", "DEADLINE_EXCEEDED") == 1
    )
    call.cancel()


def test_a_wait_on_the_servers_own_work_is_not_timed(
    served: tuple[grpc.Channel, Metrics, _Service, IdleLimit],
) -> None:
    channel, _, _, _ = served
    replies = list(channel.unary_stream("/t.Svc/Slow")(b"", timeout=30))
    assert replies == [b"started", b"done"]


class _Context:
    """Stands for a grpcio context (weakly referable, like grpcio's)."""


def test_sweep_ends_only_waits_past_the_limit() -> None:
    now = [100.0]
    ended: list[tuple[object, grpc.StatusCode, str]] = []
    idle = IdleLimit(
        limit_s=10,
        end=lambda ctx, code, msg: ended.append((ctx, code, msg)),
        clock=lambda: now[0],
    )
    late, fresh, done = _Context(), _Context(), _Context()
    with idle.waiting(done, "the client to read"):  # type: ignore[arg-type]
        pass  # a wait that ended is never timed
    with idle.waiting(late, "the client's next message"):  # type: ignore[arg-type]
        now[0] = 105.0
        with idle.waiting(fresh, "the client to read"):  # type: ignore[arg-type]
            now[0] = 114.0
            assert idle.sweep() == 1
            assert idle.sweep() == 0  # ended once
            now[0] = 115.0
            assert idle.sweep() == 1
    assert [ctx for ctx, _, _ in ended] == [late, fresh]
    assert {code for _, code, _ in ended} == {grpc.StatusCode.DEADLINE_EXCEEDED}
    assert "waited 10 s for the client's next message" in ended[0][2]
    assert idle.ended(late) and idle.ended(fresh) and not idle.ended(done)  # type: ignore[arg-type]


def test_zero_turns_the_limit_off() -> None:
    idle = IdleLimit(limit_s=0)
    assert not idle.enabled
    with idle.waiting(object(), "x"):  # type: ignore[arg-type]
        assert idle.sweep() == 0
    idle.start()  # no thread
    idle.stop()
