"""The server's own registry exports process, Python, build and job-queue metrics."""

from __future__ import annotations

import platform
import urllib.request
from datetime import timedelta
from pathlib import Path

from job_runtime import add_dataset, job_runtime
from privsynth.server.db import Database, EvaluationRow, JobRow, new_id, utcnow
from privsynth.server.metrics import Metrics, build_version
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families


def _samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(metrics: Metrics, name: str, **labels: str) -> float:
    return _samples(metrics)[(name, tuple(sorted(labels.items())))]


def test_process_python_and_build_info_are_exported() -> None:
    metrics = Metrics()
    names = {name for name, _ in _samples(metrics)}
    for name in (
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
        "python_info",
        "python_gc_collections_total",
    ):
        assert name in names, name
    assert build_version() == "0.1.0"  # the editable install's version, as pyproject says
    assert (
        _value(
            metrics,
            "privsynth_build_info",
            version=build_version(),
            python_version=platform.python_version(),
        )
        == 1
    )
    # Failures are an increase from a series that exists, not a series that appears.
    assert _value(metrics, "privsynth_training_jobs_finished_total", state="failed") == 0


def _job(dataset_id: str, state: str, *, runner: str = "worker", age_s: float = 0.0) -> JobRow:
    return JobRow(
        id=new_id(),
        dataset_id=dataset_id,
        model_id=new_id(),
        state=state,
        target_epsilon=1.0,
        delta=1e-5,
        epochs=1,
        preset="tiny",
        created_at=utcnow() - timedelta(seconds=age_s),
        runner=runner,
    )


def test_queue_gauges_read_the_database_at_scrape_time(tmp_path: Path) -> None:
    with job_runtime(tmp_path) as rt:
        metrics = rt.metrics
        metrics.watch_jobs(rt.db)
        for kind in ("training", "evaluation"):
            assert _value(metrics, "privsynth_jobs_queued", kind=kind, runner="worker") == 0
            assert (
                _value(metrics, "privsynth_jobs_oldest_queued_seconds", kind=kind, runner="worker")
                == 0
            )
        dataset = add_dataset(rt)
        with rt.db.session() as s:
            s.add_all(
                [
                    _job(dataset, "QUEUED", age_s=600),
                    _job(dataset, "QUEUED", age_s=5),
                    _job(dataset, "RUNNING"),
                    _job(dataset, "QUEUED", runner="torchrun", age_s=60),
                    _job(dataset, "SUCCEEDED", age_s=9000),
                    EvaluationRow(
                        id=new_id(),
                        model_id=new_id(),
                        dataset_id=dataset,
                        tenant="default",
                        state="RUNNING",
                        sample_count=10,
                        created_at=utcnow(),
                    ),
                ]
            )
        assert _value(metrics, "privsynth_jobs_queued", kind="training", runner="worker") == 2
        assert _value(metrics, "privsynth_jobs_running", kind="training", runner="worker") == 1
        assert _value(metrics, "privsynth_jobs_queued", kind="training", runner="torchrun") == 1
        assert _value(metrics, "privsynth_jobs_running", kind="evaluation", runner="worker") == 1
        assert _value(metrics, "privsynth_jobs_queued", kind="evaluation", runner="worker") == 0
        age = _value(
            metrics, "privsynth_jobs_oldest_queued_seconds", kind="training", runner="worker"
        )
        assert 600 <= age < 700


def test_queue_gauges_absent_when_the_database_is_unreachable(tmp_path: Path) -> None:
    metrics = Metrics()
    metrics.watch_jobs(Database(f"sqlite:///{tmp_path}/missing/dir/privsynth.db"))
    names = {name for name, _ in _samples(metrics)}
    assert "privsynth_jobs_queued" not in names  # absent, not a reassuring 0
    assert "process_cpu_seconds_total" in names


def test_job_duration_and_step_time_histograms() -> None:
    metrics = Metrics()
    ended = utcnow()
    metrics.observe_job("training", "SUCCEEDED", ended - timedelta(seconds=90), ended)
    metrics.observe_job("training", "CANCELLED", None, ended)  # never started: not a duration
    metrics.observe_steps(4, 2.0)
    labels = {"kind": "training", "state": "succeeded"}
    assert _value(metrics, "privsynth_job_duration_seconds_count", **labels) == 1
    assert _value(metrics, "privsynth_job_duration_seconds_sum", **labels) == 90
    assert _value(metrics, "privsynth_job_duration_seconds_bucket", le="60.0", **labels) == 0
    assert _value(metrics, "privsynth_job_duration_seconds_bucket", le="120.0", **labels) == 1
    names = {name for name, labels in _samples(metrics) if ("state", "cancelled") in labels}
    assert "privsynth_job_duration_seconds_count" not in names
    assert _value(metrics, "privsynth_training_steps_total") == 4
    assert _value(metrics, "privsynth_training_step_seconds_count") == 4
    assert _value(metrics, "privsynth_training_step_seconds_bucket", le="0.5") == 4
    assert _value(metrics, "privsynth_training_step_seconds_bucket", le="0.25") == 0


def test_metrics_port_serves_the_registry() -> None:
    metrics = Metrics()
    server, port = metrics.serve_http("127.0.0.1", 0)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            body = resp.read().decode()
    finally:
        server.shutdown()
        server.server_close()
    assert "process_resident_memory_bytes" in body
    assert "privsynth_build_info{" in body
