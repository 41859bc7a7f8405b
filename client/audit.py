"""The audit log's hash chain: how an entry is hashed, and how a chain is verified.

Each entry's hash covers its sequence number, time, actor, action, resources, details and the
previous entry's hash, so an edited entry no longer matches its hash, and a deleted or reordered
one breaks the links (sequence numbers must run 1, 2, 3, … and each ``prev_hash`` must be the
hash before it). Removing the *newest* entries leaves a shorter chain that is still consistent;
that is caught by comparing against a head hash recorded earlier (``expected_head``).

This module is shared: the server computes hashes with it when it appends, and the client
(``privsynth audit verify``) recomputes them with it, so the two cannot drift apart. It needs
only the standard library.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["GENESIS_HASH", "AuditEntry", "VerifyResult", "entry_hash", "verify_chain"]

GENESIS_HASH = "0" * 64
"""``prev_hash`` of the first entry."""


@dataclass(frozen=True)
class AuditEntry:
    """One audit entry as exported (JSON lines) and as hashed.

    Attributes:
        seq: Position in the chain, from 1 without gaps.
        time: UTC time as written, RFC 3339 with microseconds (hashed as this exact string).
        actor: Who caused it (``system`` for the server's own actions).
        action: What happened, e.g. ``budget.reserved``.
        dataset: Resource name of the dataset concerned, or empty.
        job: Resource name of the job concerned, or empty.
        details: Canonical JSON object with the facts (numbers and counts, never text).
        prev_hash: Hash of the previous entry.
        hash: SHA-256 over the previous hash and this entry's fields.
    """

    seq: int
    time: str
    actor: str
    action: str
    dataset: str
    job: str
    details: str
    prev_hash: str
    hash: str

    def to_json(self) -> dict[str, Any]:
        """The JSON-lines form (``details`` stays the exact hashed string)."""
        return {
            "seq": self.seq,
            "time": self.time,
            "actor": self.actor,
            "action": self.action,
            "dataset": self.dataset,
            "job": self.job,
            "details": self.details,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> AuditEntry:
        """Parse the JSON-lines form.

        Raises:
            ValueError: A field is missing or of the wrong type.
        """
        try:
            return cls(
                seq=int(obj["seq"]),
                time=str(obj["time"]),
                actor=str(obj["actor"]),
                action=str(obj["action"]),
                dataset=str(obj["dataset"]),
                job=str(obj["job"]),
                details=str(obj["details"]),
                prev_hash=str(obj["prev_hash"]),
                hash=str(obj["hash"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not an audit entry: {type(exc).__name__}") from None


def canonical_details(details: Mapping[str, Any]) -> str:
    """The canonical JSON text of an entry's details (sorted keys, no spaces, ASCII)."""
    return json.dumps(details, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def entry_hash(
    prev_hash: str,
    *,
    seq: int,
    time: str,
    actor: str,
    action: str,
    dataset: str,
    job: str,
    details: str,
) -> str:
    """SHA-256 (hex) of the previous hash and an entry's fields, encoded unambiguously."""
    body = json.dumps(
        [prev_hash, seq, time, actor, action, dataset, job, details],
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return hashlib.sha256(body.encode("ascii")).hexdigest()


@dataclass
class VerifyResult:
    """Outcome of :func:`verify_chain`.

    Attributes:
        entries: Entries checked.
        head: Hash of the last entry (record it to detect later truncation).
        problems: One line per defect, naming the sequence number; empty when intact.
    """

    entries: int = 0
    head: str = GENESIS_HASH
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no defect was found."""
        return not self.problems


def verify_chain(
    entries: Iterable[AuditEntry], *, expected_head: str | None = None, start_seq: int = 1
) -> VerifyResult:
    """Check that ``entries`` form an unbroken, unedited chain.

    Args:
        entries: Entries in the order they were exported.
        expected_head: A head hash recorded earlier; the chain must contain it (so entries up
            to it were not removed). None skips the check.
        start_seq: Sequence number of the first entry (1 for a full export).

    Returns:
        The count, the head hash and every defect found (edits, gaps, reordering, bad links).
    """
    result = VerifyResult()
    prev = GENESIS_HASH if start_seq == 1 else None
    expected_seq = start_seq
    seen_head = expected_head is None
    for e in entries:
        result.entries += 1
        if e.seq != expected_seq:
            result.problems.append(
                f"entry {e.seq}: expected sequence number {expected_seq} "
                "(an entry was deleted, inserted or reordered)"
            )
        if prev is not None and e.prev_hash != prev:
            result.problems.append(f"entry {e.seq}: does not link to the entry before it")
        recomputed = entry_hash(
            e.prev_hash,
            seq=e.seq,
            time=e.time,
            actor=e.actor,
            action=e.action,
            dataset=e.dataset,
            job=e.job,
            details=e.details,
        )
        if recomputed != e.hash:
            result.problems.append(f"entry {e.seq}: content does not match its hash (edited)")
        if e.hash == expected_head:
            seen_head = True
        prev = e.hash
        expected_seq = e.seq + 1
        result.head = e.hash
    if not seen_head:
        result.problems.append(
            "the recorded head hash is not in the chain (entries were removed or rewritten)"
        )
    return result
