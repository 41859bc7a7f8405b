"""Generate and ScrubText/AnalyzeText are bounded per class of work (issue 12).

Over the bound a call is refused at once with RESOURCE_EXHAUSTED, a ``QuotaFailure`` naming the
class and a ``RetryInfo``; health keeps answering; the client raises ``Overloaded`` (not
``BudgetExhausted``) and the CLI says to retry later. The server's models are never loaded: the
scrubber and the sampler are stand-ins that block until the test lets them go.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from latency import assert_responsive, health_latencies
from privsynth.client import Overloaded, PrivsynthClient
from privsynth.client.errors import BudgetExhausted
from privsynth.client.pb import (
    generation_pb2,
    generation_pb2_grpc,
    scrubbing_pb2,
    scrubbing_pb2_grpc,
)

LIMIT = 2


class _BlockingScrubber:
    """Stands for the scrubber: every call waits for ``gate``."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = threading.Semaphore(0)
        self.policy = SimpleNamespace(needs_key=False)

    def _wait(self) -> None:
        self.entered.release()
        assert self.gate.wait(30)

    def analyze_batch(self, texts: list[str], **_: Any) -> list[list[Any]]:
        self._wait()
        return [[] for _ in texts]

    def scrub_batch(self, texts: list[str], *, key: bytes | None = None, **_: Any) -> list[Any]:
        self._wait()
        return [SimpleNamespace(text=t, entity_counts={}) for t in texts]


@pytest.fixture(scope="module")
def busy_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from privsynth.server.app import PrivsynthServer
    from privsynth.server.config import Settings

    settings = Settings(
        data_dir=Path(tmp_path_factory.mktemp("work-admission")),
        host="127.0.0.1",
        grpc_port=0,
        metrics_port=-1,
        scrub_workers=0,
        training_workers=0,
        max_generate_calls=LIMIT,
        max_scrub_calls=LIMIT,
    )
    srv = PrivsynthServer(settings)
    srv.runtime.scrubber = _BlockingScrubber()  # type: ignore[assignment]
    srv.runtime.ready.set()  # no model loading: the stand-ins need none
    srv.grpc.start()
    yield srv
    srv.grpc.stop(0).wait()
    srv.runtime.close()


def _details(err: grpc.RpcError) -> tuple[list[str], float | None]:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None
    subjects: list[str] = []
    delay = None
    for d in status.details:
        if d.Is(error_details_pb2.QuotaFailure.DESCRIPTOR):
            q = error_details_pb2.QuotaFailure()
            d.Unpack(q)
            subjects += [v.subject for v in q.violations]
        if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            r = error_details_pb2.RetryInfo()
            d.Unpack(r)
            delay = r.retry_delay.ToMilliseconds() / 1000
    return subjects, delay


def _health_latencies(port: int) -> list[float]:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        return health_latencies(ch, expect=None)


def test_scrubbing_calls_over_the_bound_are_refused_with_retry_info(busy_server: Any) -> None:
    scrubber: _BlockingScrubber = busy_server.runtime.scrubber
    port = busy_server.port
    scrubber.gate.clear()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = scrubbing_pb2_grpc.ScrubbingStub(ch)
        held = [
            stub.ScrubText.future(scrubbing_pb2.ScrubTextRequest(text="hello"), timeout=30)
            for _ in range(LIMIT)
        ]
        try:
            for _ in range(LIMIT):
                assert scrubber.entered.acquire(timeout=10)
            for call in (stub.ScrubText, stub.AnalyzeText):
                request_type = (
                    scrubbing_pb2.ScrubTextRequest
                    if call is stub.ScrubText
                    else scrubbing_pb2.AnalyzeTextRequest
                )
                started = time.perf_counter()
                with pytest.raises(grpc.RpcError) as exc:
                    call(request_type(text="hello"), timeout=5)
                assert time.perf_counter() - started < 1.0  # refused, not queued
                assert exc.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
                subjects, delay = _details(exc.value)
                assert subjects == ["concurrent_calls/scrubbing"]
                assert delay is not None and delay > 0
            assert_responsive(_health_latencies(port))
            # The client library says "overloaded", not "budget exhausted".
            with (
                PrivsynthClient(f"127.0.0.1:{port}", timeout=5) as c,
                pytest.raises(Overloaded) as over,
            ):
                c.scrub_text("hello")
            assert not isinstance(over.value, BudgetExhausted)
            assert over.value.work_class == "scrubbing"
            assert over.value.retry_after_s is not None and over.value.retry_after_s > 0
        finally:
            scrubber.gate.set()
        for f in held:
            assert f.result(timeout=10).text == "hello"
    # Finished calls free their places.
    with PrivsynthClient(f"127.0.0.1:{port}", timeout=5) as c:
        assert c.scrub_text("hello").text == "hello"


def test_generate_calls_over_the_bound_are_refused(
    busy_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from privsynth.server.api.services import generation as service

    gate = threading.Event()
    entered = threading.Semaphore(0)

    def fake_generate(runtime: Any, cache: Any, request: Any) -> tuple[Any, Iterator[Any]]:
        def samples() -> Iterator[Any]:
            entered.release()
            assert gate.wait(30)
            yield SimpleNamespace(text="synthetic", label="")

        return SimpleNamespace(id="00000000000000aa", card={}), samples()

    monkeypatch.setattr(service, "generate", fake_generate)
    port = busy_server.port
    request = generation_pb2.GenerateRequest(model="models/00000000000000aa", count=1)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = generation_pb2_grpc.GenerationStub(ch)
        held = [stub.Generate(request, timeout=30) for _ in range(LIMIT)]
        results: list[list[Any]] = []
        readers = [threading.Thread(target=lambda c=c: results.append(list(c))) for c in held]
        for t in readers:
            t.start()
        try:
            for _ in range(LIMIT):
                assert entered.acquire(timeout=10)
            with pytest.raises(grpc.RpcError) as exc:
                next(stub.Generate(request, timeout=5))
            assert exc.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
            subjects, delay = _details(exc.value)
            assert subjects == ["concurrent_calls/generation"]
            assert delay is not None and delay > 0
            assert_responsive(_health_latencies(port))
        finally:
            gate.set()
        for t in readers:
            t.join(10)
        assert [len(r) for r in results] == [1] * LIMIT


def test_cli_reports_an_overload_as_retry_later(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from privsynth.server.api.interceptors import to_status
    from privsynth.server.errors import Overloaded as ServerOverloaded

    # The CLI's message for the status the server sends when a class is full.
    status = to_status(
        ServerOverloaded(
            "too many concurrent generation calls (limit 2); retry later",
            subject="concurrent_calls/generation",
            retry_after_s=1.0,
        )
    )
    err = _FakeRpcError(rpc_status.to_status(status))
    from privsynth.client import errors

    decoded = errors.from_rpc_error(err)
    assert isinstance(decoded, Overloaded)

    def raise_it(_args: Any) -> int:
        raise decoded

    import privsynth.client.cli as cli

    monkeypatch.setattr(cli, "cmd_budget", raise_it)
    rc = cli.main(["budget", "datasets/00000000000000aa"])
    out = capsys.readouterr().err
    assert rc == 75
    assert "busy" in out and "retry" in out
    assert "epsilon" not in out


class _FakeRpcError(grpc.RpcError):
    """An RpcError with a status, as grpcio raises for a refused unary call."""

    def __init__(self, status: grpc.Status) -> None:
        self._status = status

    def code(self) -> grpc.StatusCode:
        return self._status.code  # type: ignore[no-any-return]

    def details(self) -> str:
        return self._status.details  # type: ignore[no-any-return]

    def trailing_metadata(self) -> Any:
        return self._status.trailing_metadata
