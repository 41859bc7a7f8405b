"""Ledger arithmetic, atomic artifact storage and migrations on SQLite."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from privsynth.server.db import Base, Database, DatasetRow, utcnow
from privsynth.server.errors import ResourceExhausted
from privsynth.server.privacy import ledger
from privsynth.server.storage import ArtifactStore


def _db(tmp_path: Path) -> Database:
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    db.migrate()
    with db.session() as s:
        s.add(
            DatasetRow(
                id="d1",
                display_name="d",
                created_at=utcnow(),
                record_count=100,
                labelled_count=0,
                user_count=0,
                privacy_unit="record",
                epsilon_cap=5.0,
                delta=1e-5,
                shard_path="x",
                content_sha256="0" * 64,
                scrub_report={},
            )
        )
    return db


def test_migrations_match_the_models(tmp_path: Path) -> None:
    db = _db(tmp_path)
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    db.migrate()  # idempotent


def test_reserve_commit_release(tmp_path: Path) -> None:
    db = _db(tmp_path)
    with db.session() as s:
        ledger.reserve(s, "d1", job_id="j1", epsilon=3.0, delta=1e-6, actor="t")
    with db.session() as s:
        row = s.get(DatasetRow, "d1")
        assert row is not None
        b = ledger.get_budget(s, row)
        # A generic (3, 1e-6) job, stated at the cap's δ = 1e-5: a hair under 3.
        assert b.epsilon_spent == 0.0
        assert b.epsilon_reserved == pytest.approx(3.0, abs=1e-4)
        assert b.epsilon_remaining == pytest.approx(2.0, abs=1e-4)
    with db.session() as s, pytest.raises(ResourceExhausted) as exc:
        ledger.reserve(s, "d1", job_id="j2", epsilon=2.5, delta=1e-6, actor="t")
    assert exc.value.remaining == pytest.approx(2.0, abs=1e-4)
    with db.session() as s:
        ledger.commit(
            s,
            "d1",
            job_id="j1",
            epsilon_spent=2.9,
            delta=1e-6,
            reserved_epsilon=3.0,
            reserved_delta=1e-6,
            note="done",
        )
    with db.session() as s:
        row = s.get(DatasetRow, "d1")
        assert row is not None
        b = ledger.get_budget(s, row)
        assert b.epsilon_spent == pytest.approx(2.9, abs=1e-4)
        assert b.epsilon_reserved == 0
        assert b.epsilon_remaining == pytest.approx(2.1, abs=1e-4)


def test_artifacts_are_content_addressed_and_verified(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    rel, digest = store.put("shards", b"hello", suffix=".jsonl")
    assert rel == f"shards/{digest}.jsonl"
    assert store.get(rel, sha256=digest) == b"hello"
    assert not list((tmp_path / "shards").glob(".tmp-*"))
    (tmp_path / rel).write_bytes(b"tampered")
    with pytest.raises(ValueError, match="corrupt"):
        store.get(rel, sha256=digest)


def test_a_staged_artifact_is_stored_on_commit_and_dropped_otherwise(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    with store.stage("shards", suffix=".jsonl") as staged:
        staged.write(b"line 1\n")
        staged.write(b"line 2\n")
        assert staged.size == 14
        rel, digest = staged.commit()
    assert digest == hashlib.sha256(b"line 1\nline 2\n").hexdigest()
    assert rel == f"shards/{digest}.jsonl"  # the name put() gives the same bytes
    assert store.get(rel, sha256=digest) == b"line 1\nline 2\n"
    with store.stage("shards", suffix=".jsonl") as again:  # the same content: one artifact
        again.write(b"line 1\nline 2\n")
        assert again.commit() == (rel, digest)

    def cancelled_upload() -> None:
        with store.stage("shards", suffix=".jsonl") as failed:
            failed.write(b"half an upload")
            raise RuntimeError("upload cancelled")

    with pytest.raises(RuntimeError):
        cancelled_upload()
    assert sorted(p.name for p in (tmp_path / "shards").iterdir()) == [rel.split("/")[1]]


def test_staged_files_a_killed_process_left_are_removed_when_old(tmp_path: Path) -> None:
    import os
    import time

    from privsynth.server.storage import STALE_STAGING_S

    shards = tmp_path / "shards"
    shards.mkdir()
    old, fresh = shards / ".tmp-old", shards / ".tmp-fresh"
    old.write_bytes(b"half of an upload from a process that was killed")
    fresh.write_bytes(b"another replica's upload, still being staged")
    long_ago = time.time() - STALE_STAGING_S - 60
    os.utime(old, (long_ago, long_ago))
    ArtifactStore(tmp_path)
    assert not old.exists() and fresh.exists()
