"""Migrations as their own step (the chart's hook Job): servers then only check the schema."""

from __future__ import annotations

from pathlib import Path

import pytest
from privsynth.server import migrate
from privsynth.server.config import Settings
from privsynth.server.db import Database, head_revision
from privsynth.server.runtime import Runtime


def test_the_migrate_step_brings_an_empty_database_to_head(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'step.db'}"
    monkeypatch.setenv("PRIVSYNTH_DATABASE_URL", url)
    db = Database(url)
    try:
        assert db.schema_revision() is None
        with pytest.raises(RuntimeError, match=r"privsynth\.server\.migrate"):
            db.require_current()
        assert migrate.main() == 0
        assert db.schema_revision() == head_revision()
        db.require_current()
        assert migrate.main() == 0  # a second run (the next upgrade) finds nothing to do
    finally:
        db.close()


def test_a_server_that_does_not_migrate_refuses_an_old_schema(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, scrub_workers=0, migrate_on_start=False)
    old = Database(settings.database_url)
    try:
        old.migrate("0001")
    finally:
        old.close()
    with pytest.raises(RuntimeError, match="revision 0001"):
        Runtime.create(settings)
    upgraded = Database(settings.database_url)
    try:
        upgraded.migrate()
    finally:
        upgraded.close()
    rt = Runtime.create(settings)
    try:
        assert rt.db.schema_revision() == head_revision()
    finally:
        rt.close()
