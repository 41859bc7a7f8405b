"""The audit chain detects edited, deleted and reordered entries; the table refuses rewrites."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from privsynth.client.audit import GENESIS_HASH, AuditEntry, verify_chain
from privsynth.server.db import Database
from privsynth.server.privacy import audit
from sqlalchemy import exc, text


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'audit.db'}")
    database.migrate()
    with database.session() as s:
        for i in range(1, 6):
            audit.append(
                s,
                action="budget.reserved",
                actor="tester",
                dataset_id="d1",
                job_id=f"j{i}",
                details={"epsilon": float(i), "steps": 10 * i},
            )
    yield database
    database.close()


def _chain(db: Database) -> list[AuditEntry]:
    return list(audit.entries(db, batch=2))  # small batches exercise the paging


def _raw(db: Database, *statements: str) -> None:
    """What someone with direct database access could do (after dropping the triggers)."""
    with db.engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER audit_log_no_update")
        conn.exec_driver_sql("DROP TRIGGER audit_log_no_delete")
        for sql in statements:
            conn.exec_driver_sql(sql)


def test_intact_chain_verifies_and_links_from_genesis(db: Database) -> None:
    chain = _chain(db)
    assert [e.seq for e in chain] == [1, 2, 3, 4, 5]
    assert chain[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(chain))
    result = verify_chain(chain, expected_head=chain[2].hash)
    assert result.ok, result.problems
    assert (result.entries, result.head) == (5, chain[-1].hash)
    assert verify_chain(AuditEntry.from_json(e.to_json()) for e in chain).ok


def test_the_table_refuses_update_and_delete(db: Database) -> None:
    for sql in ("UPDATE audit_log SET actor = 'x' WHERE seq = 2", "DELETE FROM audit_log"):
        with pytest.raises(exc.DBAPIError, match="append-only"), db.engine.begin() as conn:
            conn.execute(text(sql))
    assert len(_chain(db)) == 5


def test_edited_entry_is_detected(db: Database) -> None:
    _raw(db, """UPDATE audit_log SET details = '{"epsilon":0.1,"steps":30}' WHERE seq = 3""")
    result = verify_chain(_chain(db))
    assert not result.ok
    assert result.problems == ["entry 3: content does not match its hash (edited)"]


def test_edit_with_recomputed_hash_breaks_the_next_link(db: Database) -> None:
    chain = _chain(db)
    forged = AuditEntry(**{**chain[2].to_json(), "actor": "someone else"})
    from privsynth.client.audit import entry_hash

    new_hash = entry_hash(
        forged.prev_hash,
        seq=forged.seq,
        time=forged.time,
        actor=forged.actor,
        action=forged.action,
        dataset=forged.dataset,
        job=forged.job,
        details=forged.details,
    )
    _raw(db, f"UPDATE audit_log SET actor = 'someone else', hash = '{new_hash}' WHERE seq = 3")
    result = verify_chain(_chain(db))
    assert result.problems == ["entry 4: does not link to the entry before it"]


def test_deleted_entry_is_detected(db: Database) -> None:
    _raw(db, "DELETE FROM audit_log WHERE seq = 2")
    problems = verify_chain(_chain(db)).problems
    assert any("entry 3: expected sequence number 2" in p for p in problems)
    assert "entry 3: does not link to the entry before it" in problems


def test_reordered_entries_are_detected(db: Database) -> None:
    _raw(
        db,
        "UPDATE audit_log SET seq = 100 WHERE seq = 2",
        "UPDATE audit_log SET seq = 2 WHERE seq = 4",
        "UPDATE audit_log SET seq = 4 WHERE seq = 100",
    )
    problems = verify_chain(_chain(db)).problems
    assert any(p.startswith("entry 2:") for p in problems)
    assert any(p.startswith("entry 4:") for p in problems)


def test_truncation_is_detected_against_a_recorded_head(db: Database) -> None:
    head = _chain(db)[-1].hash
    _raw(db, "DELETE FROM audit_log WHERE seq >= 4")
    assert verify_chain(_chain(db)).ok  # a shorter chain is consistent in itself
    result = verify_chain(_chain(db), expected_head=head)
    assert not result.ok and "head hash" in result.problems[0]


def test_unknown_action_is_a_programming_error(db: Database) -> None:
    with db.session() as s, pytest.raises(ValueError, match="unknown audit action"):
        audit.append(s, action="made.up", actor="t")
