"""Training jobs: create (reserving budget), run in background workers, cancel, recover.

A job is a database row, so it outlives the request that created it and the client that
watches it. Workers are threads of the server process (torch releases the GIL in its kernels);
each job charges the ledger exactly once when it ends, whatever the ending.

Admission, cheapest check first (issue 12): the target ε against
:data:`~privsynth.server.privacy.caps.MAX_TARGET_EPSILON` (in :class:`JobSpec`) and against the
dataset's ε cap, then the tenant's queued-job limit, and only then the noise calibration (seconds)
and the reservation, which checks the limit again under a lock. A free worker takes the oldest
QUEUED job of the tenant with the fewest RUNNING jobs, skipping tenants at their running limit
(:meth:`JobRunner.claim_next`); a run past ``max_job_seconds`` stops and ends FAILED, charged
what it consumed.
"""

from __future__ import annotations

from privsynth.server.db import JobRow, utcnow
from privsynth.server.errors import NotFound, Reason
from privsynth.server.jobs.create import JobCreation
from privsynth.server.jobs.endings import JobEndings
from privsynth.server.jobs.execution import JobExecution
from privsynth.server.jobs.queue import JobQueue
from privsynth.server.jobs.requests import TERMINAL_STATES, TORCHRUN, WORKER, JobSpec
from privsynth.server.privacy import audit

__all__ = ["TERMINAL_STATES", "TORCHRUN", "WORKER", "JobRunner", "JobSpec"]


class JobRunner(JobCreation, JobQueue, JobExecution, JobEndings):
    """Creates, queues, runs and ends training jobs; owns the worker pool.

    One part per concern: :class:`~privsynth.server.jobs.create.JobCreation` (checks, σ
    planning, reservation), :class:`~privsynth.server.jobs.queue.JobQueue` (leases, fair
    claiming, recovery), :class:`~privsynth.server.jobs.execution.JobExecution` (running a
    claimed job) and :class:`~privsynth.server.jobs.endings.JobEndings` (storing the model
    and charging the ledger once).
    """

    def cancel(self, job_id: str, *, actor: str = "anonymous") -> JobRow:
        """Stop a job; a queued one ends at once at no cost.

        A running job is charged what it consumed when its worker stops.

        Raises:
            NotFound: Unknown job.
        """
        with self.runtime.db.session() as s:
            job = self._locked(s, job_id)
            if job is None:
                raise NotFound(f"job 'jobs/{job_id}' not found", reason=Reason.JOB_NOT_FOUND)
            previous = job.state
            if job.state == "QUEUED":
                # No worker has read data yet (starting one takes this row lock), so the
                # reservation is released in full.
                job.cancel_requested = True
                self._finish(
                    s, job, state="CANCELLED", epsilon=0.0, steps=0, note="cancelled before start"
                )
            elif job.state not in TERMINAL_STATES:
                job.cancel_requested = True
                if job.runner == TORCHRUN and self._lease_expired(job, utcnow()):
                    # Its launcher is gone (no lease renewal for a whole lease) and no replica
                    # resumes a torchrun job: end it now, at the safe upper bound, so that its
                    # reservation is not held forever.
                    self._charge_full_reservation(s, job, error="distributed run stopped")
            if previous not in TERMINAL_STATES:
                audit.append(
                    s,
                    action="job.cancelled",
                    actor=actor,
                    dataset_id=job.dataset_id,
                    job_id=job.id,
                    details={"state": previous, "step": job.step},
                )
        with self._lock:
            event = self._cancel.get(job_id)
        if event is not None:
            event.set()
        return self.get(job_id)

    def get(self, job_id: str) -> JobRow:
        """The job's current row.

        Raises:
            NotFound: Unknown job.
        """
        with self.runtime.db.session() as s:
            job = s.get(JobRow, job_id)
            if job is None:
                raise NotFound(f"job 'jobs/{job_id}' not found", reason=Reason.JOB_NOT_FOUND)
            return job
