"""The privacy-budget ledger of a dataset: reserve before training, commit what was spent.

Entries are append-only. A job *reserves* its target ε before it reads data, together with the
DP-SGD event it will run (noise multiplier σ, sample rate q, planned steps); when it ends it
*commits* the ε the accountant reports and the steps it actually took (for a failed or cancelled
job, those up to the step it stopped at) and *releases* the reservation. The budget check and the
reservation run in one transaction with the dataset row locked (``SELECT … FOR UPDATE`` on
PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), so concurrent requests, from any number of server
processes, cannot overspend.

The cap is enforced on the *composed* spend (:mod:`privsynth.server.privacy.accounting`): PLD
composition of every job's event — finished jobs with the steps they took, reserved ones with their
planned steps — at the dataset's fixed accounting δ (its δ cap), never above the plain sum; the
jobs' own δ_j add up to at most the δ cap. Reserved jobs count from the moment they reserve: a
budget's ``epsilon_reserved`` is what they add to the composed spend, and ``epsilon_remaining`` is
the cap less both. Because the accounting δ does not move with the jobs, the composed spend never
decreases after a charge (only a δ-cap change restates it). The plain sum is reported beside it,
the method is named in every budget, and the composed totals the ledger computed go into the audit
entry of every reservation, commit and cap change, so a report can replay them exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from privsynth.server.db import DatasetRow, LedgerRow, utcnow
from privsynth.server.errors import ResourceExhausted
from privsynth.server.privacy import audit
from privsynth.server.privacy.accounting import (
    COMPOSITION,
    DpSgdPlan,
    JobCharge,
    accounting_delta,
    compose_epsilon,
)
from privsynth.server.privacy.caps import check_delta_cap, check_epsilon_cap
from sqlalchemy import select
from sqlalchemy.orm import Session

__all__ = [
    "COMPOSITION",
    "BudgetView",
    "change_cap",
    "charges",
    "commit",
    "get_budget",
    "lock_dataset",
    "reserve",
]

_EPS_SLACK = 1e-9


@dataclass(frozen=True)
class BudgetView:
    """A dataset's budget at one moment.

    Attributes:
        dataset_id: The dataset.
        epsilon_cap: ε the composed spend may reach.
        delta_cap: δ the jobs' δ may add up to.
        epsilon_spent: Composed ε of finished jobs, at ``accounting_delta``.
        epsilon_reserved: What reserved (queued or running) jobs add to the composed ε, at
            ``accounting_delta``: positive while any job holds a reservation.
        epsilon_spent_sum: Plain sum of finished jobs' ε (basic composition), for comparison.
        epsilon_reserved_sum: Plain sum of reserved jobs' target ε.
        delta_used: Σ δ_j of finished (and charged) and reserved jobs.
        accounting_delta: δ at which the composed figures hold: the δ cap (Σ δ_j if the cap
            was lowered below it).
        composition: How spends are combined.
    """

    dataset_id: str
    epsilon_cap: float
    delta_cap: float
    epsilon_spent: float
    epsilon_reserved: float
    epsilon_spent_sum: float
    epsilon_reserved_sum: float
    delta_used: float
    accounting_delta: float
    composition: str = COMPOSITION

    @property
    def epsilon_total(self) -> float:
        """Composed ε of finished and reserved jobs together."""
        return self.epsilon_spent + self.epsilon_reserved

    @property
    def epsilon_remaining(self) -> float:
        """Cap minus the composed total, floored at zero.

        Composition is sub-additive, so a job asking for more than this may still fit; the
        reservation check composes it with the others and decides.
        """
        return max(0.0, self.epsilon_cap - self.epsilon_total)


def _charge(row: LedgerRow) -> JobCharge:
    return JobCharge(
        epsilon=row.epsilon,
        delta=row.delta,
        noise_multiplier=row.noise_multiplier,
        sample_rate=row.sample_rate,
        steps=row.steps,
        label_noise_multiplier=row.label_noise_multiplier,
        stats_noise_multiplier=row.stats_noise_multiplier,
    )


def charges(session: Session, dataset_id: str) -> tuple[list[JobCharge], list[JobCharge]]:
    """Each job's charge from the ledger: ``(finished, reserved)``.

    A job with a commit entry is charged what it committed (actual steps); a job with only a
    reservation is charged its reservation (planned steps).
    """
    rows = (
        session.execute(
            select(LedgerRow)
            .where(LedgerRow.dataset_id == dataset_id, LedgerRow.kind.in_(("reserve", "commit")))
            .order_by(LedgerRow.id)
        )
        .scalars()
        .all()
    )
    reserved: dict[str, LedgerRow] = {}
    committed: dict[str, LedgerRow] = {}
    for row in rows:
        (committed if row.kind == "commit" else reserved)[row.job_id] = row
    finished = [_charge(r) for r in committed.values()]
    pending = [_charge(r) for job, r in reserved.items() if job not in committed]
    return finished, pending


def _view(
    dataset: DatasetRow, finished: Sequence[JobCharge], pending: Sequence[JobCharge]
) -> BudgetView:
    """The budget of ``dataset`` with these jobs.

    Spent and spent-plus-reserved are composed at one accounting δ, computed from all the jobs:
    adding the reserved jobs' events to the finished ones at a fixed δ can only raise the
    composed ε, so ``epsilon_reserved`` is what the reservations really take from the cap (at
    Σ δ_j the added δ could hide it entirely).
    """
    everything = [*finished, *pending]
    delta = accounting_delta(delta_cap=dataset.delta, charges=everything)
    spent, spent_sum, _ = compose_epsilon(finished, delta=delta)
    total, _, delta_used = compose_epsilon(everything, delta=delta)
    return BudgetView(
        dataset_id=dataset.id,
        epsilon_cap=dataset.epsilon_cap,
        delta_cap=dataset.delta,
        epsilon_spent=spent,
        epsilon_reserved=max(0.0, total - spent),
        epsilon_spent_sum=spent_sum,
        epsilon_reserved_sum=math.fsum(c.epsilon for c in pending),
        delta_used=delta_used,
        accounting_delta=delta,
    )


def _composed_details(view: BudgetView) -> dict[str, float]:
    """The composed totals as the ledger computed them, for the audit entry of a change.

    Recorded at every reservation, commit and cap change, so that a report plots what the
    ledger saw at that instant instead of recomputing it (a client has no accountant, and plain
    sums are not what the cap is enforced on).
    """
    return {
        "epsilon_cap": view.epsilon_cap,
        "epsilon_spent_after": view.epsilon_spent,
        "epsilon_composed_after": view.epsilon_total,
        "epsilon_sum_after": view.epsilon_spent_sum + view.epsilon_reserved_sum,
        "delta_used_after": view.delta_used,
        "accounting_delta": view.accounting_delta,
    }


def _stats_detail(stats_noise_multiplier: float | None) -> dict[str, float]:
    """The token-statistics release in an audit entry, for jobs that made one only."""
    if stats_noise_multiplier is None:
        return {}
    return {"stats_noise_multiplier": stats_noise_multiplier}


def get_budget(session: Session, dataset: DatasetRow) -> BudgetView:
    """Compute the budget of ``dataset`` from its ledger."""
    finished, pending = charges(session, dataset.id)
    return _view(dataset, finished, pending)


def lock_dataset(session: Session, dataset_id: str) -> DatasetRow:
    """Load the dataset row locked for update: budget decisions on it are serialised.

    On SQLite the lock is the ``BEGIN IMMEDIATE`` write lock every transaction takes.
    """
    return session.execute(
        select(DatasetRow).where(DatasetRow.id == dataset_id).with_for_update()
    ).scalar_one()


def reserve(
    session: Session,
    dataset_id: str,
    *,
    job_id: str,
    epsilon: float,
    delta: float,
    actor: str,
    plan: DpSgdPlan | None = None,
) -> BudgetView:
    """Reserve ``(epsilon, delta)`` and the job's DP-SGD event, or refuse at no cost.

    Args:
        session: The transaction the reservation belongs to (the job row goes in it too).
        dataset_id: The dataset whose budget pays.
        job_id: The job reserving.
        epsilon: The job's target ε (its own guarantee).
        delta: The job's δ.
        actor: Who asked.
        plan: σ, q and planned steps; without it the job composes as a generic (ε, δ) mechanism.

    Returns:
        The budget after the reservation.

    Raises:
        ResourceExhausted: The composed spend would exceed the ε cap, or the jobs' δ the δ cap;
            carries the ε that remains before this request.
    """
    dataset = lock_dataset(session, dataset_id)
    finished, pending = charges(session, dataset_id)
    before = _view(dataset, finished, pending)
    new = JobCharge(
        epsilon=epsilon,
        delta=delta,
        noise_multiplier=plan.noise_multiplier if plan else None,
        sample_rate=plan.sample_rate if plan else None,
        steps=plan.steps if plan else None,
        label_noise_multiplier=plan.label_noise_multiplier if plan else None,
        stats_noise_multiplier=plan.stats_noise_multiplier if plan else None,
    )
    after = _view(dataset, finished, [*pending, new])
    # δ first: over the δ cap the composed figures are stated at Σ δ_j, not at the cap.
    if after.delta_used > dataset.delta * (1 + 1e-9):
        raise ResourceExhausted(
            f"privacy budget exhausted: requested delta {delta:g}, remaining "
            f"{max(0.0, dataset.delta - before.delta_used):g} of cap {dataset.delta:g}",
            remaining=before.epsilon_remaining,
        )
    if after.epsilon_total > dataset.epsilon_cap + _EPS_SLACK:
        raise ResourceExhausted(
            f"privacy budget exhausted: requested epsilon {epsilon:g} would bring the composed "
            f"spend to {after.epsilon_total:.4g}, over the cap {dataset.epsilon_cap:g} "
            f"(remaining {before.epsilon_remaining:.4g})",
            remaining=before.epsilon_remaining,
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
            noise_multiplier=new.noise_multiplier,
            sample_rate=new.sample_rate,
            steps=new.steps,
            label_noise_multiplier=new.label_noise_multiplier,
            stats_noise_multiplier=new.stats_noise_multiplier,
        )
    )
    audit.append(
        session,
        action="budget.reserved",
        actor=actor,
        dataset_id=dataset_id,
        job_id=job_id,
        details={
            "epsilon": epsilon,
            "delta": delta,
            "noise_multiplier": new.noise_multiplier,
            "sample_rate": new.sample_rate,
            "planned_steps": new.steps,
            "label_noise_multiplier": new.label_noise_multiplier,
            **_stats_detail(new.stats_noise_multiplier),
            **_composed_details(after),
        },
    )
    return after


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
    steps: int | None = None,
    noise_multiplier: float | None = None,
    sample_rate: float | None = None,
    actor: str = "system",
    outcome: str = "",
    label_noise_multiplier: float | None = None,
    stats_noise_multiplier: float | None = None,
) -> None:
    """Charge what a job spent (with the steps it took) and release its reservation.

    A job that took no noisy step is charged nothing, δ included. ``outcome`` (the job's final
    state) goes to the audit log with the charge, together with the composed totals after it:
    the charge and the release are one instant, in one transaction and one audit entry.
    ``label_noise_multiplier`` is set when the job released its label distribution with DP
    (composed as one more Gaussian event); ``stats_noise_multiplier`` when it released
    per-label token statistics (another).
    """
    dataset = lock_dataset(session, dataset_id)
    now = utcnow()
    took_steps = (
        epsilon_spent > 0
        or (steps or 0) > 0
        or label_noise_multiplier is not None
        or stats_noise_multiplier is not None
    )
    session.add_all(
        [
            LedgerRow(
                dataset_id=dataset_id,
                job_id=job_id,
                kind="commit",
                epsilon=epsilon_spent,
                delta=delta if took_steps else 0.0,
                created_at=now,
                actor=actor,
                note=note,
                noise_multiplier=noise_multiplier,
                sample_rate=sample_rate,
                steps=steps,
                label_noise_multiplier=label_noise_multiplier,
                stats_noise_multiplier=stats_noise_multiplier,
            ),
            LedgerRow(
                dataset_id=dataset_id,
                job_id=job_id,
                kind="release",
                epsilon=reserved_epsilon,
                delta=reserved_delta,
                created_at=now,
                actor=actor,
                note="reservation released",
            ),
        ]
    )
    session.flush()
    after = get_budget(session, dataset)
    audit.append(
        session,
        action="budget.committed",
        actor=actor,
        dataset_id=dataset_id,
        job_id=job_id,
        details={
            "outcome": outcome,
            "epsilon": epsilon_spent,
            "delta": delta if took_steps else 0.0,
            "steps": steps,
            "noise_multiplier": noise_multiplier,
            "sample_rate": sample_rate,
            "label_noise_multiplier": label_noise_multiplier,
            **_stats_detail(stats_noise_multiplier),
            "released_epsilon": reserved_epsilon,
            "note": note,
            **_composed_details(after),
        },
    )


def change_cap(
    session: Session,
    dataset_id: str,
    *,
    epsilon_cap: float,
    delta_cap: float | None,
    actor: str,
) -> BudgetView:
    """Set a dataset's cap, with a ledger entry and an audit entry for the change.

    Lowering the cap below what is already spent or reserved is allowed: nothing is refunded or
    cancelled, further reservations are simply refused. The ``cap`` ledger entry holds the new
    (ε, δ) cap and is not a charge. A new δ cap is a new accounting δ, so the composed figures
    are restated at it: a lower δ cap (a stricter guarantee) raises them, a higher one lowers
    them. This is the only change that can lower the composed spend; the audit entry records
    the figures after it.

    Raises:
        InvalidArgument: A cap that is not positive, or a δ cap at or above 1/n.
    """
    dataset = lock_dataset(session, dataset_id)
    check_epsilon_cap(epsilon_cap)
    new_delta = dataset.delta if delta_cap is None else delta_cap
    check_delta_cap(new_delta, dataset.record_count)
    old_epsilon, old_delta = dataset.epsilon_cap, dataset.delta
    dataset.epsilon_cap, dataset.delta = epsilon_cap, new_delta
    after = get_budget(session, dataset)
    note = f"cap changed from epsilon {old_epsilon:g}, delta {old_delta:.3g}"
    session.add(
        LedgerRow(
            dataset_id=dataset_id,
            job_id="",
            kind="cap",
            epsilon=epsilon_cap,
            delta=new_delta,
            created_at=utcnow(),
            actor=actor,
            note=note,
        )
    )
    audit.append(
        session,
        action="budget.cap_changed",
        actor=actor,
        dataset_id=dataset_id,
        details={
            "old_epsilon_cap": old_epsilon,
            "new_epsilon_cap": epsilon_cap,
            "old_delta": old_delta,
            "new_delta": new_delta,
            **_composed_details(after),
        },
    )
    return after
