"""An upload's size in bytes is bounded, and its shard goes to disk as it is scrubbed."""

from __future__ import annotations

from collections.abc import Iterator
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


def _runtime(tmp_path: Path, **settings: object) -> Runtime:
    config = Settings(
        data_dir=tmp_path,
        grpc_port=0,
        metrics_port=-1,
        scrub_batch_size=4,
        **settings,  # type: ignore[arg-type]
    )
    db = Database(config.database_url)
    db.migrate()
    scrubber = Scrubber()
    scrubber.load()
    rt = Runtime(config, db, ArtifactStore(tmp_path / "artifacts"), scrubber, Metrics(), b"k" * 32)
    rt.ready.set()
    return rt


def test_an_upload_over_the_byte_limit_is_refused_and_stores_nothing(tmp_path: Path) -> None:
    # max_records x max_record_bytes allowed 64 GB in one upload's memory.
    rt = _runtime(tmp_path, max_dataset_bytes=2_000)
    db = rt.db
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


def test_the_shard_is_written_while_the_upload_is_read(tmp_path: Path) -> None:
    # An upload used to gather its whole scrubbed corpus in memory (then a second copy to
    # store it): a dozen 1 GiB uploads at once were an OOM kill. Scrubbed batches now go
    # to a staged file as they are done.
    rt = _runtime(tmp_path)
    shards = tmp_path / "artifacts" / "shards"
    seen: list[int] = []

    def records() -> Iterator[IncomingRecord]:
        for i in range(200):
            if i == 150:  # several flushes in: their lines are on disk already
                seen.extend(p.stat().st_size for p in shards.glob(".tmp-*"))
            yield IncomingRecord(text=f"record {i} from jane@example.com".encode())

    try:
        row = ingest(rt, DatasetSpec("streamed"), records())
        assert len(seen) == 1 and seen[0] > 0
        data = rt.store.get(row.shard_path, sha256=row.content_sha256)
        assert data.count(b"\n") == 200 and b"jane@example.com" not in data
        assert not list(shards.glob(".tmp-*"))
    finally:
        rt.db.close()


def test_a_full_disk_mid_upload_leaves_no_partial_shard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from privsynth.server.storage import StagedArtifact

    rt = _runtime(tmp_path)
    shards = tmp_path / "artifacts" / "shards"
    write = StagedArtifact.write

    def fill_up(self: StagedArtifact, data: bytes) -> None:
        if self.size > 500:
            raise OSError(errno.ENOSPC, "No space left on device")
        write(self, data)

    monkeypatch.setattr(StagedArtifact, "write", fill_up)
    records = [IncomingRecord(text=f"record {i} is short".encode()) for i in range(100)]
    try:
        with pytest.raises(OSError) as exc:  # the interceptor answers STORAGE_FULL for it
            ingest(rt, DatasetSpec("fills the disk"), records)
        assert exc.value.errno == errno.ENOSPC
        assert not list(shards.iterdir())
    finally:
        rt.db.close()
