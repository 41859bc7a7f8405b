"""Jobs survive a restart: a job stopped mid-run resumes from its checkpoint, charged once.

A :class:`JobRunner` over a real database and artifact store (no gRPC, no Presidio): the first
runner is shut down mid-training, which leaves the job RUNNING with a checkpoint; a second one
(the restarted server) recovers it. Unlabelled records keep the label release out of the way.
Leases let several replicas with workers share the database: a replica takes over only jobs
whose worker stopped renewing its lease.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from job_runtime import add_dataset, job_runtime
from opacus.accountants import PRVAccountant
from privsynth.models.dp_train import MIN_RECORDS
from privsynth.server.db import JobRow, LedgerRow, utcnow
from privsynth.server.errors import FailedPrecondition, InvalidArgument
from privsynth.server.jobs.runner import TERMINAL_STATES, JobRunner, JobSpec
from privsynth.server.runtime import Runtime
from sqlalchemy import select

N_RECORDS = 40


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    with job_runtime(
        tmp_path,
        training_workers=1,
        torch_threads=1,
        checkpoint_every_s=0,
        checkpoint_every_steps=1,
    ) as rt:
        yield rt


def _api_only(rt: Runtime) -> Runtime:
    settings = rt.settings.model_copy(update={"training_workers": 0})
    return dataclasses.replace(rt, settings=settings)


def _ledger_kinds(rt: Runtime, job_id: str) -> list[str]:
    with rt.db.session() as s:
        rows = s.execute(select(LedgerRow.kind).where(LedgerRow.job_id == job_id)).scalars()
        return sorted(rows)


def _wait(rt: Runtime, job_id: str, timeout: float = 240.0) -> JobRow:
    deadline = time.monotonic() + timeout
    while True:
        with rt.db.session() as s:
            row = s.get(JobRow, job_id)
            assert row is not None
            if row.state in TERMINAL_STATES:
                return row
        assert time.monotonic() < deadline, "job did not finish"
        time.sleep(0.1)


def _until(condition: Callable[[], bool], what: str, deadline: float) -> None:
    """Poll ``condition`` until it holds; fail with ``what`` past ``deadline`` (monotonic)."""
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def _training(runner: JobRunner, job_id: str, deadline: float) -> JobRow:
    """The job's row once ``runner`` took 2 noisy steps of it (never ended on the way).

    A job may still be QUEUED for a moment after ``recover``: a worker takes it asynchronously.
    """

    def past_two_steps() -> bool:
        row = runner.get(job_id)
        assert row.state in ("QUEUED", "RUNNING"), row.error_message
        return row.state == "RUNNING" and row.step >= 2

    _until(past_two_steps, "training did not start", deadline)
    return runner.get(job_id)


def test_a_job_stopped_by_shutdown_resumes_and_is_charged_once(runtime: Runtime) -> None:
    dataset_id = add_dataset(runtime, N_RECORDS)
    first = JobRunner(runtime)
    job = first.create(JobSpec(dataset_id=dataset_id, target_epsilon=4.0, epochs=5, preset="tiny"))
    checkpoint = first.checkpoint_path(job.id)
    # Written after the first noisy step.
    _until(checkpoint.exists, "no checkpoint was written", time.monotonic() + 120)
    first.shutdown()  # the server stops mid-run

    suspended = first.get(job.id)
    assert suspended.state == "RUNNING"
    assert 0 < suspended.step < (suspended.planned_steps or 0)
    assert checkpoint.exists()
    assert _ledger_kinds(runtime, job.id) == ["reserve"]  # held, not charged

    # An API-only replica starting meanwhile leaves the job alone.
    JobRunner(_api_only(runtime)).recover()
    assert first.get(job.id).state == "RUNNING"

    # The restarted server, even with checkpointing turned off, resumes from the checkpoint.
    settings = runtime.settings.model_copy(update={"checkpoint_every_steps": 0})
    second = JobRunner(dataclasses.replace(runtime, settings=settings))
    second.recover()
    try:
        done = _wait(runtime, job.id)
    finally:
        second.shutdown()
    assert done.state == "SUCCEEDED", done.error_message
    assert done.noise_multiplier is not None and done.sample_rate is not None
    # All planned steps, and exactly the ε an uninterrupted run of them reports.
    assert done.steps_taken == done.planned_steps == 20
    accountant = PRVAccountant()
    accountant.history = [(done.noise_multiplier, done.sample_rate, done.planned_steps)]
    assert done.epsilon_spent == pytest.approx(accountant.get_epsilon(done.delta), rel=1e-9)
    # One reservation, one charge (and its release): nothing reserved or committed twice.
    assert _ledger_kinds(runtime, job.id) == ["commit", "release", "reserve"]
    with runtime.db.session() as s:
        commit = s.execute(
            select(LedgerRow).where(LedgerRow.job_id == job.id, LedgerRow.kind == "commit")
        ).scalar_one()
        assert commit.epsilon == pytest.approx(done.epsilon_spent)
        assert commit.steps == 20
    assert not checkpoint.exists()


def test_a_running_job_without_checkpoint_is_charged_its_reservation(runtime: Runtime) -> None:
    dataset_id = add_dataset(runtime, N_RECORDS)
    api = JobRunner(_api_only(runtime))
    job = api.create(JobSpec(dataset_id=dataset_id, target_epsilon=2.0, epochs=1, preset="tiny"))
    with runtime.db.session() as s:  # a worker took it and died before any checkpoint
        row = s.get(JobRow, job.id)
        assert row is not None
        row.state = "RUNNING"
    api.recover()
    assert api.get(job.id).state == "RUNNING"  # API-only: not its business
    runner = JobRunner(runtime)
    runner.recover()
    runner.shutdown()
    failed = runner.get(job.id)
    assert failed.state == "FAILED"
    assert _ledger_kinds(runtime, job.id) == ["commit", "release", "reserve"]
    with runtime.db.session() as s:
        commit = s.execute(
            select(LedgerRow).where(LedgerRow.job_id == job.id, LedgerRow.kind == "commit")
        ).scalar_one()
        assert commit.epsilon == 2.0


@pytest.mark.parametrize("epochs", [0, -1, -1000])
def test_epochs_below_one_are_invalid(epochs: int) -> None:
    with pytest.raises(InvalidArgument) as exc:
        JobSpec(dataset_id="x", target_epsilon=1.0, epochs=epochs, preset="tiny")
    assert exc.value.field == "epochs"


def test_a_corpus_below_the_minimum_fails_precondition_and_reserves_nothing(
    runtime: Runtime,
) -> None:
    dataset_id = add_dataset(runtime, MIN_RECORDS - 1)
    runner = JobRunner(_api_only(runtime))
    with pytest.raises(FailedPrecondition) as exc:
        runner.create(JobSpec(dataset_id=dataset_id, target_epsilon=1.0, preset="tiny"))
    assert f"at least {MIN_RECORDS}" in str(exc.value)
    with runtime.db.session() as s:
        assert not s.execute(select(LedgerRow).where(LedgerRow.kind == "reserve")).first()


def test_a_job_runs_with_the_batch_it_reserved_even_if_the_preset_changed(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    from privsynth.models import presets

    tiny = presets.PRESETS["tiny"]
    monkeypatch.setitem(presets.PRESETS, "tiny", dataclasses.replace(tiny, batch_size=8))
    dataset_id = add_dataset(runtime, N_RECORDS)
    api = JobRunner(_api_only(runtime))
    job = api.create(JobSpec(dataset_id=dataset_id, target_epsilon=2.0, epochs=1, preset="tiny"))
    assert job.sample_rate == pytest.approx(8 / N_RECORDS)  # the preset's batch was planned
    # A new release changes the preset's default batch while the job waits in the queue.
    monkeypatch.setitem(presets.PRESETS, "tiny", dataclasses.replace(tiny, batch_size=4))
    runner = JobRunner(runtime)
    runner.recover()
    try:
        done = _wait(runtime, job.id)
    finally:
        runner.shutdown()
    assert done.state == "SUCCEEDED", done.error_message
    assert done.sample_rate == pytest.approx(8 / N_RECORDS)
    assert done.steps_taken == done.planned_steps == N_RECORDS // 8


def _replica(rt: Runtime, name: str, lease_s: float = 60.0) -> JobRunner:
    settings = rt.settings.model_copy(update={"worker_id": name, "job_lease_s": lease_s})
    return JobRunner(dataclasses.replace(rt, settings=settings))


def _set_lease(rt: Runtime, job_id: str, worker: str, age_s: float) -> None:
    with rt.db.session() as s:
        row = s.get(JobRow, job_id)
        assert row is not None
        row.state, row.worker = "RUNNING", worker
        row.heartbeat_at = utcnow() - timedelta(seconds=age_s)


def test_a_live_replicas_job_is_taken_over_only_when_its_lease_expires(runtime: Runtime) -> None:
    dataset_id = add_dataset(runtime, N_RECORDS)
    job = JobRunner(_api_only(runtime)).create(
        JobSpec(dataset_id=dataset_id, target_epsilon=2.0, epochs=1, preset="tiny")
    )
    _set_lease(runtime, job.id, "replica-a", age_s=5)  # replica A trains it, renewing
    b = _replica(runtime, "replica-b")
    b.recover()  # replica B starts: A's job is not orphaned, so B neither resumes nor charges
    try:
        assert b.get(job.id).state == "RUNNING"
        assert _ledger_kinds(runtime, job.id) == ["reserve"]
        _set_lease(runtime, job.id, "replica-a", age_s=61)  # A died a lease ago
        b._take_up_jobs()  # (what B's sweeper does every quarter lease)
        taken = b.get(job.id)
    finally:
        b.shutdown()
    # No checkpoint: the dead run's progress is unknown, so the full reservation is charged.
    assert taken.state == "FAILED"
    assert _ledger_kinds(runtime, job.id) == ["commit", "release", "reserve"]


def test_a_job_queued_by_an_api_replica_is_taken_up_without_a_restart(runtime: Runtime) -> None:
    worker = _replica(runtime, "replica-b", lease_s=0.4)
    worker.recover()  # nothing to do yet; its sweeper keeps looking
    try:
        job = JobRunner(_api_only(runtime)).create(
            JobSpec(
                dataset_id=add_dataset(runtime, N_RECORDS),
                target_epsilon=2.0,
                epochs=1,
                preset="tiny",
            )
        )
        done = _wait(runtime, job.id)
    finally:
        worker.shutdown()
    assert done.state == "SUCCEEDED", done.error_message
    assert done.worker == "replica-b"


def test_a_run_that_lost_its_lease_leaves_the_job_to_its_new_worker(runtime: Runtime) -> None:
    dataset_id = add_dataset(runtime, N_RECORDS)
    b = _replica(runtime, "replica-b", lease_s=0.4)
    job = b.create(JobSpec(dataset_id=dataset_id, target_epsilon=4.0, epochs=60, preset="tiny"))
    b.recover()  # starts the sweeper that renews B's leases
    try:
        deadline = time.monotonic() + 120
        row = _training(b, job.id, deadline)  # B is training (and renewing its lease)
        assert row.worker == "replica-b" and row.heartbeat_at is not None
        first_beat = row.heartbeat_at
        # Renewed every 0.1 s.
        _until(lambda: b.get(job.id).heartbeat_at != first_beat, "lease not renewed", deadline)
        # B stalled past its lease and replica C took the job over.
        _set_lease(runtime, job.id, "replica-c", age_s=0)
        # B notices at its next renewal and stops.
        _until(lambda: job.id not in b._training, "the run did not stop", deadline)
    finally:
        b.shutdown()
    row = b.get(job.id)
    # B ended nothing: the job, its reservation and its checkpoint are C's.
    assert (row.state, row.worker) == ("RUNNING", "replica-c")
    assert _ledger_kinds(runtime, job.id) == ["reserve"]
    assert b.checkpoint_path(job.id).exists()


def test_a_stalled_worker_does_not_end_a_job_another_replica_charged(runtime: Runtime) -> None:
    dataset_id = add_dataset(runtime, N_RECORDS)
    no_checkpoints = {"checkpoint_every_steps": 0, "checkpoint_every_s": 0.0}
    slow = dataclasses.replace(runtime, settings=runtime.settings.model_copy(update=no_checkpoints))
    b = _replica(slow, "replica-b", lease_s=0.4)
    job = b.create(JobSpec(dataset_id=dataset_id, target_epsilon=4.0, epochs=60, preset="tiny"))
    b.recover()
    try:
        deadline = time.monotonic() + 120
        _training(b, job.id, deadline)
        # Replica C judges B's lease expired (as after a long stall of B) and, with no
        # checkpoint to resume, charges the full reservation.
        c = _replica(slow, "replica-c", lease_s=0.001)
        time.sleep(0.01)
        c._take_up_jobs()
        assert b.get(job.id).state == "FAILED"
        # B finds the job ended by C and stops.
        _until(lambda: job.id not in b._training, "the run did not stop", deadline)
    finally:
        b.shutdown()
    row = b.get(job.id)
    assert (row.state, row.worker) == ("FAILED", "replica-c")
    # Charged once, by C: B's stopped run committed nothing on top.
    assert _ledger_kinds(runtime, job.id) == ["commit", "release", "reserve"]
