"""The audit log: who did what to which dataset's privacy, append-only and hash-chained.

Entries are appended inside the transaction whose change they record (a reservation and its
audit entry commit or roll back together); a refusal, whose transaction rolls back, is recorded
in a transaction of its own. Appends are serialised so the chain never forks: on PostgreSQL by
a transaction-scoped advisory lock (several replicas share the table), on SQLite by the write
lock every transaction takes. Take it last in a transaction (after dataset and job row locks),
which keeps lock order the same everywhere and rules out deadlocks.

Details hold numbers, hashes and counts only, never corpus text or user-supplied strings.
Hashing and verification live in :mod:`privsynth.client.audit`, shared with the CLI.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from privsynth.client.audit import GENESIS_HASH, AuditEntry, canonical_details, entry_hash
from privsynth.server.db import AuditRow, Database, utcnow
from sqlalchemy import select
from sqlalchemy.orm import Session

__all__ = ["ACTIONS", "append", "entries", "to_entry"]

ACTIONS = frozenset(
    {
        "dataset.created",
        "dataset.scrubbed",
        "dataset.deleted",
        "budget.reserved",
        "budget.committed",
        "budget.refused",
        "job.cancelled",
        "budget.cap_changed",
        "model.deleted",
        # An evaluation (quality report) re-reads training records and the holdout: not
        # covered by the model's DP guarantee, so it is on the record (issue 15).
        "evaluation.read_private_data",
    }
)
"""Every action the server records."""

_AUDIT_LOCK_KEY = 0x61756474  # "audt"


def _lock(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.connection().exec_driver_sql(f"SELECT pg_advisory_xact_lock({_AUDIT_LOCK_KEY})")


def append(
    session: Session,
    *,
    action: str,
    actor: str,
    dataset_id: str = "",
    job_id: str = "",
    details: Mapping[str, Any] | None = None,
) -> AuditRow:
    """Append one entry to the chain, in ``session``'s transaction.

    Args:
        session: The transaction recording the change.
        action: One of :data:`ACTIONS`.
        actor: Who caused it; ``system`` for the server's own actions.
        dataset_id: The dataset concerned, if any.
        job_id: The job concerned, if any.
        details: Numbers and counts describing the change (no text).

    Returns:
        The new row.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    _lock(session)
    last = session.execute(
        select(AuditRow.seq, AuditRow.hash).order_by(AuditRow.seq.desc()).limit(1)
    ).first()
    seq, prev = (last[0] + 1, last[1]) if last is not None else (1, GENESIS_HASH)
    time = utcnow().strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    dataset = f"datasets/{dataset_id}" if dataset_id else ""
    job = f"jobs/{job_id}" if job_id else ""
    text = canonical_details(details or {})
    digest = entry_hash(
        prev,
        seq=seq,
        time=time,
        actor=actor,
        action=action,
        dataset=dataset,
        job=job,
        details=text,
    )
    row = AuditRow(
        seq=seq,
        time=time,
        actor=actor,
        action=action,
        dataset=dataset,
        job=job,
        details=text,
        prev_hash=prev,
        hash=digest,
    )
    session.add(row)
    session.flush()
    return row


def to_entry(row: AuditRow) -> AuditEntry:
    """The exported form of a row."""
    return AuditEntry(
        seq=row.seq,
        time=row.time,
        actor=row.actor,
        action=row.action,
        dataset=row.dataset,
        job=row.job,
        details=row.details,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


def entries(db: Database, *, start_seq: int = 1, batch: int = 500) -> Iterator[AuditEntry]:
    """The chain from ``start_seq`` on, in order.

    Each batch is read in a short transaction of its own, so a slow reader never holds a lock
    (on SQLite every transaction takes the write lock) while the caller consumes entries.
    """
    after = start_seq - 1
    while True:
        with db.session() as s:
            rows = [
                to_entry(r)
                for r in s.execute(
                    select(AuditRow).where(AuditRow.seq > after).order_by(AuditRow.seq).limit(batch)
                ).scalars()
            ]
        if not rows:
            return
        yield from rows
        after = rows[-1].seq
