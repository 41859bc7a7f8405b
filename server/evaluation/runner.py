"""Quality reports as jobs: EvaluateModel creates one, a worker computes it, anyone may watch.

An evaluation is a database row (``evaluations``) that outlives the request that made it; a
worker thread of the process that accepted it samples the model, computes the report
(:func:`~privsynth.server.evaluation.report.build_report`) and stores it as a content-hashed
JSON artifact. Its progress (stage, stages done) is on the row for WatchEvaluation; a cancel
sets a flag the worker checks between steps. An evaluation is not resumed: if its process stops
(no heartbeat for :data:`STALE_AFTER_S`), the next reader marks it FAILED and the caller runs
it again — it spends no privacy budget, only time.

Every evaluation reads the training records and the holdout again, which the model's DP
guarantee does not cover: it is recorded in the audit log (``evaluation.read_private_data``)
before any record is read, and the report says which measurements read what.

On request an evaluation also runs the canary audit of the model's training mechanism
(:mod:`.canary`) on the server's :class:`~privsynth.server.privacy.empirical_audit.PrivacyAuditor`
(shared with the Privacy service, so audits run one at a time). The request flag lives with the
queued work, not on the row: an evaluation is never resumed, so nothing needs to read it later.
"""

from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from privsynth.server.db import (
    EvaluationRow,
    ModelRow,
    as_utc,
    lock_until_commit,
    new_id,
    utcnow,
)
from privsynth.server.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Reason,
)
from privsynth.server.evaluation import canary
from privsynth.server.evaluation import report as report_module
from privsynth.server.evaluation.control import EvaluationStopped
from privsynth.server.evaluation.gather import gather, missing_holdout_message, tools
from privsynth.server.evaluation.page import render
from privsynth.server.logs import log_event
from privsynth.server.privacy import audit
from privsynth.server.privacy.empirical_audit import PrivacyAuditor, model_audit_config
from privsynth.server.queue_limits import refuse_new_work
from privsynth.server.runtime import Runtime
from sqlalchemy.orm import Session

__all__ = [
    "DEFAULT_SAMPLES",
    "MAX_SAMPLES",
    "MIN_SAMPLES",
    "STALE_AFTER_S",
    "TERMINAL",
    "EvaluationRunner",
    "Report",
]

log = logging.getLogger(__name__)

MIN_SAMPLES = 100
MAX_SAMPLES = 5000
DEFAULT_SAMPLES = 1000
"""Synthetic records drawn when the request gives no ``sample_count``."""

TERMINAL = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})
HEARTBEAT_S = 15.0
STALE_AFTER_S = 120.0
STAGES = ("sampling", *report_module.STAGES)


@dataclass(frozen=True)
class Report:
    """A finished report as a caller may see it."""

    view: str
    """``owner`` (the full report) or ``auditor`` (counts and scores only)."""
    json: str
    html: str


class EvaluationRunner:
    """Creates, runs, cancels and serves quality-report jobs; owns their worker threads.

    Args:
        runtime: The server's runtime.
        auditor: Runs canary audits (the Privacy service's, so that audits queue behind each
            other); by default one of its own.
    """

    def __init__(self, runtime: Runtime, *, auditor: PrivacyAuditor | None = None) -> None:
        self.runtime = runtime
        self._auditor = auditor or PrivacyAuditor(torch_threads=runtime.settings.torch_threads)
        workers = runtime.settings.evaluation_workers
        self._pool = (
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="evaluate")
            if workers > 0
            else None
        )
        self._worker = runtime.settings.worker_id
        self._held: set[str] = set()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._renewer = threading.Thread(target=self._renew, name="evaluate-heartbeat", daemon=True)
        self._renewer.start()
        self._fail_own_leftovers()

    # -- requests -----------------------------------------------------------------------------

    def _check_tenant_limits(self, session: Session, tenant: str) -> None:
        """Refuse a new evaluation over the tenant's queued or hourly limit.

        Raises:
            Overloaded: With subject ``evaluations/queued_per_tenant`` (or
                ``evaluations/created_per_hour``) and a RetryInfo.
        """
        settings = self.runtime.settings
        refuse_new_work(
            session,
            EvaluationRow,
            tenant=tenant,
            queued_limit=settings.max_queued_evaluations_per_tenant,
            hourly_limit=settings.max_creations_per_tenant_per_hour,
            what="evaluations",
            kind="evaluations",
            reason=Reason.TOO_MANY_QUEUED_EVALUATIONS,
            retry_after_s=30.0,
        )

    def create(
        self,
        model_id: str,
        *,
        sample_count: int = 0,
        canary_audit: bool = False,
        actor: str = "anonymous",
        tenant: str | None = None,
    ) -> EvaluationRow:
        """Check the model and queue its evaluation.

        Args:
            model_id: The model to evaluate.
            sample_count: Synthetic records to draw; 0 means :data:`DEFAULT_SAMPLES`.
            canary_audit: Also run the canary audit of the model's training mechanism.
            actor: Who asks (for the audit log).
            tenant: Only a model of this tenant may be evaluated (None: any).

        Raises:
            InvalidArgument: ``sample_count`` outside [MIN_SAMPLES, MAX_SAMPLES].
            NotFound: Unknown, hidden or deleted model.
            FailedPrecondition: The model is not READY, has no holdout, this server
                computes no evaluations, or ``canary_audit`` is asked of a model whose
                training cannot be audited (reason CANARY_AUDIT_UNAVAILABLE).
            Overloaded: The tenant has ``max_queued_evaluations_per_tenant`` evaluations queued
                (checked under a per-tenant lock, so concurrent requests cannot pass it).
        """
        count = sample_count or DEFAULT_SAMPLES
        if not (MIN_SAMPLES <= count <= MAX_SAMPLES):
            raise InvalidArgument(
                f"sample_count must lie in {MIN_SAMPLES}..{MAX_SAMPLES} (0: {DEFAULT_SAMPLES})",
                field="sample_count",
            )
        with self.runtime.db.session() as s:
            model = s.get(ModelRow, model_id)
            if model is None or model.state == "DELETED" or (tenant and model.tenant != tenant):
                raise NotFound(
                    f"model 'models/{model_id}' not found", reason=Reason.MODEL_NOT_FOUND
                )
            if model.state != "READY":
                raise FailedPrecondition(
                    f"model 'models/{model_id}' is {model.state.lower()}: only a trained model "
                    "can be evaluated",
                    reason=Reason.MODEL_TRAINING
                    if model.state == "TRAINING"
                    else Reason.MODEL_NOT_READY,
                )
            if not float((model.card.get("holdout") or {}).get("fraction") or 0.0):
                raise FailedPrecondition(
                    missing_holdout_message(model), reason=Reason.MODEL_HAS_NO_HOLDOUT
                )
            if canary_audit:
                model_audit_config(model.card, model=f"models/{model_id}")
            if self._pool is None:
                raise FailedPrecondition(
                    "this server computes no evaluations (evaluation_workers is 0)"
                )
            lock_until_commit(s, f"evaluations/{model.tenant}")
            self._check_tenant_limits(s, model.tenant)
            row = EvaluationRow(
                id=new_id(),
                model_id=model.id,
                dataset_id=model.dataset_id,
                tenant=model.tenant,
                state="QUEUED",
                sample_count=count,
                stage="",
                stages_done=0,
                stages_total=len(STAGES) + (1 if canary_audit else 0),
                created_at=utcnow(),
                heartbeat_at=utcnow(),
                worker=self._worker,
                cancel_requested=False,
                error_message="",
                report_path="",
                report_sha256="",
                actor=actor,
            )
            s.add(row)
            # Before any record is read: the evaluation re-reads private data, which the
            # model's DP guarantee does not cover.
            audit.append(
                s,
                action="evaluation.read_private_data",
                actor=actor,
                dataset_id=model.dataset_id,
                details={
                    "evaluation": f"evaluations/{row.id}",
                    "model": f"models/{model.id}",
                    "reads": ["training records", "holdout records"],
                    "covered_by_dp": False,
                    "sample_count": count,
                    "canary_audit": canary_audit,
                },
            )
        log_event(
            log,
            "evaluation.created",
            evaluation_id=row.id,
            model_id=row.model_id,
            dataset_id=row.dataset_id,
            tenant=row.tenant,
            samples=count,
            canary_audit=canary_audit,
        )
        with self._lock:
            self._held.add(row.id)
        self._pool.submit(self._run_safely, row.id, canary_audit)
        return row

    def get(self, evaluation_id: str, *, tenant: str | None = None) -> EvaluationRow:
        """The evaluation's row; one whose process stopped is failed first.

        Raises:
            NotFound: Unknown (or another tenant's) evaluation.
        """
        with self.runtime.db.session() as s:
            row = self._locked(s, evaluation_id, tenant)
            if row.state not in TERMINAL and self._stale(row):
                row.state, row.ended_at = "FAILED", utcnow()
                row.error_message = (
                    "the server computing this evaluation stopped; run EvaluateModel again"
                )
            return row

    def cancel(self, evaluation_id: str, *, tenant: str | None = None) -> EvaluationRow:
        """Ask an evaluation to stop; a queued one ends at once. An ended one is unchanged.

        Raises:
            NotFound: Unknown (or another tenant's) evaluation.
        """
        with self.runtime.db.session() as s:
            row = self._locked(s, evaluation_id, tenant)
            if row.state not in TERMINAL:
                row.cancel_requested = True
                if row.state == "QUEUED":
                    row.state, row.ended_at = "CANCELLED", utcnow()
        return self.get(evaluation_id, tenant=tenant)

    def report(
        self, evaluation_id: str, *, tenant: str | None = None, auditor: bool = False
    ) -> Report:
        """The stored report, as JSON and as the HTML page, in the caller's view.

        Raises:
            NotFound: Unknown (or another tenant's) evaluation.
            FailedPrecondition: It has not succeeded (yet).
        """
        row = self.get(evaluation_id, tenant=tenant)
        if row.state != "SUCCEEDED":
            raise FailedPrecondition(
                f"evaluation 'evaluations/{evaluation_id}' is {row.state.lower()}: its report "
                "exists once it has succeeded",
                reason=Reason.EVALUATION_NOT_DONE,
            )
        data: dict[str, Any] = json.loads(
            self.runtime.store.get(row.report_path, sha256=row.report_sha256)
        )
        if auditor:
            data = report_module.auditor_view(data)
        return Report(
            view="auditor" if auditor else "owner",
            json=json.dumps(data, ensure_ascii=False, indent=1),
            html=render(data),
        )

    def shutdown(self) -> None:
        """Stop taking work; unfinished evaluations end FAILED.

        A running one stops at its next check; nobody waits for it (a report is cheap to
        compute again).
        """
        self._closed.set()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            left = set(self._held)
        for evaluation_id in left:
            self._end(evaluation_id, "FAILED", error="the server shut down; run it again")

    # -- work ---------------------------------------------------------------------------------

    @staticmethod
    def _locked(session: Session, evaluation_id: str, tenant: str | None) -> EvaluationRow:
        """The evaluation's row, locked for update, if ``tenant`` (when given) owns it.

        Raises:
            NotFound: Unknown, or another tenant's.
        """
        row = session.get(EvaluationRow, evaluation_id, with_for_update=True)
        if row is None or (tenant and row.tenant != tenant):
            raise NotFound(
                f"evaluation 'evaluations/{evaluation_id}' not found",
                reason=Reason.EVALUATION_NOT_FOUND,
            )
        return row

    def _stale(self, row: EvaluationRow) -> bool:
        with self._lock:
            if row.id in self._held:
                return False
        beat = row.heartbeat_at or row.created_at
        return utcnow() - as_utc(beat) > timedelta(seconds=STALE_AFTER_S)

    def _should_stop(self, evaluation_id: str) -> Any:
        def should_stop() -> bool:
            if self._closed.is_set():
                return True
            with self.runtime.db.session() as s:
                row = s.get(EvaluationRow, evaluation_id)
                return row is None or row.cancel_requested

        return should_stop

    def _progress(self, evaluation_id: str, stage: str, done: int) -> None:
        with self.runtime.db.session() as s:
            row = s.get(EvaluationRow, evaluation_id)
            if row is not None:
                row.stage, row.stages_done, row.heartbeat_at = stage, done, utcnow()

    def _start(self, evaluation_id: str) -> EvaluationRow | None:
        with self.runtime.db.session() as s:
            row = s.get(EvaluationRow, evaluation_id, with_for_update=True)
            if row is None or row.state != "QUEUED":
                return None
            row.state, row.started_at, row.heartbeat_at = "RUNNING", utcnow(), utcnow()
            return row

    def _run_safely(self, evaluation_id: str, canary_audit: bool = False) -> None:
        try:
            self._run(evaluation_id, canary_audit=canary_audit)
        except EvaluationStopped:
            state = "FAILED" if self._closed.is_set() else "CANCELLED"
            error = "the server shut down; run it again" if self._closed.is_set() else ""
            self._end(evaluation_id, state, error=error)
        except FailedPrecondition as exc:
            self._end(evaluation_id, "FAILED", error=str(exc))
        except Exception as exc:
            # Only the exception's type: a message could quote a record.
            log.error("evaluation %s failed: %s", evaluation_id, type(exc).__name__)
            self._end(evaluation_id, "FAILED", error=f"evaluation failed: {type(exc).__name__}")
        finally:
            with self._lock:
                self._held.discard(evaluation_id)

    def _run(self, evaluation_id: str, *, canary_audit: bool) -> None:
        row = self._start(evaluation_id)
        if row is None:
            return
        log_event(log, "evaluation.started", evaluation_id=evaluation_id, model_id=row.model_id)
        import torch

        torch.set_num_threads(self.runtime.settings.torch_threads)
        should_stop = self._should_stop(evaluation_id)
        with self.runtime.db.session() as s:
            model = s.get(ModelRow, row.model_id)
        if model is None or model.state != "READY":
            raise FailedPrecondition("the model was deleted before its evaluation started")
        self._progress(evaluation_id, STAGES[0], 0)
        gathered = gather(
            self.runtime, model, sample_count=row.sample_count, should_stop=should_stop
        )
        audit_of_model = canary.for_model(
            model.card,
            model=f"models/{model.id}",
            requested=canary_audit,
            auditor=self._auditor,
        )
        result = report_module.build_report(
            gathered.inputs,
            replace(tools(self.runtime, gathered), canary_audit=audit_of_model),
            should_stop=should_stop,
            on_progress=lambda stage, i, _n: self._progress(evaluation_id, stage, i + 1),
        )
        result["evaluation"] = f"evaluations/{evaluation_id}"
        data = json.dumps(result, ensure_ascii=False, sort_keys=True).encode("utf-8")
        path, digest = self.runtime.store.put("reports", data, suffix=".json")
        self._end(evaluation_id, "SUCCEEDED", report=(path, digest))

    def _end(
        self,
        evaluation_id: str,
        state: str,
        *,
        error: str = "",
        report: tuple[str, str] | None = None,
    ) -> None:
        with self.runtime.db.session() as s:
            row = s.get(EvaluationRow, evaluation_id, with_for_update=True)
            if row is None or row.state in TERMINAL:
                return
            row.state, row.ended_at, row.error_message = state, utcnow(), error
            if report is not None:
                row.report_path, row.report_sha256 = report
                row.stages_done = row.stages_total
            started, ended, model_id = row.started_at, row.ended_at, row.model_id
        self.runtime.metrics.observe_job("evaluation", state, started, ended)
        log_event(
            log,
            f"evaluation.{state.lower()}",
            evaluation_id=evaluation_id,
            model_id=model_id,
        )

    def _renew(self) -> None:
        while not self._closed.wait(HEARTBEAT_S):
            with self._lock:
                held = list(self._held)
            if not held:
                continue
            try:
                with self.runtime.db.session() as s:
                    for evaluation_id in held:
                        row = s.get(EvaluationRow, evaluation_id)
                        if row is not None and row.state not in TERMINAL:
                            row.heartbeat_at = utcnow()
            except Exception as exc:  # the database may be briefly away; try again later
                log.warning("evaluation heartbeat failed: %s", type(exc).__name__)

    def _fail_own_leftovers(self) -> None:
        """Evaluations this worker name left unfinished died with its previous process."""
        with self.runtime.db.session() as s:
            rows = s.query(EvaluationRow).filter(
                EvaluationRow.worker == self._worker, EvaluationRow.state.in_(("QUEUED", "RUNNING"))
            )
            for row in rows:
                row.state, row.ended_at = "FAILED", utcnow()
                row.error_message = "the server computing this evaluation restarted; run it again"
