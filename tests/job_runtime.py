"""A job runner's world without gRPC or Presidio: settings, a migrated database, a store.

Shared by the job tests (resume, admission, distributed, safe retries): each builds its runtime
with its own settings through :func:`job_runtime` and its datasets through :func:`add_dataset`,
which writes a scrubbed shard of public fortunes straight to the store (no upload, no scrubbing),
and waits for a job to end with :func:`wait_for_job` (:func:`job_outcome` then reads what it
left: its model, its reserve and commit ledger rows, the dataset's budget).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from corpus import fortunes
from privsynth.server.config import Settings
from privsynth.server.db import Database, DatasetRow, JobRow, LedgerRow, ModelRow, new_id, utcnow
from privsynth.server.metrics import Metrics
from privsynth.server.privacy import ledger
from privsynth.server.runtime import Runtime
from privsynth.server.storage import ArtifactStore


@contextmanager
def job_runtime(tmp_path: Path, **settings: Any) -> Iterator[Runtime]:
    """A runtime over a fresh SQLite database in ``tmp_path``; ``settings`` override defaults."""
    config = Settings(data_dir=tmp_path, grpc_port=0, metrics_port=-1, **settings)
    db = Database(config.database_url)
    db.migrate()
    try:
        yield Runtime(
            settings=config,
            db=db,
            store=ArtifactStore(tmp_path / "artifacts"),
            scrubber=None,  # type: ignore[arg-type]  # nothing is uploaded here
            metrics=Metrics(),
            user_key=b"k" * 32,
        )
    finally:
        db.close()


def add_dataset(
    rt: Runtime,
    n: int = 40,
    *,
    labelled: bool = False,
    tenant: str = "default",
    epsilon_cap: float = 10.0,
    display_name: str = "jobs",
) -> str:
    """Store ``n`` fortunes as a scrubbed dataset (with their topic labels if ``labelled``)."""
    records = fortunes(n)
    shard = "".join(
        json.dumps({"text": str(r.text), **({"label": r.label} if labelled else {})}) + "\n"
        for r in records
    )
    path, digest = rt.store.put("shards", shard.encode(), suffix=".jsonl")
    row = DatasetRow(
        id=new_id(),
        display_name=display_name,
        created_at=utcnow(),
        record_count=n,
        labelled_count=n if labelled else 0,
        user_count=0,
        privacy_unit="record",
        epsilon_cap=epsilon_cap,
        delta=1.0 / (10 * n),
        shard_path=path,
        content_sha256=digest,
        scrub_report={},
        tenant=tenant,
    )
    with rt.db.session() as s:
        s.add(row)
    return row.id


def wait_for_job(rt: Runtime, job_id: str, timeout: float = 240.0) -> JobRow:
    """The job's row once it has ended (SUCCEEDED, FAILED or CANCELLED); fails after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        with rt.db.session() as s:
            row = s.get(JobRow, job_id)
            assert row is not None
            if row.state in {"SUCCEEDED", "FAILED", "CANCELLED"}:
                return row
        assert time.monotonic() < deadline, "job did not finish"
        time.sleep(0.05)


def job_outcome(rt: Runtime, job: JobRow) -> tuple[ModelRow, list[LedgerRow], ledger.BudgetView]:
    """An ended job's model, its reserve and commit ledger rows, and its dataset's budget."""
    from sqlalchemy import select

    with rt.db.session() as s:
        model = s.get(ModelRow, job.model_id)
        assert model is not None
        rows = s.execute(
            select(LedgerRow).where(
                LedgerRow.job_id == job.id, LedgerRow.kind.in_(("reserve", "commit"))
            )
        )
        charges = list(rows.scalars().all())
        dataset = s.get(DatasetRow, job.dataset_id)
        assert dataset is not None
        return model, charges, ledger.get_budget(s, dataset)
