"""Two replicas without a shared volume: artifacts in an S3-compatible bucket.

Replica A (API only) stores a dataset's shard and accepts a training job; replica B (a worker,
with its own data directory) trains it, reading the shard from the bucket and storing the
model there; replica A then loads that model to generate. The two share only the database and
the bucket, as pods with PostgreSQL and ``objectStore`` do on Kubernetes (here SQLite on one
disk stands in for the shared database; the artifact store is the part under test).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("moto.server", reason="moto[s3] + flask are dev dependencies")
pytest.importorskip("s3fs", reason="s3fs is the privsynth[s3] extra")

from job_runtime import add_dataset, job_runtime
from privsynth.server.db import DatasetRow, JobRow, ModelRow
from privsynth.server.jobs.runner import TERMINAL_STATES, JobRunner, JobSpec
from privsynth.server.runtime import Runtime
from privsynth.server.serving.generation import ModelCache
from privsynth.server.storage import ObjectArtifactStore
from s3_server import BUCKET, S3Endpoint, s3_endpoint


@pytest.fixture(scope="module")
def endpoint() -> Iterator[S3Endpoint]:
    with s3_endpoint() as running:
        yield running


def _replica(base: Runtime, endpoint: S3Endpoint, data_dir: Path, **settings: object) -> Runtime:
    """A replica: the shared database, its own data dir, the shared bucket."""
    config = base.settings.model_copy(update={"data_dir": data_dir, **settings})
    store = ObjectArtifactStore(
        f"s3://{BUCKET}/deployment", scratch=data_dir / "artifacts", options=endpoint.options()
    )
    return dataclasses.replace(base, settings=config, store=store)


def _wait(rt: Runtime, job_id: str, timeout: float = 240.0) -> JobRow:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with rt.db.session() as s:
            row = s.get(JobRow, job_id)
            assert row is not None
            if row.state in TERMINAL_STATES:
                return row
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not end in {timeout}s")


def test_a_job_accepted_by_one_replica_is_trained_and_served_from_the_bucket(
    endpoint: S3Endpoint, tmp_path: Path
) -> None:
    (tmp_path / "db").mkdir()
    with job_runtime(tmp_path / "db", training_workers=1, torch_threads=1) as shared:
        api = _replica(shared, endpoint, tmp_path / "a", training_workers=0, worker_id="a")
        worker = _replica(shared, endpoint, tmp_path / "b", worker_id="b", job_lease_s=0.4)
        dataset_id = add_dataset(api, 40)
        runner_b = JobRunner(worker)
        runner_b.recover()  # B's sweeper takes up what A queues
        try:
            job = JobRunner(api).create(
                JobSpec(dataset_id=dataset_id, target_epsilon=4.0, epochs=1, preset="tiny")
            )
            done = _wait(shared, job.id)
        finally:
            runner_b.shutdown()
        assert done.state == "SUCCEEDED", done.error_message
        assert done.worker == "b"
        with shared.db.session() as s:
            model = s.get(ModelRow, done.model_id)
            dataset = s.get(DatasetRow, dataset_id)
            assert model is not None and dataset is not None
            weights_path, shard_path = model.weights_path, dataset.shard_path
            # Replica A serves the model B trained: it loads the weights from the bucket.
            loaded = ModelCache().get(api, model)
        assert loaded is not None
        keys = {
            obj["Key"]
            for obj in endpoint.client().list_objects_v2(Bucket=BUCKET, Prefix="deployment/")[
                "Contents"
            ]
        }
        assert {f"deployment/{shard_path}", f"deployment/{weights_path}"} <= keys
    # Neither replica's disk holds a shard or a model: only the bucket does.
    for replica in ("a", "b"):
        local = tmp_path / replica / "artifacts"
        assert not [p for p in local.rglob("*") if p.suffix in (".jsonl", ".pt")]
