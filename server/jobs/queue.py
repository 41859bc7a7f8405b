"""The job queue: leases, fair claiming, takers, recovery after a restart, shutdown."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

from privsynth.server.db import DatasetRow, JobRow, as_utc, utcnow
from privsynth.server.jobs.base import RunnerState
from privsynth.server.jobs.requests import WORKER
from sqlalchemy import func, select
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)


class JobQueue(RunnerState):
    """The job queue: leases, fair claiming, takers, recovery after a restart, shutdown."""

    def submit(self, job_id: str, *, resume: bool = False) -> None:
        """Have a worker thread run a job (an API-only process leaves it QUEUED).

        ``resume`` takes up this RUNNING job from its checkpoint (see :meth:`recover`). A
        QUEUED job is not run in order of submission: a free worker takes whichever queued job
        is fairest next (:meth:`claim_next`), which may be this one.
        """
        if self._pool is None:
            return
        if not resume:
            self._wake_takers()
            return
        with self._lock:
            if self._closed or job_id in self._cancel:  # already queued or running here
                return
            self._cancel[job_id] = threading.Event()
        self._pool.submit(self._run_safely, job_id, resume)

    def _wake_takers(self) -> None:
        """Make sure a pool task will look for queued jobs (at most one per worker thread)."""
        assert self._pool is not None
        with self._lock:
            if self._closed:
                return
            self._more_queued = True
            if self._takers >= self._workers:
                return  # (each loops until it finds nothing, and sees the flag first)
            self._takers += 1
        self._pool.submit(self._take_queued)

    def _take_queued(self) -> None:
        """A worker's loop: claim the fairest queued job and train it, until none is left."""
        while True:
            with self._lock:
                if self._closed:
                    self._takers -= 1
                    return
                self._more_queued = False
            try:
                claimed = self.claim_next()
            except Exception as exc:  # the database may be briefly away; the sweep retries
                log.warning("taking a queued job failed: %s", type(exc).__name__)
                claimed = None
            if claimed is None:
                with self._lock:
                    if not self._more_queued or self._closed:
                        self._takers -= 1
                        return
                continue
            self._run_safely(claimed[0].id, claimed=claimed)

    def claim_next(self) -> tuple[JobRow, DatasetRow] | None:
        """Claim the fairest QUEUED job for this process, or None when none may start.

        Fair across tenants: the oldest queued job of the tenant with the fewest RUNNING jobs
        (on every replica), ties going to the tenant whose last job started longest ago (round
        robin: a tenant with ten queued jobs does not keep another's one job waiting behind
        them), then to the oldest job; tenants at ``max_running_jobs_per_tenant`` are skipped.
        Each candidate is claimed as :meth:`claim` does (under its row lock, so of several
        workers exactly one gets it), the running limit checked again in the same transaction.
        """
        limit = self.runtime.settings.max_running_jobs_per_tenant
        with self.runtime.db.session() as s:
            running = dict(
                s.execute(
                    select(JobRow.tenant, func.count())
                    .where(JobRow.state == "RUNNING")
                    .group_by(JobRow.tenant)
                ).all()
            )
            queued = s.execute(
                select(JobRow.id, JobRow.tenant)
                .where(JobRow.state == "QUEUED", JobRow.runner == WORKER)
                .order_by(JobRow.created_at, JobRow.id)
            ).all()
            oldest: dict[str, tuple[int, str]] = {}  # tenant -> (position in queue, job id)
            for position, (job_id, tenant) in enumerate(queued):
                oldest.setdefault(tenant, (position, job_id))
            last_start = {
                tenant: as_utc(started)
                for tenant, started in s.execute(
                    select(JobRow.tenant, func.max(JobRow.started_at))
                    .where(JobRow.tenant.in_(list(oldest)))
                    .group_by(JobRow.tenant)
                ).all()
                if started is not None
            }
        never = datetime.min.replace(tzinfo=UTC)
        order = sorted(
            oldest,
            key=lambda t: (running.get(t, 0), last_start.get(t, never), oldest[t][0]),
        )
        for tenant in order:
            if limit > 0 and running.get(tenant, 0) >= limit:
                continue
            claimed = self.claim(oldest[tenant][1], resume=False, running_limit=limit)
            if claimed is not None:
                return claimed
        return None

    def recover(self) -> None:
        """Take up jobs after a start: queued ones, and running ones whose worker died.

        Then keep doing so, and renew the leases of the jobs this process runs, every quarter
        of ``job_lease_s`` (a background thread, until :meth:`shutdown`); see
        :meth:`_take_up_jobs`. An API-only process (no workers) runs no jobs, so it leaves
        them alone.
        """
        if self._pool is None:
            return
        with self._lock:
            if self._closed or self._sweeper is not None:
                return
            self._sweeper = threading.Thread(
                target=self._sweep_forever, name="job-leases", daemon=True
            )
            self._sweeper.start()
        self._take_up_jobs()

    def _sweep_forever(self) -> None:
        while not self._sweeping.wait(self._lease.total_seconds() / 4):
            try:
                self.renew_leases()
                self._take_up_jobs()
            except Exception as exc:  # the database may be briefly away; try next round
                log.warning("job lease sweep failed: %s", type(exc).__name__)

    def _orphaned(self, job: JobRow, now: datetime) -> bool:
        """Whether a RUNNING job's worker is gone, so this process may take it over.

        Its lease expired, or it ran under this process's own name (which a live process
        only uses for jobs it trains: this one restarted), or it never had a lease (a row
        from before leases).
        """
        with self._lock:
            if job.id in self._training:
                return False
        if job.worker is None or job.heartbeat_at is None or job.worker == self._worker:
            return True
        return self._lease_expired(job, now)

    def _lease_expired(self, job: JobRow, now: datetime) -> bool:
        """Whether ``job``'s worker missed renewing its lease for a whole lease."""
        beat = job.heartbeat_at
        if beat is None:
            return True
        return as_utc(beat) < now - self._lease

    def _take_up_jobs(self) -> None:
        """Queue QUEUED jobs; resume or fail RUNNING jobs whose worker is gone.

        A job whose worker died resumes from its last checkpoint under the reservation it
        already holds (nothing is reserved again, and the ledger is charged once, when it
        ends). The checkpoint carries the accountant's state, so the resumed run reports the
        ε of all its steps; steps taken after the checkpoint by the dead process were never
        released (their weights died with it) and are taken again. A job cut off without a
        checkpoint may have taken noisy steps after its last progress report, so it is charged
        its full reservation (the safe upper bound). A job whose lease is still being renewed
        belongs to a live replica and is left alone. Queued jobs may sit in another replica's
        queue too: whichever worker claims one first runs it (see :meth:`_run`).
        """
        resume: list[str] = []
        with self.runtime.db.session() as s:
            mine = JobRow.runner == WORKER  # (torchrun jobs are their launcher's to run)
            running = s.execute(select(JobRow.id).where(JobRow.state == "RUNNING", mine))
            candidates = list(running.scalars())
            queued = (
                s.execute(select(JobRow.id).where(JobRow.state == "QUEUED", mine)).scalars().all()
            )
        for job_id in candidates:
            with self.runtime.db.session() as s:
                # Locked and checked again: two replicas sweeping at once act on a job once.
                job = self._locked(s, job_id)
                now = utcnow()
                if job is None or job.state != "RUNNING" or not self._orphaned(job, now):
                    continue
                if self.checkpoint_path(job.id).exists():
                    resume.append(job.id)
                else:
                    # Ours now: a stalled original worker that wakes up finds the job not its.
                    job.worker, job.heartbeat_at = self._worker, now
                    self._charge_full_reservation(s, job, error="server stopped during training")
        for job_id in resume:
            log.info("job %s: resuming from its checkpoint", job_id)
            self.submit(job_id, resume=True)
        if queued:
            self._wake_takers()

    def renew_leases(self) -> None:
        """Renew the lease of every job this process trains; stop any it lost.

        A job this process trains but another worker now holds (or has already ended) was
        taken over (this process missed renewals for a whole lease): it stops without charging
        or releasing anything, since the job, its reservation and its checkpoint are the new
        worker's.
        """
        with self._lock:
            mine = set(self._training)
        if not mine:
            return
        lost: list[str] = []
        with self.runtime.db.session() as s:
            rows = s.execute(select(JobRow).where(JobRow.id.in_(mine))).scalars().all()
            for row in rows:
                if row.state == "RUNNING" and row.worker == self._worker:
                    row.heartbeat_at = utcnow()
                elif row.state == "RUNNING" or row.worker != self._worker:
                    # Taken over, or ended by the replica that took it over (a job this
                    # process ends itself leaves ``_training`` in the same worker thread).
                    lost.append(row.id)
        for job_id in lost:
            log.warning("job %s: lease taken over by another worker; stopping here", job_id)
            with self._lock:
                event = self._cancel.get(job_id)
            if event is not None:
                event.set()

    def _owns(self, job: JobRow) -> bool:
        """Whether this process still holds ``job``'s lease (else it must not end the job).

        Call with the row locked (:meth:`_locked`): a takeover commits either before the check
        (and the job is not ours) or after this transaction (and finds it ended).
        """
        if job.state == "RUNNING" and job.worker == self._worker:
            return True
        log.warning("job %s: lease lost to another worker; leaving the job to it", job.id)
        return False

    @staticmethod
    def _locked(session: Session, job_id: str) -> JobRow | None:
        """The job's row, locked until the transaction ends.

        (A no-op lock on SQLite, whose writers are serialised by ``BEGIN IMMEDIATE``.)
        """
        return session.execute(
            select(JobRow).where(JobRow.id == job_id).with_for_update()
        ).scalar_one_or_none()

    def claim(
        self, job_id: str, *, resume: bool, running_limit: int = 0
    ) -> tuple[JobRow, DatasetRow] | None:
        """Take the job's lease (QUEUED -> RUNNING, or a cut-off RUNNING job to resume).

        Under a row lock, so of several workers given the same job exactly one claims it.
        With ``running_limit`` (> 0), a QUEUED job is left queued while its tenant has that
        many RUNNING jobs (checked under the tenant's lock).
        None: nothing to run (claimed elsewhere, ended, cancelled before it started, or its
        tenant at the running limit).
        """
        with self.runtime.db.session() as s:
            if running_limit > 0 and not resume:
                tenant = s.execute(
                    select(JobRow.tenant).where(JobRow.id == job_id)
                ).scalar_one_or_none()
                if tenant is None:
                    return None
                self._lock_tenant(s, tenant)  # (before the row lock, as create takes it)
            job = self._locked(s, job_id)
            now = utcnow()
            if job is None or job.state != ("RUNNING" if resume else "QUEUED"):
                return None
            if resume and not self._orphaned(job, now):
                return None  # another worker took it over first, and renews its lease
            if job.cancel_requested and not resume:
                self._finish(
                    s, job, state="CANCELLED", epsilon=0.0, steps=0, note="cancelled before start"
                )
                return None
            if running_limit > 0 and not resume:
                running = s.execute(
                    select(func.count())
                    .select_from(JobRow)
                    .where(JobRow.tenant == job.tenant, JobRow.state == "RUNNING")
                ).scalar_one()
                if running >= running_limit:
                    return None
            dataset = s.get(DatasetRow, job.dataset_id)
            assert dataset is not None
            if not resume:
                job.state = "RUNNING"
                job.started_at = now
            job.worker, job.heartbeat_at = self._worker, now
            with self._lock:
                self._training.add(job_id)
                self._cancel.setdefault(job_id, threading.Event())
                self._run_base_s[job_id] = float(job.elapsed_seconds or 0.0) if resume else 0.0
            return job, dataset

    def shutdown(self) -> None:
        """Stop running jobs and wait for the workers.

        A job that saved a checkpoint as it stopped stays RUNNING and resumes when a process
        with workers starts (:meth:`recover`); one without is charged what it consumed.
        """
        with self._lock:
            self._closed = True
            events = list(self._cancel.values())
            sweeper = self._sweeper
        for event in events:
            event.set()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        # Only now: the leases of jobs still finishing their last step (and saving their
        # checkpoint) keep being renewed, so no replica takes one over mid-save.
        self._sweeping.set()
        if sweeper is not None:
            sweeper.join(timeout=60)
