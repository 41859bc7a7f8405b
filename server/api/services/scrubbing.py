"""Scrubbing servicer: ad hoc analysis and scrubbing of one size-limited text.

ScrubText belongs to no dataset, so keyed strategies (``hash``, ``pseudonym``) use a fresh
random key per request: the same value gets the same surrogate within one text, and nothing
links two requests (no caller can use the service as an oracle for a dataset's surrogates).
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import grpc
from privsynth.client.pb import scrubbing_pb2, scrubbing_pb2_grpc
from privsynth.server.errors import InvalidArgument, Reason, Unavailable
from privsynth.server.runtime import Runtime
from privsynth.server.scrubbing.pool import ScrubPoolClosed, WorkerLost
from privsynth.server.scrubbing.scrubber import ScrubCancelled

__all__ = ["ScrubbingServicer"]


@contextmanager
def _scrubbing(context: grpc.ServicerContext) -> Iterator[threading.Event]:
    """An event set when the call ends (client gone, deadline); pool shutdown as UNAVAILABLE."""
    gone = threading.Event()
    if not context.add_callback(gone.set):
        gone.set()
    try:
        yield gone
    except (ScrubPoolClosed, WorkerLost):
        raise Unavailable(
            "the scrub workers are restarting or shutting down: retry",
            reason=Reason.SCRUB_WORKER_LOST,
        ) from None
    except ScrubCancelled:
        context.abort(grpc.StatusCode.CANCELLED, "the call was cancelled")


def _checked(runtime: Runtime, text: str) -> str:
    runtime.require_ready()
    limit = runtime.settings.max_record_bytes
    size = len(text.encode("utf-8"))
    if size > limit:
        raise InvalidArgument(f"text is {size} bytes, over the limit of {limit}", field="text")
    if not text.strip():
        raise InvalidArgument("text is empty", field="text")
    return text


class ScrubbingServicer(scrubbing_pb2_grpc.ScrubbingServicer):
    """privsynth.v1.Scrubbing."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def AnalyzeText(  # noqa: N802
        self, request: scrubbing_pb2.AnalyzeTextRequest, context: grpc.ServicerContext
    ) -> scrubbing_pb2.AnalyzeTextResponse:
        """Spans of detected PII, ordered by position."""
        text = _checked(self.runtime, request.text)
        with _scrubbing(context) as gone:
            # The fast lane: a short text never waits behind an upload's backlog.
            results = self.runtime.scrubber.analyze_batch([text], cancel=gone, interactive=True)[0]
        spans = [
            scrubbing_pb2.PiiSpan(
                entity_type=r.entity_type, start=r.start, end=r.end, score=float(r.score)
            )
            for r in sorted(results, key=lambda r: (r.start, r.end))
        ]
        return scrubbing_pb2.AnalyzeTextResponse(spans=spans)

    def ScrubText(  # noqa: N802
        self, request: scrubbing_pb2.ScrubTextRequest, context: grpc.ServicerContext
    ) -> scrubbing_pb2.ScrubTextResponse:
        """The scrubbed text and counts per entity type."""
        text = _checked(self.runtime, request.text)
        scrubber = self.runtime.scrubber
        key = secrets.token_bytes(32) if scrubber.policy.needs_key else None
        with _scrubbing(context) as gone:
            result = scrubber.scrub_batch([text], key=key, cancel=gone, interactive=True)[0]
        return scrubbing_pb2.ScrubTextResponse(
            text=result.text, entity_counts=dict(result.entity_counts)
        )
