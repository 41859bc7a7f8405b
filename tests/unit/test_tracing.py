"""OpenTelemetry: one span per RPC with its method and status code, nothing of the payload.

Spans are read back from the SDK's in-memory exporter, and once through real OTLP/gRPC into
a collector endpoint in this process (OpenTelemetry's own collector service definitions), as
an operator's configuration would send them.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from privsynth.server.api.interceptors import ServerInterceptor
from privsynth.server.errors import NotFound, Reason
from privsynth.server.logs import JsonFormatter
from privsynth.server.metrics import Metrics
from privsynth.server.telemetry import RpcTelemetry, from_environment

SECRET = "patient Zebulon Quagmire, 12 Elm Street"
handler_log = logging.getLogger("privsynth.test.traced")


def _unary(request: bytes, context: grpc.ServicerContext) -> bytes:
    handler_log.info("handling")
    if b"missing" in request:
        raise NotFound("dataset 'datasets/ab' not found", reason=Reason.DATASET_NOT_FOUND)
    if b"crash" in request:
        raise RuntimeError(request.decode())  # an exception message quoting the input
    return b"ok " + request


def _upload(requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
    return b"%d" % sum(len(r) for r in requests)


@contextmanager
def _served(telemetry: RpcTelemetry) -> Iterator[grpc.Channel]:
    """A channel to a server with the interceptor (and health), stopped afterwards."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4),
        interceptors=[ServerInterceptor(Metrics(), telemetry=telemetry)],
    )
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(_unary),
        "Upload": grpc.stream_unary_rpc_method_handler(_upload),
    }
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("t.v1.Svc", handlers)])
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield channel
    finally:
        server.stop(0)


def _calls(channel: grpc.Channel) -> None:
    """A success, a caller error, a crash and a client stream, each carrying SECRET."""
    unary = channel.unary_unary("/t.v1.Svc/Unary")
    assert unary(SECRET.encode(), timeout=5) == b"ok " + SECRET.encode()
    for payload, code in ((b"missing ", grpc.StatusCode.NOT_FOUND), (b"crash ", None)):
        with pytest.raises(grpc.RpcError) as caught:
            unary(payload + SECRET.encode(), timeout=5)
        assert caught.value.code() == (code or grpc.StatusCode.INTERNAL)  # type: ignore[attr-defined]
    upload = channel.stream_unary("/t.v1.Svc/Upload")
    assert upload(iter([SECRET.encode()] * 3), timeout=5) == b"%d" % (3 * len(SECRET))
    probe = health_pb2_grpc.HealthStub(channel)
    assert probe.Check(health_pb2.HealthCheckRequest(), timeout=5).status == 1


@pytest.fixture
def in_memory() -> Iterator[tuple[InMemorySpanExporter, InMemoryMetricReader, RpcTelemetry]]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    telemetry = RpcTelemetry(tracer_provider, MeterProvider(metric_readers=[reader]))
    yield spans, reader, telemetry
    telemetry.shutdown()


def _everything(span: ReadableSpan) -> str:
    """All a span would export, as text (to look for the payload in)."""
    return span.to_json()


def test_a_span_per_rpc_with_method_and_status_and_no_payload(
    in_memory: tuple[InMemorySpanExporter, InMemoryMetricReader, RpcTelemetry],
) -> None:
    spans, reader, telemetry = in_memory
    with _served(telemetry) as channel:
        _calls(channel)
    finished = spans.get_finished_spans()
    got = [
        (s.name, s.attributes["rpc.method"], s.attributes["rpc.grpc.status_code"]) for s in finished
    ]
    assert got == [
        ("t.v1.Svc/Unary", "Unary", 0),
        ("t.v1.Svc/Unary", "Unary", 5),  # NOT_FOUND
        ("t.v1.Svc/Unary", "Unary", 13),  # INTERNAL
        ("t.v1.Svc/Upload", "Upload", 0),
    ]  # and none for the health probe
    for span in finished:
        assert span.kind is SpanKind.SERVER
        assert span.attributes["rpc.system"] == "grpc"
        assert span.attributes["rpc.service"] == "t.v1.Svc"
        assert set(span.attributes) == {
            "rpc.system",
            "rpc.service",
            "rpc.method",
            "rpc.grpc.status_code",
        }
        assert not span.events  # no exception event (its message would quote the input)
        text = _everything(span)
        assert "Zebulon" not in text and "Elm Street" not in text
    # A caller's error is not the server's; a crash is.
    assert [s.status.status_code for s in finished] == [
        StatusCode.UNSET,
        StatusCode.UNSET,
        StatusCode.ERROR,
        StatusCode.UNSET,
    ]
    data = reader.get_metrics_data()
    (metric,) = [
        m
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "rpc.server.call.duration"
    ]
    assert metric.unit == "s"
    points = {
        (p.attributes["rpc.method"], p.attributes["rpc.grpc.status_code"]): p.count
        for p in metric.data.data_points
    }
    assert points == {("Unary", 0): 1, ("Unary", 5): 1, ("Unary", 13): 1, ("Upload", 0): 1}


def test_the_callers_trace_continues_and_log_lines_name_it(
    in_memory: tuple[InMemorySpanExporter, InMemoryMetricReader, RpcTelemetry],
) -> None:
    spans, _, telemetry = in_memory
    lines: list[dict[str, Any]] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(json.loads(JsonFormatter().format(record)))

    keep = Keep()
    handler_log.addHandler(keep)
    handler_log.setLevel(logging.INFO)
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    try:
        with _served(telemetry) as channel:
            channel.unary_unary("/t.v1.Svc/Unary")(
                b"hello", metadata=[("traceparent", f"00-{trace_id}-{parent_id}-01")], timeout=5
            )
    finally:
        handler_log.removeHandler(keep)
        handler_log.setLevel(logging.NOTSET)
    (span,) = spans.get_finished_spans()
    assert f"{span.context.trace_id:032x}" == trace_id
    assert span.parent is not None and f"{span.parent.span_id:016x}" == parent_id
    (line,) = lines
    assert line["trace_id"] == trace_id
    assert line["span_id"] == f"{span.context.span_id:016x}"


class _Collector(
    trace_service_pb2_grpc.TraceServiceServicer, metrics_service_pb2_grpc.MetricsServiceServicer
):
    """An OTLP/gRPC endpoint that keeps what it is sent."""

    def __init__(self) -> None:
        self.traces: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self.metrics: list[metrics_service_pb2.ExportMetricsServiceRequest] = []
        self.lock = threading.Lock()

    def Export(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        with self.lock:
            if isinstance(request, trace_service_pb2.ExportTraceServiceRequest):
                self.traces.append(request)
                return trace_service_pb2.ExportTraceServiceResponse()
            self.metrics.append(request)
            return metrics_service_pb2.ExportMetricsServiceResponse()


def test_spans_and_durations_reach_an_otlp_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    collector = _Collector()
    endpoint = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, endpoint)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(collector, endpoint)
    port = endpoint.add_insecure_port("127.0.0.1:0")
    endpoint.start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "privsynth-test")
    telemetry = from_environment()
    assert telemetry is not None
    try:
        with _served(telemetry) as channel:
            _calls(channel)
    finally:
        telemetry.shutdown()  # flushes both signals
        endpoint.stop(0)
    exported = [
        (span.name, {a.key: a.value for a in span.attributes})
        for request in collector.traces
        for resource_spans in request.resource_spans
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
    ]
    assert [name for name, _ in exported] == ["t.v1.Svc/Unary"] * 3 + ["t.v1.Svc/Upload"]
    codes = [attrs["rpc.grpc.status_code"].int_value for _, attrs in exported]
    assert codes == [0, 5, 13, 0]
    resource = {
        a.key: a.value.string_value
        for a in collector.traces[0].resource_spans[0].resource.attributes
    }
    assert resource["service.name"] == "privsynth-test"
    assert resource["service.version"] == "0.1.0"
    raw = b"".join(r.SerializeToString() for r in (*collector.traces, *collector.metrics))
    assert b"Zebulon" not in raw
    metric_names = {
        m.name
        for request in collector.metrics
        for rm in request.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
    }
    assert "rpc.server.call.duration" in metric_names


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "x"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_SDK_DISABLED": "true"}, False),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317",
                "OTEL_TRACES_EXPORTER": "none",
                "OTEL_METRICS_EXPORTER": "none",
            },
            False,
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            },
            False,
        ),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4317"}, True),
    ],
)
def test_on_only_when_an_otlp_endpoint_is_configured(environ: dict[str, str], on: bool) -> None:
    telemetry = from_environment(environ)
    assert (telemetry is not None) == on
    if telemetry is not None:
        telemetry.shutdown()


def test_off_imports_nothing_of_opentelemetry() -> None:
    code = (
        "import sys\n"
        "from privsynth.server.app import PrivsynthServer\n"
        "from privsynth.server.telemetry import from_environment\n"
        "assert from_environment({}) is None\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"
