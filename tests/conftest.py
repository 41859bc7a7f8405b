"""Shared fixtures: a real in-process server on port 0 and a client connected to it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from privsynth.client.client import PrivsynthClient

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
