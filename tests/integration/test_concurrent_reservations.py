"""50 concurrent CreateTrainingJob calls against a budget that admits exactly 3 accept exactly 3.

Run against SQLite with one server process and against PostgreSQL with two server processes
sharing one database (the multi-replica deployment). The servers are real ``privsynth serve``
processes started with ``PRIVSYNTH_TRAINING_WORKERS=0`` (API-only replicas): every request goes
through the production reservation path, but accepted jobs stay QUEUED instead of training, so
the figures do not depend on training speed. The jobs are cancelled at the end, which releases
their reservations in full.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from corpus import fortunes
from privsynth.client.audit import verify_chain
from privsynth.client.client import PrivsynthClient
from privsynth.client.errors import BudgetExhausted, PrivsynthClientError
from privsynth.client.pb import training_pb2

CALLS = 50
RECORDS, EPOCHS, EPSILON, JOB_DELTA, DELTA_CAP = 60, 1, 1.0, 1e-6, 1e-5
PG_ADMIN_URL = os.environ.get("PRIVSYNTH_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


@dataclass
class Cluster:
    """Server processes sharing one database."""

    targets: list[str]
    procs: list[subprocess.Popen[str]]


def _start(data_dir: Path, database_url: str) -> tuple[subprocess.Popen[str], str]:
    env = dict(os.environ)
    env.update(
        {
            "PRIVSYNTH_DATA_DIR": str(data_dir),
            "PRIVSYNTH_DATABASE_URL": database_url,
            "PRIVSYNTH_METRICS_PORT": "-1",
            "PRIVSYNTH_TRAINING_WORKERS": "0",
            "PRIVSYNTH_USER_ID_KEY": "test-key-shared-by-replicas",
            "PRIVSYNTH_SHUTDOWN_GRACE_SECONDS": "1",
            "PRIVSYNTH_MAX_WORKERS": "32",
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "privsynth.client.cli", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"serving gRPC on 127\.0\.0\.1:(\d+)", line)
    if not match:
        proc.kill()
        pytest.fail(f"server did not start: {line!r}")
    return proc, f"127.0.0.1:{match.group(1)}"


def _cluster(data_dir: Path, database_url: str, processes: int) -> Iterator[Cluster]:
    procs: list[subprocess.Popen[str]] = []
    targets: list[str] = []
    try:
        for _ in range(processes):
            proc, target = _start(data_dir, database_url)
            procs.append(proc)
            targets.append(target)
        for target in targets:
            with PrivsynthClient(target) as c:
                c.wait_until_serving(timeout=180)
        yield Cluster(targets=targets, procs=procs)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def sqlite_cluster(tmp_path: Path) -> Iterator[Cluster]:
    yield from _cluster(tmp_path, f"sqlite:///{tmp_path / 'privsynth.db'}", processes=1)


@pytest.fixture
def postgres_cluster(tmp_path: Path) -> Iterator[Cluster]:
    import psycopg

    host, port = _pg_address(PG_ADMIN_URL)
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as exc:
        # Only an unreachable server skips; any other connection error fails the test.
        pytest.skip(f"PostgreSQL is not reachable at {host}:{port} ({exc.strerror or exc})")
    admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=10)
    name = f"privsynth_conc_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    url = re.sub(r"/[^/]*$", f"/{name}", PG_ADMIN_URL).replace(
        "postgresql://", "postgresql+psycopg://", 1
    )
    try:
        yield from _cluster(tmp_path, url, processes=2)
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _pg_address(url: str) -> tuple[str, int]:
    match = re.match(r"postgresql://[^@/]*@?([^:/]+)(?::(\d+))?/", url)
    assert match, "PRIVSYNTH_TEST_PG_URL must look like postgresql://user@host:port/db"
    return match.group(1), int(match.group(2) or 5432)


def _cap_for_exactly_three() -> tuple[float, float, float]:
    """A cap between the composed spend of 3 and of 4 identical jobs (what the server computes).

    The corpus is labelled, so each job also reserves its DP label release (default share).
    """
    from privsynth.server.privacy.accounting import (
        DEFAULT_LABEL_EPSILON_SHARE,
        JobCharge,
        compose_epsilon,
        plan_dp_sgd,
    )

    plan = plan_dp_sgd(
        n_records=RECORDS,
        batch_size=64,
        epochs=EPOCHS,
        target_epsilon=EPSILON,
        target_delta=JOB_DELTA,
        label_epsilon_share=DEFAULT_LABEL_EPSILON_SHARE,
    )
    job = JobCharge(
        EPSILON,
        JOB_DELTA,
        plan.noise_multiplier,
        plan.sample_rate,
        plan.steps,
        label_noise_multiplier=plan.label_noise_multiplier,
    )
    three = compose_epsilon([job] * 3, delta=DELTA_CAP)[0]
    four = compose_epsilon([job] * 4, delta=DELTA_CAP)[0]
    return (three + four) / 2, three, four


def _race(cluster: Cluster) -> None:
    cap, three, four = _cap_for_exactly_three()
    with PrivsynthClient(cluster.targets[0]) as c:
        ds = c.upload_dataset(
            fortunes(RECORDS), display_name="race", epsilon_cap=cap, delta=DELTA_CAP
        ).name

    barrier = threading.Barrier(CALLS)

    def call(i: int) -> str:
        with PrivsynthClient(cluster.targets[i % len(cluster.targets)], timeout=120) as c:
            barrier.wait()
            try:
                job = c.create_training_job(
                    ds, target_epsilon=EPSILON, delta=JOB_DELTA, epochs=EPOCHS, preset="tiny"
                )
            except BudgetExhausted:
                return "refused"
            except PrivsynthClientError as exc:
                return f"error {exc.code.name}"
            return job.name

    with ThreadPoolExecutor(max_workers=CALLS) as pool:
        outcomes = list(pool.map(call, range(CALLS)))
    accepted = [o for o in outcomes if o.startswith("jobs/")]
    refused = outcomes.count("refused")

    with PrivsynthClient(cluster.targets[-1]) as c:
        budget = c.get_budget(ds)
        entries = list(c.list_ledger_entries(ds, page_size=500))
        print(
            f"\n[{len(cluster.targets)} process(es)] accepted={len(accepted)} refused={refused} "
            f"other={CALLS - len(accepted) - refused}; composed spend (reserved) "
            f"{budget.epsilon_reserved:.4f} vs cap {budget.epsilon_cap:.4f} "
            f"(3 jobs {three:.4f}, 4 jobs {four:.4f}); plain sum {budget.epsilon_reserved_sum:g}"
        )
        assert len(accepted) == 3, outcomes
        assert refused == CALLS - 3, outcomes
        assert budget.epsilon_reserved == pytest.approx(three)
        assert budget.epsilon_reserved <= budget.epsilon_cap
        assert budget.epsilon_reserved_sum == pytest.approx(3 * EPSILON)
        assert budget.delta_used == pytest.approx(3 * JOB_DELTA)
        assert [e.kind for e in entries] == ["reserve"] * 3
        assert {e.job for e in entries} == set(accepted)
        assert all(e.noise_multiplier > 0 and e.steps > 0 for e in entries)

        # Cancelling the queued jobs (through every replica) releases them in full.
        for i, name in enumerate(accepted):
            with PrivsynthClient(cluster.targets[i % len(cluster.targets)]) as other:
                job = other.cancel_training_job(name)
                assert job.state == training_pb2.JOB_STATE_CANCELLED
        after = c.get_budget(ds)
        assert after.epsilon_spent == 0 and after.epsilon_reserved == 0
        assert after.epsilon_remaining == pytest.approx(cap)
        kinds = [e.kind for e in c.list_ledger_entries(ds, page_size=500)]
        assert kinds.count("commit") == 3 and kinds.count("release") == 3

        # Both replicas appended to one audit chain concurrently; it must not have forked.
        chain = list(c.export_audit_log())
        assert verify_chain(chain).ok
        actions = [e.action for e in chain if e.dataset == ds]
        assert actions.count("budget.reserved") == 3
        assert actions.count("budget.refused") == CALLS - 3
        assert actions.count("job.cancelled") == 3


def test_sqlite_one_process_accepts_exactly_three(sqlite_cluster: Cluster) -> None:
    _race(sqlite_cluster)


def test_postgresql_two_processes_accept_exactly_three(postgres_cluster: Cluster) -> None:
    _race(postgres_cluster)
