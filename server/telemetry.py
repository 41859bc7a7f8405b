"""OpenTelemetry for gRPC: a span and a duration per RPC, exported by OTLP when configured.

Off unless an OTLP endpoint is configured through OpenTelemetry's own standard variables
(``OTEL_EXPORTER_OTLP_ENDPOINT``, or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` /
``…_METRICS_ENDPOINT`` for one signal) — the one place the server reads variables without
the ``PRIVSYNTH_`` prefix, because every collector, operator and sidecar injector already
speaks them, and OpenTelemetry's exporters read the rest (headers, certificates, timeouts,
``OTEL_TRACES_SAMPLER``, ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``) themselves.
``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER`` / ``OTEL_METRICS_EXPORTER=none`` turn a
configured signal off again. Off means free: :func:`from_environment` returns None, nothing
of OpenTelemetry is imported, and the interceptor skips its hooks on a ``None`` check.

When on, every privsynth and reflection RPC (not health probes, which would drown the
traces) gets a SERVER span named ``package.Service/Method`` with the semantic-convention
attributes ``rpc.system``, ``rpc.service``, ``rpc.method`` and ``rpc.grpc.status_code``,
continuing the caller's trace from its ``traceparent`` metadata, plus a point in the
``rpc.server.call.duration`` histogram (seconds) with the same attributes. Nothing else goes
on a span: no request or response fields, no peer address, no exception message (this code
base's exception messages may quote input text), so a span holds names and a number.

Why not ``opentelemetry-instrumentation-grpc``'s server interceptor (0.66b2): it reads the
status only from ``context.abort``/``set_code``, while every error here ends through
``abort_with_status`` (rich details), so each refused or failed call would be exported as OK;
it records exceptions with their messages as span events; and its wrapper drops the
non-blocking and thread-pool attributes admission control relies on. The spans here follow
the same conventions from inside the interceptor that already knows the final status.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import grpc

if TYPE_CHECKING:  # OpenTelemetry is imported only when it is configured
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span

__all__ = ["UNTRACED_SERVICES", "RpcTelemetry", "from_environment"]

log = logging.getLogger(__name__)

UNTRACED_SERVICES = frozenset({"grpc.health.v1.Health"})
"""Services whose calls get no span: kubelet probes every few seconds would drown the rest."""

# Server-side errors per the gRPC semantic conventions (span status ERROR); the other codes
# are the caller's (bad argument, not found, budget) and leave the status unset.
_SERVER_ERRORS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)


class RpcTelemetry:
    """Spans and durations of RPCs, on the providers given (the SDK's, or tests' in-memory)."""

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        from opentelemetry import propagate

        self._providers: list[Any] = [p for p in (tracer_provider, meter_provider) if p]
        self._tracer = (
            tracer_provider.get_tracer("privsynth.server.api") if tracer_provider else None
        )
        self._duration = (
            meter_provider.get_meter("privsynth.server.api").create_histogram(
                "rpc.server.call.duration",
                unit="s",
                description="Duration of RPCs handled by the server.",
            )
            if meter_provider
            else None
        )
        self._extract = propagate.extract

    def start(self, service: str, method: str, metadata: Any) -> Span | None:
        """A SERVER span for a call of ``service/method``, child of the caller's trace."""
        if self._tracer is None:
            return None
        from opentelemetry.trace import SpanKind

        carrier = {k: v for k, v in metadata or () if isinstance(v, str)}
        return self._tracer.start_span(
            f"{service}/{method}",
            context=self._extract(carrier),
            kind=SpanKind.SERVER,
            attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": method},
        )

    def end(
        self,
        span: Span | None,
        service: str,
        method: str,
        code: grpc.StatusCode,
        seconds: float,
    ) -> None:
        """Close the call's span with its status code and record its duration."""
        status_code = int(code.value[0])
        if span is not None:
            from opentelemetry.trace import Status, StatusCode

            span.set_attribute("rpc.grpc.status_code", status_code)
            if code in _SERVER_ERRORS:
                span.set_status(Status(StatusCode.ERROR))
            span.end()
        if self._duration is not None:
            self._duration.record(
                seconds,
                {
                    "rpc.system": "grpc",
                    "rpc.service": service,
                    "rpc.method": method,
                    "rpc.grpc.status_code": status_code,
                },
            )

    @contextmanager
    def current(self, span: Span | None) -> Iterator[None]:
        """Make ``span`` the current one in this block (log lines then carry its ids)."""
        if span is None:
            yield
            return
        from opentelemetry import context, trace

        token = context.attach(trace.set_span_in_context(span))
        try:
            yield
        finally:
            # A streaming call's generator may be closed on another thread (garbage
            # collection); detaching there would pop another call's context.
            if trace.get_current_span() is span:
                context.detach(token)

    def shutdown(self) -> None:
        """Flush what is buffered and stop the exporters."""
        for provider in self._providers:
            provider.shutdown()


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"


def _wanted(environ: Mapping[str, str], signal: str) -> bool:
    """Whether ``signal`` (TRACES, METRICS) has an OTLP endpoint and is not turned off."""
    endpoint = environ.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT") or environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    exporter = environ.get(f"OTEL_{signal}_EXPORTER", "otlp").strip().lower()
    return bool(endpoint) and exporter != "none"


def _protocol_ok(environ: Mapping[str, str], signal: str) -> bool:
    protocol = environ.get(f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL") or environ.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"
    )
    if protocol.strip().lower() == "grpc":
        return True
    log.error(
        "OpenTelemetry %s off: OTLP protocol %r is not supported, only grpc (port 4317)",
        signal.lower(),
        protocol,
    )
    return False


def from_environment(environ: Mapping[str, str] | None = None) -> RpcTelemetry | None:
    """Telemetry exporting by OTLP/gRPC as the standard variables say, or None when off."""
    environ = os.environ if environ is None else environ
    if _truthy(environ.get("OTEL_SDK_DISABLED")):
        return None
    traces = _wanted(environ, "TRACES") and _protocol_ok(environ, "TRACES")
    metrics = _wanted(environ, "METRICS") and _protocol_ok(environ, "METRICS")
    if not (traces or metrics):
        return None
    from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
    from privsynth.server.metrics import build_version

    resource = Resource.create({SERVICE_VERSION: build_version()})
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: "privsynth"}))
    tracer_provider = meter_provider = None
    if traces:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        tracer_provider = TracerProvider(resource=resource)
        tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    if metrics:
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        reader = PeriodicExportingMetricReader(OTLPMetricExporter())
        meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    log.info(
        "OpenTelemetry on: traces %s, metrics %s, by OTLP/gRPC",
        "on" if traces else "off",
        "on" if metrics else "off",
    )
    return RpcTelemetry(tracer_provider, meter_provider)
