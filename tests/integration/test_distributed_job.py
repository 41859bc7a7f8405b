"""Distributed training runs under the ledger: reserve first, torchrun trains, commit after.

A job created with ``distributed=True`` reserves its ε like any job and waits; ``torchrun -m
privsynth.server.jobs.distributed --job jobs/<id>`` (two ranks, gloo) claims it, trains with
the reserved mechanism on the dataset's shard and commits what the ranks spent; the model is
registered READY like any other. Real database and artifact store, no gRPC.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from job_runtime import add_dataset, job_runtime
from opacus.accountants import PRVAccountant
from privsynth.server.db import JobRow, LedgerRow, ModelRow
from privsynth.server.jobs.distributed import EXIT_RESUMABLE
from privsynth.server.jobs.runner import JobRunner, JobSpec
from privsynth.server.runtime import Runtime
from sqlalchemy import select

N_RECORDS = 80


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    # A replica with workers: it must leave torchrun jobs alone.
    with job_runtime(tmp_path, training_workers=1, torch_threads=1) as rt:
        yield rt


def _spec(dataset_id: str, **kw: object) -> JobSpec:
    return JobSpec(
        dataset_id=dataset_id,
        target_epsilon=4.0,
        epochs=2,
        preset="tiny",
        distributed=True,
        **kw,  # type: ignore[arg-type]
    )


def _torchrun(rt: Runtime, job: str, *extra: str) -> subprocess.CompletedProcess[str]:
    with socket.socket() as sock:  # torchrun's static rendezvous needs a concrete port
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    env = {
        **os.environ,
        "PRIVSYNTH_DATA_DIR": str(rt.settings.data_dir),
        "PRIVSYNTH_DATABASE_URL": rt.settings.database_url,
        "PRIVSYNTH_TORCH_THREADS": "1",
        "PRIVSYNTH_CHECKPOINT_EVERY_S": "0",
        "OMP_NUM_THREADS": "1",
    }
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            port,
            "-m",
            "privsynth.server.jobs.distributed",
            "--job",
            job,
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )


def _ledger(rt: Runtime, job_id: str) -> list[LedgerRow]:
    with rt.db.session() as s:
        rows = s.execute(select(LedgerRow).where(LedgerRow.job_id == job_id)).scalars().all()
        return list(rows)


def test_a_distributed_job_reserves_waits_trains_on_two_ranks_and_commits(
    runtime: Runtime,
) -> None:
    runner = JobRunner(runtime)
    try:
        job = runner.create(_spec(add_dataset(runtime, N_RECORDS, labelled=True)))
        assert [r.kind for r in _ledger(runtime, job.id)] == ["reserve"]  # before any data
        runner.recover()  # a replica's workers do not take it up
        assert runner.get(job.id).state == "QUEUED"
        proc = _torchrun(runtime, f"jobs/{job.id}")
        assert proc.returncode == 0, proc.stderr[-3000:]
        done = runner.get(job.id)
        assert done.state == "SUCCEEDED" and done.runner == "torchrun"
        with runtime.db.session() as s:
            model = s.get(ModelRow, done.model_id)
            assert model is not None
            card, state = dict(model.card), model.state
        assert state == "READY"  # registered: Generate serves it like any other model
        assert card["world_size"] == 2 and "torchrun" in card["launcher"]
        # The ranks trained the reserved mechanism, accounted as one process would be.
        assert card["noise_multiplier"] == pytest.approx(done.noise_multiplier, rel=1e-9)
        assert card["steps"] == done.planned_steps
        single = PRVAccountant()
        single.history = [(card["noise_multiplier"], card["sample_rate"], card["steps"])]
        assert single.get_epsilon(delta=card["delta"]) == pytest.approx(card["epsilon_dp_sgd"])
        kinds = [(r.kind, r.epsilon) for r in _ledger(runtime, job.id)]
        assert [k for k, _ in kinds] == ["reserve", "commit", "release"]
        assert kinds[1][1] == pytest.approx(card["epsilon"]) and 0 < card["epsilon"] <= 4.0
        assert not list((runtime.store.root / "jobs").glob(f"{job.id}/*.pt"))
        # A rerun (a replacement pod of a finished Job) trains nothing and charges nothing.
        again = _torchrun(runtime, f"jobs/{job.id}")
        assert again.returncode == 0 and "already ended" in again.stderr
        assert len(_ledger(runtime, job.id)) == 3
    finally:
        runner.shutdown()


def test_a_preempted_distributed_job_resumes_and_is_charged_once(runtime: Runtime) -> None:
    runner = JobRunner(runtime)
    job = runner.create(_spec(add_dataset(runtime, N_RECORDS, labelled=True)))
    first = _torchrun(runtime, f"jobs/{job.id}", "--stop-at-step", "3")
    assert first.returncode != 0  # torchrun reports its workers' EXIT_RESUMABLE as a failure
    assert f"exitcode  : {EXIT_RESUMABLE}" in first.stderr or "stopped at step 3" in first.stderr
    assert runner.get(job.id).state == "RUNNING"  # its reservation stays held
    assert [r.kind for r in _ledger(runtime, job.id)] == ["reserve"]
    saved = sorted((runtime.store.root / "jobs" / job.id).glob("checkpoint.rank*"))
    assert [p.name for p in saved] == ["checkpoint.rank0-of-2.pt", "checkpoint.rank1-of-2.pt"]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in saved)  # secret RNG state

    second = _torchrun(runtime, f"jobs/{job.id}")
    assert second.returncode == 0, second.stderr[-3000:]
    done = runner.get(job.id)
    assert done.state == "SUCCEEDED" and done.steps_taken == done.planned_steps
    with runtime.db.session() as s:
        model = s.get(ModelRow, done.model_id)
        assert model is not None and model.card["resumed_from_step"] == 3
    assert [r.kind for r in _ledger(runtime, job.id)] == ["reserve", "commit", "release"]
    assert not list((runtime.store.root / "jobs" / job.id).glob("checkpoint*"))


def test_a_cancelled_distributed_job_costs_nothing_and_is_not_trained(runtime: Runtime) -> None:
    runner = JobRunner(runtime)
    job = runner.create(_spec(add_dataset(runtime, N_RECORDS, labelled=True)))
    assert runner.cancel(job.id).state == "CANCELLED"
    commit = [r for r in _ledger(runtime, job.id) if r.kind == "commit"]
    assert len(commit) == 1 and commit[0].epsilon == 0.0
    with runtime.db.session() as s:
        row = s.get(JobRow, job.id)
        assert row is not None and row.runner == "torchrun"
