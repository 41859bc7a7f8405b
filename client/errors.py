"""Client-side errors: one exception class per gRPC status, with the server's rich details.

::

    PrivsynthClientError          any failed call (.code, .message, .reason, .metadata)
    ├── InvalidArgument           INVALID_ARGUMENT   (.field_violations: field -> why)
    ├── NotFound                  NOT_FOUND          (DATASET_NOT_FOUND, JOB_NOT_FOUND, ...)
    ├── AlreadyExists             ALREADY_EXISTS
    ├── FailedPrecondition        FAILED_PRECONDITION (EPSILON_UNREACHABLE, MODEL_TRAINING, ...)
    ├── ResourceExhausted         RESOURCE_EXHAUSTED
    │   ├── BudgetExhausted       a privacy budget cannot cover the request (.epsilon_remaining)
    │   ├── Overloaded            too many concurrent calls or queued jobs, or a full disk
    │   │                         (.retry_after_s)
    │   └── QuotaExceeded         the tenant's storage share is full (.limit, .used); waiting
    │                             does not help, deleting datasets does
    ├── PermissionDenied          PERMISSION_DENIED
    ├── Unauthenticated           UNAUTHENTICATED
    ├── Unavailable               UNAVAILABLE (already retried by the channel)
    ├── DeadlineExceeded          DEADLINE_EXCEEDED
    ├── Cancelled                 CANCELLED
    └── ServerError               INTERNAL, UNKNOWN, DATA_LOSS, UNIMPLEMENTED

Catch a class for the kind of failure; branch on ``reason`` (the server's
``google.rpc.ErrorInfo.reason``, e.g. ``BUDGET_EXCEEDED`` or ``EPSILON_UNREACHABLE``) for which
one. The reasons are listed in the server's ``privsynth.server.errors.Reason``; they are part of
the API and never renamed.

A RESOURCE_EXHAUSTED status is told apart by its reason, or for older servers by its details: a
budget refusal carries a ``QuotaFailure`` with subject ``privacy_budget`` and the remaining ε in
``ErrorInfo``, an admission refusal a ``RetryInfo``. Anything else (e.g. grpcio's own
message-size limit) is a plain :class:`ResourceExhausted`.
"""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

__all__ = [
    "AlreadyExists",
    "BudgetExhausted",
    "Cancelled",
    "DeadlineExceeded",
    "FailedPrecondition",
    "InvalidArgument",
    "NotFound",
    "Overloaded",
    "PermissionDenied",
    "PrivsynthClientError",
    "QuotaExceeded",
    "ResourceExhausted",
    "ServerError",
    "Unauthenticated",
    "Unavailable",
    "from_rpc_error",
    "from_status",
]

_BUDGET_SUBJECT = "privacy_budget"
_OVERLOAD_PREFIX = "concurrent_calls/"
_BUDGET_REASONS = frozenset({"BUDGET_EXCEEDED"})
_QUOTA_REASONS = frozenset({"STORAGE_QUOTA_EXCEEDED"})
_GRPC_RPC_LIMIT = "Concurrent RPC limit exceeded!"
"""grpcio's own refusal past the server's ``maximum_concurrent_rpcs`` (no details): busy."""
_OVERLOAD_REASONS = frozenset(
    {
        "TOO_MANY_CONCURRENT_CALLS",
        "TOO_MANY_QUEUED_JOBS",
        "TOO_MANY_QUEUED_EVALUATIONS",
        "CREATION_RATE_EXCEEDED",
        "STORAGE_FULL",
    }
)


class PrivsynthClientError(Exception):
    """A call failed; ``code`` is the gRPC status, ``reason`` the server's name for the cause."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        reason: str = "",
        field_violations: dict[str, str] | None = None,
        metadata: dict[str, str] | None = None,
        quota_subjects: tuple[str, ...] = (),
        retry_after_s: float | None = None,
        request_id: str = "",
    ) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.reason = reason
        """``ErrorInfo.reason`` (e.g. ``DATASET_NOT_FOUND``); empty when the server sent none."""
        self.field_violations = field_violations or {}
        self.metadata = metadata or {}
        self.quota_subjects = quota_subjects
        """Subjects of the status's ``QuotaFailure`` violations, if any."""
        self.retry_after_s = retry_after_s
        """The server's ``RetryInfo`` delay in seconds, if it sent one."""
        self.request_id = request_id
        """The call's ``x-request-id`` as the server returned it (its log lines carry it)."""


class InvalidArgument(PrivsynthClientError):
    """A request field is malformed or out of range; ``field_violations`` names it."""


class NotFound(PrivsynthClientError):
    """The named resource does not exist, or belongs to another tenant."""


class AlreadyExists(PrivsynthClientError):
    """The resource to create exists already."""


class FailedPrecondition(PrivsynthClientError):
    """The server's state does not allow the request now (``reason`` says which state)."""


class ResourceExhausted(PrivsynthClientError):
    """A limit was reached: a privacy budget, the server's capacity, or a message size."""


class BudgetExhausted(ResourceExhausted):
    """The dataset's privacy budget cannot cover the request."""

    @property
    def epsilon_remaining(self) -> float:
        """ε still available on the dataset, from the error details."""
        return float(self.metadata.get("epsilon_remaining", "0"))


class Overloaded(ResourceExhausted):
    """The server is running as many calls of this kind as it allows; retry later.

    ``retry_after_s`` is the server's suggested delay (1 s when it sent none), ``work_class``
    the class that was full (``generation``, ``scrubbing``, ``streams``, ...).
    """

    @property
    def work_class(self) -> str:
        """The admission class that was full, from the ``QuotaFailure`` subject."""
        for subject in self.quota_subjects:
            if subject.startswith(_OVERLOAD_PREFIX):
                return subject.removeprefix(_OVERLOAD_PREFIX)
        return ""


class QuotaExceeded(ResourceExhausted):
    """The tenant keeps as many datasets, or bytes of them, as the server allows it.

    Retrying does not help: delete datasets it no longer needs, or ask the operator for a
    larger share. ``quota_subjects`` says which share (``storage/bytes_per_tenant`` or
    ``storage/datasets_per_tenant``).
    """

    @property
    def limit(self) -> int:
        """The share's size, in the subject's unit (bytes or datasets)."""
        return int(self.metadata.get("limit", "0"))

    @property
    def used(self) -> int:
        """How much of it the tenant holds, in the same unit."""
        return int(self.metadata.get("used", "0"))


class PermissionDenied(PrivsynthClientError):
    """The caller is known but its role may not do this."""


class Unauthenticated(PrivsynthClientError):
    """The call carried no valid bearer token (or client certificate)."""


class Unavailable(PrivsynthClientError):
    """The server could not be reached, or is starting or stopping; the channel has retried."""


class DeadlineExceeded(PrivsynthClientError):
    """The call's deadline (the client's ``timeout`` or the call's own) passed."""


class Cancelled(PrivsynthClientError):
    """The call was cancelled (by the caller, or by the server while shutting down)."""


class ServerError(PrivsynthClientError):
    """A fault of the server (INTERNAL, UNKNOWN, DATA_LOSS) or a method it does not have."""


_BY_CODE: dict[grpc.StatusCode, type[PrivsynthClientError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.CANCELLED: Cancelled,
    grpc.StatusCode.INTERNAL: ServerError,
    grpc.StatusCode.UNKNOWN: ServerError,
    grpc.StatusCode.DATA_LOSS: ServerError,
    grpc.StatusCode.UNIMPLEMENTED: ServerError,
}


def _resource_exhausted_class(
    reason: str,
    subjects: tuple[str, ...],
    metadata: dict[str, str],
    retry_after_s: float | None,
    message: str = "",
) -> type[PrivsynthClientError]:
    if reason in _BUDGET_REASONS or _BUDGET_SUBJECT in subjects or "epsilon_remaining" in metadata:
        return BudgetExhausted
    if reason in _QUOTA_REASONS:
        return QuotaExceeded
    if (
        reason in _OVERLOAD_REASONS
        or message == _GRPC_RPC_LIMIT
        or retry_after_s is not None
        or any(s.startswith(_OVERLOAD_PREFIX) for s in subjects)
    ):
        return Overloaded
    return ResourceExhausted


def from_rpc_error(err: grpc.RpcError) -> PrivsynthClientError:
    """Decode a ``grpc.RpcError`` (sync or ``grpc.aio``) with its ``google.rpc.Status`` details."""
    code: grpc.StatusCode = err.code()
    message: str = err.details() or ""
    violations: dict[str, str] = {}
    metadata: dict[str, str] = {}
    subjects: list[str] = []
    reason = ""
    retry_after_s: float | None = None
    try:
        status = rpc_status.from_call(err)
    except ValueError:  # a status detail that contradicts the call's own code or message
        status = None
    request_id = _request_id(err)
    if status is not None:
        for detail in status.details:
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                violations.update({v.field: v.description for v in bad.field_violations})
            elif detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reason = info.reason
                metadata.update(dict(info.metadata))
            elif detail.Is(error_details_pb2.QuotaFailure.DESCRIPTOR):
                quota = error_details_pb2.QuotaFailure()
                detail.Unpack(quota)
                subjects.extend(v.subject for v in quota.violations)
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                retry = error_details_pb2.RetryInfo()
                detail.Unpack(retry)
                retry_after_s = retry.retry_delay.ToMilliseconds() / 1000
    return from_status(
        code,
        message,
        reason=reason,
        field_violations=violations,
        metadata=metadata,
        quota_subjects=tuple(subjects),
        retry_after_s=retry_after_s,
        request_id=request_id,
    )


def _request_id(err: grpc.RpcError) -> str:
    """The ``x-request-id`` in the call's trailing metadata ("" without one)."""
    trailing = getattr(err, "trailing_metadata", None)
    for key, value in (trailing() if callable(trailing) else None) or ():
        if key == "x-request-id" and isinstance(value, str):
            return value
    return ""


def from_status(
    code: grpc.StatusCode,
    message: str = "",
    *,
    reason: str = "",
    field_violations: dict[str, str] | None = None,
    metadata: dict[str, str] | None = None,
    quota_subjects: tuple[str, ...] = (),
    retry_after_s: float | None = None,
    request_id: str = "",
) -> PrivsynthClientError:
    """The exception for a status and its decoded details (the class picked by code and reason)."""
    metadata = metadata or {}
    cls = _BY_CODE.get(code, PrivsynthClientError)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        cls = _resource_exhausted_class(reason, quota_subjects, metadata, retry_after_s, message)
    error = cls(
        code,
        message,
        reason=reason,
        field_violations=field_violations,
        metadata=metadata,
        quota_subjects=quota_subjects,
        retry_after_s=retry_after_s,
        request_id=request_id,
    )
    if isinstance(error, Overloaded) and error.retry_after_s is None:
        error.retry_after_s = 1.0
    return error
