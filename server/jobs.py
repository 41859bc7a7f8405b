"""Training jobs: create (reserving budget), run in background workers, cancel, recover.

A job is a database row, so it outlives the request that created it and the client that
watches it. Workers are threads of the server process (torch releases the GIL in its kernels);
each job charges the ledger exactly once when it ends, whatever the ending.

Admission, cheapest check first (issue 12): the target ε against
:data:`~privsynth.server.caps.MAX_TARGET_EPSILON` (in :class:`JobSpec`) and against the
dataset's ε cap, then the tenant's queued-job limit, and only then the noise calibration (seconds)
and the reservation, which checks the limit again under a lock. A free worker takes the oldest
QUEUED job of the tenant with the fewest RUNNING jobs, skipping tenants at their running limit
(:meth:`JobRunner.claim_next`); a run past ``max_job_seconds`` stops and ends FAILED, charged
what it consumed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

from privsynth.models.dp_train import (
    MIN_RECORDS,
    Checkpointing,
    DPConfig,
    Example,
    Progress,
    TrainingConfigError,
    TrainingInterrupted,
    TrainResult,
    train_dp,
)
from privsynth.models.family import tokenizer_for_preset
from privsynth.models.presets import PRESETS, base_available
from privsynth.server import audit, labels, ledger
from privsynth.server.accounting import (
    DEFAULT_LABEL_EPSILON_SHARE,
    MAX_NOISE_MULTIPLIER,
    DpSgdPlan,
    PlanningAbandoned,
    UnreachableEpsilon,
    expected_batch_size,
    job_epsilon,
    plan_dp_sgd,
)
from privsynth.server.caps import check_job_delta, check_target_epsilon
from privsynth.server.db import DatasetRow, JobRow, ModelRow, new_id, utcnow
from privsynth.server.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Overloaded,
    ResourceExhausted,
)
from privsynth.server.request_ids import check_request_id, request_digest, same_request
from privsynth.server.runtime import Runtime
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

__all__ = ["TERMINAL_STATES", "JobRunner", "JobSpec"]

log = logging.getLogger(__name__)

TERMINAL_STATES = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})
DEFAULT_EPOCHS = 3
DEFAULT_PRESET = "smollm2"
MAX_EPOCHS = 1000
WORKER = "worker"
"""Runner of a job trained by a server replica's worker thread."""
TORCHRUN = "torchrun"
"""Runner of a job trained by ``torchrun -m privsynth.server.distributed_job`` (never taken up
by a replica's workers; it claims, trains and commits under the same ledger)."""
PLANNING_TIME_LIMIT_S = 30.0
"""Longest a CreateTrainingJob may spend calibrating σ (measured: 1-8 s for ε ≤ 100 on small
corpora on 2 busy cores; tens of seconds for ε = 100 with thousands of steps, where each PRV
evaluation takes ~10 s). Past it the request is refused as FAILED_PRECONDITION, and a request
whose client has gone stops calibrating at the next accountant evaluation."""
QUEUED_LIMIT_RETRY_S = 30.0
"""RetryInfo of a refusal at the queued-job limit: a queued job waits minutes, not seconds."""


class JobSpec:
    """A validated training request (keyword-only privacy parameters)."""

    def __init__(
        self,
        *,
        dataset_id: str,
        target_epsilon: float,
        delta: float | None = None,
        epochs: int | None = None,
        preset: str = "",
        label_distribution: str = "",
        label_epsilon_share: float | None = None,
        public_label_weights: dict[str, float] | None = None,
        distributed: bool = False,
        request_id: str = "",
    ) -> None:
        check_target_epsilon(target_epsilon)
        if delta is not None:
            check_job_delta(delta)
        epochs = DEFAULT_EPOCHS if epochs is None else epochs
        if not (0 < epochs <= MAX_EPOCHS):
            raise InvalidArgument(f"epochs must lie in 1..{MAX_EPOCHS}", field="epochs")
        preset = preset or DEFAULT_PRESET
        if preset not in PRESETS:
            raise InvalidArgument(
                f"unknown preset; choose one of {', '.join(sorted(PRESETS))}", field="preset"
            )
        base = PRESETS[preset].base
        if base is not None and not base_available(base):
            how = (
                "install its package (make setup does) or ask the operator for it"
                if PRESETS[preset].architecture == "hf-lora"
                else "run `privsynth pretrain`"
            )
            raise FailedPrecondition(
                f"preset {preset!r} needs the base model {base!r}, which is not installed; "
                f"{how}, or choose another preset"
            )
        _check_label_request(label_distribution, label_epsilon_share, public_label_weights)
        self.distributed = distributed
        self.request_id = check_request_id(request_id)
        self.label_distribution = label_distribution
        self.label_epsilon_share = label_epsilon_share
        self.public_label_weights = dict(public_label_weights or {})
        self.dataset_id = dataset_id
        self.target_epsilon = target_epsilon
        self.delta = delta
        self.epochs = epochs
        self.preset = preset

    def digest(self) -> str:
        """A digest of the parameters, to tell a retry (same id) from a reused id."""
        return request_digest(
            {
                "dataset": self.dataset_id,
                "target_epsilon": self.target_epsilon,
                "delta": self.delta,
                "epochs": self.epochs,
                "preset": self.preset,
                "label_distribution": self.label_distribution,
                "label_epsilon_share": self.label_epsilon_share,
                "public_label_weights": sorted(self.public_label_weights.items()),
                "distributed": self.distributed,
            }
        )


def _check_label_request(mode: str, share: float | None, weights: dict[str, float] | None) -> None:
    """Validate how the label distribution is to be released (see :mod:`.labels`).

    Raises:
        InvalidArgument: Naming the field.
    """
    if mode not in {"", "dp", "public"}:
        raise InvalidArgument("label_distribution must be dp or public", field="label_distribution")
    if share is not None:
        if mode == "public":
            raise InvalidArgument(
                "label_epsilon_share applies to a DP label distribution only",
                field="label_epsilon_share",
            )
        if not (math.isfinite(share) and 0 < share <= 0.5):
            raise InvalidArgument(
                "label_epsilon_share must lie in (0, 0.5]", field="label_epsilon_share"
            )
    if weights:
        if mode != "public":
            raise InvalidArgument(
                "public_label_weights need label_distribution public",
                field="public_label_weights",
            )
        if len(weights) > labels.MAX_LABELS or any(not k.strip() or len(k) > 100 for k in weights):
            raise InvalidArgument(
                f"public_label_weights: at most {labels.MAX_LABELS} labels of 1..100 characters",
                field="public_label_weights",
            )
        if not all(math.isfinite(v) and v >= 0 for v in weights.values()) or not any(
            v > 0 for v in weights.values()
        ):
            raise InvalidArgument(
                "public_label_weights must be finite, >= 0 and not all zero",
                field="public_label_weights",
            )


def _aware(moment: datetime) -> datetime:
    """``moment`` in UTC (SQLite returns naive datetimes, stored as UTC)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _live_dataset(runtime: Runtime, dataset_id: str) -> DatasetRow:
    with runtime.db.session() as s:
        row = s.get(DatasetRow, dataset_id)
        if row is None or row.deleted_at is not None:
            raise NotFound(f"dataset 'datasets/{dataset_id}' not found")
        return row


class JobRunner:
    """Owns the worker pool that trains queued jobs."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        workers = runtime.settings.training_workers
        self._pool = (
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="train")
            if workers > 0
            else None
        )
        self._workers = workers
        self._takers = 0  # pool tasks taking QUEUED jobs one after another (<= workers)
        self._more_queued = False  # a job was queued since a taker last looked
        self._cancel: dict[str, threading.Event] = {}
        self._training: set[str] = set()  # jobs this process claimed and is training
        self._timed_out: set[str] = set()  # jobs stopped for running past max_job_seconds
        self._run_base_s: dict[str, float] = {}  # seconds a resumed job had trained before
        self._lock = threading.Lock()
        self._closed = False
        self._worker = runtime.settings.worker_id
        self._lease = timedelta(seconds=runtime.settings.job_lease_s)
        self._sweeping = threading.Event()
        self._sweeper: threading.Thread | None = None

    # -- requests ---------------------------------------------------------------------------

    def create(
        self,
        spec: JobSpec,
        *,
        actor: str = "anonymous",
        is_active: Callable[[], bool] | None = None,
    ) -> JobRow:
        """Create a job, reserving its ε before any data is read.

        With a ``request_id`` already used by this tenant, the job that request created is
        returned and nothing is reserved again (a retry after a network error). Cheap checks
        come first (the ε cap, the tenant's queued-job limit), the noise calibration after.

        Args:
            spec: The validated request.
            actor: Who asks (for the audit log).
            is_active: Whether the caller still waits (e.g. ``context.is_active``); once False,
                calibration stops and :class:`PlanningAbandoned` is raised.

        Raises:
            NotFound: Unknown dataset.
            InvalidArgument: Parameters that cannot give a guarantee (e.g. δ ≥ 1/n).
            FailedPrecondition: Dataset too small to train with DP; target out of reach; or
                calibration took over :data:`PLANNING_TIME_LIMIT_S`.
            ResourceExhausted: Over budget; nothing is reserved.
            Overloaded: The tenant has ``max_queued_jobs_per_tenant`` jobs queued already.
            PlanningAbandoned: ``is_active`` turned False during calibration.
        """
        dataset = _live_dataset(self.runtime, spec.dataset_id)
        digest = spec.digest() if spec.request_id else None
        if spec.request_id is not None:
            earlier = self._by_request(dataset.tenant, spec.request_id, digest)
            if earlier is not None:
                return earlier
        # Each job takes a tenth of the dataset's δ cap unless told otherwise, so that about ten
        # jobs fit under basic composition of δ.
        delta = spec.delta if spec.delta is not None else dataset.delta / 10.0
        if spec.target_epsilon > dataset.epsilon_cap:
            # No job's own guarantee may be weaker than its dataset's whole cap: refused before
            # any calibration (which costs seconds, and more the larger the target).
            with self.runtime.db.session() as s:
                remaining = ledger.get_budget(s, dataset).epsilon_remaining
            self._refused(
                ResourceExhausted(
                    f"privacy budget exhausted: requested epsilon {spec.target_epsilon:g} "
                    f"exceeds the dataset's cap {dataset.epsilon_cap:g} on its own "
                    f"(remaining {remaining:.4g})",
                    remaining=remaining,
                ),
                spec,
                dataset,
                delta,
                actor,
            )
        with self.runtime.db.session() as s:
            self._check_queued_limit(s, dataset.tenant)
        config = DPConfig.for_preset(
            spec.preset, target_epsilon=spec.target_epsilon, target_delta=delta, epochs=spec.epochs
        )
        try:
            config.validate(dataset.record_count)
        except TrainingConfigError as exc:
            if exc.field == "dataset":
                raise FailedPrecondition(
                    f"dataset has {dataset.record_count} records; DP training needs at least "
                    f"{MIN_RECORDS}"
                ) from None
            raise InvalidArgument(str(exc), field=exc.field) from None
        label_release = self._label_release(spec, dataset, actor)
        plan = self._plan(
            config, dataset.record_count, label_release.get("epsilon_share"), is_active=is_active
        )
        job_id, model_id = new_id(), new_id()
        now = utcnow()
        job = JobRow(
            id=job_id,
            dataset_id=dataset.id,
            model_id=model_id,
            state="QUEUED",
            target_epsilon=spec.target_epsilon,
            delta=delta,
            epochs=spec.epochs,
            preset=spec.preset,
            created_at=now,
            step=0,
            total_steps=0,
            loss=0.0,
            epsilon_spent=0.0,
            elapsed_seconds=0.0,
            cancel_requested=False,
            error_message="",
            noise_multiplier=plan.noise_multiplier,
            sample_rate=plan.sample_rate,
            planned_steps=plan.steps,
            tenant=dataset.tenant,
            label_noise_multiplier=plan.label_noise_multiplier,
            label_release=label_release,
            runner=TORCHRUN if spec.distributed else WORKER,
            request_id=spec.request_id,
            request_hash=digest,
        )
        try:
            with self.runtime.db.session() as s:
                # Again, under the tenant's lock: concurrent creates may have queued meanwhile.
                self._lock_tenant(s, dataset.tenant)
                self._check_queued_limit(s, dataset.tenant)
                ledger.reserve(
                    s,
                    dataset.id,
                    job_id=job_id,
                    epsilon=spec.target_epsilon,
                    delta=delta,
                    actor=actor,
                    plan=plan,
                )
                s.add(job)
                s.add(
                    ModelRow(
                        id=model_id,
                        dataset_id=dataset.id,
                        job_id=job_id,
                        state="TRAINING",
                        created_at=now,
                        card={},
                        model_config={},
                        weights_path="",
                        weights_sha256="",
                        tenant=dataset.tenant,
                    )
                )
        except IntegrityError:
            # The same request, retried while the first attempt was creating its job: that
            # transaction won (the unique request id), this one rolled back its reservation.
            earlier = (
                self._by_request(dataset.tenant, spec.request_id, digest)
                if spec.request_id is not None
                else None
            )
            if earlier is None:
                raise
            return earlier
        except ResourceExhausted as exc:
            self._refused(exc, spec, dataset, delta, actor)
        if not spec.distributed:  # (a torchrun job waits for its launch; see distributed_job)
            self.submit(job_id)
        return job

    def _refused(
        self,
        exc: ResourceExhausted,
        spec: JobSpec,
        dataset: DatasetRow,
        delta: float,
        actor: str,
    ) -> NoReturn:
        """Record a budget refusal (metric and audit log) and raise it."""
        self.runtime.metrics.budget_refusals.inc()
        # The refused transaction rolled back; the refusal itself is still on the record.
        with self.runtime.db.session() as s:
            audit.append(
                s,
                action="budget.refused",
                actor=actor,
                dataset_id=dataset.id,
                details={
                    "epsilon": spec.target_epsilon,
                    "delta": delta,
                    "epochs": spec.epochs,
                    "epsilon_remaining": exc.remaining,
                },
            )
        raise exc

    def _check_queued_limit(self, session: Session, tenant: str) -> None:
        """Refuse a new job while ``tenant`` has ``max_queued_jobs_per_tenant`` queued.

        Raises:
            Overloaded: With subject ``jobs/queued_per_tenant`` and a RetryInfo.
        """
        limit = self.runtime.settings.max_queued_jobs_per_tenant
        if limit <= 0:
            return
        queued = session.execute(
            select(func.count())
            .select_from(JobRow)
            .where(JobRow.tenant == tenant, JobRow.state == "QUEUED")
        ).scalar_one()
        if queued >= limit:
            raise Overloaded(
                f"too many queued training jobs: this tenant has {queued} waiting, the limit is "
                f"{limit}; retry when one has started, or cancel one",
                subject="jobs/queued_per_tenant",
                retry_after_s=QUEUED_LIMIT_RETRY_S,
            )

    @staticmethod
    def _lock_tenant(session: Session, tenant: str) -> None:
        """Serialise job admission and claims of one tenant until the transaction ends.

        A transaction-scoped advisory lock on PostgreSQL (replicas share the limits); on
        SQLite every write transaction is serialised already (``BEGIN IMMEDIATE``).
        """
        if session.get_bind().dialect.name != "postgresql":
            return
        key = int.from_bytes(hashlib.sha256(f"jobs/{tenant}".encode()).digest()[:8], "big")
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key - (1 << 63)})

    def _by_request(self, tenant: str, request_id: str, digest: str | None) -> JobRow | None:
        """The job an earlier request with this id created, if any.

        Raises:
            InvalidArgument: The id was used for a request with other parameters.
        """
        with self.runtime.db.session() as s:
            job = s.execute(
                select(JobRow).where(JobRow.tenant == tenant, JobRow.request_id == request_id)
            ).scalar_one_or_none()
        if job is not None:
            same_request(job.request_hash, digest or "")
        return job

    @staticmethod
    def _label_release(spec: JobSpec, dataset: DatasetRow, actor: str) -> dict[str, Any]:
        """How this job's label distribution will be released (stored on the job row).

        DP by default when the dataset has labels; nothing when it has none.
        """
        if dataset.labelled_count == 0:
            return {"mode": "none"}
        if spec.label_distribution == "public":
            return {
                "mode": "public",
                "declared_by": actor,
                "declared_weights": spec.public_label_weights or None,
            }
        share = spec.label_epsilon_share
        return {
            "mode": "dp",
            "epsilon_share": DEFAULT_LABEL_EPSILON_SHARE if share is None else share,
        }

    @staticmethod
    def _plan(
        config: DPConfig,
        n_records: int,
        label_share: float | None = None,
        *,
        is_active: Callable[[], bool] | None = None,
    ) -> DpSgdPlan:
        """Calibrate the job's noise multiplier now, so the ledger knows its event up front.

        Raises:
            FailedPrecondition: ε too small to reach with σ ≤ the cap for this data size and
                schedule (says what is reachable), or calibration took over
                :data:`PLANNING_TIME_LIMIT_S`.
            PlanningAbandoned: ``is_active`` turned False.
        """
        give_up_at = time.monotonic() + PLANNING_TIME_LIMIT_S

        def keep_going() -> bool:
            return (is_active is None or is_active()) and time.monotonic() < give_up_at

        try:
            return plan_dp_sgd(
                n_records=n_records,
                batch_size=config.batch_size,
                epochs=config.epochs,
                target_epsilon=config.target_epsilon,
                target_delta=config.target_delta,
                accountant=config.accountant,
                label_epsilon_share=label_share,
                keep_going=keep_going,
            )
        except PlanningAbandoned:
            if is_active is not None and not is_active():
                raise  # (nobody waits for an answer)
            raise FailedPrecondition(
                f"calibrating the noise for target_epsilon {config.target_epsilon:g} over "
                f"{config.epochs} epochs of {n_records} records took over "
                f"{PLANNING_TIME_LIMIT_S:g} s; lower target_epsilon or epochs"
            ) from None
        except UnreachableEpsilon as exc:
            raise FailedPrecondition(
                f"target_epsilon {config.target_epsilon:g} is out of reach: with n={n_records} "
                f"records, batch={expected_batch_size(n_records, config.batch_size)} (sample rate "
                f"{exc.sample_rate:.3g}) and epochs={config.epochs} ({exc.steps} noisy steps), "
                f"the smallest epsilon reachable at delta={config.target_delta:.3g} with noise "
                f"multiplier <= {MAX_NOISE_MULTIPLIER:g} is {exc.smallest_epsilon:.3g}"
                + (" (including the label distribution's release)" if label_share else "")
                + "; raise target_epsilon to at least that, lower epochs or the batch size, "
                "or train on more records"
            ) from None
        except ValueError:
            raise FailedPrecondition(
                "target_epsilon is too small to reach with any finite noise; raise it, lower "
                "epochs or the batch size, or train on more records"
            ) from None

    def cancel(self, job_id: str, *, actor: str = "anonymous") -> JobRow:
        """Stop a job; a queued one ends at once at no cost.

        A running job is charged what it consumed when its worker stops.

        Raises:
            NotFound: Unknown job.
        """
        with self.runtime.db.session() as s:
            job = self._locked(s, job_id)
            if job is None:
                raise NotFound(f"job 'jobs/{job_id}' not found")
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
                raise NotFound(f"job 'jobs/{job_id}' not found")
            return job

    # -- workers ----------------------------------------------------------------------------

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
                tenant: _aware(started)
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
        return _aware(beat) < now - self._lease

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

    def checkpoint_path(self, job_id: str) -> Path:
        """The job's resumable checkpoint, in its artifact dir."""
        return self.runtime.store.root / "jobs" / job_id / "checkpoint.pt"

    def _drop_checkpoint(self, job_id: str) -> None:
        """Remove an ended job's checkpoint (its final model, if any, is stored apart)."""
        path = self.checkpoint_path(job_id)
        path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # not empty (a failed write's temp file) or gone
            path.parent.rmdir()

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

    def _charge_full_reservation(self, session: Session, job: JobRow, *, error: str) -> None:
        """Fail a job whose progress after its last report is unknown, at the safe upper bound.

        Its noisy steps may have run to the end, so it is charged the whole reservation.
        """
        self._finish(
            session,
            job,
            state="FAILED",
            epsilon=job.target_epsilon,
            steps=job.planned_steps,
            note=f"{error}; charged the full reservation",
            error=error,
            label_released=True,
        )

    def _run_safely(
        self,
        job_id: str,
        resume: bool = False,
        *,
        claimed: tuple[JobRow, DatasetRow] | None = None,
    ) -> None:
        try:
            self._run(job_id, resume=resume, claimed=claimed)
        except Exception as exc:
            # Training itself reports its own failures; this is the store or the database
            # failing around it. Never leave the job RUNNING with its reservation held.
            log.error("training job %s crashed: %s", job_id, type(exc).__name__)
            with self.runtime.db.session() as s:
                job = self._locked(s, job_id)
                if job is None or job.state in TERMINAL_STATES or not self._owns(job):
                    return
                self._charge_full_reservation(
                    s, job, error=f"job failed after training: {type(exc).__name__}"
                )
            self._drop_checkpoint(job_id)
        finally:
            with self._lock:
                self._cancel.pop(job_id, None)
                self._training.discard(job_id)
                self._timed_out.discard(job_id)
                self._run_base_s.pop(job_id, None)
                closed = self._closed
            if not closed and self._pool is not None:
                # A worker is free, and the tenant of this job may have dropped below its
                # running limit: look at the queue again.
                self._wake_takers()

    def stop_event(self, job_id: str) -> threading.Event:
        """The event that stops ``job_id``'s run in this process (set on cancel or lost lease)."""
        with self._lock:
            return self._cancel.setdefault(job_id, threading.Event())

    def should_stop(self, job_id: str) -> Callable[[], bool]:
        """A ``should_stop`` for ``train_dp``: a stop event, a cancel, or the duration limit.

        Stops on this process's stop event, a cancel request, or the run passing
        ``max_job_seconds``. A cancel may come from another replica: the job's row is checked
        every 2 s. The duration counts from this call (the start of the run) plus what a
        resumed job had trained before.
        """
        event = self._cancel.get(job_id) or threading.Event()
        last_db_check = [time.monotonic()]
        limit_s = self.runtime.settings.max_job_seconds
        with self._lock:
            stop_at = time.monotonic() + limit_s - self._run_base_s.get(job_id, 0.0)

        def should_stop() -> bool:
            if event.is_set():
                return True
            now = time.monotonic()
            if limit_s > 0 and now >= stop_at:
                with self._lock:
                    self._timed_out.add(job_id)
                event.set()
                return True
            if now - last_db_check[0] > 2.0:  # a cancel may come from another replica
                last_db_check[0] = now
                with self.runtime.db.session() as s:
                    job = s.get(JobRow, job_id)
                    if job is not None and job.cancel_requested:
                        event.set()
            return event.is_set()

        return should_stop

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

    def _run(
        self,
        job_id: str,
        *,
        resume: bool = False,
        claimed: tuple[JobRow, DatasetRow] | None = None,
    ) -> None:
        runtime = self.runtime
        if claimed is None:
            claimed = self.claim(job_id, resume=resume)
        if claimed is None:
            return
        job, dataset = claimed
        if resume and job.cancel_requested:
            # Cancelled while no process ran it: the resumed run stops at its first check and
            # is charged the ε its checkpoint had reached.
            with self._lock:
                event = self._cancel.get(job_id)
            if event is not None:
                event.set()
        checkpoint = self._checkpointing(job_id, resume=resume)
        if not resume:
            self._drop_checkpoint(job_id)  # a fresh run never resumes someone else's state
        config = self.training_config(job, dataset)
        on_progress = self.progress_recorder(job_id)
        should_stop = self.should_stop(job_id)
        try:
            import torch

            torch.set_num_threads(runtime.settings.torch_threads)
            examples = self.load_examples(dataset)
            result = train_dp(
                examples,
                config=config,
                tokenizer=tokenizer_for_preset(job.preset),
                on_progress=on_progress,
                should_stop=should_stop,
                checkpoint=checkpoint,
            )
        except TrainingInterrupted as exc:
            self.end_interrupted(job_id, exc, checkpoint)
            return
        except Exception as exc:  # before the first noisy step of this run
            self.end_unstarted(job_id, exc, resume=resume)
            return
        self.end_succeeded(job, dataset, result)

    def training_config(self, job: JobRow, dataset: DatasetRow) -> DPConfig:
        """The DP-SGD run a job's reservation stands for.

        Exactly the σ the ledger reserved (its event is what the cap was checked on); jobs from
        before revision 0002 have none (None) and calibrate as they always did.
        """
        overrides: dict[str, Any] = {}
        if job.sample_rate:
            # The batch the ledger reserved for (q = batch / n), even if the preset's default
            # changed since the job was submitted.
            overrides["batch_size"] = max(1, round(job.sample_rate * dataset.record_count))
        if self.runtime.settings.max_physical_batch_size:
            overrides["max_physical_batch_size"] = self.runtime.settings.max_physical_batch_size
        return DPConfig.for_preset(
            job.preset,
            target_epsilon=job.target_epsilon,
            target_delta=job.delta,
            epochs=job.epochs,
            noise_multiplier=job.noise_multiplier,
            **overrides,
        )

    def progress_recorder(self, job_id: str) -> Callable[[Progress], None]:
        """A training progress callback that writes step, loss and ε to the job's row."""
        runtime = self.runtime
        last_step = 0

        def on_progress(p: Progress) -> None:
            nonlocal last_step
            runtime.metrics.training_steps.inc(max(0, p.step - last_step))
            last_step = p.step
            with runtime.db.session() as s:
                row = s.get(JobRow, job_id)
                if row is not None:
                    row.step, row.total_steps = p.step, p.total_steps
                    row.loss = p.loss if math.isfinite(p.loss) else 0.0
                    row.epsilon_spent, row.elapsed_seconds = p.epsilon, p.elapsed_s

        return on_progress

    def end_interrupted(
        self, job_id: str, exc: TrainingInterrupted, checkpoint: Checkpointing | None
    ) -> None:
        """Charge a stopped or failed run the accountant's ε (or suspend it for shutdown).

        A run stopped for passing ``max_job_seconds`` ends FAILED (nobody cancelled it, and it
        did not finish what was asked) with an error saying so; like a cancelled run it is
        charged the ε its steps consumed and keeps no model.
        """
        with self._lock:
            timed_out = job_id in self._timed_out
        if exc.cancelled and not timed_out and self._suspend(job_id, exc, checkpoint):
            return
        state = "CANCELLED" if exc.cancelled and not timed_out else "FAILED"
        error = "" if exc.cancelled else f"training failed: {type(exc.__cause__).__name__}"
        if timed_out:
            limit = self.runtime.settings.max_job_seconds
            error = f"stopped: exceeded the maximum job duration of {limit:g} s"
        if exc.__cause__ is not None:
            log.error("job %s failed: %s", job_id, type(exc.__cause__).__name__)
        with self.runtime.db.session() as s:
            row = self._locked(s, job_id)
            if row is None or not self._owns(row):
                return
            row.step, row.epsilon_spent = exc.steps, exc.epsilon_spent
            self._finish(
                s,
                row,
                state=state,
                epsilon=exc.epsilon_spent,
                steps=exc.steps,
                note=f"{state.lower()} after {exc.steps} steps; charged the accountant's ε",
                error=error,
            )
        self._drop_checkpoint(job_id)

    def end_unstarted(self, job_id: str, exc: Exception, *, resume: bool) -> None:
        """End a run that failed before its first noisy step."""
        log.error("job %s failed before training: %s", job_id, type(exc).__name__)
        with self.runtime.db.session() as s:
            row = self._locked(s, job_id)
            if row is None or not self._owns(row):
                return
            if resume:
                # The checkpoint could not be resumed (e.g. unreadable): what the dead run
                # took after it is unknown, so charge the safe upper bound.
                self._charge_full_reservation(
                    s, row, error=f"could not resume training: {type(exc).__name__}"
                )
            else:
                self._finish(
                    s,
                    row,
                    state="FAILED",
                    epsilon=0.0,
                    steps=0,
                    note="failed before any training step; nothing consumed",
                    error=f"training could not start: {type(exc).__name__}",
                )
        self._drop_checkpoint(job_id)

    def end_succeeded(self, job: JobRow, dataset: DatasetRow, result: TrainResult) -> None:
        """Store the model, release its label distribution and charge the ledger once."""
        runtime = self.runtime
        job_id = job.id
        path, digest = runtime.store.put("models", result.weights, suffix=".pt")
        card = dict(result.card)
        card["dataset"] = f"datasets/{dataset.id}"
        card["privacy_unit"] = dataset.privacy_unit
        epsilon_total = self._release_labels(job, result.examples, card, result.epsilon_spent)
        with runtime.db.session() as s:
            row = self._locked(s, job_id)
            model = s.get(ModelRow, job.model_id)
            assert model is not None
            if row is None or not self._owns(row):
                return  # (the stored weights stay unreferenced)
            model.state, model.card, model.model_config = "READY", card, result.model_config
            model.weights_path, model.weights_sha256 = path, digest
            row.epsilon_spent = epsilon_total
            row.step = row.total_steps = int(card["steps"])
            self._check_event(row, card)
            self._finish(
                s,
                row,
                state="SUCCEEDED",
                epsilon=epsilon_total,
                steps=int(card["steps"]),
                note=f"trained {card['steps']} steps; accountant {card['accountant']}"
                + ("; label distribution released with DP" if row.label_noise_multiplier else ""),
                label_released=True,
            )
        self._drop_checkpoint(job_id)

    def _checkpointing(self, job_id: str, *, resume: bool = False) -> Checkpointing | None:
        """The job's checkpoint policy from settings (None when both intervals are 0).

        A job being resumed always reads its checkpoint, even if this process has
        checkpointing off: restarting from scratch would discard the state its ε covers.
        """
        settings = self.runtime.settings
        if settings.checkpoint_every_s <= 0 and settings.checkpoint_every_steps <= 0:
            if resume:
                return Checkpointing(
                    path=self.checkpoint_path(job_id), every_s=0, every_steps=0, on_stop=False
                )
            return None
        return Checkpointing(
            path=self.checkpoint_path(job_id),
            every_s=settings.checkpoint_every_s,
            every_steps=settings.checkpoint_every_steps,
        )

    def _suspend(
        self, job_id: str, exc: TrainingInterrupted, checkpoint: Checkpointing | None
    ) -> bool:
        """Leave a job stopped by server shutdown RUNNING, to resume from its checkpoint.

        Only when the process is shutting down (not a user's cancel) and the stop saved a
        checkpoint. Nothing is committed: the reservation stays held and the next process
        with workers resumes the job (:meth:`recover`), which then charges it once.
        """
        with self._lock:
            closing = self._closed
        if not closing or checkpoint is None or not checkpoint.path.exists():
            return False
        with self.runtime.db.session() as s:
            row = self._locked(s, job_id)
            if row is None or row.cancel_requested or not self._owns(row):
                return False
            row.step, row.epsilon_spent = exc.steps, exc.epsilon_spent
        log.info("job %s suspended at step %d for shutdown; resumes on restart", job_id, exc.steps)
        return True

    def load_examples(self, dataset: DatasetRow) -> list[Example]:
        """The dataset's scrubbed records, checked against the shard's content hash."""
        data = self.runtime.store.get(dataset.shard_path, sha256=dataset.content_sha256)
        examples = []
        for line in data.splitlines():
            if line.strip():
                obj = json.loads(line)
                examples.append(
                    Example(text=obj["text"], label=obj.get("label"), user=obj.get("user"))
                )
        return examples

    @staticmethod
    def _release_labels(
        job: JobRow, examples: list[Example], card: dict[str, Any], epsilon_sgd: float
    ) -> float:
        """Release the label distribution as the job planned; put it on ``card``.

        ``examples`` are the records training used (after its secret choice of one record per
        user, so the counts have the per-user sensitivity the card states); the shard is not
        read again.
        Runs once training succeeded (a failed job releases no labels and is not charged for
        them). Returns the job's ε: DP-SGD and, for a DP release, the Gaussian release composed.
        """
        release = job.label_release or {"mode": "none"}
        mode = str(release.get("mode", "none"))
        info: dict[str, Any] = {"source": mode, "distribution": {}}
        epsilon = epsilon_sgd
        if mode != "none":
            # With user ids, the per-user bound training applied (on the card) is the L2
            # sensitivity of the count vector; else one record.
            per_user = int(card.get("records_per_user_cap") or 1)
            names = [e.label for e in examples]
            if mode == "dp" and job.label_noise_multiplier is not None:
                sensitivity = float(per_user)
                released = labels.release_dp(
                    names,
                    noise_multiplier=job.label_noise_multiplier,
                    sensitivity=sensitivity,
                    delta=job.delta,
                )
                epsilon = job_epsilon(
                    noise_multiplier=float(card.get("noise_multiplier", 0.0)),
                    sample_rate=float(card.get("sample_rate", 0.0)),
                    steps=int(card.get("steps", 0)),
                    delta=job.delta,
                    accountant=str(card.get("accountant", "prv")),
                    label_noise_multiplier=job.label_noise_multiplier,
                )
                info.update(
                    released,
                    epsilon_share=release.get("epsilon_share"),
                    noise_multiplier=job.label_noise_multiplier,
                    sensitivity=sensitivity,
                    note=(
                        "released with DP: Gaussian noise on per-label counts (std "
                        f"{released['noise_std']:.3g}), only labels with noisy count >= "
                        f"{released['threshold']:.1f} released, clipped at 0 and normalised; "
                        "charged to this model's epsilon"
                    ),
                )
            elif mode == "public":
                declared = release.get("declared_weights") or None
                info["distribution"] = labels.public_distribution(names, declared=declared)
                info["declared_by"] = release.get("declared_by", "")
                info["note"] = (
                    f"declared public by {release.get('declared_by', '')}"
                    + (" (weights given)" if declared else " (the dataset's label frequencies)")
                    + "; no epsilon spent on it"
                )
        card["label_distribution"] = info
        card["epsilon_dp_sgd"] = epsilon_sgd
        card["epsilon"] = epsilon
        return epsilon

    @staticmethod
    def _check_event(job: JobRow, card: dict[str, Any]) -> None:
        """Make the ledger record the event that actually ran.

        With the σ override the trained σ and q equal the reserved ones; if they ever differ
        (a model-code change), the commit records what ran, and the discrepancy is logged.
        """
        sigma, q = float(card.get("noise_multiplier", 0.0)), float(card.get("sample_rate", 0.0))
        if job.noise_multiplier is None or job.sample_rate is None:
            job.noise_multiplier, job.sample_rate = sigma, q
            return
        if not (
            math.isclose(sigma, job.noise_multiplier, rel_tol=1e-9)
            and math.isclose(q, job.sample_rate, rel_tol=1e-9)
        ):
            log.warning(
                "job %s trained with sigma=%.6g q=%.6g, reserved sigma=%.6g q=%.6g; "
                "charging what ran",
                job.id,
                sigma,
                q,
                job.noise_multiplier,
                job.sample_rate,
            )
            job.noise_multiplier, job.sample_rate = sigma, q

    def _finish(
        self,
        session: Session,
        job: JobRow,
        *,
        state: str,
        epsilon: float,
        steps: int | None,
        note: str,
        error: str = "",
        label_released: bool = False,
    ) -> None:
        job.state = state
        job.ended_at = utcnow()
        job.error_message = error
        job.steps_taken = steps
        if state != "SUCCEEDED":
            model = session.get(ModelRow, job.model_id)
            if model is not None:
                model.state = "FAILED"
        ledger.commit(
            session,
            job.dataset_id,
            job_id=job.id,
            epsilon_spent=epsilon,
            delta=job.delta,
            reserved_epsilon=job.target_epsilon,
            reserved_delta=job.delta,
            note=note,
            steps=steps,
            noise_multiplier=job.noise_multiplier,
            sample_rate=job.sample_rate,
            outcome=state,
            label_noise_multiplier=job.label_noise_multiplier if label_released else None,
        )
        self.runtime.metrics.training_jobs.labels(state=state.lower()).inc()
        self.runtime.metrics.epsilon_committed.inc(epsilon)
