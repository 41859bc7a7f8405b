"""The state a job runner's parts share (see :mod:`privsynth.server.jobs.runner`)."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

from privsynth.models.dp_train import (
    Checkpointing,
    Example,
    TrainingInterrupted,
    TrainResult,
)
from privsynth.server.db import DatasetRow, JobRow
from privsynth.server.privacy import holdout
from privsynth.server.runtime import Runtime
from sqlalchemy.orm import Session


class RunnerState(ABC):
    """The state every part of the runner shares, and the parts' signatures.

    :class:`~privsynth.server.jobs.runner.JobRunner` combines one mixin per concern (create,
    queue, execution, endings) over this state; the abstract methods below name what one part
    calls in another (each implemented by its own part), so each module type-checks alone.
    """

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

    @abstractmethod
    def _charge_full_reservation(self, session: Session, job: JobRow, *, error: str) -> None:
        """Defined in :mod:`privsynth.server.jobs.endings`."""

    @abstractmethod
    def _drop_checkpoint(self, job_id: str) -> None:
        """Defined in :mod:`privsynth.server.jobs.execution`."""

    @abstractmethod
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
        """Defined in :mod:`privsynth.server.jobs.endings`."""

    @abstractmethod
    def holdout_split(self, job: JobRow, examples: list[Example]) -> holdout.Split:
        """Defined in :mod:`privsynth.server.jobs.execution`."""

    @abstractmethod
    def _lease_expired(self, job: JobRow, now: datetime) -> bool:
        """Defined in :mod:`privsynth.server.jobs.queue`."""

    @staticmethod
    @abstractmethod
    def _lock_tenant(session: Session, tenant: str) -> None:
        """Defined in :mod:`privsynth.server.jobs.create`."""

    @staticmethod
    @abstractmethod
    def _locked(session: Session, job_id: str) -> JobRow | None:
        """Defined in :mod:`privsynth.server.jobs.queue`."""

    @abstractmethod
    def _owns(self, job: JobRow) -> bool:
        """Defined in :mod:`privsynth.server.jobs.queue`."""

    @abstractmethod
    def _run_safely(
        self,
        job_id: str,
        resume: bool = False,
        *,
        claimed: tuple[JobRow, DatasetRow] | None = None,
    ) -> None:
        """Defined in :mod:`privsynth.server.jobs.execution`."""

    @abstractmethod
    def _suspend(
        self, job_id: str, exc: TrainingInterrupted, checkpoint: Checkpointing | None
    ) -> bool:
        """Defined in :mod:`privsynth.server.jobs.execution`."""

    @abstractmethod
    def _wake_takers(self) -> None:
        """Defined in :mod:`privsynth.server.jobs.queue`."""

    @abstractmethod
    def checkpoint_path(self, job_id: str) -> Path:
        """Defined in :mod:`privsynth.server.jobs.execution`."""

    @abstractmethod
    def claim(
        self, job_id: str, *, resume: bool, running_limit: int = 0
    ) -> tuple[JobRow, DatasetRow] | None:
        """Defined in :mod:`privsynth.server.jobs.queue`."""

    @abstractmethod
    def end_interrupted(
        self, job_id: str, exc: TrainingInterrupted, checkpoint: Checkpointing | None
    ) -> None:
        """Defined in :mod:`privsynth.server.jobs.endings`."""

    @abstractmethod
    def end_succeeded(self, job: JobRow, dataset: DatasetRow, result: TrainResult) -> None:
        """Defined in :mod:`privsynth.server.jobs.endings`."""

    @abstractmethod
    def end_unstarted(self, job_id: str, exc: Exception, *, resume: bool) -> None:
        """Defined in :mod:`privsynth.server.jobs.endings`."""

    @abstractmethod
    def submit(self, job_id: str, *, resume: bool = False) -> None:
        """Defined in :mod:`privsynth.server.jobs.queue`."""
