"""The data directory is 0700 and what the server writes there 0600 (issue 12)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from privsynth.server.config import Settings
from privsynth.server.runtime import Runtime


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    old = os.umask(0o022)  # the usual default, under which files come out 0644
    try:
        yield
    finally:
        os.umask(old)


def test_data_dir_database_and_artifacts_are_private(tmp_path: Path, loose_umask: None) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)  # an existing, world-readable directory is tightened too
    rt = Runtime.create(Settings(data_dir=data, scrub_workers=0))
    try:
        rel, _ = rt.store.put("shards", b"scrubbed text\n", suffix=".jsonl")
        with rt.db.session() as s:  # a write, so SQLite has its -wal and -shm files
            from sqlalchemy import text

            s.execute(text("CREATE TABLE IF NOT EXISTS t (x INTEGER)"))
            s.execute(text("INSERT INTO t VALUES (1)"))
        assert _mode(data) == 0o700
        assert _mode(data / "artifacts") == 0o700
        assert _mode(data / "artifacts" / "shards") == 0o700
        assert _mode(data / "artifacts" / rel) == 0o600
        assert _mode(data / "secrets") == 0o700
        db = data / "privsynth.db"
        assert _mode(db) == 0o600
        for extra in ("privsynth.db-wal", "privsynth.db-shm"):  # WAL mode: both exist now
            assert _mode(data / extra) == 0o600, extra
    finally:
        rt.close()
