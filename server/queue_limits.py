"""One tenant's share of a work queue, and how often it may create what the server keeps.

Training jobs and evaluations each run on a few workers shared by every tenant; a tenant
that queues without bound puts its work ahead of everyone else's for hours. Both queues
refuse a tenant's next item the same way, here.

Datasets, training jobs and evaluations also leave rows behind (with their ledger and audit
entries) when they are deleted or cancelled: a member uploading and deleting one-record
datasets in a loop added 54 datasets and 160 audit entries a second, without bound, though
it never held more than one. :func:`refuse_when_created_too_often` bounds how many of each
kind one tenant creates per hour.
"""

from __future__ import annotations

from datetime import timedelta

from privsynth.server.db import DatasetRow, EvaluationRow, JobRow, as_utc, utcnow
from privsynth.server.errors import Overloaded, Reason
from sqlalchemy import func, select
from sqlalchemy.orm import Session

__all__ = [
    "CREATION_WINDOW_S",
    "refuse_new_work",
    "refuse_when_created_too_often",
    "refuse_when_queue_full",
]

CREATION_WINDOW_S = 3600.0
"""The window :func:`refuse_when_created_too_often` counts in: an hour."""


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


def refuse_when_created_too_often(
    session: Session,
    table: type[DatasetRow] | type[JobRow] | type[EvaluationRow],
    *,
    tenant: str,
    limit: int,
    what: str,
    subject: str,
) -> None:
    """Refuse a new row while ``tenant`` created ``limit`` rows of ``table`` in the last hour.

    Deleted and cancelled rows count: they stay in the database (and the audit log) for good.

    Args:
        session: The transaction that will add the row (hold the tenant's lock in it, as for
            :func:`refuse_when_queue_full`).
        table: The kind of row.
        tenant: Whose rate.
        limit: Rows the tenant may create per hour; 0 or less means no limit.
        what: The rows, plural, for the message ("datasets").
        subject: The ``QuotaFailure`` subject.

    Raises:
        Overloaded: Reason ``CREATION_RATE_EXCEEDED``; its ``RetryInfo`` is the time until the
            oldest row of the hour leaves the window.
    """
    if limit <= 0:
        return
    now = utcnow()
    window = timedelta(seconds=CREATION_WINDOW_S)
    created, oldest = session.execute(
        select(func.count(), func.min(table.created_at)).where(
            table.tenant == tenant, table.created_at > now - window
        )
    ).one()
    if created < limit:
        return
    wait = max(1.0, (as_utc(oldest) + window - now).total_seconds())
    raise Overloaded(
        f"this tenant created {created} {what} in the last hour, the most the server allows "
        f"(PRIVSYNTH_MAX_CREATIONS_PER_TENANT_PER_HOUR, {limit}); retry in {wait:.0f} s",
        subject=subject,
        reason=Reason.CREATION_RATE_EXCEEDED,
        retry_after_s=wait,
    )


def refuse_new_work(
    session: Session,
    table: type[JobRow] | type[EvaluationRow],
    *,
    tenant: str,
    queued_limit: int,
    hourly_limit: int,
    what: str,
    kind: str,
    reason: Reason,
    retry_after_s: float,
) -> None:
    """Refuse a tenant's next queued item over either of its limits (jobs and evaluations).

    Args:
        session: As for :func:`refuse_when_queue_full`.
        table: The queue's rows.
        tenant: Whose limits.
        queued_limit: Items the tenant may have waiting (:func:`refuse_when_queue_full`).
        hourly_limit: Items it may create per hour (:func:`refuse_when_created_too_often`).
        what: The items, plural, for the messages ("training jobs").
        kind: The subjects' prefix: ``<kind>/queued_per_tenant``, ``<kind>/created_per_hour``.
        reason: The queue limit's ``ErrorInfo`` reason.
        retry_after_s: The queue limit's ``RetryInfo`` delay.

    Raises:
        Overloaded: One of the limits is reached.
    """
    refuse_when_queue_full(
        session,
        table,
        tenant=tenant,
        limit=queued_limit,
        what=what,
        subject=f"{kind}/queued_per_tenant",
        reason=reason,
        retry_after_s=retry_after_s,
    )
    refuse_when_created_too_often(
        session,
        table,
        tenant=tenant,
        limit=hourly_limit,
        what=what,
        subject=f"{kind}/created_per_hour",
    )
