"""A tenant keeps a bounded number of datasets and bytes; one member cannot fill the volume.

Each upload was bounded on its own, their sum was not: a loop of 1 GiB uploads filled the
volume every tenant shares, and then everyone's uploads and checkpoints failed STORAGE_FULL.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.rpc import status_pb2
from privsynth.client import errors as client_errors
from privsynth.client.exit_codes import ExitCode, for_error
from privsynth.server.api.interceptors import to_status
from privsynth.server.config import Settings
from privsynth.server.db import Database, DatasetRow, utcnow
from privsynth.server.errors import Overloaded, QuotaExceeded, Reason
from privsynth.server.metrics import Metrics
from privsynth.server.runtime import Runtime
from privsynth.server.scrubbing.ingest import (
    DatasetSpec,
    DuplicateUpload,
    IncomingRecord,
    ingest,
)
from privsynth.server.scrubbing.scrubber import Scrubber
from privsynth.server.scrubbing.tenant_storage import (
    BYTES_SUBJECT,
    DATASETS_SUBJECT,
    usage,
)
from privsynth.server.storage import ArtifactStore
from sqlalchemy import update


@pytest.fixture(scope="module")
def scrubber() -> Scrubber:
    loaded = Scrubber()
    loaded.load()
    return loaded


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The embedded SQLite database, and a fresh PostgreSQL one (its per-tenant lock)."""
    if request.param == "sqlite":
        yield ""
        return
    import psycopg

    admin_url = os.environ.get("PRIVSYNTH_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
    try:
        admin = psycopg.connect(admin_url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not reachable ({type(exc).__name__})")
    name = f"privsynth_share_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield re.sub(r"/[^/]*$", f"/{name}", admin_url).replace(
            "postgresql://", "postgresql+psycopg://", 1
        )
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _runtime(tmp_path: Path, scrubber: Scrubber, **settings: object) -> Runtime:
    config = Settings(
        data_dir=tmp_path,
        grpc_port=0,
        metrics_port=-1,
        scrub_batch_size=4,
        scrub_workers=0,
        **settings,  # type: ignore[arg-type]
    )
    db = Database(config.database_url)
    db.migrate()
    rt = Runtime(config, db, ArtifactStore(tmp_path / "artifacts"), scrubber, Metrics(), b"k" * 32)
    rt.ready.set()
    return rt


def _records(n: int, tag: str, *, words: int = 3) -> list[IncomingRecord]:
    return [IncomingRecord(text=f"{tag} record {i} {'word ' * words}".encode()) for i in range(n)]


class _Counted:
    """Records handed out one by one, counting how many ingest has read."""

    def __init__(self, records: list[IncomingRecord]) -> None:
        self.records = records
        self.read = 0

    def __iter__(self) -> Iterator[IncomingRecord]:
        for record in self.records:
            self.read += 1
            yield record


def _shards(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "artifacts").rglob("*") if p.is_file())


def test_a_tenant_at_its_dataset_count_is_refused_before_scrubbing(
    tmp_path: Path, scrubber: Scrubber
) -> None:
    rt = _runtime(tmp_path, scrubber, max_datasets_per_tenant=2)
    try:
        first = ingest(rt, DatasetSpec("a", tenant="acme"), _records(3, "a"))
        ingest(rt, DatasetSpec("b", tenant="acme"), _records(3, "b"))
        counted = _Counted(_records(3, "c"))
        with pytest.raises(QuotaExceeded) as exc:
            ingest(rt, DatasetSpec("c", tenant="acme"), counted)
        assert counted.read == 0, "a full share still scrubbed the upload"
        assert exc.value.reason == Reason.STORAGE_QUOTA_EXCEEDED
        assert exc.value.subject == DATASETS_SUBJECT
        assert (exc.value.limit, exc.value.used) == (2, 2)
        assert "PRIVSYNTH_MAX_DATASETS_PER_TENANT" in exc.value.message
        # Another tenant's share is its own.
        assert ingest(rt, DatasetSpec("o", tenant="other"), _records(3, "o")).record_count == 3
        # A deleted dataset stops counting at once.
        with rt.db.session() as s:
            s.get(DatasetRow, first.id).deleted_at = utcnow()  # type: ignore[union-attr]
        assert ingest(rt, DatasetSpec("c", tenant="acme"), _records(3, "c")).record_count == 3
    finally:
        rt.db.close()


def test_an_upload_past_the_byte_share_is_refused_as_it_passes_and_stores_nothing(
    tmp_path: Path, scrubber: Scrubber
) -> None:
    rt = _runtime(tmp_path, scrubber, max_stored_bytes_per_tenant=6_000)
    try:
        kept = ingest(rt, DatasetSpec("a", tenant="acme"), _records(10, "a", words=40))
        assert kept.size_bytes is not None and 2_000 < kept.size_bytes < 4_000
        before = _shards(tmp_path)
        big = _Counted(_records(400, "b", words=40))  # about 100 KB: far past the share

        with pytest.raises(QuotaExceeded) as exc:
            ingest(rt, DatasetSpec("b", tenant="acme"), big)
        assert exc.value.subject == BYTES_SUBJECT
        assert exc.value.used == kept.size_bytes and exc.value.limit == 6_000
        assert "PRIVSYNTH_MAX_STORED_BYTES_PER_TENANT" in exc.value.message
        assert "nothing was stored" in exc.value.message
        assert big.read < 100, f"refused only after {big.read} of 400 records"
        assert _shards(tmp_path) == before
        with rt.db.session() as s:
            assert usage(s, rt.store, "acme").datasets == 1
        # What still fits, fits.
        assert ingest(rt, DatasetSpec("c", tenant="acme"), _records(5, "c")).record_count == 5
    finally:
        rt.db.close()


def test_uploads_that_commit_meanwhile_are_counted_when_the_row_is_stored(
    tmp_path: Path, scrubber: Scrubber, database_url: str
) -> None:
    # Both uploads start with room for one; the one that stores its row second is refused.
    rt = _runtime(tmp_path, scrubber, max_datasets_per_tenant=1, database_url=database_url)
    try:

        def racing() -> Iterator[IncomingRecord]:
            yield from _records(3, "slow")
            ingest(rt, DatasetSpec("fast", tenant="acme"), _records(3, "fast"))

        with pytest.raises(QuotaExceeded) as exc:
            ingest(rt, DatasetSpec("slow", tenant="acme"), racing())
        assert exc.value.subject == DATASETS_SUBJECT
        with rt.db.session() as s:
            names = [r.display_name for r in s.query(DatasetRow).all()]
        assert names == ["fast"]
        assert len(_shards(tmp_path)) == 1, "the refused upload's shard was kept"
    finally:
        rt.db.close()


def test_uploading_and_deleting_in_a_loop_meets_the_hourly_creation_limit(
    tmp_path: Path, scrubber: Scrubber, database_url: str
) -> None:
    # Deleted datasets stop counting against the share, but their rows and audit entries
    # stay: a loop of upload and delete added 54 datasets a second without bound.
    rt = _runtime(
        tmp_path, scrubber, max_creations_per_tenant_per_hour=3, database_url=database_url
    )
    try:
        for i in range(3):
            row = ingest(rt, DatasetSpec(f"d{i}", tenant="acme"), _records(1, f"d{i}"))
            with rt.db.session() as s:
                s.get(DatasetRow, row.id).deleted_at = utcnow()  # type: ignore[union-attr]
        counted = _Counted(_records(1, "next"))
        with pytest.raises(Overloaded) as exc:
            ingest(rt, DatasetSpec("next", tenant="acme"), counted)
        assert counted.read == 0, "refused only after scrubbing"
        assert exc.value.subject == "datasets/created_per_hour"
        assert exc.value.reason == Reason.CREATION_RATE_EXCEEDED
        assert 3500 < exc.value.retry_after_s <= 3600
        assert ingest(rt, DatasetSpec("o", tenant="other"), _records(1, "o")).record_count == 1
    finally:
        rt.db.close()


def test_a_retry_whose_first_attempt_filled_the_share_gets_that_dataset(
    tmp_path: Path, scrubber: Scrubber
) -> None:
    # The first attempt stores its dataset while the retry scrubs: the retry must answer with
    # it (as it does without a share), not be refused by the share the first one filled.
    rt = _runtime(tmp_path, scrubber, max_datasets_per_tenant=1)
    spec = DatasetSpec("once", tenant="acme", request_id="r-1")
    try:
        stored: list[DatasetRow] = []

        def retried() -> Iterator[IncomingRecord]:
            yield from _records(3, "once")
            stored.append(ingest(rt, spec, _records(3, "once")))

        with pytest.raises(DuplicateUpload) as exc:
            ingest(rt, spec, retried())
        assert exc.value.dataset.id == stored[0].id
    finally:
        rt.db.close()


def test_datasets_stored_before_sizes_were_recorded_are_measured_once(
    tmp_path: Path, scrubber: Scrubber
) -> None:
    rt = _runtime(tmp_path, scrubber)
    try:
        row = ingest(rt, DatasetSpec("old", tenant="acme"), _records(4, "old"))
        size = row.size_bytes
        assert size == rt.store.size(row.shard_path)
        with rt.db.session() as s:
            s.execute(update(DatasetRow).values(size_bytes=None))  # as revision 0011 left it
        with rt.db.session() as s:
            assert usage(s, rt.store, "acme").bytes == size
        with rt.db.session() as s:
            assert s.get(DatasetRow, row.id).size_bytes == size  # type: ignore[union-attr]
    finally:
        rt.db.close()


class _Refused(grpc.RpcError):
    """A failed call as grpcio hands it to the client: code, message and status trailers."""

    def __init__(self, status: status_pb2.Status) -> None:
        self.status = status

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.RESOURCE_EXHAUSTED

    def details(self) -> str:
        return self.status.message

    def trailing_metadata(self) -> tuple[tuple[str, bytes], ...]:
        return (("grpc-status-details-bin", self.status.SerializeToString()),)


def test_the_refusal_reaches_the_client_as_its_own_error_and_exit_code() -> None:
    exc = QuotaExceeded("full", subject=BYTES_SUBJECT, limit=100, used=90)
    client = client_errors.from_rpc_error(_Refused(to_status(exc)))
    assert isinstance(client, client_errors.QuotaExceeded)
    assert not isinstance(client, client_errors.Overloaded)
    assert client.retry_after_s is None, "waiting does not free a storage share: no RetryInfo"
    assert client.reason == "STORAGE_QUOTA_EXCEEDED"
    assert client.quota_subjects == (BYTES_SUBJECT,)
    assert (client.limit, client.used) == (100, 90)
    assert for_error(client) is ExitCode.QUOTA
