"""Upgrading a database written at revision 0001 keeps its ledger intact and its budget right."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from privsynth.server.db import AuditRow, Base, Database, DatasetRow, JobRow
from privsynth.server.privacy import ledger
from sqlalchemy import func, select

LEDGER_0001 = [
    # (id, job, kind, epsilon, delta, time, actor, note)
    (1, "job1", "reserve", 3.0, 1e-6, "2026-11-01 10:00:00", "alice", "reserved before training"),
    (2, "job1", "commit", 2.5, 1e-6, "2026-11-01 11:00:00", "system", "trained 40 steps"),
    (3, "job1", "release", 3.0, 1e-6, "2026-11-01 11:00:00", "system", "reservation released"),
    (4, "job2", "reserve", 2.0, 1e-6, "2026-11-02 09:00:00", "bob", "reserved before training"),
]
COLUMNS = "id, dataset_id, job_id, kind, epsilon, delta, created_at, actor, note"


def _old_database(path: Path) -> Database:
    """A database as the walking skeleton (revision 0001) left it, written with raw SQL."""
    db = Database(f"sqlite:///{path}")
    db.migrate("0001")
    with db.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO datasets VALUES ('d1', 'old', '2026-11-01 09:00:00', 100, 0, 0, "
            "'record', 8.0, 1e-5, 'shards/x.jsonl', ?, '{}', NULL)",
            ("0" * 64,),
        )
        for job, state in (("job1", "SUCCEEDED"), ("job2", "QUEUED")):
            conn.exec_driver_sql(
                "INSERT INTO jobs VALUES (?, 'd1', ?, ?, 3.0, 1e-6, 3, 'tiny', "
                "'2026-11-01 10:00:00', NULL, NULL, 0, 0, 0.0, 0.0, 0.0, 0, '')",
                (job, f"m-{job}", state),
            )
        for entry in LEDGER_0001:
            conn.exec_driver_sql(
                f"INSERT INTO ledger_entries ({COLUMNS}) VALUES (?, 'd1', ?, ?, ?, ?, ?, ?, ?)",
                entry,
            )
    return db


def _ledger_rows(db: Database) -> list[tuple[object, ...]]:
    with db.engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.exec_driver_sql(f"SELECT {COLUMNS} FROM ledger_entries ORDER BY id")
        ]


def test_upgrade_from_0001_keeps_the_ledger_and_its_budget(tmp_path: Path) -> None:
    db = _old_database(tmp_path / "old.db")
    before = _ledger_rows(db)
    assert len(before) == len(LEDGER_0001)

    db.migrate()  # to head: DP events, audit log, tenants
    assert _ledger_rows(db) == before
    with db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    with db.session() as s:
        dataset = s.get(DatasetRow, "d1")
        assert dataset is not None
        budget = ledger.get_budget(s, dataset)
        job = s.get(JobRow, "job2")
        assert job is not None and job.noise_multiplier is None and job.planned_steps is None
        assert dataset.tenant == job.tenant == "default"  # rows from before tenants (0004)
        assert s.execute(select(func.count()).select_from(AuditRow)).scalar_one() == 0
    # Old entries carry no DP-SGD event: they compose as generic (ε, δ) mechanisms.
    assert budget.epsilon_spent_sum == pytest.approx(2.5)
    assert budget.epsilon_reserved_sum == pytest.approx(2.0)
    assert budget.delta_used == pytest.approx(2e-6)
    assert 0 < budget.epsilon_spent <= 2.5
    assert budget.epsilon_total <= 4.5
    assert budget.epsilon_remaining == pytest.approx(8.0 - budget.epsilon_total)

    db.migrate()  # idempotent
    assert _ledger_rows(db) == before
