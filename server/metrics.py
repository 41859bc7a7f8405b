"""Prometheus metrics: the standard gRPC server set plus ``privsynth_*`` application metrics.

Each server owns its registry (several in-process servers in tests must not collide), so the
process and runtime collectors the default registry carries (``process_*``, ``python_*``) are
registered on it explicitly. Labels are low-cardinality enums (method, code, entity type,
state, job kind); never text, never ids.

The job queue is read from the database at scrape time (:class:`JobQueueCollector`) rather
than counted in memory: jobs are created, taken and ended by every replica, and a gauge kept
by one process would drift from the truth the first time another replica (or a restart)
touched the queue. Every replica therefore reports the same, cluster-wide numbers: aggregate
them with ``max``, not ``sum``.
"""

from __future__ import annotations

import importlib.metadata
import logging
import platform
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from privsynth.server.db import Database, EvaluationRow, JobRow, as_utc
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, literal, select

__all__ = ["JOB_KINDS", "JobQueueCollector", "Metrics", "build_version"]

log = logging.getLogger(__name__)

_GRPC_LABELS = ("grpc_type", "grpc_service", "grpc_method")
JOB_KINDS = ("training", "evaluation")
"""Values of the ``kind`` label on job metrics."""
_RUNNERS = ("worker", "torchrun")
_TERMINAL = ("succeeded", "failed", "cancelled")
_JOB_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 43200, 86400)
_STEP_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


def build_version() -> str:
    """The installed privsynth distribution's version (``unknown`` from a bare checkout)."""
    try:
        return importlib.metadata.version("privsynth")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


class Metrics:
    """All metrics of one server process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        # What the default registry would carry: process_* (CPU, memory, file descriptors,
        # start time) and python_* (interpreter version, garbage collections).
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        self.build_info = Gauge(
            "privsynth_build_info",
            "Always 1; the labels say which privsynth and Python this process runs.",
            ("version", "python_version"),
            registry=r,
        )
        self.build_info.labels(
            version=build_version(), python_version=platform.python_version()
        ).set(1)
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
        self.job_seconds = Histogram(
            "privsynth_job_duration_seconds",
            "Wall time of a job from its start to its end (jobs ended before starting are "
            "not observed), by kind and terminal state.",
            ("kind", "state"),
            buckets=_JOB_BUCKETS,
            registry=r,
        )
        self.training_steps = Counter(
            "privsynth_training_steps", "DP-SGD optimizer steps taken.", registry=r
        )
        self.training_step_seconds = Histogram(
            "privsynth_training_step_seconds",
            "Wall time of one DP-SGD step (a logical batch), averaged over each progress "
            "report's steps.",
            buckets=_STEP_BUCKETS,
            registry=r,
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
        # Series that alerts compute rates of exist from the start (at 0), so that the first
        # failure is an increase and not the appearance of a new series.
        for state in _TERMINAL:
            self.training_jobs.labels(state=state)

    def observe_job(self, kind: str, state: str, started: datetime | None, ended: datetime) -> None:
        """Record a job's run time once it ended (nothing for a job that never started)."""
        if started is None:
            return
        seconds = (as_utc(ended) - as_utc(started)).total_seconds()
        self.job_seconds.labels(kind=kind, state=state.lower()).observe(max(0.0, seconds))

    def observe_steps(self, steps: int, seconds: float) -> None:
        """Record ``steps`` DP-SGD steps that took ``seconds`` together."""
        if steps <= 0 or seconds < 0:
            return
        self.training_steps.inc(steps)
        for _ in range(steps):
            self.training_step_seconds.observe(seconds / steps)

    def watch_jobs(self, db: Database) -> None:
        """Report the job queue of ``db`` on every scrape (see :class:`JobQueueCollector`)."""
        self.registry.register(JobQueueCollector(db))

    def serve_http(self, host: str, port: int) -> tuple[Any, int]:
        """Expose ``/metrics`` on its own port; returns the HTTP server and the bound port."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return server, int(server.server_port)


class JobQueueCollector(Collector):
    """``privsynth_jobs_queued``, ``privsynth_jobs_running`` and the oldest queued job's age.

    Two grouped counts per scrape, over the indexed ``state`` columns of the job and
    evaluation tables. When the database cannot be read the three families are left out of
    that scrape (absent, not zero: an alert must not read "queue empty" from an outage).
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    def describe(self) -> list[Metric]:
        """The families this collector yields (without touching the database)."""
        return list(self._families())

    def collect(self) -> Iterator[Metric]:
        """Read the queue now."""
        try:
            counts = self._read()
        except Exception as exc:  # an unreachable database must not break the whole scrape
            log.warning("job queue metrics unavailable: %s", type(exc).__name__)
            return
        queued, running, oldest = self._families()
        now = datetime.now(UTC)
        for kind in JOB_KINDS:
            for runner in _RUNNERS if kind == "training" else ("worker",):
                key = (kind, runner)
                n_queued, first = counts.get((*key, "QUEUED"), (0, None))
                n_running, _ = counts.get((*key, "RUNNING"), (0, None))
                queued.add_metric([kind, runner], n_queued)
                running.add_metric([kind, runner], n_running)
                age = (now - as_utc(first)).total_seconds() if first is not None else 0.0
                oldest.add_metric([kind, runner], max(0.0, age))
        yield from (queued, running, oldest)

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        labels = ["kind", "runner"]
        return (
            GaugeMetricFamily(
                "privsynth_jobs_queued",
                "Jobs waiting for a worker (all replicas), by kind and runner.",
                labels=labels,
            ),
            GaugeMetricFamily(
                "privsynth_jobs_running",
                "Jobs being run (all replicas), by kind and runner.",
                labels=labels,
            ),
            GaugeMetricFamily(
                "privsynth_jobs_oldest_queued_seconds",
                "Age of the oldest job still waiting for a worker (0 when none waits).",
                labels=labels,
            ),
        )

    def _read(self) -> dict[tuple[str, str, str], tuple[int, datetime | None]]:
        active = ("QUEUED", "RUNNING")
        training = (
            select(JobRow.runner, JobRow.state, func.count(), func.min(JobRow.created_at))
            .where(JobRow.state.in_(active))
            .group_by(JobRow.runner, JobRow.state)
        )
        evaluation = (
            select(
                literal("worker"),
                EvaluationRow.state,
                func.count(),
                func.min(EvaluationRow.created_at),
            )
            .where(EvaluationRow.state.in_(active))
            .group_by(EvaluationRow.state)
        )
        counts: dict[tuple[str, str, str], tuple[int, datetime | None]] = {}
        with self.db.session() as s:
            for kind, query in (("training", training), ("evaluation", evaluation)):
                for runner, state, n, first in s.execute(query):
                    counts[(kind, str(runner), str(state))] = (int(n), first)
        return counts
