"""The privacy-budget ledger of a dataset: reserve before training, commit what was spent.

Entries are append-only. A job *reserves* its target ε before it reads data; when it ends it
*commits* the ε the accountant actually reports (for a failed or cancelled job, the ε consumed up
to the step it stopped at) and *releases* the reservation. The budget check and the reservation
run in one transaction with the dataset row locked (``FOR UPDATE`` on PostgreSQL,
``BEGIN IMMEDIATE`` on SQLite), so concurrent requests cannot overspend.

Composition here is basic (ε and δ add up), an upper bound on the true composed loss; the
method is named in every budget so readers know which bound they see.
"""

from __future__ import annotations

from dataclasses import dataclass

from privsynth.server.db import DatasetRow, LedgerRow, utcnow
from privsynth.server.errors import ResourceExhausted
from sqlalchemy import func, select
from sqlalchemy.orm import Session

__all__ = ["COMPOSITION", "BudgetView", "commit", "get_budget", "reserve"]

COMPOSITION = "basic composition (sum of epsilon and delta)"
_EPS_SLACK = 1e-9


@dataclass(frozen=True)
class BudgetView:
    """A dataset's budget at one moment."""

    dataset_id: str
    epsilon_cap: float
    delta_cap: float
    epsilon_spent: float
    epsilon_reserved: float
    delta_used: float

    @property
    def epsilon_remaining(self) -> float:
        """Cap minus spent minus reserved, floored at zero."""
        return max(0.0, self.epsilon_cap - self.epsilon_spent - self.epsilon_reserved)


def _sums(session: Session, dataset_id: str) -> dict[str, tuple[float, float]]:
    rows = session.execute(
        select(LedgerRow.kind, func.sum(LedgerRow.epsilon), func.sum(LedgerRow.delta))
        .where(LedgerRow.dataset_id == dataset_id)
        .group_by(LedgerRow.kind)
    ).all()
    return {kind: (float(e or 0.0), float(d or 0.0)) for kind, e, d in rows}


def get_budget(session: Session, dataset: DatasetRow) -> BudgetView:
    """Compute the budget of ``dataset`` from its ledger."""
    sums = _sums(session, dataset.id)
    reserved_e, reserved_d = sums.get("reserve", (0.0, 0.0))
    released_e, released_d = sums.get("release", (0.0, 0.0))
    spent_e, spent_d = sums.get("commit", (0.0, 0.0))
    return BudgetView(
        dataset_id=dataset.id,
        epsilon_cap=dataset.epsilon_cap,
        delta_cap=dataset.delta,
        epsilon_spent=spent_e,
        epsilon_reserved=max(0.0, reserved_e - released_e),
        delta_used=spent_d + max(0.0, reserved_d - released_d),
    )


def reserve(
    session: Session, dataset_id: str, *, job_id: str, epsilon: float, delta: float, actor: str
) -> BudgetView:
    """Reserve ``(epsilon, delta)`` for a job, or refuse at no cost.

    Raises:
        ResourceExhausted: The reservation would exceed the cap; carries what remains.
    """
    dataset = session.execute(
        select(DatasetRow).where(DatasetRow.id == dataset_id).with_for_update()
    ).scalar_one()
    budget = get_budget(session, dataset)
    if budget.epsilon_spent + budget.epsilon_reserved + epsilon > dataset.epsilon_cap + _EPS_SLACK:
        raise ResourceExhausted(
            f"privacy budget exhausted: requested epsilon {epsilon:g}, remaining "
            f"{budget.epsilon_remaining:g} of cap {dataset.epsilon_cap:g}",
            remaining=budget.epsilon_remaining,
        )
    if budget.delta_used + delta > dataset.delta * (1 + 1e-9):
        raise ResourceExhausted(
            f"privacy budget exhausted: requested delta {delta:g}, remaining "
            f"{max(0.0, dataset.delta - budget.delta_used):g} of cap {dataset.delta:g}",
            remaining=budget.epsilon_remaining,
        )
    session.add(
        LedgerRow(
            dataset_id=dataset_id,
            job_id=job_id,
            kind="reserve",
            epsilon=epsilon,
            delta=delta,
            created_at=utcnow(),
            actor=actor,
            note="reserved before training",
        )
    )
    return budget


def commit(
    session: Session,
    dataset_id: str,
    *,
    job_id: str,
    epsilon_spent: float,
    delta: float,
    reserved_epsilon: float,
    reserved_delta: float,
    note: str,
) -> None:
    """Charge what a job spent and release its reservation, in one transaction."""
    now = utcnow()
    session.add_all(
        [
            LedgerRow(
                dataset_id=dataset_id,
                job_id=job_id,
                kind="commit",
                epsilon=epsilon_spent,
                delta=delta if epsilon_spent > 0 else 0.0,
                created_at=now,
                actor="system",
                note=note,
            ),
            LedgerRow(
                dataset_id=dataset_id,
                job_id=job_id,
                kind="release",
                epsilon=reserved_epsilon,
                delta=reserved_delta,
                created_at=now,
                actor="system",
                note="reservation released",
            ),
        ]
    )
