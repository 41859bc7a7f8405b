"""Training admission (issue 12): cheap checks first, per-tenant limits, fairness, duration.

A :class:`JobRunner` over a real SQLite database and artifact store, as in test_job_resume:
preset "tiny", 40 unlabelled records, jobs of seconds.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from job_runtime import add_dataset, job_runtime
from privsynth.server.db import AuditRow, JobRow, LedgerRow
from privsynth.server.errors import InvalidArgument, Overloaded, ResourceExhausted
from privsynth.server.jobs.runner import TERMINAL_STATES, JobRunner, JobSpec
from privsynth.server.privacy.caps import MAX_TARGET_EPSILON
from privsynth.server.runtime import Runtime
from sqlalchemy import select

N_RECORDS = 40


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    with job_runtime(tmp_path, training_workers=1, torch_threads=1, checkpoint_every_s=0) as rt:
        yield rt


def _with(rt: Runtime, **settings: Any) -> Runtime:
    return dataclasses.replace(rt, settings=rt.settings.model_copy(update=settings))


def _spec(dataset_id: str, epsilon: float = 2.0, epochs: int = 1) -> JobSpec:
    return JobSpec(dataset_id=dataset_id, target_epsilon=epsilon, epochs=epochs, preset="tiny")


def _reservations(rt: Runtime) -> int:
    with rt.db.session() as s:
        return len(s.execute(select(LedgerRow).where(LedgerRow.kind == "reserve")).all())


def _within(seconds: float, call: Callable[[], object]) -> BaseException | None:
    """Run ``call`` on a daemon thread; fail unless it ends within ``seconds``.

    Returns what it raised (None if nothing). A daemon thread, so that a call that never ends
    (as calibration at ε = 1e300 did) fails the test instead of hanging it.
    """
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
            outcome.append(None)
        except BaseException as exc:  # handed to the test
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    started = time.monotonic()
    thread.start()
    thread.join(seconds)
    assert outcome, f"still running after {time.monotonic() - started:.1f} s"
    return outcome[0]


def _wait(rt: Runtime, job_id: str, timeout: float = 240.0) -> JobRow:
    deadline = time.monotonic() + timeout
    while True:
        with rt.db.session() as s:
            row = s.get(JobRow, job_id)
            assert row is not None
            if row.state in TERMINAL_STATES:
                return row
        assert time.monotonic() < deadline, "job did not finish"
        time.sleep(0.05)


# -- cheap checks first -------------------------------------------------------------------------


@pytest.mark.parametrize("epsilon", [1e300, 1000.0, MAX_TARGET_EPSILON * 1.01])
def test_a_target_over_the_maximum_is_refused_at_once(runtime: Runtime, epsilon: float) -> None:
    dataset_id = add_dataset(runtime, N_RECORDS, epsilon_cap=1000.0)
    runner = JobRunner(_with(runtime, training_workers=0))
    started = time.monotonic()
    exc = _within(5.0, lambda: runner.create(_spec(dataset_id, epsilon)))
    assert time.monotonic() - started < 0.5
    assert isinstance(exc, InvalidArgument), exc
    assert exc.field == "target_epsilon"
    assert f"{MAX_TARGET_EPSILON:g}" in exc.message
    assert _reservations(runtime) == 0


def test_a_target_over_the_datasets_cap_is_refused_before_calibration(runtime: Runtime) -> None:
    dataset_id = add_dataset(runtime, N_RECORDS, epsilon_cap=10.0)
    runner = JobRunner(_with(runtime, training_workers=0))
    started = time.monotonic()
    # (Calibrating σ for ε = 50 takes seconds: the refusal must come before.)
    exc = _within(5.0, lambda: runner.create(_spec(dataset_id, 50.0)))
    elapsed = time.monotonic() - started
    assert isinstance(exc, ResourceExhausted), exc
    assert elapsed < 0.5, f"{elapsed:.2f} s"
    assert exc.remaining == pytest.approx(10.0)
    assert "cap" in exc.message and "remaining 10" in exc.message
    assert _reservations(runtime) == 0
    with runtime.db.session() as s:  # on the record like the ledger's refusals
        actions = s.execute(select(AuditRow.action)).scalars().all()
    assert "budget.refused" in actions


def test_the_ledger_still_refuses_what_only_composition_exceeds(runtime: Runtime) -> None:
    dataset_id = add_dataset(runtime, N_RECORDS, epsilon_cap=4.0)
    runner = JobRunner(_with(runtime, training_workers=0, max_queued_jobs_per_tenant=0))
    accepted = 0
    refusal: BaseException | None = None
    for _ in range(6):  # each target fits the cap alone; together they do not
        try:
            runner.create(_spec(dataset_id, 3.9))
        except ResourceExhausted as exc:
            refusal = exc
            break
        accepted += 1
    assert isinstance(refusal, ResourceExhausted)
    assert 1 <= accepted < 6
    assert 0 < refusal.remaining < 4.0
    assert _reservations(runtime) == accepted


# -- per-tenant limits --------------------------------------------------------------------------


def test_the_queued_job_limit_refuses_with_quota_details_and_reserves_nothing(
    runtime: Runtime,
) -> None:
    ours, theirs = (
        add_dataset(runtime, N_RECORDS, tenant="alpha"),
        add_dataset(runtime, N_RECORDS, tenant="beta"),
    )
    runner = JobRunner(_with(runtime, training_workers=0, max_queued_jobs_per_tenant=2))
    first = runner.create(
        JobSpec(dataset_id=ours, target_epsilon=1.0, epochs=1, preset="tiny", request_id="r-1")
    )
    runner.create(_spec(ours, 1.0))
    started = time.monotonic()
    with pytest.raises(Overloaded) as exc:
        runner.create(_spec(ours, 1.0))
    assert time.monotonic() - started < 0.5  # before calibration
    assert exc.value.subject == "jobs/queued_per_tenant"
    assert exc.value.retry_after_s > 0
    assert "limit is 2" in exc.value.message
    assert _reservations(runtime) == 2
    # A retry of an accepted request still answers with its job; another tenant is not held.
    retried = runner.create(
        JobSpec(dataset_id=ours, target_epsilon=1.0, epochs=1, preset="tiny", request_id="r-1")
    )
    assert retried.id == first.id
    runner.create(_spec(theirs, 1.0))
    assert _reservations(runtime) == 3
    # Once a job leaves the queue, the tenant may queue again.
    runner.cancel(first.id)
    runner.create(_spec(ours, 1.0))


def test_creating_and_cancelling_jobs_in_a_loop_meets_the_hourly_creation_limit(
    runtime: Runtime,
) -> None:
    # Cancelled jobs leave their rows, ledger and audit entries for good: the queue limit
    # alone let a member create and cancel jobs without end.
    ours, theirs = (
        add_dataset(runtime, N_RECORDS, tenant="alpha"),
        add_dataset(runtime, N_RECORDS, tenant="beta"),
    )
    runner = JobRunner(_with(runtime, training_workers=0, max_creations_per_tenant_per_hour=3))
    for _ in range(3):
        runner.cancel(runner.create(_spec(ours, 1.0)).id)
    with pytest.raises(Overloaded) as exc:
        runner.create(_spec(ours, 1.0))
    assert exc.value.subject == "jobs/created_per_hour"
    assert exc.value.reason.value == "CREATION_RATE_EXCEEDED"
    assert 3500 < exc.value.retry_after_s <= 3600  # when the first of the hour ages out
    assert "PRIVSYNTH_MAX_CREATIONS_PER_TENANT_PER_HOUR" in exc.value.message
    assert _reservations(runtime) == 3
    runner.create(_spec(theirs, 1.0))  # another tenant's rate is its own


def _started_order(rt: Runtime, job_ids: list[str]) -> list[str]:
    with rt.db.session() as s:
        rows = [s.get(JobRow, j) for j in job_ids]
    assert all(r is not None and r.started_at is not None for r in rows)
    return [r.id for r in sorted(rows, key=lambda r: r.started_at)]  # type: ignore[union-attr,arg-type,return-value]


def _when_running(rt: Runtime, job_id: str, deadline: float) -> None:
    while True:
        with rt.db.session() as s:
            row = s.get(JobRow, job_id)
            assert row is not None
            assert row.state in {"QUEUED", "RUNNING"}, (row.state, row.error_message)
            if row.state == "RUNNING" and row.step >= 1:
                return
        assert time.monotonic() < deadline, "job did not start"
        time.sleep(0.05)


def test_a_free_worker_takes_the_next_tenants_job_before_a_busy_tenants_next(
    runtime: Runtime,
) -> None:
    alpha, beta = (
        add_dataset(runtime, N_RECORDS, tenant="alpha"),
        add_dataset(runtime, N_RECORDS, tenant="beta"),
    )
    api = JobRunner(_with(runtime, training_workers=0))
    long_a = api.create(_spec(alpha, 4.0, epochs=60))
    next_a = api.create(_spec(alpha))
    only_b = api.create(_spec(beta))  # queued last
    worker = JobRunner(runtime)  # one worker thread
    worker.recover()
    try:
        _when_running(runtime, long_a.id, time.monotonic() + 120)
        with runtime.db.session() as s:
            row = s.get(JobRow, only_b.id)
            assert row is not None and row.state == "QUEUED"
        worker.cancel(long_a.id)
        done_a, done_b = _wait(runtime, next_a.id), _wait(runtime, only_b.id)
    finally:
        worker.shutdown()
    assert done_a.state == done_b.state == "SUCCEEDED", (done_a.error_message, done_b.error_message)
    # Alpha just had its turn: beta's job, though queued after alpha's second, went first.
    assert _started_order(runtime, [long_a.id, next_a.id, only_b.id]) == [
        long_a.id,
        only_b.id,
        next_a.id,
    ]


def test_a_tenant_at_its_running_limit_waits_while_a_worker_is_free(runtime: Runtime) -> None:
    alpha, beta = (
        add_dataset(runtime, N_RECORDS, tenant="alpha"),
        add_dataset(runtime, N_RECORDS, tenant="beta"),
    )
    api = JobRunner(_with(runtime, training_workers=0))
    long_a = api.create(_spec(alpha, 4.0, epochs=60))
    next_a = api.create(_spec(alpha))
    worker = JobRunner(_with(runtime, training_workers=2, max_running_jobs_per_tenant=1))
    worker.recover()
    try:
        _when_running(runtime, long_a.id, time.monotonic() + 120)
        time.sleep(1.0)  # the second worker is free, but alpha is at its limit
        assert worker.get(next_a.id).state == "QUEUED"
        only_b = api.create(_spec(beta))
        worker._take_up_jobs()  # (what its sweeper, or a create on it, does)
        assert _wait(runtime, only_b.id).state == "SUCCEEDED"
        assert worker.get(long_a.id).state == "RUNNING"
        assert worker.get(next_a.id).state == "QUEUED"
        worker.cancel(long_a.id)
        assert _wait(runtime, next_a.id).state == "SUCCEEDED"
    finally:
        worker.shutdown()


# -- maximum job duration -----------------------------------------------------------------------


def test_a_job_past_the_maximum_duration_stops_failed_and_is_charged_what_it_used(
    runtime: Runtime,
) -> None:
    dataset_id = add_dataset(runtime, N_RECORDS)
    runner = JobRunner(_with(runtime, max_job_seconds=1.5))
    job = runner.create(_spec(dataset_id, 4.0, epochs=200))
    runner.recover()
    try:
        done = _wait(runtime, job.id)
    finally:
        runner.shutdown()
    assert done.state == "FAILED"
    assert done.error_message == "stopped: exceeded the maximum job duration of 1.5 s"
    assert 0 < (done.steps_taken or 0) < (done.planned_steps or 0)
    assert 0 < done.epsilon_spent < done.target_epsilon
    with runtime.db.session() as s:
        commit = s.execute(
            select(LedgerRow).where(LedgerRow.job_id == job.id, LedgerRow.kind == "commit")
        ).scalar_one()
    assert commit.epsilon == pytest.approx(done.epsilon_spent)
    assert done.started_at is not None and done.ended_at is not None
