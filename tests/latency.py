"""Health-check latency as the admission tests judge it: typical answers fast, none stalled.

A stalled server (every worker thread held by a stream or a long call) answers a health Check
only when something lets go, seconds later or never; a busy CI machine adds a few tens of
milliseconds to one call in twenty now and then. So the tests ask for a fast *median* and for
*every* call to answer well inside its deadline, rather than for a tight worst case, which
failed CI once at 0.106 s with nothing wrong.
"""

from __future__ import annotations

import statistics
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

TYPICAL_S = 0.1
"""A health Check's median latency on an unstalled server, CI noise included."""

STALL_S = 1.0
"""No single Check may take this long: a stall shows as the 2 s deadline or more."""


def health_latencies(
    channel: grpc.Channel,
    n: int = 20,
    *,
    expect: int | None = health_pb2.HealthCheckResponse.NOT_SERVING,
) -> list[float]:
    """Latencies of ``n`` health Checks on ``channel`` (warmed first), in seconds.

    Args:
        channel: An open channel to the server.
        n: How many Checks to time.
        expect: The serving status every answer must carry (``None`` accepts any).
    """
    stub = health_pb2_grpc.HealthStub(channel)
    stub.Check(health_pb2.HealthCheckRequest(), timeout=2)  # connect
    latencies = []
    for _ in range(n):
        started = time.perf_counter()
        resp = stub.Check(health_pb2.HealthCheckRequest(), timeout=2)
        latencies.append(time.perf_counter() - started)
        if expect is not None:
            assert resp.status == expect
    return latencies


def assert_responsive(latencies: list[float]) -> None:
    """Fail when the typical Check is slow or any one came near a stall."""
    median, worst = statistics.median(latencies), max(latencies)
    assert median < TYPICAL_S, f"median health Check {median:.3f} s"
    assert worst < STALL_S, f"a health Check took {worst:.3f} s"
