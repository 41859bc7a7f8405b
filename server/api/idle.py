"""Ending streams whose client has gone quiet, so an idle caller cannot hold a thread forever.

A streaming call holds a thread of the server's pool for as long as it is open (see
:mod:`.admission`). Admission bounds how many are open and how many one caller holds, but not
for how long: a client that sends an upload's metadata and then nothing, or opens ``Generate``
and stops reading, kept its place until the server restarted. Half the streams per member and
two members was the whole server.

:class:`IdleLimit` times only the waits that are the client's to end:

* a stream of requests waiting for the client's next message (``UploadDataset``, reflection);
* a stream of responses waiting for the client to take the last one: grpcio's ``send`` blocks
  once the client's flow-control window is full, which is what a client that stops reading
  looks like from here (about 4 MB in).

The server's own waits are not timed: a ``WatchTrainingJob`` on a job that runs for hours
waits on the job, not on its client, and ``Generate`` waits on the model.

A call that waits on its client longer than the limit is ended with DEADLINE_EXCEEDED and a
message naming the limit; its thread and admission place come back within a sweep period.
The status is sent through grpcio's call object (``cancel`` with a status, which grpc core
sends to the client as the call's trailers); where that is not reachable, the call is
cancelled plainly and the client sees CANCELLED.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import grpc

__all__ = ["DEFAULT_STREAM_IDLE_SECONDS", "IdleLimit"]

log = logging.getLogger(__name__)

DEFAULT_STREAM_IDLE_SECONDS = 120.0
"""How long a stream may wait on its client: long enough for a client that reads a slow
source or pauses for a garbage collection, short enough that a held place comes back soon."""


def _end_with_status(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> None:
    """End the call from another thread, the client seeing ``code`` and ``message``.

    ``ServicerContext.abort`` works only on the call's own thread, which is the one blocked;
    grpcio's call object can cancel with a status from any thread. Its path is private, so
    a grpcio without it falls back to the public ``cancel`` (the client then sees CANCELLED).
    """
    call = getattr(getattr(context, "_rpc_event", None), "call", None)
    cancel = getattr(call, "cancel", None)
    if cancel is not None:
        try:
            cancel(code.value[0], message)
            return
        except TypeError:
            pass
    context.cancel()


class IdleLimit:
    """Ends streaming calls that wait on their client for longer than ``limit_s``.

    Args:
        limit_s: Longest wait on the client, in seconds; 0 turns the limit off.
        end: How a call is ended (tests replace it); default sends DEADLINE_EXCEEDED.
        clock: Monotonic seconds (tests replace it).
    """

    def __init__(
        self,
        *,
        limit_s: float,
        end: Callable[[grpc.ServicerContext, grpc.StatusCode, str], None] = _end_with_status,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit_s = limit_s
        self._end = end
        self._clock = clock
        self._waiting: dict[int, tuple[float, grpc.ServicerContext, str]] = {}
        self._ended: weakref.WeakSet[Any] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        """Whether calls are timed at all."""
        return self.limit_s > 0

    def start(self) -> None:
        """Start the sweeping thread (a daemon; :meth:`stop` ends it)."""
        if not self.enabled or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="stream-idle", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop sweeping; calls still open are left alone."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @contextmanager
    def waiting(self, context: grpc.ServicerContext, what: str) -> Iterator[None]:
        """Time the block as a wait on ``context``'s client.

        Args:
            context: The call's own grpcio context (not a wrapper): the one that can end it.
            what: What the call waits for, for the message ("message", "the client to read").
        """
        if not self.enabled:
            yield
            return
        token = object()
        key = id(token)
        with self._lock:
            self._waiting[key] = (self._clock(), context, what)
        try:
            yield
        finally:
            with self._lock:
                self._waiting.pop(key, None)

    def ended(self, context: grpc.ServicerContext) -> bool:
        """Whether this limit ended the call (so it is reported as DEADLINE_EXCEEDED)."""
        with self._lock:
            return context in self._ended

    def sweep(self) -> int:
        """End every call that has waited on its client past the limit; how many it ended."""
        now = self._clock()
        with self._lock:
            late = [
                (key, context, what)
                for key, (since, context, what) in self._waiting.items()
                if now - since >= self.limit_s
            ]
            for key, context, _ in late:
                del self._waiting[key]
                self._ended.add(context)
        for _, context, what in late:
            message = (
                f"the stream waited {self.limit_s:g} s for {what}, the server's limit "
                "(PRIVSYNTH_STREAM_IDLE_SECONDS); it was ended. Keep a stream busy or close it."
            )
            log.info("ended a stream idle for %g s (waiting for %s)", self.limit_s, what)
            try:
                self._end(context, grpc.StatusCode.DEADLINE_EXCEEDED, message)
            except Exception:  # one call that cannot be ended must not spare the others
                log.exception("could not end an idle stream")
        return len(late)

    def _run(self) -> None:
        period = min(1.0, self.limit_s / 4)
        while not self._stop.wait(period):
            try:
                self.sweep()
            except Exception:  # a sweep must never kill the thread that reclaims the pool
                log.exception("stream idle sweep failed")
