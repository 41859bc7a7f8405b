"""Training servicer over :class:`privsynth.server.jobs.runner.JobRunner`."""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
from privsynth.client.pb import training_pb2, training_pb2_grpc
from privsynth.server.api.auth import Identity, identity_of
from privsynth.server.api.names import parse_name
from privsynth.server.api.services.convert import job_pb
from privsynth.server.api.services.datasets import get_live_dataset
from privsynth.server.api.services.paging import paginate
from privsynth.server.db import JobRow
from privsynth.server.errors import NotFound, Reason
from privsynth.server.jobs.runner import TERMINAL_STATES, JobRunner, JobSpec
from privsynth.server.runtime import Runtime
from sqlalchemy import select

__all__ = ["TrainingServicer"]

_LABEL_MODES = {
    training_pb2.LABEL_DISTRIBUTION_UNSPECIFIED: "",
    training_pb2.LABEL_DISTRIBUTION_DP: "dp",
    training_pb2.LABEL_DISTRIBUTION_PUBLIC: "public",
}

WATCH_POLL_SECONDS = 0.25
WATCH_HEARTBEAT_SECONDS = 5.0


class TrainingServicer(training_pb2_grpc.TrainingServicer):
    """privsynth.v1.Training."""

    def __init__(self, runtime: Runtime, runner: JobRunner) -> None:
        self.runtime = runtime
        self.runner = runner

    def _visible_job(self, name: str, identity: Identity) -> JobRow:
        """The job named ``name`` if the caller's tenant owns it (else NOT_FOUND)."""
        job_id = parse_name("jobs", name, field="name")
        try:
            row = self.runner.get(job_id)
        except NotFound:
            row = None
        if row is None or not identity.sees(row.tenant):
            raise NotFound(f"job 'jobs/{job_id}' not found", reason=Reason.JOB_NOT_FOUND)
        return row

    def CreateTrainingJob(  # noqa: N802
        self, request: training_pb2.CreateTrainingJobRequest, context: grpc.ServicerContext
    ) -> training_pb2.TrainingJob:
        """Reserve budget and queue a job."""
        self.runtime.require_ready()
        identity = identity_of(context)
        get_live_dataset(self.runtime, request.dataset, identity=identity, field="dataset")
        spec = JobSpec(
            dataset_id=parse_name("datasets", request.dataset, field="dataset"),
            target_epsilon=request.target_epsilon,
            delta=request.delta if request.HasField("delta") else None,
            epochs=request.epochs if request.HasField("epochs") else None,
            preset=request.preset,
            label_distribution=_LABEL_MODES.get(request.label_distribution, "unknown"),
            label_epsilon_share=(
                request.label_epsilon_share if request.HasField("label_epsilon_share") else None
            ),
            public_label_weights=dict(request.public_label_weights),
            distributed=request.distributed,
            request_id=request.request_id,
            holdout_fraction=(
                request.holdout_fraction if request.HasField("holdout_fraction") else None
            ),
            label_prompt=request.label_prompt if request.HasField("label_prompt") else None,
        )
        # Calibration stops once the caller has gone (cancelled, or past its deadline).
        job = self.runner.create(spec, actor=identity.name, is_active=context.is_active)
        return job_pb(job)

    def GetTrainingJob(  # noqa: N802
        self, request: training_pb2.GetTrainingJobRequest, context: grpc.ServicerContext
    ) -> training_pb2.TrainingJob:
        """One job."""
        identity = identity_of(context)
        return job_pb(self._visible_job(request.name, identity), show_loss=_owner(identity))

    def ListTrainingJobs(  # noqa: N802
        self, request: training_pb2.ListTrainingJobsRequest, context: grpc.ServicerContext
    ) -> training_pb2.ListTrainingJobsResponse:
        """Jobs, newest first, optionally of one dataset."""
        query = select(JobRow)
        identity = identity_of(context)
        scope = identity.tenant_scope
        if scope is not None:
            query = query.where(JobRow.tenant == scope)
        if request.dataset:
            query = query.where(
                JobRow.dataset_id == parse_name("datasets", request.dataset, field="dataset")
            )
        with self.runtime.db.session() as s:
            rows, token = paginate(
                s,
                query,
                order=[(JobRow.created_at, True), (JobRow.id, False)],
                page_size=request.page_size,
                page_token=request.page_token,
                scope=f"ListTrainingJobs|{scope}|{request.dataset}",
            )
        return training_pb2.ListTrainingJobsResponse(
            jobs=[job_pb(r, show_loss=_owner(identity)) for r in rows], next_page_token=token
        )

    def CancelTrainingJob(  # noqa: N802
        self, request: training_pb2.CancelTrainingJobRequest, context: grpc.ServicerContext
    ) -> training_pb2.TrainingJob:
        """Ask a job to stop."""
        identity = identity_of(context)
        job = self._visible_job(request.name, identity)
        return job_pb(self.runner.cancel(job.id, actor=identity.name))

    def WatchTrainingJob(  # noqa: N802
        self, request: training_pb2.WatchTrainingJobRequest, context: grpc.ServicerContext
    ) -> Iterator[training_pb2.TrainingJobEvent]:
        """Stream the job whenever it changes (and every few seconds) until it ends."""
        identity = identity_of(context)
        job_id = self._visible_job(request.name, identity).id
        last: tuple[str, int] | None = None
        last_sent = 0.0
        while context.is_active():
            row = self.runner.get(job_id)
            key = (row.state, row.step)
            now = time.monotonic()
            if key != last or now - last_sent >= WATCH_HEARTBEAT_SECONDS:
                yield training_pb2.TrainingJobEvent(job=job_pb(row, show_loss=_owner(identity)))
                last, last_sent = key, now
            if row.state in TERMINAL_STATES:
                return
            time.sleep(WATCH_POLL_SECONDS)


def _owner(identity: Identity) -> bool:
    """Whether ``identity`` belongs to the tenant that owns the data (sees the raw loss)."""
    return identity.tenant_scope is not None
