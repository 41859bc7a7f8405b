"""An upload is held in memory until it is stored: its size in bytes is bounded."""

from __future__ import annotations

from pathlib import Path

import pytest
from privsynth.server.config import Settings
from privsynth.server.db import Database
from privsynth.server.errors import InvalidArgument, Reason
from privsynth.server.metrics import Metrics
from privsynth.server.runtime import Runtime
from privsynth.server.scrubbing.ingest import DatasetSpec, IncomingRecord, ingest
from privsynth.server.scrubbing.scrubber import Scrubber
from privsynth.server.storage import ArtifactStore


def test_an_upload_over_the_byte_limit_is_refused_and_stores_nothing(tmp_path: Path) -> None:
    # max_records x max_record_bytes allowed 64 GB in one upload's memory.
    settings = Settings(
        data_dir=tmp_path, grpc_port=0, metrics_port=-1, max_dataset_bytes=2_000, scrub_batch_size=4
    )
    db = Database(settings.database_url)
    db.migrate()
    scrubber = Scrubber()
    scrubber.load()
    store = ArtifactStore(tmp_path / "artifacts")
    rt = Runtime(settings, db, store, scrubber, Metrics(), b"k" * 32)
    rt.ready.set()
    try:
        small = [IncomingRecord(text=f"record {i} is short".encode()) for i in range(10)]
        assert ingest(rt, DatasetSpec("fits"), small).record_count == 10
        stored = sorted(p.name for p in (tmp_path / "artifacts").rglob("*") if p.is_file())
        big = [IncomingRecord(text=(f"record {i} " + "word " * 40).encode()) for i in range(20)]
        with pytest.raises(InvalidArgument) as exc:
            ingest(rt, DatasetSpec("too big"), big)
        assert exc.value.reason == Reason.DATASET_TOO_LARGE
        assert "2000 bytes" in str(exc.value)
        after = sorted(p.name for p in (tmp_path / "artifacts").rglob("*") if p.is_file())
        assert after == stored
    finally:
        db.close()
