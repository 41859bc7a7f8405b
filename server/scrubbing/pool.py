"""Scrub worker processes with fair, cancellable, memory-bounded scheduling.

:class:`WorkerPool` runs a fixed number of spawned processes. Work does not queue inside
them: each worker takes one task at a time from a :class:`Scheduler` in the parent, so

* **fairness**: tasks are grouped by :class:`Lane` (one lane per request). Interactive lanes
  (a ScrubText, an AnalyzeText) are served first; bulk lanes (uploads) take turns, one task
  each, and with ``reserved`` workers they never occupy every worker: a small request then
  starts at once, never waiting for an upload's tasks (issue 12: a 30-character ScrubText
  timed out behind a 22 MB upload). Without a reserve it waits for at most one running task.
* **cancellation**: :meth:`Lane.cancel` drops the lane's queued tasks at once; a task already
  in a worker finishes there (tasks are kept to about a second) and its result is discarded.
* **memory**: after each task a worker gives freed heap back to the system (``malloc_trim``)
  and reports its resident size; one above ``max_rss_bytes`` is replaced by a fresh process
  (spaCy's string store and heap fragmentation otherwise only grow).
* **shutdown**: :meth:`WorkerPool.close` fails every queued and running task with
  :class:`ScrubPoolClosed` and terminates the workers without waiting for their tasks.

Exceptions cross the pipe as they are: task functions must raise only exceptions whose
messages hold no input text (``scrub_pipeline`` reduces anything else to its type name).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from multiprocessing.connection import Connection
from typing import Any

from privsynth.server.scrubbing.scrubber import ScrubCancelled

__all__ = ["Lane", "Scheduler", "ScrubPoolClosed", "WorkerLost", "WorkerPool", "rss_bytes"]

log = logging.getLogger(__name__)

#: How often a waiting thread re-checks for shutdown or a dead worker.
_POLL_S = 0.1
#: How long a terminated worker gets before SIGKILL.
_TERMINATE_S = 2.0


class ScrubPoolClosed(ScrubCancelled):
    """The worker pool shut down (the server is stopping) before the task finished."""


class WorkerLost(RuntimeError):
    """A worker process exited (killed, out of memory) while it ran the task or started."""


def rss_bytes() -> int:
    """This process's resident set size in bytes (0 where ``/proc`` is missing)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _trim_heap() -> None:
    """Return free heap pages to the system (glibc only; a no-op elsewhere)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _worker_main(
    conn: Connection, initializer: Callable[..., Any], initargs: tuple[Any, ...]
) -> None:
    """A worker process: initialise, report ready, then run tasks until told to stop."""
    try:
        ready: Any = initializer(*initargs)
    except BaseException as exc:  # the initializer reports its own errors as values
        ready = ScrubCancelled(f"worker failed to start ({type(exc).__name__})")
    conn.send(ready)
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        fn, args = msg
        try:
            reply: tuple[bool, Any] = (True, fn(*args))
        except Exception as exc:
            reply = (False, exc)
        _trim_heap()
        try:
            conn.send((reply, rss_bytes()))
        except Exception as exc:  # an unpicklable result: say so without its content
            conn.send(((False, ScrubCancelled(f"result not sendable ({type(exc).__name__})")), 0))


class _Task:
    __slots__ = ("args", "fn", "future", "lane")

    def __init__(
        self, lane: Lane, fn: Callable[..., Any], args: tuple[Any, ...], future: Future[Any]
    ) -> None:
        self.lane = lane
        self.fn = fn
        self.args = args
        self.future = future


class Lane:
    """One request's queue of tasks; see :meth:`Scheduler.lane`."""

    def __init__(self, scheduler: Scheduler, *, interactive: bool) -> None:
        self._scheduler = scheduler
        self.interactive = interactive
        self.queue: deque[_Task] = deque()
        self.cancelled = False

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Queue ``fn(*args)`` for a worker; the future holds its result.

        Raises:
            ScrubCancelled: The lane was cancelled.
            ScrubPoolClosed: The pool shut down.
        """
        return self._scheduler.put(self, fn, args)

    def cancel(self) -> int:
        """Drop this lane's queued tasks (their futures are cancelled); returns how many."""
        return self._scheduler.cancel(self)

    def queued(self) -> int:
        """Tasks of this lane not yet taken by a worker."""
        with self._scheduler.lock:
            return len(self.queue)


class Scheduler:
    """Queues per lane: interactive lanes first, bulk lanes in turn (round robin)."""

    def __init__(self, *, bulk_limit: int = 0) -> None:
        self.lock = threading.Lock()
        self._ready = threading.Condition(self.lock)
        self._interactive: deque[Lane] = deque()
        self._bulk: deque[Lane] = deque()
        self.closed = False
        #: Most bulk tasks running at once (0: no limit): the workers beyond it are kept for
        #: interactive lanes, which then never wait for a bulk task to finish.
        self.bulk_limit = bulk_limit
        self._bulk_running = 0

    def lane(self, *, interactive: bool = False) -> Lane:
        """A new lane for one request."""
        return Lane(self, interactive=interactive)

    def put(self, lane: Lane, fn: Callable[..., Any], args: tuple[Any, ...]) -> Future[Any]:
        """Queue a task on ``lane`` (see :meth:`Lane.submit`)."""
        future: Future[Any] = Future()
        with self.lock:
            if self.closed:
                raise ScrubPoolClosed("the scrub workers are shutting down")
            if lane.cancelled:
                raise ScrubCancelled("scrubbing was cancelled")
            if not lane.queue:
                (self._interactive if lane.interactive else self._bulk).append(lane)
            lane.queue.append(_Task(lane, fn, args, future))
            self._ready.notify()
        return future

    def cancel(self, lane: Lane) -> int:
        """Drop ``lane``'s queued tasks (see :meth:`Lane.cancel`)."""
        with self.lock:
            lane.cancelled = True
            dropped = list(lane.queue)
            lane.queue.clear()
            for lanes in (self._interactive, self._bulk):
                if lane in lanes:
                    lanes.remove(lane)
        for task in dropped:
            task.future.cancel()
        return len(dropped)

    def queued(self) -> int:
        """Tasks waiting for a worker, over every lane."""
        with self.lock:
            return sum(len(ln.queue) for lanes in (self._interactive, self._bulk) for ln in lanes)

    def get(self) -> _Task | None:
        """The next task, blocking; None once closed."""
        with self.lock:
            while not self.closed:
                bulk_ok = not self.bulk_limit or self._bulk_running < self.bulk_limit
                for lanes in (self._interactive, self._bulk) if bulk_ok else (self._interactive,):
                    if lanes:
                        lane = lanes.popleft()
                        task = lane.queue.popleft()
                        if lane.queue:
                            lanes.append(lane)  # its next task waits for the others' turns
                        if not lane.interactive:
                            self._bulk_running += 1
                        return task
                self._ready.wait()
            return None

    def done(self, task: _Task) -> None:
        """A worker finished ``task`` (a place for bulk work may have opened)."""
        if not task.lane.interactive:
            with self.lock:
                self._bulk_running -= 1
                self._ready.notify_all()

    def close(self) -> None:
        """Refuse new tasks and fail the queued ones with :class:`ScrubPoolClosed`."""
        with self.lock:
            self.closed = True
            dropped = [
                t for lanes in (self._interactive, self._bulk) for ln in lanes for t in ln.queue
            ]
            for lanes in (self._interactive, self._bulk):
                for ln in lanes:
                    ln.queue.clear()
                lanes.clear()
            self._ready.notify_all()
        for task in dropped:
            _fail(task.future, ScrubPoolClosed("the scrub workers shut down"))


def _fail(future: Future[Any], exc: BaseException) -> None:
    """Fail ``future`` unless it already has an outcome."""
    with contextlib.suppress(InvalidStateError):
        future.set_exception(exc)


class _Worker:
    """One process and the parent thread feeding it."""

    def __init__(self, pool: WorkerPool, index: int) -> None:
        self.pool = pool
        self.index = index
        self.process: Any = None
        self.conn: Connection | None = None
        self.thread: threading.Thread | None = None
        self.current: _Task | None = None
        self.recycled = 0
        # The feeder thread recycles the process while close() may stop it from another
        # thread: whoever takes (process, conn) under this lock is the only one to close them.
        self._lock = threading.Lock()

    def start_process(self) -> Any:
        """Spawn the process and wait for its initializer's value."""
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(
            target=_worker_main,
            args=(child, self.pool.initializer, self.pool.initargs),
            name=f"privsynth-scrub-{self.index}",
            daemon=True,
        )
        proc.start()
        child.close()
        with self._lock:
            self.process, self.conn = proc, parent
        try:
            while not parent.poll(_POLL_S):
                if self.pool.closing.is_set():
                    raise ScrubPoolClosed("the scrub workers shut down while starting")
                if not proc.is_alive():
                    raise WorkerLost("a scrub worker exited while starting")
            return parent.recv()
        except (EOFError, OSError):  # closed under us by close(), or the process died
            if self.pool.closing.is_set():
                raise ScrubPoolClosed("the scrub workers shut down while starting") from None
            raise WorkerLost("a scrub worker exited while starting") from None

    def stop_process(self, *, wait: float = _TERMINATE_S) -> None:
        with self._lock:
            proc, conn = self.process, self.conn
            self.process = self.conn = None
        if proc is None:
            if conn is not None:
                conn.close()
            return
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.send(None)
        proc.join(wait if not self.pool.closing.is_set() else 0)
        if proc.is_alive():
            proc.terminate()
            proc.join(_TERMINATE_S)
        if proc.is_alive():
            proc.kill()
            proc.join(_TERMINATE_S)
        if conn is not None:
            conn.close()

    def run(self) -> None:
        """Feed tasks to the process until the pool closes; replace it when needed."""
        pool = self.pool
        while True:
            task = pool.scheduler.get()
            if task is None:
                return
            if not task.future.set_running_or_notify_cancel():
                pool.scheduler.done(task)
                continue  # cancelled while queued
            self.current = task
            try:
                self._run_task(task)
            finally:
                self.current = None
                pool.scheduler.done(task)
            if pool.closing.is_set():
                return

    def _run_task(self, task: _Task) -> None:
        pool = self.pool
        if self.process is None:
            try:
                self.start_process()
            except (ScrubCancelled, WorkerLost) as exc:
                self.stop_process(wait=0)
                _fail(task.future, exc)
                return
        conn, proc = self.conn, self.process
        assert conn is not None
        assert proc is not None
        try:
            conn.send((task.fn, task.args))
            while not conn.poll(_POLL_S):
                if pool.closing.is_set() or not proc.is_alive():
                    raise EOFError
            (ok, value), rss = conn.recv()
        except (EOFError, OSError):
            if pool.closing.is_set():
                _fail(task.future, ScrubPoolClosed("the scrub workers shut down"))
            else:
                log.warning("scrub worker %d exited during a task; starting another", self.index)
                _fail(task.future, WorkerLost("a scrub worker exited during the task"))
                self.stop_process(wait=0)
            return
        if ok:
            task.future.set_result(value)
        else:
            task.future.set_exception(value)
        if pool.max_rss_bytes and rss > pool.max_rss_bytes and not pool.closing.is_set():
            log.info(
                "scrub worker %d holds %d MiB, over the limit of %d MiB: replacing it",
                self.index,
                rss >> 20,
                pool.max_rss_bytes >> 20,
            )
            self.recycled += 1
            pool.recycled += 1
            self.stop_process()
            try:
                self.start_process()
            except (ScrubCancelled, WorkerLost):
                self.stop_process(wait=0)  # started again with the next task


class WorkerPool:
    """``workers`` spawned processes fed from one :class:`Scheduler`.

    Args:
        workers: Processes.
        initializer: Run once in each new process (picklable, module-level); its return
            value is what :meth:`start` returns for the first worker (e.g. a description).
        initargs: Its arguments (pickled to each process over a pipe, never written).
        max_rss_bytes: A worker whose resident size exceeds this after a task is replaced
            (0: never).
        reserved: Workers kept for interactive lanes: bulk lanes use at most
            ``workers - reserved`` at once (at least one).
    """

    def __init__(
        self,
        workers: int,
        initializer: Callable[..., Any],
        initargs: tuple[Any, ...] = (),
        *,
        max_rss_bytes: int = 0,
        reserved: int = 0,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.initializer = initializer
        self.initargs = initargs
        self.max_rss_bytes = max_rss_bytes
        self.scheduler = Scheduler(bulk_limit=max(1, workers - reserved) if reserved else 0)
        self.closing = threading.Event()
        self.recycled = 0
        self._workers = [_Worker(self, i) for i in range(workers)]

    def start(self, check: Callable[[Any], None] | None = None) -> list[Any]:
        """Start every worker at once and return their initializers' values.

        ``check`` sees each value and may raise (then the pool closes and the error
        propagates).
        """
        values: list[Any] = [None] * len(self._workers)
        errors: list[BaseException] = []

        def boot(w: _Worker) -> None:
            try:
                values[w.index] = w.start_process()
            except BaseException as exc:
                errors.append(exc)

        boots = [threading.Thread(target=boot, args=(w,)) for w in self._workers]
        for t in boots:
            t.start()
        for t in boots:
            t.join()
        try:
            if errors:
                raise errors[0]
            for v in values:
                if check is not None:
                    check(v)
        except BaseException:
            self.close()
            raise
        for w in self._workers:
            w.thread = threading.Thread(target=w.run, name=f"scrub-feeder-{w.index}", daemon=True)
            w.thread.start()
        return values

    def lane(self, *, interactive: bool = False) -> Lane:
        """A new lane (one per request)."""
        return self.scheduler.lane(interactive=interactive)

    def pids(self) -> list[int]:
        """Process ids of the running workers."""
        return [int(w.process.pid) for w in self._workers if w.process is not None]

    def busy(self) -> int:
        """Workers running a task now."""
        return sum(w.current is not None for w in self._workers)

    def queued(self) -> int:
        """Tasks waiting for a worker."""
        return self.scheduler.queued()

    def close(self) -> None:
        """Fail queued and running tasks with :class:`ScrubPoolClosed`; end every worker.

        Does not wait for running tasks: workers are terminated (SIGTERM, then SIGKILL).
        """
        self.closing.set()
        self.scheduler.close()
        started = time.monotonic()
        for w in self._workers:
            w.stop_process(wait=0)
        for w in self._workers:
            if w.thread is not None:
                w.thread.join(max(0.1, 2 * _TERMINATE_S - (time.monotonic() - started)))
            task = w.current
            if task is not None:
                _fail(task.future, ScrubPoolClosed("the scrub workers shut down"))
