"""Client-side errors: one exception carrying the gRPC status and its rich details.

::

    PrivsynthClientError
    ├── BudgetExhausted    (RESOURCE_EXHAUSTED for a privacy budget; .epsilon_remaining)
    └── Overloaded         (RESOURCE_EXHAUSTED for too many concurrent calls; .retry_after_s)

A RESOURCE_EXHAUSTED status is told apart by its details: the server's budget refusals carry a
``QuotaFailure`` with subject ``privacy_budget`` and the remaining ε in ``ErrorInfo``; its
admission refusals carry a ``QuotaFailure`` with subject ``concurrent_calls/<class>`` and a
``RetryInfo``. Anything else (e.g. grpcio's own message-size limit) stays a plain
:class:`PrivsynthClientError`.
"""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

__all__ = ["BudgetExhausted", "Overloaded", "PrivsynthClientError", "from_rpc_error"]

_BUDGET_SUBJECT = "privacy_budget"
_OVERLOAD_PREFIX = "concurrent_calls/"


class PrivsynthClientError(Exception):
    """A call failed; ``code`` is the gRPC status, ``field_violations`` maps field to reason."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        field_violations: dict[str, str] | None = None,
        metadata: dict[str, str] | None = None,
        quota_subjects: tuple[str, ...] = (),
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.field_violations = field_violations or {}
        self.metadata = metadata or {}
        self.quota_subjects = quota_subjects
        """Subjects of the status's ``QuotaFailure`` violations, if any."""
        self.retry_after_s = retry_after_s
        """The server's ``RetryInfo`` delay in seconds, if it sent one."""


class BudgetExhausted(PrivsynthClientError):
    """The dataset's privacy budget cannot cover the request."""

    @property
    def epsilon_remaining(self) -> float:
        """ε still available on the dataset, from the error details."""
        return float(self.metadata.get("epsilon_remaining", "0"))


class Overloaded(PrivsynthClientError):
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


def _resource_exhausted_class(
    subjects: tuple[str, ...], metadata: dict[str, str], retry_after_s: float | None
) -> type[PrivsynthClientError]:
    if _BUDGET_SUBJECT in subjects or "epsilon_remaining" in metadata:
        return BudgetExhausted
    if retry_after_s is not None or any(s.startswith(_OVERLOAD_PREFIX) for s in subjects):
        return Overloaded
    return PrivsynthClientError


def from_rpc_error(err: grpc.RpcError) -> PrivsynthClientError:
    """Decode a ``grpc.RpcError`` with its ``google.rpc.Status`` details."""
    code: grpc.StatusCode = err.code()
    message: str = err.details() or ""
    violations: dict[str, str] = {}
    metadata: dict[str, str] = {}
    subjects: list[str] = []
    retry_after_s: float | None = None
    try:
        status = rpc_status.from_call(err)
    except ValueError:  # a status detail that contradicts the call's own code or message
        status = None
    if status is not None:
        for detail in status.details:
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                violations.update({v.field: v.description for v in bad.field_violations})
            elif detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                metadata.update(dict(info.metadata))
            elif detail.Is(error_details_pb2.QuotaFailure.DESCRIPTOR):
                quota = error_details_pb2.QuotaFailure()
                detail.Unpack(quota)
                subjects.extend(v.subject for v in quota.violations)
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                retry = error_details_pb2.RetryInfo()
                detail.Unpack(retry)
                retry_after_s = retry.retry_delay.ToMilliseconds() / 1000
    cls = PrivsynthClientError
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        cls = _resource_exhausted_class(tuple(subjects), metadata, retry_after_s)
    error = cls(
        code,
        message,
        field_violations=violations,
        metadata=metadata,
        quota_subjects=tuple(subjects),
        retry_after_s=retry_after_s,
    )
    if isinstance(error, Overloaded) and error.retry_after_s is None:
        error.retry_after_s = 1.0
    return error
