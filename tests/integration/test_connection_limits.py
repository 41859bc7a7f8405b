"""Connections that carry no call are bounded in number and in idle time.

20,000 sockets that sent the HTTP/2 preface and nothing else, no token needed, once used every
file descriptor of the server process.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\0\0\0\x04\0\0\0\0\0"  # + empty SETTINGS


def _server(data_dir: Path, **settings: object) -> object:
    from privsynth.server.app import PrivsynthServer
    from privsynth.server.config import Settings

    srv = PrivsynthServer(
        Settings(
            data_dir=data_dir,
            host="127.0.0.1",
            grpc_port=0,
            metrics_port=-1,
            scrub_workers=0,
            **settings,  # type: ignore[arg-type]
        )
    )
    srv.grpc.start()  # no model loading: health answers NOT_SERVING, which is enough here
    return srv


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    held: list[socket.socket] = []
    yield held
    for s in held:
        s.close()


def _open(port: int, n: int, held: list[socket.socket]) -> list[socket.socket]:
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(PREFACE)
        held.append(s)
    return held


def _closed_by_server(s: socket.socket) -> bool:
    s.settimeout(0)
    try:
        while s.recv(65536):
            pass  # the server's SETTINGS (and a GOAWAY before closing)
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True
    return True


def _count_closed(held: list[socket.socket], want: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    closed: set[int] = set()
    while time.monotonic() < deadline:
        closed |= {i for i, s in enumerate(held) if i not in closed and _closed_by_server(s)}
        if len(closed) >= want:
            break
        time.sleep(0.05)
    return len(closed)


def test_connections_past_the_bound_are_closed_at_once(
    tmp_path: Path, sockets: list[socket.socket]
) -> None:
    srv = _server(tmp_path, max_connections=4)
    try:
        _open(srv.port, 20, sockets)  # type: ignore[attr-defined]
        assert _count_closed(sockets, 16, timeout=5) >= 16
    finally:
        srv.grpc.stop(0).wait()  # type: ignore[attr-defined]
        srv.runtime.close()  # type: ignore[attr-defined]


def test_idle_connections_are_closed_and_clients_reconnect(
    tmp_path: Path, sockets: list[socket.socket]
) -> None:
    srv = _server(tmp_path, connection_idle_seconds=1)
    port = srv.port  # type: ignore[attr-defined]
    try:
        _open(port, 10, sockets)
        assert _count_closed(sockets, 10, timeout=10) == 10
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
            time.sleep(2)  # the channel's connection is closed as idle in between
            stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
    finally:
        srv.grpc.stop(0).wait()  # type: ignore[attr-defined]
        srv.runtime.close()  # type: ignore[attr-defined]


def test_the_default_bound_leaves_half_the_file_descriptors() -> None:
    import resource

    from privsynth.server.api.connections import default_max_connections

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    bound = default_max_connections()
    assert 64 <= bound <= 10_000
    if soft != resource.RLIM_INFINITY and soft >= 128:
        assert bound <= soft // 2
