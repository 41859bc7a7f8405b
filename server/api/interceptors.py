"""The one place where exceptions become gRPC statuses, plus standard gRPC server metrics.

Domain code raises :class:`~privsynth.server.errors.PrivsynthError` subclasses; this interceptor
turns them into statuses with ``google.rpc`` rich details (``BadRequest`` field violations,
``QuotaFailure``/``ErrorInfo`` with the remaining budget, ``ErrorInfo.reason`` from the
error's :class:`~privsynth.server.errors.Reason`). Any other exception becomes INTERNAL
with an opaque reference: its message may hold input text, so it is neither returned nor logged,
only its type and where it happened.

It is also where access is decided: with an :class:`~privsynth.server.api.auth.Authenticator`, every
privsynth RPC is authorised (UNAUTHENTICATED / PERMISSION_DENIED through the same error path)
before its handler runs, and the handler receives a context carrying the caller's identity.
Health and reflection are not privsynth RPCs and stay open.

Every call gets a request id: the caller's ``x-request-id`` metadata when well-formed (1..128
characters of ``A-Z a-z 0-9 . _ : -``), a fresh one otherwise. It goes back to the caller in
the trailing metadata (errors included, so a failed call can be quoted to an operator; streams
also get it at once in the initial metadata) and tags every log line written while the call is
handled (:func:`privsynth.server.logs.rpc_scope`).
"""

from __future__ import annotations

import errno
import logging
import re
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from privsynth.server.api.admission import Admission, Slot
from privsynth.server.api.auth import AuthContext, Authenticator
from privsynth.server.api.idle import IdleLimit
from privsynth.server.errors import (
    InvalidArgument,
    Overloaded,
    PrivsynthError,
    QuotaExceeded,
    Reason,
    ResourceExhausted,
)
from privsynth.server.logs import rpc_scope
from privsynth.server.metrics import Metrics
from privsynth.server.telemetry import UNTRACED_SERVICES, RpcTelemetry

__all__ = ["MALFORMED", "REQUEST_ID_KEY", "ServerInterceptor", "request_id_of", "to_status"]

log = logging.getLogger(__name__)
_DOMAIN = "privsynth.v1"
REQUEST_ID_KEY = "x-request-id"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def request_id_of(metadata: Any) -> str:
    """The caller's ``x-request-id`` when well-formed, else a new random id."""
    for key, value in metadata or ():
        if key == REQUEST_ID_KEY and isinstance(value, str) and _REQUEST_ID.fullmatch(value):
            return value
    return uuid.uuid4().hex


def _announce(context: grpc.ServicerContext, request_id: str, *, early: bool) -> None:
    """Return the request id in the trailing metadata, and ``early`` in the initial too.

    Streams get it at once (a long upload or watch can be quoted while it runs); a unary call
    gets it with its answer only, since sending initial metadata ahead of the response costs
    the call a separate round of its own (~60 µs, 15% of a trivial call).
    """
    pair = ((REQUEST_ID_KEY, request_id),)
    if early:
        context.send_initial_metadata(pair)
    context.set_trailing_metadata(pair)


def _with_request_id(status: grpc.Status, request_id: str) -> grpc.Status:
    """``status`` (from :func:`rpc_status.to_status`) with the request id in its trailers.

    Aborting with a status replaces the trailing metadata set earlier, so the id rides along.
    """
    trailing = (*status.trailing_metadata, (REQUEST_ID_KEY, request_id))
    replaced: grpc.Status = status._replace(trailing_metadata=trailing)  # type: ignore[attr-defined]
    return replaced


def _pack(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def to_status(exc: PrivsynthError) -> status_pb2.Status:
    """The ``google.rpc.Status`` for a domain error, with rich details."""
    status = status_pb2.Status(code=exc.code.value[0], message=exc.message)
    info = error_details_pb2.ErrorInfo(reason=exc.reason.value, domain=_DOMAIN)
    if isinstance(exc, InvalidArgument) and exc.field:
        violation = error_details_pb2.BadRequest.FieldViolation(
            field=exc.field, description=exc.message
        )
        status.details.append(_pack(error_details_pb2.BadRequest(field_violations=[violation])))
    if isinstance(exc, ResourceExhausted):
        info.metadata["epsilon_remaining"] = f"{exc.remaining:.6g}"
        status.details.append(
            _pack(
                error_details_pb2.QuotaFailure(
                    violations=[
                        error_details_pb2.QuotaFailure.Violation(
                            subject="privacy_budget", description=exc.message
                        )
                    ]
                )
            )
        )
    if isinstance(exc, QuotaExceeded):
        info.metadata["limit"] = str(exc.limit)
        info.metadata["used"] = str(exc.used)
        violation = error_details_pb2.QuotaFailure.Violation(
            subject=exc.subject, description=exc.message
        )
        status.details.append(_pack(error_details_pb2.QuotaFailure(violations=[violation])))
    if isinstance(exc, Overloaded):
        violation = error_details_pb2.QuotaFailure.Violation(
            subject=exc.subject, description=exc.message
        )
        status.details.append(_pack(error_details_pb2.QuotaFailure(violations=[violation])))
        delay = duration_pb2.Duration()
        delay.FromMilliseconds(round(exc.retry_after_s * 1000))
        status.details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
    status.details.append(_pack(info))
    return status


_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_SQLITE_FULL = "database or disk is full"  # SQLite's own fixed message (SQLITE_FULL)


def _as_domain_error(exc: Exception) -> Exception:
    """``exc``, or the domain error it stands for when the server's disk is full.

    A full data volume is no fault of the caller's and no bug of the server's: an upload (or
    any call that writes) then gets RESOURCE_EXHAUSTED ``STORAGE_FULL`` with a ``RetryInfo``
    instead of an opaque INTERNAL, and an operator's alert has one reason to look for. What
    the call wrote is gone already (staged files are removed, transactions rolled back).
    """
    full = isinstance(exc, OSError) and exc.errno in _DISK_FULL_ERRNOS
    cause = getattr(exc, "orig", None)  # SQLAlchemy's wrapper around sqlite3's error
    full = full or (isinstance(cause, Exception) and str(cause) == _SQLITE_FULL)
    if not full:
        return exc
    log.error(
        "the server's disk is full (%s, errno %s): a call that writes was refused",
        type(cause if cause is not None else exc).__name__,
        getattr(exc, "errno", None),
    )
    return Overloaded(
        "the server has no disk space left for this: nothing was stored; retry later",
        subject="storage/disk_full",
        retry_after_s=60.0,
        reason=Reason.STORAGE_FULL,
    )


def _internal(
    context: grpc.ServicerContext, exc: BaseException, method: str, request_id: str
) -> None:
    ref = uuid.uuid4().hex[:12]
    where = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    site = f"{where[0].filename}:{where[0].lineno}" if where else "?"
    log.error("internal error ref=%s in %s: %s at %s", ref, method, type(exc).__name__, site)
    status = status_pb2.Status(
        code=code_pb2.INTERNAL, message=f"internal error (reference {ref}); see server logs"
    )
    context.abort_with_status(_with_request_id(rpc_status.to_status(status), request_id))


def _split(method: str) -> tuple[str, str]:
    _, service, name = method.split("/", 2) if method.count("/") == 2 else ("", "?", method)
    return service, name


_END = object()
"""Marks the end of a request stream."""


class _Malformed:
    """Stands for a request whose bytes did not parse (see :func:`_tolerant`)."""

    def __repr__(self) -> str:
        return "<malformed request>"


MALFORMED = _Malformed()


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """``deserializer`` that returns :data:`MALFORMED` instead of raising.

    grpcio answers a request that fails to deserialize with INTERNAL ("Exception deserializing
    request!") and logs a traceback; a malformed protobuf or invalid UTF-8 in a string field is
    the caller's fault, so the handler sees the marker and answers INVALID_ARGUMENT instead.
    """
    if deserializer is None:
        return None

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception:  # protobuf's DecodeError and friends: nothing in it is ours to log
            return MALFORMED

    return deserialize


def _well_formed(request: Any) -> Any:
    """``request`` unchanged, or INVALID_ARGUMENT for :data:`MALFORMED`.

    Raises:
        InvalidArgument: The request bytes did not parse.
    """
    if request is MALFORMED:
        raise InvalidArgument(
            "the request is not a valid protobuf message of the method's request type "
            "(malformed bytes, or invalid UTF-8 in a string field)",
            reason=Reason.MALFORMED_REQUEST,
        )
    return request


@dataclass
class _Call:
    """One call in progress: when it started, its request id, its span (tracing on)."""

    started: float
    request_id: str
    span: Any = None


class ServerInterceptor(grpc.ServerInterceptor):
    """Maps exceptions to statuses and records ``grpc_server_*`` metrics for every RPC.

    With an :class:`~privsynth.server.api.admission.Admission`, it also bounds concurrent streams
    per class (RESOURCE_EXHAUSTED when full) and runs health and reflection on their own pools.
    With an :class:`~privsynth.server.api.idle.IdleLimit`, a stream that waits on its client
    (for a request, or for the client to read) longer than the limit is ended.
    With :class:`~privsynth.server.telemetry.RpcTelemetry` (OpenTelemetry configured), each call
    also gets a span and a duration point; without it, nothing of it runs.
    """

    def __init__(
        self,
        metrics: Metrics,
        authenticator: Authenticator | None = None,
        admission: Admission | None = None,
        telemetry: RpcTelemetry | None = None,
        idle: IdleLimit | None = None,
    ) -> None:
        self.metrics = metrics
        self.authenticator = authenticator
        self.admission = admission
        self.telemetry = telemetry
        self.idle = idle if idle is not None and idle.enabled else None

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        """Wrap the handler's behaviour, whichever of the four RPC shapes it has."""
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        service, name = _split(method)
        behavior: Callable[..., Any]
        factory: Callable[..., grpc.RpcMethodHandler[Any, Any]]
        if handler.unary_unary is not None:
            kind, factory, behavior = (
                "unary",
                grpc.unary_unary_rpc_method_handler,
                handler.unary_unary,
            )
        elif handler.unary_stream is not None:
            kind, factory, behavior = (
                "server_stream",
                grpc.unary_stream_rpc_method_handler,
                handler.unary_stream,
            )
        elif handler.stream_unary is not None:
            kind, factory, behavior = (
                "client_stream",
                grpc.stream_unary_rpc_method_handler,
                handler.stream_unary,
            )
        elif handler.stream_stream is not None:
            kind, factory, behavior = (
                "bidi_stream",
                grpc.stream_stream_rpc_method_handler,
                handler.stream_stream,
            )
        else:
            return handler
        labels = {"grpc_type": kind, "grpc_service": service, "grpc_method": name}
        streams_out = kind in {"server_stream", "bidi_stream"}
        streams_in = kind in {"client_stream", "bidi_stream"}
        m = self.metrics
        tel = self.telemetry if service not in UNTRACED_SERVICES else None
        auth = self.authenticator
        if auth is not None and not auth.protects(method):
            auth = None
        metadata = handler_call_details.invocation_metadata
        admission = self.admission
        classes = (
            admission.classes(method, streaming=streams_in or streams_out) if admission else ()
        )

        def authorized(context: grpc.ServicerContext) -> grpc.ServicerContext:
            if auth is None:
                return context
            identity = auth.authorize(method, metadata)
            return AuthContext(context, identity)  # type: ignore[return-value]

        def admit(context: grpc.ServicerContext) -> Slot | None:
            """Take the call's places, after authenticating it (see :mod:`.admission`)."""
            if admission is None or not classes:
                return None
            open_mode = auth is None or auth.open_mode  # every caller is one anonymous one
            caller = (
                context.identity.name
                if isinstance(context, AuthContext) and not open_mode
                else None
            )
            slot = admission.acquire(classes, caller=caller)
            if not context.add_callback(slot.release):
                slot.release()  # the call has ended already
            return slot

        idle = self.idle

        @contextmanager
        def waiting_on_client(context: grpc.ServicerContext, what: str) -> Iterator[None]:
            if idle is None:
                yield
            else:
                with idle.waiting(context, what):
                    yield

        def count_in(iterator: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
            requests = iter(iterator)
            while True:
                with waiting_on_client(context, "the client's next message"):
                    item = next(requests, _END)
                if item is _END:
                    if idled(context):
                        # grpcio may end a cancelled request stream quietly, as if the client
                        # had finished: an upload must not be stored cut short.
                        raise grpc.RpcError("the stream was ended by the idle limit")
                    return
                m.grpc_msg_received.labels(**labels).inc()
                yield _well_formed(item)

        def idled(context: grpc.ServicerContext) -> bool:
            return idle is not None and idle.ended(context)

        def code_for(context: grpc.ServicerContext, exc: Exception) -> grpc.StatusCode:
            return grpc.StatusCode.DEADLINE_EXCEEDED if idled(context) else _code_for(context, exc)

        def gone(context: grpc.ServicerContext) -> grpc.StatusCode:
            """The status of a call whose client left, or that the idle limit ended."""
            return grpc.StatusCode.DEADLINE_EXCEEDED if idled(context) else _gone(context)

        def done(code: grpc.StatusCode, call: _Call) -> None:
            seconds = time.perf_counter() - call.started
            m.grpc_handled.labels(**labels, grpc_code=code.name).inc()
            m.grpc_seconds.labels(**labels).observe(seconds)
            if tel is not None:
                tel.end(call.span, service, name, code, seconds)

        def begin(request: Any, context: grpc.ServicerContext) -> tuple[_Call, Any]:
            m.grpc_started.labels(**labels).inc()
            call = _Call(time.perf_counter(), request_id_of(metadata))
            if tel is not None:
                call.span = tel.start(service, name, metadata)
            if streams_in:
                return call, count_in(request, context)
            m.grpc_msg_received.labels(**labels).inc()
            return call, request

        @contextmanager
        def scope(call: _Call) -> Iterator[None]:
            """The call's request id (and span) on every log line written in this block."""
            with rpc_scope(call.request_id, method):
                if tel is None:
                    yield
                else:
                    with tel.current(call.span):
                        yield

        def unary_response(request: Any, context: grpc.ServicerContext) -> Any:
            raw = context  # grpcio's own context: the one the idle limit can end
            call, request = begin(request, raw)
            code = grpc.StatusCode.OK
            slot: Slot | None = None
            with scope(call):
                try:
                    _announce(context, call.request_id, early=streams_in)
                    request = request if streams_in else _well_formed(request)
                    context = authorized(context)
                    slot = admit(context)
                    response = behavior(request, context)
                    if not context.is_active():  # the client left (a request stream just ends)
                        code = gone(raw)
                        return response
                    m.grpc_msg_sent.labels(**labels).inc()
                    return response
                except Exception as raised:
                    exc = _as_domain_error(raised)
                    code = code_for(raw, exc)
                    _abort(context, exc, code, method, call.request_id)
                    raise
                finally:
                    if slot is not None:
                        slot.release()
                    done(code, call)

        def stream_response(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            raw = context  # grpcio's own context: the one the idle limit can end
            call, request = begin(request, raw)
            code = grpc.StatusCode.OK
            slot: Slot | None = None
            with scope(call):
                try:
                    _announce(context, call.request_id, early=True)
                    request = request if streams_in else _well_formed(request)
                    context = authorized(context)
                    slot = admit(context)
                    for response in behavior(request, context):
                        m.grpc_msg_sent.labels(**labels).inc()
                        # grpcio sends while this generator is suspended, and blocks once the
                        # client's window is full: that wait is the client's.
                        with waiting_on_client(raw, "the client to read"):
                            yield response
                    if not context.is_active():
                        code = gone(raw)
                except GeneratorExit:  # grpc dropped the stream: the client went away
                    code = grpc.StatusCode.CANCELLED
                    if idled(raw):
                        code = grpc.StatusCode.DEADLINE_EXCEEDED
                    raise
                except Exception as raised:
                    exc = _as_domain_error(raised)
                    code = code_for(raw, exc)
                    _abort(context, exc, code, method, call.request_id)
                    raise
                finally:
                    if slot is not None:
                        slot.release()
                    done(code, call)

        def callback_stream(
            request: Any, context: grpc.ServicerContext, send: Callable[[Any], None]
        ) -> None:
            """A non-blocking stream (health Watch): pushes through ``send``, holds no thread."""
            call, request = begin(request, context)
            try:
                _announce(context, call.request_id, early=True)
                request = _well_formed(request)
                context = authorized(context)
                slot = admit(context)
                pushing: Callable[..., Any] = behavior
                pushing(request, context, send)
            except Exception as exc:
                code = _code_for(context, exc)
                done(code, call)
                with scope(call):
                    _abort(context, exc, code, method, call.request_id)
                raise

            def ended() -> None:
                if slot is not None:
                    slot.release()
                done(grpc.StatusCode.CANCELLED, call)  # it ends when the client leaves

            if not context.add_callback(ended):
                ended()

        wrapped: Any
        if streams_out and not streams_in and getattr(behavior, "experimental_non_blocking", False):
            wrapped = callback_stream
            wrapped.experimental_non_blocking = True  # grpcio passes it a send callback
        else:
            wrapped = stream_response if streams_out else unary_response
        pool = admission.pool_for(method) if admission is not None else None
        if pool is not None:
            wrapped.experimental_thread_pool = pool  # grpcio runs the call on this pool
        return factory(
            wrapped,
            request_deserializer=_tolerant(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )


def _abort(
    context: grpc.ServicerContext,
    exc: Exception,
    code: grpc.StatusCode,
    method: str,
    request_id: str,
) -> None:
    """End the call for ``exc``: domain errors with rich details, anything else as INTERNAL.

    Returns only for the exception ``context.abort`` raises itself (already a status), which
    the caller re-raises.
    """
    if isinstance(exc, PrivsynthError):
        context.abort_with_status(
            _with_request_id(rpc_status.to_status(to_status(exc)), request_id)
        )
    if code in (grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED):
        log.info("%s ended by the client (%s)", method, code.name)
        return
    if code is grpc.StatusCode.INTERNAL:
        _internal(context, exc, method, request_id)


def _code_for(context: grpc.ServicerContext, exc: Exception) -> grpc.StatusCode:
    """The status ``exc`` ends the call with (for metrics and for :func:`_abort`).

    A call whose client has gone (cancelled, or past its deadline) ends CANCELLED or
    DEADLINE_EXCEEDED whatever was raised: grpcio raises a bare ``RpcError`` from the request
    iterator and from sends once the client left, which is no server fault.
    """
    if isinstance(exc, PrivsynthError):
        return exc.code
    if not context.is_active():
        return _gone(context)
    code = context.code() if hasattr(context, "code") else None
    if isinstance(code, grpc.StatusCode) and code is not grpc.StatusCode.OK:
        return code
    return grpc.StatusCode.INTERNAL


def _gone(context: grpc.ServicerContext) -> grpc.StatusCode:
    """The status of a call whose client has left: DEADLINE_EXCEEDED or CANCELLED."""
    remaining = context.time_remaining()
    if remaining is not None and remaining <= 0:
        return grpc.StatusCode.DEADLINE_EXCEEDED
    return grpc.StatusCode.CANCELLED
