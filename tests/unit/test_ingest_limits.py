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


def test_the_shard_is_written_while_the_upload_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An upload used to gather its whole scrubbed corpus in memory (then a second copy to
    # store it): a dozen 1 GiB uploads at once were an OOM kill. Scrubbed batches now go
    # to a staged file as they are done.
    from privsynth.server.storage import StagedArtifact

    rt = _runtime(tmp_path)
    shards = tmp_path / "artifacts" / "shards"
    written: list[int] = []
    write = StagedArtifact.write

    def counted(self: StagedArtifact, data: bytes) -> None:
        written.append(len(data))
        write(self, data)

    monkeypatch.setattr(StagedArtifact, "write", counted)
    seen: list[int] = []

    def records() -> Iterator[IncomingRecord]:
        for i in range(200):
            if i == 150:  # several flushes in: their lines went to the staged file
                seen.append(len(written))
            yield IncomingRecord(text=f"record {i} from jane@example.com".encode())

    try:
        row = ingest(rt, DatasetSpec("streamed"), records())
        assert seen[0] >= 100 and len(written) == 200
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


def test_an_upload_cancelled_after_its_last_record_is_not_stored(tmp_path: Path) -> None:
    # grpcio can end a cancelled request stream as if the client had finished, and tell the
    # handler a moment later: the records read so far must not become a dataset.
    import threading

    from privsynth.server.db import DatasetRow
    from privsynth.server.scrubbing.scrubber import ScrubCancelled
    from sqlalchemy import select

    rt = _runtime(tmp_path)
    gone = threading.Event()

    def records() -> Iterator[IncomingRecord]:
        for i in range(30):
            yield IncomingRecord(text=f"record {i} of a cut-short upload".encode())
        gone.set()  # the client's cancel arrives once its stream has ended

    try:
        with pytest.raises(ScrubCancelled):
            ingest(rt, DatasetSpec("cut short"), records(), cancel=gone)
        assert not list((tmp_path / "artifacts" / "shards").iterdir())
        with rt.db.session() as s:
            assert s.scalar(select(DatasetRow.id)) is None
    finally:
        rt.db.close()
