r"""Distributed DP training of a reserved job: ``torchrun -m privsynth.server.jobs.distributed``.

The only way to train across processes, and it runs under the same ledger as every other job:
a caller creates the job with ``CreateTrainingJob(distributed=true)`` (the ε is reserved then,
before any data is read, or refused with RESOURCE_EXHAUSTED), and the job stays QUEUED for
its launcher — replicas' workers never take it up. This entry point then

1. claims the job on rank 0 (QUEUED → RUNNING, with a lease it renews, under the stable worker
   name ``torchrun:<job id>``, so a replacement pod resumes it);
2. trains on every rank (gloo; training runs on the CPU) with the job's reserved mechanism
   (σ, q, steps) on the dataset's scrubbed shard, read from the artifact store and checked
   against its content hash; Opacus' distributed support shards Poisson sampling and adds the
   noise once, so the run is accounted as one process with that rate and step count;
3. on rank 0, stores the model, releases its label distribution and commits the ε the ranks
   actually spent, exactly as a worker thread would
   (:class:`~privsynth.server.jobs.runner.JobRunner` does it for both). The model is then served by
   Generate like any other.

    torchrun --nproc_per_node 2 -m privsynth.server.jobs.distributed --job jobs/<id>

It reads the server's configuration from the same ``PRIVSYNTH_…`` environment (data dir and
database URL must be the server's: on Kubernetes the chart mounts the same volume and config).

**Preemption.** Every rank checkpoints (private files) every ``PRIVSYNTH_CHECKPOINT_EVERY_S``
seconds and on SIGTERM (or at ``--stop-at-step``); the job stays RUNNING and the same command
run again (a replacement pod) resumes from the latest step every rank saved, continuing each
rank's secret noise and sampling streams. An interrupted run exits with :data:`EXIT_RESUMABLE`
(75). A user's cancel stops the run, which is charged what it consumed. A launcher that never
comes back holds its reservation until someone cancels the job: cancelling a torchrun job whose
lease expired charges the full reservation (its progress after the last report is unknown).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from typing import Any

import torch
from privsynth.models.dp_train import Checkpointing, TrainingInterrupted, train_dp
from privsynth.models.family import tokenizer_for_preset
from privsynth.server.config import Settings
from privsynth.server.db import DatasetRow, JobRow
from privsynth.server.jobs.runner import TERMINAL_STATES, TORCHRUN, JobRunner
from privsynth.server.logs import configure_logging, log_event
from privsynth.server.runtime import Runtime

__all__ = ["EXIT_RESUMABLE", "main"]

log = logging.getLogger(__name__)

EXIT_RESUMABLE = 75
"""Exit status of a run stopped with its state saved (SIGTERM): run the same command again."""

_RUN, _RESUME, _NOTHING, _REFUSED = "run", "resume", "nothing", "refused"


def _job_id(name: str) -> str:
    return name.removeprefix("jobs/").strip()


def _decide(runner: JobRunner, job_id: str) -> tuple[str, str]:
    """Rank 0: claim the job (fresh or resumed) or say why not. Returns (decision, reason)."""
    with runner.runtime.db.session() as s:
        job = s.get(JobRow, job_id)
        state = None if job is None else job.state
        runner_kind = None if job is None else job.runner
    if state is None:
        return _REFUSED, f"job 'jobs/{job_id}' not found"
    if runner_kind != TORCHRUN:
        return _REFUSED, "job was not created with distributed=true; a server worker runs it"
    if state in TERMINAL_STATES:
        return _NOTHING, f"job already ended ({state}); nothing to train"
    resume = state == "RUNNING"
    claimed = runner.claim(job_id, resume=resume)
    if claimed is None:
        if runner.get(job_id).state in TERMINAL_STATES:  # (cancelled before it started)
            return _NOTHING, "job was cancelled before it started; nothing to train"
        return _REFUSED, "job is held by another live launcher (its lease is being renewed)"
    job, dataset = claimed
    log_event(
        log,
        "job.resumed" if resume else "job.started",
        job_id=job.id,
        dataset_id=dataset.id,
        step=job.step,
        worker=job.worker,
    )
    return (_RESUME if resume else _RUN), ""


def _renew_until(runner: JobRunner, done: threading.Event) -> None:
    """Renew the job's lease every quarter lease (rank 0), until ``done``."""
    period = runner.runtime.settings.job_lease_s / 4
    while not done.wait(period):
        try:
            runner.renew_leases()
        except Exception as exc:  # the database may be briefly away; the next round retries
            log.warning("lease renewal failed: %s", type(exc).__name__)


def _broadcast(value: Any) -> Any:
    box = [value]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def main(argv: list[str] | None = None) -> int:
    """Entry point of one rank (torchrun sets RANK, WORLD_SIZE, MASTER_ADDR/PORT)."""
    parser = argparse.ArgumentParser(
        description="distributed DP training of a job created with distributed=true (one rank)"
    )
    parser.add_argument("--job", required=True, help="the job's name, jobs/<id>")
    parser.add_argument(
        "--stop-at-step",
        type=int,
        default=0,
        help="save and exit resumably (75) once this step is reached: time-sliced runs",
    )
    args = parser.parse_args(argv)
    job_id = _job_id(args.job)
    # The CPU whatever PRIVSYNTH_DEVICE says (ranks reduce over gloo, below), so a GPU server's
    # ConfigMap neither moves the ranks to a GPU nor stops them on a node without one.
    settings = Settings(
        worker_id=f"{TORCHRUN}:{job_id}", training_workers=0, scrub_workers=0, device="cpu"
    )
    configure_logging(settings.log_level, settings.log_format)

    # gloo even where CUDA is present: the generator trains on the CPU, and nccl cannot
    # reduce CPU tensors.
    torch.distributed.init_process_group(backend="gloo")
    rank, world_size = torch.distributed.get_rank(), torch.distributed.get_world_size()
    runtime = Runtime.create(settings)
    runner = JobRunner(runtime)
    torch.set_num_threads(settings.torch_threads)
    preempted = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: preempted.set())
    renewing = threading.Event()
    try:
        decision, reason = _broadcast(_decide(runner, job_id) if rank == 0 else None)
        if decision in (_NOTHING, _REFUSED):
            print(f"rank {rank}: {reason}", file=sys.stderr)
            return 0 if decision == _NOTHING else 2
        resume = decision == _RESUME
        with runtime.db.session() as s:
            job = s.get(JobRow, job_id)
            assert job is not None
            dataset = s.get(DatasetRow, job.dataset_id)
            assert dataset is not None
        # Always on SIGTERM (what Kubernetes sends before evicting a pod), and as configured.
        checkpoint = Checkpointing(
            path=runner.checkpoint_path(job_id),
            every_s=settings.checkpoint_every_s,
            every_steps=settings.checkpoint_every_steps,
            stop_at_step=args.stop_at_step,
        )
        if not resume:
            checkpoint.remove(rank, world_size)  # a fresh run never resumes stale state
        cancelled = runner.stop_event(job_id) if rank == 0 else threading.Event()
        user_stop = runner.should_stop(job_id) if rank == 0 else cancelled.is_set
        if rank == 0:
            threading.Thread(target=_renew_until, args=(runner, renewing), daemon=True).start()
        try:
            result = train_dp(
                runner.load_examples(dataset, job),
                config=runner.training_config(job, dataset),
                tokenizer=tokenizer_for_preset(job.preset, label_prompt=job.label_prompt),
                on_progress=runner.progress_recorder(job_id) if rank == 0 else None,
                should_stop=lambda: preempted.is_set() or user_stop(),
                checkpoint=checkpoint,
            )
        except TrainingInterrupted as exc:
            # Every rank stopped at the same step (train_dp agrees on it); only rank 0 knows
            # whether the job was cancelled (or its lease lost) rather than preempted/sliced.
            stopped_for_us = bool(_broadcast(cancelled.is_set() if rank == 0 else None))
            if exc.cancelled and not stopped_for_us:
                print(
                    f"rank {rank}: stopped at step {exc.steps} with its state saved; "
                    "run the same command again to resume",
                    file=sys.stderr,
                )
                return EXIT_RESUMABLE  # (still RUNNING: the reservation stays held)
            if rank == 0:
                runner.end_interrupted(job_id, exc, None)
            torch.distributed.barrier()
            checkpoint.remove(rank, world_size)
            return 0 if exc.cancelled else 1
        except Exception as exc:  # before the first noisy step of this run
            if rank == 0:
                runner.end_unstarted(job_id, exc, resume=resume)
            checkpoint.remove(rank, world_size)
            return 1
        if rank == 0:
            result.card["launcher"] = f"torchrun (world size {world_size}, gloo)"
            runner.end_succeeded(job, dataset, result)
        # The model is stored and charged: no rerun may resume into this run.
        torch.distributed.barrier()
        checkpoint.remove(rank, world_size)
        return 0
    finally:
        renewing.set()
        runtime.close()
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
