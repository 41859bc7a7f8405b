"""Every call's request id goes back to the caller and onto every log line the call causes."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from privsynth.client.errors import from_rpc_error
from privsynth.server.api.interceptors import REQUEST_ID_KEY, ServerInterceptor
from privsynth.server.errors import NotFound, Reason
from privsynth.server.logs import JsonFormatter
from privsynth.server.metrics import Metrics

SECRET = "patient Zebulon Quagmire"
handler_log = logging.getLogger("privsynth.test.handler")


def _unary(request: bytes, context: grpc.ServicerContext) -> bytes:
    handler_log.info("handling")
    if request == b"missing":
        raise NotFound("dataset 'datasets/ab' not found", reason=Reason.DATASET_NOT_FOUND)
    if request == b"crash":
        raise RuntimeError(SECRET)
    return b"ok"


def _stream(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
    handler_log.info("streaming")
    yield b"first"
    yield b"second"


class _Lines(logging.Handler):
    """Formats records as the server would (in the thread that logs them) and keeps them."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def lines() -> Iterator[_Lines]:
    keep = _Lines()
    loggers = [logging.getLogger(n) for n in ("privsynth.test", "privsynth.server")]
    for logger in loggers:
        logger.addHandler(keep)
        logger.setLevel(logging.INFO)
    yield keep
    for logger in loggers:
        logger.removeHandler(keep)
        logger.setLevel(logging.NOTSET)


@pytest.fixture
def channel() -> Iterator[grpc.Channel]:
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=2), interceptors=[ServerInterceptor(Metrics())]
    )
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(_unary),
        "Stream": grpc.unary_stream_rpc_method_handler(_stream),
    }
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("t.Svc", handlers)])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        yield ch
    server.stop(0)


def _ids(metadata: Any) -> list[str]:
    return [value for key, value in metadata or () if key == REQUEST_ID_KEY]


def test_callers_id_is_returned_and_tags_the_handlers_log_lines(
    channel: grpc.Channel, lines: _Lines
) -> None:
    response, call = channel.unary_unary("/t.Svc/Unary").with_call(
        b"fine", metadata=[(REQUEST_ID_KEY, "cli-0d1e:2")], timeout=5
    )
    assert response == b"ok"
    assert _ids(call.trailing_metadata()) == ["cli-0d1e:2"]
    assert _ids(call.initial_metadata()) == []  # a unary call gets it with its answer
    (line,) = [x for x in lines.lines if x["message"] == "handling"]
    assert line["request_id"] == "cli-0d1e:2"
    assert line["rpc_method"] == "/t.Svc/Unary"


@pytest.mark.parametrize("given", [None, "has space", "x" * 129, "a/b;c=d"])
def test_missing_or_malformed_id_is_replaced_by_a_fresh_one(
    channel: grpc.Channel, given: str | None
) -> None:
    metadata = [(REQUEST_ID_KEY, given)] if given is not None else None
    _, call = channel.unary_unary("/t.Svc/Unary").with_call(b"fine", metadata=metadata, timeout=5)
    (returned,) = _ids(call.trailing_metadata())
    assert re.fullmatch(r"[0-9a-f]{32}", returned)
    _, again = channel.unary_unary("/t.Svc/Unary").with_call(b"fine", timeout=5)
    assert _ids(again.trailing_metadata()) != [returned]  # one per call


def test_errors_carry_the_id_beside_their_details(channel: grpc.Channel, lines: _Lines) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        channel.unary_unary("/t.Svc/Unary")(
            b"missing", metadata=[(REQUEST_ID_KEY, "req-404")], timeout=5
        )
    assert _ids(caught.value.trailing_metadata()) == ["req-404"]  # type: ignore[attr-defined]
    error = from_rpc_error(caught.value)
    assert error.reason == "DATASET_NOT_FOUND"  # details still there
    assert error.request_id == "req-404"  # and the client library hands the id over

    with pytest.raises(grpc.RpcError) as crashed:
        channel.unary_unary("/t.Svc/Unary")(
            b"crash", metadata=[(REQUEST_ID_KEY, "req-500")], timeout=5
        )
    assert crashed.value.code() == grpc.StatusCode.INTERNAL  # type: ignore[attr-defined]
    assert _ids(crashed.value.trailing_metadata()) == ["req-500"]  # type: ignore[attr-defined]
    assert from_rpc_error(crashed.value).request_id == "req-500"
    (line,) = [x for x in lines.lines if x["message"].startswith("internal error")]
    assert line["request_id"] == "req-500"
    assert line["level"] == "ERROR"
    assert SECRET not in json.dumps(lines.lines)


def test_streams_announce_the_id_before_the_first_message(
    channel: grpc.Channel, lines: _Lines
) -> None:
    call = channel.unary_stream("/t.Svc/Stream")(
        b"", metadata=[(REQUEST_ID_KEY, "req-stream")], timeout=5
    )
    assert _ids(call.initial_metadata()) == ["req-stream"]
    assert list(call) == [b"first", b"second"]
    assert _ids(call.trailing_metadata()) == ["req-stream"]
    (line,) = [x for x in lines.lines if x["message"] == "streaming"]
    assert line["request_id"] == "req-stream"


def test_the_cli_quotes_the_request_id_of_a_server_fault(
    channel: grpc.Channel, capsys: pytest.CaptureFixture[str]
) -> None:
    from privsynth.client.cli import _failure
    from privsynth.client.exit_codes import ExitCode

    with pytest.raises(grpc.RpcError) as crashed:
        channel.unary_unary("/t.Svc/Unary")(b"crash", metadata=[(REQUEST_ID_KEY, "r-9")], timeout=5)
    assert _failure(from_rpc_error(crashed.value)) == ExitCode.SERVER_ERROR
    assert "request id r-9" in capsys.readouterr().err
