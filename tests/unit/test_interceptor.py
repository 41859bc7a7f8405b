"""The interceptor maps domain errors to statuses and hides unexpected exception text."""

from __future__ import annotations

import errno
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
import sqlalchemy.exc
from privsynth.client import errors as client_errors
from privsynth.server.api.interceptors import ServerInterceptor
from privsynth.server.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PrivsynthError,
    Reason,
    ResourceExhausted,
)
from privsynth.server.metrics import Metrics

SECRET = "patient Zebulon Quagmire"


_DOMAIN_ERRORS: dict[bytes, PrivsynthError] = {
    b"missing": NotFound("dataset 'datasets/ab' not found", reason=Reason.DATASET_NOT_FOUND),
    b"unreachable": FailedPrecondition("out of reach", reason=Reason.EPSILON_UNREACHABLE),
    b"budget": ResourceExhausted("privacy budget exhausted", remaining=0.25),
}


def _behaviour(request: bytes, context: grpc.ServicerContext) -> bytes:
    if request == b"invalid":
        raise InvalidArgument("record 3: text is empty", field="records[3].text")
    if request in _DOMAIN_ERRORS:
        raise _DOMAIN_ERRORS[request]
    if request == b"crash":
        raise RuntimeError(SECRET)
    if request == b"disk":
        raise OSError(errno.ENOSPC, "No space left on device", "/data/" + SECRET)
    if request == b"sqlite":
        full = sqlite3.OperationalError("database or disk is full")
        raise sqlalchemy.exc.OperationalError("INSERT ...", {}, full)
    return b"ok"


def _stream(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
    yield b"first"
    raise RuntimeError(SECRET)


_upload_reading = threading.Event()
_upload_done = threading.Event()


def _upload(requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
    total = b""
    try:
        for chunk in requests:
            total += chunk
            _upload_reading.set()
    finally:
        _upload_done.set()
    return total


@pytest.fixture
def channel() -> Iterator[tuple[grpc.Channel, Metrics]]:
    metrics = Metrics()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=2), interceptors=[ServerInterceptor(metrics)]
    )
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(_behaviour),
        "Stream": grpc.unary_stream_rpc_method_handler(_stream),
        "Upload": grpc.stream_unary_rpc_method_handler(_upload),
    }
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("t.Svc", handlers)])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        yield ch, metrics
    server.stop(0)


def test_domain_error_becomes_status_with_details(
    channel: tuple[grpc.Channel, Metrics],
) -> None:
    from privsynth.client.errors import from_rpc_error

    ch, metrics = channel
    call = ch.unary_unary("/t.Svc/Unary")
    with pytest.raises(grpc.RpcError) as exc:
        call(b"invalid", timeout=5)
    err = from_rpc_error(exc.value)
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert isinstance(err, client_errors.InvalidArgument)
    assert err.reason == "INVALID_FIELD"
    assert err.field_violations == {"records[3].text": "record 3: text is empty"}
    assert call(b"fine", timeout=5) == b"ok"
    value = metrics.registry.get_sample_value(
        "grpc_server_handled_total",
        {
            "grpc_type": "unary",
            "grpc_service": "t.Svc",
            "grpc_method": "Unary",
            "grpc_code": "INVALID_ARGUMENT",
        },
    )
    assert value == 1


@pytest.mark.parametrize(
    ("request_bytes", "client_class", "reason"),
    [
        (b"missing", client_errors.NotFound, "DATASET_NOT_FOUND"),
        (b"unreachable", client_errors.FailedPrecondition, "EPSILON_UNREACHABLE"),
        (b"budget", client_errors.BudgetExhausted, "BUDGET_EXCEEDED"),
        # A full data volume is no server bug: retry later, not INTERNAL.
        (b"disk", client_errors.Overloaded, "STORAGE_FULL"),
        (b"sqlite", client_errors.Overloaded, "STORAGE_FULL"),
    ],
)
def test_error_reason_names_the_cause_and_picks_the_client_class(
    channel: tuple[grpc.Channel, Metrics],
    request_bytes: bytes,
    client_class: type[client_errors.PrivsynthClientError],
    reason: str,
) -> None:
    ch, _metrics = channel
    with pytest.raises(grpc.RpcError) as exc:
        ch.unary_unary("/t.Svc/Unary")(request_bytes, timeout=5)
    err = client_errors.from_rpc_error(exc.value)
    assert type(err) is client_class
    assert err.reason == reason
    if isinstance(err, client_errors.BudgetExhausted):
        assert err.epsilon_remaining == 0.25
    if isinstance(err, client_errors.Overloaded):
        assert err.retry_after_s == 60 and SECRET not in str(err)


def test_unexpected_error_is_internal_without_its_message(
    channel: tuple[grpc.Channel, Metrics], caplog: pytest.LogCaptureFixture
) -> None:
    ch, _metrics = channel
    with pytest.raises(grpc.RpcError) as exc:
        ch.unary_unary("/t.Svc/Unary")(b"crash", timeout=5)
    assert exc.value.code() == grpc.StatusCode.INTERNAL  # type: ignore[attr-defined]
    assert isinstance(client_errors.from_rpc_error(exc.value), client_errors.ServerError)
    assert SECRET not in (exc.value.details() or "")  # type: ignore[attr-defined]
    assert "reference" in (exc.value.details() or "")  # type: ignore[attr-defined]
    stream = ch.unary_stream("/t.Svc/Stream")(b"", timeout=5)
    with pytest.raises(grpc.RpcError) as sexc:
        list(stream)
    assert sexc.value.code() == grpc.StatusCode.INTERNAL  # type: ignore[attr-defined]
    assert SECRET not in caplog.text
    assert "RuntimeError" in caplog.text


def test_client_cancellation_is_cancelled_not_internal(
    channel: tuple[grpc.Channel, Metrics], caplog: pytest.LogCaptureFixture
) -> None:
    """A client that leaves mid-upload is no server error: CANCELLED, nothing at ERROR."""
    ch, metrics = channel
    _upload_reading.clear()
    _upload_done.clear()
    gate = threading.Event()

    def chunks() -> Iterator[bytes]:
        yield b"first"
        gate.wait(10)

    future = ch.stream_unary("/t.Svc/Upload").future(chunks(), timeout=10)
    assert _upload_reading.wait(5)
    future.cancel()
    # The client's request stream stays open (it left mid-upload): releasing it before the
    # server saw the cancellation would race a normal end of stream against the cancel.
    assert _upload_done.wait(5)
    gate.set()
    labels = {"grpc_type": "client_stream", "grpc_service": "t.Svc", "grpc_method": "Upload"}

    def counted(code: str) -> float:
        value = metrics.registry.get_sample_value(
            "grpc_server_handled_total", {**labels, "grpc_code": code}
        )
        return value or 0.0

    deadline = time.monotonic() + 5
    while counted("CANCELLED") + counted("OK") < 1:
        assert time.monotonic() < deadline, "the call was never counted"
        time.sleep(0.05)
    # CANCELLED, except in grpc's rare ordering (about 1 run in 30 on 2 busy cores) where the
    # server's request iterator ends before the cancellation is visible to the handler: the
    # call then looks complete and counts OK. Never a server error.
    assert counted("CANCELLED") + counted("OK") == 1
    assert counted("INTERNAL") == 0 and counted("UNKNOWN") == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
