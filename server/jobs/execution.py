"""Running a claimed job: its DP config, checkpoints, stop conditions, progress."""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from privsynth.models.dp_train import (
    Checkpointing,
    DPConfig,
    Example,
    Progress,
    TrainingInterrupted,
    TrainResult,
    train_dp,
)
from privsynth.models.evolution_lm import RECIPE as PRIVATE_EVOLUTION
from privsynth.models.evolution_lm import build_private_evolution
from privsynth.models.family import tokenizer_for_preset
from privsynth.models.guided import build_guided
from privsynth.models.presets import PRESETS
from privsynth.server.db import DatasetRow, JobRow
from privsynth.server.jobs.base import RunnerState
from privsynth.server.jobs.endings import JobEndings
from privsynth.server.jobs.requests import TERMINAL_STATES
from privsynth.server.logs import log_event
from privsynth.server.privacy import holdout
from privsynth.server.privacy.accounting import job_epsilon
from privsynth.server.shards import read_examples

log = logging.getLogger(__name__)


def training_records(job: JobRow, dataset: DatasetRow) -> int:
    """Records ``job`` trains on (the dataset's less its holdout), as creation planned them."""
    fraction = job.holdout_fraction or 0.0
    user_level = dataset.privacy_unit == "user" and dataset.user_count > 0
    return holdout.training_records(
        records=dataset.record_count,
        units=dataset.user_count if user_level else dataset.record_count,
        unit="user" if user_level else "record",
        fraction=fraction,
    )


class JobExecution(RunnerState):
    """Running a claimed job: its DP config, checkpoints, stop conditions, progress."""

    def checkpoint_path(self, job_id: str) -> Path:
        """The job's resumable checkpoint, in its artifact dir."""
        return self.runtime.store.root / "jobs" / job_id / "checkpoint.pt"

    def _drop_checkpoint(self, job_id: str) -> None:
        """Remove an ended job's checkpoint (its final model, if any, is stored apart)."""
        path = self.checkpoint_path(job_id)
        path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # not empty (a failed write's temp file) or gone
            path.parent.rmdir()

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
        log_event(
            log,
            "job.resumed" if resume else "job.started",
            job_id=job.id,
            dataset_id=dataset.id,
            step=job.step,
            worker=job.worker,
        )
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
        on_progress = self.progress_recorder(job_id, first_step=job.step if resume else 0)
        should_stop = self.should_stop(job_id)
        try:
            import torch

            torch.set_num_threads(runtime.settings.torch_threads)
            examples = self.load_examples(dataset, job)
            if PRESETS[job.preset].recipe == PRIVATE_EVOLUTION:
                result = self._evolve(job, examples, on_progress, should_stop)
            elif PRESETS[job.preset].recipe == "guided":
                # Nothing trains: the base as shipped. Its token statistics are released
                # (and charged) with the label mix when the job ends.
                result = build_guided(
                    examples,
                    preset=job.preset,
                    tokenizer=tokenizer_for_preset(job.preset, label_prompt=job.label_prompt),
                    delta=job.delta,
                )
            else:
                result = train_dp(
                    examples,
                    config=config,
                    tokenizer=tokenizer_for_preset(job.preset, label_prompt=job.label_prompt),
                    on_progress=on_progress,
                    should_stop=should_stop,
                    checkpoint=checkpoint,
                    device=runtime.device,
                )
        except TrainingInterrupted as exc:
            self.end_interrupted(job_id, exc, checkpoint)
            return
        except Exception as exc:  # before the first noisy step of this run
            self.end_unstarted(job_id, exc, resume=resume)
            return
        self.end_succeeded(job, dataset, result)

    @staticmethod
    def _evolve(
        job: JobRow,
        examples: list[Example],
        on_progress: Callable[[Progress], None],
        should_stop: Callable[[], bool],
    ) -> TrainResult:
        """Run a private-evolution job: the label mix first, then the planned vote histograms.

        Exactly the σ and iterations the ledger reserved (its event: ``noise_multiplier``,
        sample rate 1, ``planned_steps`` T). The label mix is released before the first
        iteration (the labels decide which candidates exist), so a run stopped after it is
        charged that release too (``EvolutionInterrupted``).
        """
        assert job.noise_multiplier is not None
        assert job.planned_steps is not None
        dp_labels = (job.label_release or {}).get("mode") == "dp"

        def epsilon_after(k: int) -> float:
            return job_epsilon(
                noise_multiplier=job.noise_multiplier or 0.0,
                sample_rate=1.0,
                steps=k,
                delta=job.delta,
                accountant="prv",
                label_noise_multiplier=job.label_noise_multiplier if dp_labels else None,
            )

        return build_private_evolution(
            examples,
            preset=job.preset,
            delta=job.delta,
            noise_multiplier=job.noise_multiplier,
            iterations=job.planned_steps,
            release_labels=lambda kept: JobEndings.label_mix(job, kept, per_user=1),
            epsilon_after=epsilon_after,
            on_progress=on_progress,
            should_stop=should_stop,
            label_prompt=job.label_prompt,
        )

    def training_config(self, job: JobRow, dataset: DatasetRow) -> DPConfig:
        """The DP-SGD run a job's reservation stands for.

        Exactly the σ the ledger reserved (its event is what the cap was checked on); jobs from
        before revision 0002 have none (None) and calibrate as they always did.
        """
        overrides: dict[str, Any] = {}
        if job.sample_rate:
            # The batch the ledger reserved for (q = batch / n), even if the preset's default
            # changed since the job was submitted; n is what remains after the holdout.
            n = training_records(job, dataset)
            overrides["batch_size"] = max(1, round(job.sample_rate * n))
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

    def progress_recorder(self, job_id: str, *, first_step: int = 0) -> Callable[[Progress], None]:
        """A training progress callback that writes step, loss and ε to the job's row.

        It also counts steps and their wall time (``first_step``: where a resumed run starts;
        its first report only sets the baseline, since the time before it is unknown).
        """
        runtime = self.runtime
        last_step = first_step
        last_elapsed: float | None = 0.0 if first_step == 0 else None

        def on_progress(p: Progress) -> None:
            nonlocal last_step, last_elapsed
            steps = max(0, p.step - last_step)
            if last_elapsed is None:
                runtime.metrics.training_steps.inc(steps)
            else:
                runtime.metrics.observe_steps(steps, p.elapsed_s - last_elapsed)
            last_step, last_elapsed = p.step, p.elapsed_s
            with runtime.db.session() as s:
                row = s.get(JobRow, job_id)
                if row is not None:
                    row.step, row.total_steps = p.step, p.total_steps
                    row.loss = p.loss if math.isfinite(p.loss) else 0.0
                    row.epsilon_spent, row.elapsed_seconds = p.epsilon, p.elapsed_s

        return on_progress

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

    def load_examples(self, dataset: DatasetRow, job: JobRow | None = None) -> list[Example]:
        """The records ``job`` trains on: the dataset's scrubbed records less its holdout.

        The shard is checked against its content hash; the holdout is recomputed from the
        server's secret and the job id (:mod:`privsynth.server.privacy.holdout`), so a resumed
        run trains on exactly the records the first part did.
        """
        examples = read_examples(self.runtime.store, dataset)
        if job is None or not job.holdout_fraction:
            return examples
        return self.holdout_split(job, examples).training

    def holdout_split(self, job: JobRow, examples: list[Example]) -> holdout.Split:
        """``job``'s split of the dataset's ``examples`` (all of them, in shard order)."""
        return holdout.split(
            examples,
            fraction=job.holdout_fraction or 0.0,
            key=self.runtime.user_key,
            job_id=job.id,
        )
