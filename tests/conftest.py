"""Shared fixtures: a real in-process server on port 0 and a client connected to it."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from privsynth.client.client import PrivsynthClient

pytest_plugins = ["watchdog"]  # PRIVSYNTH_TEST_WATCHDOG_S: periodic machine state (CI)

# One intra-op thread for torch and BLAS in the tests (set before anything imports torch): the
# models here are tiny, so a second thread saves little (the suite ran in 555 s instead of about
# 700 s). Tests that need more threads set torch_threads.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Servers started as subprocesses by tests scrub in-process: many spaCy workers would only
# slow the suite; the session server below exercises the worker pipeline.
os.environ.setdefault("PRIVSYNTH_SCRUB_WORKERS", "0")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from privsynth.server.app import PrivsynthServer
    from privsynth.server.config import Settings

    data_dir: Path = tmp_path_factory.mktemp("server-data")
    settings = Settings(
        data_dir=data_dir,
        host="127.0.0.1",
        grpc_port=0,
        metrics_port=0,
        training_workers=2,
        torch_threads=1,
        scrub_workers=1,
    )
    srv = PrivsynthServer(settings)
    srv.start()
    assert srv.wait_ready(timeout=300), f"server failed to load: {srv.load_error}"
    yield srv
    srv.stop(grace=1)


@pytest.fixture
def client(server: object) -> Iterator[PrivsynthClient]:
    port = server.port  # type: ignore[attr-defined]
    with PrivsynthClient(f"127.0.0.1:{port}", timeout=30, stream_timeout=300) as c:
        yield c


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Put torch back to one intra-op thread after a test whose code raised it (an audit or a
    job with the default ``torch_threads=2``), so later tests in this process do not inherit it."""
    yield
    torch = sys.modules.get("torch")
    single = os.environ.get("OMP_NUM_THREADS") == "1"
    if torch is not None and single and torch.get_num_threads() != 1:
        torch.set_num_threads(1)
