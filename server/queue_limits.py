"""One tenant's share of a work queue: how many of its items may wait at once.

Training jobs and evaluations each run on a few workers shared by every tenant; a tenant
that queues without bound puts its work ahead of everyone else's for hours. Both queues
refuse a tenant's next item the same way, here.
"""

from __future__ import annotations

from privsynth.server.db import EvaluationRow, JobRow
from privsynth.server.errors import Overloaded, Reason
from sqlalchemy import func, select
from sqlalchemy.orm import Session

__all__ = ["refuse_when_queue_full"]


def refuse_when_queue_full(
    session: Session,
    table: type[JobRow] | type[EvaluationRow],
    *,
    tenant: str,
    limit: int,
    what: str,
    subject: str,
    reason: Reason,
    retry_after_s: float,
) -> None:
    """Refuse a new item while ``tenant`` has ``limit`` rows of ``table`` QUEUED.

    Args:
        session: The transaction that will add the item (hold the tenant's lock in it, see
            :func:`~privsynth.server.db.lock_until_commit`, so concurrent requests count each
            other).
        table: The queue's rows.
        tenant: Whose share.
        limit: Items the tenant may have waiting; 0 or less means no limit.
        what: The items, plural, for the message ("training jobs").
        subject: The ``QuotaFailure`` subject.
        reason: The ``ErrorInfo`` reason.
        retry_after_s: The ``RetryInfo`` delay.

    Raises:
        Overloaded: The tenant's share is full.
    """
    if limit <= 0:
        return
    queued = session.execute(
        select(func.count())
        .select_from(table)
        .where(table.tenant == tenant, table.state == "QUEUED")
    ).scalar_one()
    if queued >= limit:
        raise Overloaded(
            f"too many queued {what}: this tenant has {queued} waiting, the limit is "
            f"{limit}; retry when one has started, or cancel one",
            subject=subject,
            reason=reason,
            retry_after_s=retry_after_s,
        )
