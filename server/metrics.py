"""Prometheus metrics: the standard gRPC server set plus ``privsynth_*`` application metrics.

Each server owns its registry (several in-process servers in tests must not collide). Labels
are low-cardinality enums (method, code, entity type, state); never text, never ids.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

__all__ = ["Metrics"]

_GRPC_LABELS = ("grpc_type", "grpc_service", "grpc_method")


class Metrics:
    """All metrics of one server process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.grpc_started = Counter(
            "grpc_server_started", "RPCs started on the server.", _GRPC_LABELS, registry=r
        )
        self.grpc_handled = Counter(
            "grpc_server_handled",
            "RPCs completed on the server, regardless of success or failure.",
            (*_GRPC_LABELS, "grpc_code"),
            registry=r,
        )
        self.grpc_seconds = Histogram(
            "grpc_server_handling_seconds",
            "Response latency of RPCs handled by the server.",
            _GRPC_LABELS,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=r,
        )
        self.grpc_msg_received = Counter(
            "grpc_server_msg_received", "Stream messages received.", _GRPC_LABELS, registry=r
        )
        self.grpc_msg_sent = Counter(
            "grpc_server_msg_sent", "Stream messages sent.", _GRPC_LABELS, registry=r
        )
        self.records_scrubbed = Counter(
            "privsynth_records_scrubbed", "Records passed through PII scrubbing.", registry=r
        )
        self.pii_entities = Counter(
            "privsynth_pii_entities_replaced",
            "PII spans replaced, by entity type.",
            ("entity_type",),
            registry=r,
        )
        self.scrub_seconds = Histogram(
            "privsynth_scrub_batch_seconds", "Time to scrub one batch of records.", registry=r
        )
        self.training_jobs = Counter(
            "privsynth_training_jobs_finished",
            "Training jobs that reached a terminal state.",
            ("state",),
            registry=r,
        )
        self.training_steps = Counter(
            "privsynth_training_steps", "DP-SGD optimizer steps taken.", registry=r
        )
        self.epsilon_committed = Counter(
            "privsynth_epsilon_committed", "Privacy budget (epsilon) committed.", registry=r
        )
        self.budget_refusals = Counter(
            "privsynth_budget_refusals", "Training requests refused for budget.", registry=r
        )
        self.synthetic_records = Counter(
            "privsynth_synthetic_records_generated", "Synthetic records streamed.", registry=r
        )
        self.ready = Gauge("privsynth_ready", "1 once scrubber and models are loaded.", registry=r)

    def serve_http(self, host: str, port: int) -> tuple[Any, int]:
        """Expose ``/metrics`` on its own port; returns the HTTP server and the bound port."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return server, int(server.server_port)
