"""Observability over a real upload and training run: logs, spans and metrics hold no corpus text.

One server with OpenTelemetry on (spans kept in memory) and every log line captured as the
server formats it (JSON, in the thread that logs it). The corpus is support tickets with fake
PII plus public fortunes; afterwards, not one log line or span may contain a record's text, a
run of five of its words, or its PII, while the lifecycle events and metrics must be there.
"""

from __future__ import annotations

import json
import logging
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from corpus import SECRET_EMAIL, SECRET_NAME, SECRET_PHONE, fortunes, tickets
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from privsynth.client.client import PrivsynthClient
from privsynth.client.errors import BudgetExhausted
from privsynth.client.pb import datasets_pb2, datasets_pb2_grpc, training_pb2
from privsynth.server.logs import JsonFormatter
from privsynth.server.telemetry import RpcTelemetry
from prometheus_client.parser import text_string_to_metric_families

CORPUS = tickets(12) + fortunes(48)


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.raw: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.raw.append(self.format(record))

    def events(self, name: str) -> list[dict[str, Any]]:
        return [line for line in map(json.loads, self.raw) if line.get("event") == name]


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from privsynth.server.app import PrivsynthServer
    from privsynth.server.config import Settings

    lines = _Lines()
    root = logging.getLogger()
    level = root.level
    root.addHandler(lines)
    root.setLevel(logging.DEBUG)  # everything any library would say, at its most verbose
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    data_dir: Path = tmp_path_factory.mktemp("observed")
    settings = Settings(
        data_dir=data_dir,
        host="127.0.0.1",
        grpc_port=0,
        metrics_port=0,
        training_workers=1,
        torch_threads=1,
        scrub_workers=0,  # scrubbing in this process: its logging is captured too
    )
    server = PrivsynthServer(settings, telemetry=RpcTelemetry(provider))
    server.start()
    try:
        assert server.wait_ready(timeout=300), f"server failed to load: {server.load_error}"
        with PrivsynthClient(f"127.0.0.1:{server.port}", stream_timeout=300) as client:
            dataset = client.upload_dataset(CORPUS, display_name="observed", epsilon_cap=5)
            job = client.create_training_job(
                dataset.name, target_epsilon=4.0, epochs=1, preset="tiny", holdout_fraction=0
            )
            final = list(client.watch_training_job(job.name))[-1]
            samples = [r.text for r in client.generate(final.model, count=3, max_tokens=12)]
            with pytest.raises(BudgetExhausted):
                client.create_training_job(
                    dataset.name, target_epsilon=6.0, epochs=1, preset="tiny", holdout_fraction=0
                )
            with urllib.request.urlopen(
                f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10
            ) as resp:
                scrape = resp.read().decode()
        yield {
            "server": server,
            "lines": lines,
            "spans": spans,
            "dataset": dataset,
            "job": job,
            "final": final,
            "samples": samples,
            "scrape": scrape,
        }
    finally:
        server.stop(grace=1)
        root.removeHandler(lines)
        root.setLevel(level)


def _windows(text: str, n: int = 5) -> set[str]:
    words = re.findall(r"\w+", text.lower())
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


def test_no_corpus_text_in_any_log_line(observed: dict[str, Any]) -> None:
    raw: list[str] = observed["lines"].raw
    assert len(raw) > 20
    parsed = [json.loads(line) for line in raw]  # every line is one JSON object
    assert all({"time", "level", "logger", "message"} <= set(p) for p in parsed)
    text = "\n".join(raw)
    plain = " ".join(re.findall(r"\w+", text.lower()))
    for secret in (SECRET_NAME, SECRET_EMAIL, SECRET_PHONE, "zebulon", "quagmire"):
        assert secret.lower() not in text.lower(), secret
    for record in CORPUS:
        assert str(record.text) not in text
        leaked = [w for w in _windows(str(record.text)) if w in plain]
        assert leaked == [], leaked
    for sample in observed["samples"]:  # nor what the model wrote
        if len(sample) > 20:
            assert sample not in text


def test_lifecycle_events_with_ids_and_counts(observed: dict[str, Any]) -> None:
    lines: _Lines = observed["lines"]
    dataset_id = observed["dataset"].name.split("/", 1)[1]
    job_id = observed["job"].name.split("/", 1)[1]
    model_id = observed["final"].model.split("/", 1)[1]
    (uploaded,) = lines.events("dataset.uploaded")
    assert uploaded["dataset_id"] == dataset_id
    assert uploaded["records"] == len(CORPUS)
    assert uploaded["records_with_pii"] >= 9 and uploaded["entities_replaced"] >= 9
    assert uploaded["rpc_method"] == "/privsynth.v1.Datasets/UploadDataset"
    assert re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", uploaded["request_id"])
    created = [e for e in lines.events("job.created") if e["job_id"] == job_id]
    assert len(created) == 1
    assert created[0]["epsilon"] == 4.0 and created[0]["dataset_id"] == dataset_id
    assert created[0]["rpc_method"] == "/privsynth.v1.Training/CreateTrainingJob"
    (started,) = lines.events("job.started")
    assert started["job_id"] == job_id
    assert "request_id" not in started  # a worker thread, not a call
    (succeeded,) = lines.events("job.succeeded")
    assert succeeded["job_id"] == job_id and succeeded["model_id"] == model_id
    assert succeeded["steps"] == observed["final"].progress.step > 0
    assert 0 < succeeded["epsilon"] <= 4.0 + 1e-6
    (stored,) = lines.events("model.stored")
    assert stored["model_id"] == model_id
    (refused,) = lines.events("budget.refused")
    assert refused["dataset_id"] == dataset_id and refused["epsilon"] == 6.0
    assert 0 <= refused["epsilon_remaining"] < 5.0
    order = [
        json.loads(line).get("event")
        for line in lines.raw
        if json.loads(line).get("event") in {"job.created", "job.started", "job.succeeded"}
    ]
    assert order[:3] == ["job.created", "job.started", "job.succeeded"]
    # Alembic said what it did and nothing about its plugins.
    messages = [json.loads(line)["message"] for line in lines.raw]
    assert not [m for m in messages if "setup plugin" in m]


def test_spans_name_method_and_status_and_hold_no_corpus_text(observed: dict[str, Any]) -> None:
    finished = observed["spans"].get_finished_spans()
    by_name: dict[str, list[int]] = {}
    for span in finished:
        by_name.setdefault(span.name, []).append(span.attributes["rpc.grpc.status_code"])
        exported = span.to_json().lower()
        for record in CORPUS:
            assert not [w for w in _windows(str(record.text)) if w in exported]
        assert "zebulon" not in exported and "555-0134" not in exported
    assert by_name["privsynth.v1.Datasets/UploadDataset"] == [0]
    assert by_name["privsynth.v1.Training/CreateTrainingJob"] == [0, 8]  # OK, then the refusal
    assert 0 in by_name["privsynth.v1.Training/WatchTrainingJob"]
    assert by_name["privsynth.v1.Generation/Generate"] == [0]
    assert not [name for name in by_name if name.startswith("grpc.health")]


def test_job_metrics_after_the_run(observed: dict[str, Any]) -> None:
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(observed["scrape"])
        for s in family.samples
    }
    done = (("kind", "training"), ("state", "succeeded"))
    assert samples[("privsynth_job_duration_seconds_count", done)] == 1
    steps = observed["final"].progress.step
    assert samples[("privsynth_training_steps_total", ())] == steps
    assert samples[("privsynth_training_step_seconds_count", ())] == steps
    assert samples[("privsynth_budget_refusals_total", ())] == 1
    queue = (("kind", "training"), ("runner", "worker"))
    assert samples[("privsynth_jobs_queued", queue)] == 0
    assert samples[("privsynth_jobs_running", queue)] == 0
    assert samples[("process_resident_memory_bytes", ())] > 0


def test_request_id_round_trip_and_reflection_v1(observed: dict[str, Any]) -> None:
    port = observed["server"].port
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = datasets_pb2_grpc.DatasetsStub(channel)
        _, call = stub.GetDataset.with_call(
            datasets_pb2.GetDatasetRequest(name=observed["dataset"].name),
            metadata=[("x-request-id", "ops-ticket-4711")],
            timeout=10,
        )
        assert ("x-request-id", "ops-ticket-4711") in call.trailing_metadata()
        reflect = channel.stream_stream(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=lambda b: b,
        )
        from grpc_reflection.v1alpha import reflection_pb2  # wire-identical to v1

        (raw,) = list(
            reflect(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10)
        )
    listed = reflection_pb2.ServerReflectionResponse.FromString(raw).list_services_response
    names = {s.name for s in listed.service}
    assert {"privsynth.v1.Datasets", "grpc.reflection.v1.ServerReflection"} <= names
    assert training_pb2.DESCRIPTOR.services_by_name["Training"].full_name in names
