"""The server's exception hierarchy, one class per gRPC status code.

Domain code raises these; :mod:`privsynth.server.api.interceptors` is the one place that turns them
into gRPC statuses with ``google.rpc`` rich details. Messages are written for the caller and must
never contain corpus text or PII: say which record or field, never what it held.

::

    PrivsynthError
    ├── InvalidArgument        INVALID_ARGUMENT   (carries field violations)
    ├── NotFound               NOT_FOUND
    ├── AlreadyExists          ALREADY_EXISTS
    ├── FailedPrecondition     FAILED_PRECONDITION
    ├── ResourceExhausted      RESOURCE_EXHAUSTED (carries the remaining budget)
    ├── Overloaded             RESOURCE_EXHAUSTED (too many concurrent calls; carries RetryInfo)
    ├── PermissionDenied       PERMISSION_DENIED
    ├── Unauthenticated        UNAUTHENTICATED
    └── Unavailable            UNAVAILABLE
"""

from __future__ import annotations

import grpc

__all__ = [
    "AlreadyExists",
    "FailedPrecondition",
    "InvalidArgument",
    "NotFound",
    "Overloaded",
    "PermissionDenied",
    "PrivsynthError",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
]


class PrivsynthError(Exception):
    """Base of every error the server reports to a caller."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(PrivsynthError):
    """A request field is malformed; ``field`` names it for a ``BadRequest`` detail."""

    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.field = field


class NotFound(PrivsynthError):
    """The named resource does not exist (or is not visible to the caller)."""

    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(PrivsynthError):
    """The resource to create exists already."""

    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(PrivsynthError):
    """The system is not in a state that allows the request (e.g. model still training)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class ResourceExhausted(PrivsynthError):
    """A privacy budget would be exceeded; ``remaining`` is the ε still available."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED

    def __init__(self, message: str, *, remaining: float) -> None:
        super().__init__(message)
        self.remaining = remaining


class Overloaded(PrivsynthError):
    """Too many calls of one class are running; ``retry_after_s`` becomes a ``RetryInfo``.

    ``subject`` names the class (e.g. ``concurrent_calls/watch``) in a ``QuotaFailure`` detail.
    """

    code = grpc.StatusCode.RESOURCE_EXHAUSTED

    def __init__(self, message: str, *, subject: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.subject = subject
        self.retry_after_s = retry_after_s


class PermissionDenied(PrivsynthError):
    """The caller is known but may not do this."""

    code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(PrivsynthError):
    """The caller presented no valid credentials."""

    code = grpc.StatusCode.UNAUTHENTICATED


class Unavailable(PrivsynthError):
    """The server is starting or shutting down."""

    code = grpc.StatusCode.UNAVAILABLE
