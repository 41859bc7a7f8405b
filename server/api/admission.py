"""Admission control for long-lived calls, and the small pools health and reflection run on.

gRPC's synchronous server runs every call on one thread pool (``max_workers`` threads) and a
streaming call holds its thread for as long as the stream is open. Unbounded, a handful of idle
streams (16 health ``Watch`` calls, needing no token) starve every other call, health ``Check``
included. So:

* **Health** ``Check`` and ``List`` run on their own pool of :data:`HEALTH_POOL_THREADS`
  threads, so probes answer however busy the main pool is. Health ``Watch`` stays
  non-blocking (grpcio's health servicer pushes updates through a callback and holds no
  thread), and at most :data:`HEALTH_WATCH_LIMIT` are open at once.
* **Reflection** (a bidirectional stream that holds a thread) runs on its own pool: one thread
  per allowed stream (:data:`REFLECTION_LIMIT`) plus two, so a call over the limit finds a
  thread to be refused on instead of queueing behind the open streams.
* **privsynth streams** (UploadDataset, Generate, WatchTrainingJob) together hold at most
  ``max_streams`` threads of the main pool, so unary calls (and refusals) always find a free
  thread, and WatchTrainingJob, which may idle for hours, at most ``max_watch_streams``.
  AnalyzeText and ScrubText are unary but wait on a scrub worker for up to seconds a call, so
  they count against the same threads (class ``long_running``, bound ``max_streams``): twelve
  idle uploads and eight slow scrubs once held all sixteen threads and every other call waited
  13 s.
* **One caller's share.** An authenticated caller holds at most ``max_streams_per_caller``
  of those threads (streams and slow scrub calls; default half of ``max_streams``), so one
  member's idle uploads cannot lock every tenant out of uploading, sampling and watching, and
  at most half (at least one) of each smaller class: one of the two Generate places, two of
  the four watches, four of the eight scrub calls. Two long Generate calls from one member
  used to refuse every other tenant's sampling for over an hour. An operator whose callers
  are a gateway for many users sets ``max_streams_per_caller`` to ``max_streams`` or more,
  which lifts every share. In open mode every caller is the same anonymous one, so only the
  server-wide bounds apply. The caller is authenticated *before* any place is taken: a call
  without a valid token holds no slot, not even briefly.
* **Other unary calls** have no bound of their own, but one authenticated caller runs at most
  ``max_unary_per_caller`` at once (default half the pool); past it, its calls are refused as
  soon as they reach a thread. A member keeping 1,000 ListDatasets of 500 rows in flight
  made another tenant's call wait 26 s; with the share it waited 3.2 s (median), since a
  refusal costs a fraction of such a call. The queue stays first come, first served: cheap
  calls (about 1.5 ms each on two cores) still queue the others behind them.
  The gRPC server also refuses calls beyond ``max_concurrent_rpcs`` in flight (queued or
  running) before they take a thread.
* **For how long.** A stream that waits on its *client* longer than
  ``PRIVSYNTH_STREAM_IDLE_SECONDS`` is ended and gives its place back (:mod:`.idle`).
* **CPU-bound work** is bounded per class, so a crowd of callers gets refusals instead of
  sharing the cores (and the GIL) ever more thinly, health included: ``Generate`` at most
  ``max_generate_calls`` at once (``generation``), ``AnalyzeText`` and ``ScrubText`` together
  at most ``max_scrub_calls`` (``scrubbing``).

The check runs on the call's own pool thread (gRPC gives an interceptor no way to end a call
before then), which is why every bounded pool keeps threads beyond its bound.

A call over a bound is refused at once with RESOURCE_EXHAUSTED, a ``QuotaFailure`` naming the
class and a ``RetryInfo`` (:class:`~privsynth.server.errors.Overloaded`); nothing queues.
Other unary privsynth calls are not bounded here: they queue for the main pool's threads.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from concurrent import futures

from privsynth.server.errors import Overloaded

__all__ = [
    "DEFAULT_MAX_GENERATE_CALLS",
    "DEFAULT_MAX_SCRUB_CALLS",
    "HEALTH_POOL_THREADS",
    "HEALTH_SERVICE",
    "HEALTH_WATCH_LIMIT",
    "REFLECTION_LIMIT",
    "REFLECTION_SERVICES",
    "Admission",
    "Slot",
    "default_max_streams",
]

HEALTH_SERVICE = "grpc.health.v1.Health"
REFLECTION_SERVICES = frozenset(
    {"grpc.reflection.v1alpha.ServerReflection", "grpc.reflection.v1.ServerReflection"}
)
HEALTH_POOL_THREADS = 2
"""Threads serving health Check and List (each answers in well under a millisecond)."""
HEALTH_WATCH_LIMIT = 32
"""Open health Watch streams at once (they hold no thread, only a callback each)."""
REFLECTION_LIMIT = 4
"""Open reflection streams at once, each on its own thread of the reflection pool."""
_WATCH_METHODS = frozenset(
    {"/privsynth.v1.Training/WatchTrainingJob", "/privsynth.v1.Evaluations/WatchEvaluation"}
)
_WORK_CLASSES = {
    "/privsynth.v1.Generation/Generate": "generation",
    "/privsynth.v1.Scrubbing/AnalyzeText": "scrubbing",
    "/privsynth.v1.Scrubbing/ScrubText": "scrubbing",
}
"""CPU-bound methods and the class each is bounded in."""
DEFAULT_MAX_GENERATE_CALLS = 2
"""Generate calls at once: one per core of the 2-core machines this was measured on."""
DEFAULT_MAX_SCRUB_CALLS = 8
"""AnalyzeText/ScrubText calls at once: keeps two scrub workers busy (64 clients on 2 cores:
~0.9x the unbounded throughput at a fifth of its p99 latency, benchmarks/load.py)."""
_RETRY_AFTER_S = 1.0
_SHARES: dict[str, tuple[str, str]] = {
    "long_running": ("streams or scrub calls", "concurrent_calls/streams_per_caller"),
    "unary": ("other calls", "concurrent_calls/unary_per_caller"),
    "watch": ("watch calls", "concurrent_calls/watch_per_caller"),
    "generation": ("generation calls", "concurrent_calls/generation_per_caller"),
    "scrubbing": ("scrubbing calls", "concurrent_calls/scrubbing_per_caller"),
}
"""The classes one caller has a share of: what a refusal calls them, and its ``QuotaFailure``
subject. Checked in this order: the long-running share first, since its subject is the one
clients know from before the smaller classes had shares."""


def default_max_streams(max_workers: int) -> int:
    """Streams the main pool may hold: all but a quarter of it (at least 2 threads stay free)."""
    return max(1, max_workers - max(2, max_workers // 4))


class Slot:
    """A taken place in one or more classes; :meth:`release` is idempotent."""

    def __init__(self, release: Callable[[], None]) -> None:
        self._release: Callable[[], None] | None = release
        self._lock = threading.Lock()

    def release(self) -> None:
        """Give the place back (only the first call counts)."""
        with self._lock:
            release, self._release = self._release, None
        if release is not None:
            release()


class Admission:
    """Counts open calls per class and refuses those over the class's bound.

    Args:
        max_streams: privsynth streaming calls (any of the three) and AnalyzeText/ScrubText
            calls open at once (class ``long_running``).
        max_watch_streams: WatchTrainingJob calls open at once (also counted in
            ``max_streams``).
        max_generate_calls: Generate calls open at once (also counted in ``max_streams``).
        max_scrub_calls: AnalyzeText and ScrubText calls running at once.
        max_streams_per_caller: Long-running calls one authenticated caller may hold
            (default: half of ``max_streams``, at least 1); ``max_streams`` or more lifts
            every per-caller share.
        max_unary_per_caller: Other unary calls one authenticated caller may have running
            (0: no share). They have no bound of their own; the share keeps one caller's
            flood from holding every thread of the pool.
    """

    def __init__(
        self,
        *,
        max_streams: int,
        max_watch_streams: int,
        max_generate_calls: int = DEFAULT_MAX_GENERATE_CALLS,
        max_scrub_calls: int = DEFAULT_MAX_SCRUB_CALLS,
        max_streams_per_caller: int | None = None,
        max_unary_per_caller: int = 0,
    ) -> None:
        self.limits = {
            "health_watch": HEALTH_WATCH_LIMIT,
            "reflection": REFLECTION_LIMIT,
            "streams": max_streams,
            "watch": max_watch_streams,
            "generation": max_generate_calls,
            "scrubbing": max_scrub_calls,
            "long_running": max_streams,
            "unary": sys.maxsize,  # no bound of its own: one caller's share only
        }
        self.per_caller = (
            max(1, max_streams // 2) if max_streams_per_caller is None else max_streams_per_caller
        )
        gateway = self.per_caller >= max_streams  # the operator lifted the shares
        self.shares = {
            name: self.limits[name] if gateway else max(1, self.limits[name] // 2)
            for name in _SHARES
            if name not in ("long_running", "unary")  # set on their own
        }
        self.shares["long_running"] = self.per_caller
        self.shares["unary"] = (
            sys.maxsize if gateway or max_unary_per_caller <= 0 else max_unary_per_caller
        )
        """What one authenticated caller may hold of each class (see the module's notes)."""
        self._open = dict.fromkeys(self.limits, 0)
        self._by_caller: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self.health_pool = futures.ThreadPoolExecutor(
            max_workers=HEALTH_POOL_THREADS, thread_name_prefix="grpc-health"
        )
        self.reflection_pool = futures.ThreadPoolExecutor(
            max_workers=REFLECTION_LIMIT + 2, thread_name_prefix="grpc-reflection"
        )

    @staticmethod
    def classes(method: str, *, streaming: bool) -> tuple[str, ...]:
        """The bounded classes a call of ``method`` counts in (empty: unbounded)."""
        service = method.strip("/").split("/", 1)[0]
        if service == HEALTH_SERVICE:
            return ("health_watch",) if method.endswith("/Watch") else ()
        if service in REFLECTION_SERVICES:
            return ("reflection",)
        work = (_WORK_CLASSES[method],) if method in _WORK_CLASSES else ()
        if not streaming:
            return (*work, "long_running") if work else ("unary",)
        if method in _WATCH_METHODS:
            return ("streams", "watch", "long_running")
        return ("streams", *work, "long_running")

    def pool_for(self, method: str) -> futures.ThreadPoolExecutor | None:
        """The dedicated pool ``method`` runs on, or None for the server's main pool."""
        service = method.strip("/").split("/", 1)[0]
        if service == HEALTH_SERVICE:
            return self.health_pool
        if service in REFLECTION_SERVICES:
            return self.reflection_pool
        return None

    def open_count(self, name: str) -> int:
        """Calls of class ``name`` open now."""
        with self._lock:
            return self._open[name]

    def acquire(self, classes: tuple[str, ...], *, caller: str | None = None) -> Slot:
        """Take a place in every class of ``classes``, or none.

        Args:
            classes: From :meth:`classes`.
            caller: The authenticated caller's name; a long-running call then also counts
                against its share (None: open mode, every caller is the same one).

        Raises:
            Overloaded: One of the classes, or the caller's share of streams, is full.
        """
        mine = [(caller, name) for name in _SHARES if name in classes] if caller is not None else []
        with self._lock:
            for name in classes:
                if self._open[name] >= self.limits[name]:
                    raise Overloaded(
                        f"too many concurrent {name.replace('_', ' ')} calls "
                        f"(limit {self.limits[name]}); retry later",
                        subject=f"concurrent_calls/{name}",
                        retry_after_s=_RETRY_AFTER_S,
                    )
            for key in mine:
                name = key[1]
                if self._by_caller.get(key, 0) >= self.shares[name]:
                    what, subject = _SHARES[name]
                    raise Overloaded(
                        f"this caller has {self.shares[name]} {what} open already "
                        "(the most one caller may hold); close one or retry later",
                        subject=subject,
                        retry_after_s=_RETRY_AFTER_S,
                    )
            for name in classes:
                self._open[name] += 1
            for key in mine:
                self._by_caller[key] = self._by_caller.get(key, 0) + 1

        def release() -> None:
            with self._lock:
                for name in classes:
                    self._open[name] -= 1
                for key in mine:
                    self._by_caller[key] -= 1
                    if not self._by_caller[key]:
                        del self._by_caller[key]

        return Slot(release)

    def shutdown(self) -> None:
        """Stop the dedicated pools (after the server stopped)."""
        self.health_pool.shutdown(wait=False, cancel_futures=True)
        self.reflection_pool.shutdown(wait=False, cancel_futures=True)
