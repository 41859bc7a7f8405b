"""Evaluations servicer: quality reports as jobs, over :class:`EvaluationRunner`."""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
from privsynth.client.pb import evaluation_pb2, evaluation_pb2_grpc
from privsynth.server.api.auth import identity_of
from privsynth.server.api.names import parse_name
from privsynth.server.api.services.convert import timestamp
from privsynth.server.db import EvaluationRow
from privsynth.server.evaluation.runner import TERMINAL, EvaluationRunner
from privsynth.server.runtime import Runtime

__all__ = ["EvaluationsServicer", "evaluation_pb"]

WATCH_POLL_SECONDS = 0.5
WATCH_HEARTBEAT_SECONDS = 5.0

_STATES = {
    "QUEUED": evaluation_pb2.EVALUATION_STATE_QUEUED,
    "RUNNING": evaluation_pb2.EVALUATION_STATE_RUNNING,
    "SUCCEEDED": evaluation_pb2.EVALUATION_STATE_SUCCEEDED,
    "FAILED": evaluation_pb2.EVALUATION_STATE_FAILED,
    "CANCELLED": evaluation_pb2.EVALUATION_STATE_CANCELLED,
}


def evaluation_pb(row: EvaluationRow) -> evaluation_pb2.Evaluation:
    """An evaluation resource."""
    return evaluation_pb2.Evaluation(
        name=f"evaluations/{row.id}",
        model=f"models/{row.model_id}",
        state=_STATES.get(row.state, evaluation_pb2.EVALUATION_STATE_UNSPECIFIED),
        sample_count=row.sample_count,
        stage=row.stage,
        stages_done=row.stages_done,
        stages_total=row.stages_total,
        create_time=timestamp(row.created_at),
        start_time=timestamp(row.started_at),
        end_time=timestamp(row.ended_at),
        error_message=row.error_message,
        reads_private_data=True,
    )


class EvaluationsServicer(evaluation_pb2_grpc.EvaluationsServicer):
    """privsynth.v1.Evaluations."""

    def __init__(self, runtime: Runtime, runner: EvaluationRunner) -> None:
        self.runtime = runtime
        self.runner = runner

    def EvaluateModel(  # noqa: N802
        self, request: evaluation_pb2.EvaluateModelRequest, context: grpc.ServicerContext
    ) -> evaluation_pb2.Evaluation:
        """Check the model and queue its quality report."""
        self.runtime.require_ready()
        identity = identity_of(context)
        model_id = parse_name("models", request.model, field="model")
        row = self.runner.create(
            model_id,
            sample_count=request.sample_count,
            canary_audit=request.canary_audit,
            actor=identity.name,
            tenant=identity.tenant_scope,
        )
        return evaluation_pb(row)

    def GetEvaluation(  # noqa: N802
        self, request: evaluation_pb2.GetEvaluationRequest, context: grpc.ServicerContext
    ) -> evaluation_pb2.Evaluation:
        """One evaluation."""
        evaluation_id = parse_name("evaluations", request.name, field="name")
        return evaluation_pb(
            self.runner.get(evaluation_id, tenant=identity_of(context).tenant_scope)
        )

    def CancelEvaluation(  # noqa: N802
        self, request: evaluation_pb2.CancelEvaluationRequest, context: grpc.ServicerContext
    ) -> evaluation_pb2.Evaluation:
        """Ask an evaluation to stop."""
        evaluation_id = parse_name("evaluations", request.name, field="name")
        return evaluation_pb(
            self.runner.cancel(evaluation_id, tenant=identity_of(context).tenant_scope)
        )

    def WatchEvaluation(  # noqa: N802
        self, request: evaluation_pb2.WatchEvaluationRequest, context: grpc.ServicerContext
    ) -> Iterator[evaluation_pb2.EvaluationEvent]:
        """Stream the evaluation whenever it changes (and every few seconds) until it ends."""
        evaluation_id = parse_name("evaluations", request.name, field="name")
        tenant = identity_of(context).tenant_scope
        last: tuple[str, int] | None = None
        last_sent = 0.0
        while context.is_active():
            row = self.runner.get(evaluation_id, tenant=tenant)
            key = (row.state, row.stages_done)
            now = time.monotonic()
            if key != last or now - last_sent >= WATCH_HEARTBEAT_SECONDS:
                yield evaluation_pb2.EvaluationEvent(evaluation=evaluation_pb(row))
                last, last_sent = key, now
            if row.state in TERMINAL:
                return
            time.sleep(WATCH_POLL_SECONDS)

    def GetEvaluationReport(  # noqa: N802
        self, request: evaluation_pb2.GetEvaluationReportRequest, context: grpc.ServicerContext
    ) -> evaluation_pb2.EvaluationReport:
        """The report: the full one for the model's tenant, counts and scores for auditors."""
        evaluation_id = parse_name("evaluations", request.name, field="name")
        tenant = identity_of(context).tenant_scope
        report = self.runner.report(evaluation_id, tenant=tenant, auditor=tenant is None)
        return evaluation_pb2.EvaluationReport(
            name=f"evaluations/{evaluation_id}",
            view=report.view,
            json=report.json,
            html=report.html,
        )
