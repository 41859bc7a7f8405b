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
from bare_server import bare_server
from grpc_health.v1 import health_pb2, health_pb2_grpc

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\0\0\0\x04\0\0\0\0\0"  # + empty SETTINGS


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
    with bare_server(tmp_path, max_connections=4) as srv:
        _open(srv.port, 20, sockets)
        assert _count_closed(sockets, 16, timeout=5) >= 16


def test_idle_connections_are_closed_and_clients_reconnect(
    tmp_path: Path, sockets: list[socket.socket]
) -> None:
    with bare_server(tmp_path, connection_idle_seconds=1) as srv:
        _open(srv.port, 10, sockets)
        assert _count_closed(sockets, 10, timeout=10) == 10
        with grpc.insecure_channel(f"127.0.0.1:{srv.port}") as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
            time.sleep(2)  # the channel's connection is closed as idle in between
            stub.Check(health_pb2.HealthCheckRequest(), timeout=5)


def test_the_default_bound_leaves_half_the_file_descriptors() -> None:
    import resource

    from privsynth.server.api.connections import default_max_connections

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    bound = default_max_connections()
    assert 64 <= bound <= 10_000
    if soft != resource.RLIM_INFINITY and soft >= 128:
        assert bound <= soft // 2
