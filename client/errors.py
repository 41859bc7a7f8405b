"""Client-side errors: one exception carrying the gRPC status and its rich details.

::

    PrivsynthClientError
    └── BudgetExhausted    (RESOURCE_EXHAUSTED; .epsilon_remaining)
"""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

__all__ = ["BudgetExhausted", "PrivsynthClientError", "from_rpc_error"]


class PrivsynthClientError(Exception):
    """A call failed; ``code`` is the gRPC status, ``field_violations`` maps field to reason."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        field_violations: dict[str, str] | None = None,
        metadata: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.field_violations = field_violations or {}
        self.metadata = metadata or {}


class BudgetExhausted(PrivsynthClientError):
    """The dataset's privacy budget cannot cover the request."""

    @property
    def epsilon_remaining(self) -> float:
        """ε still available on the dataset, from the error details."""
        return float(self.metadata.get("epsilon_remaining", "0"))


def from_rpc_error(err: grpc.RpcError) -> PrivsynthClientError:
    """Decode a ``grpc.RpcError`` with its ``google.rpc.Status`` details."""
    code: grpc.StatusCode = err.code()
    message: str = err.details() or ""
    violations: dict[str, str] = {}
    metadata: dict[str, str] = {}
    status = rpc_status.from_call(err)
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
    cls = BudgetExhausted if code == grpc.StatusCode.RESOURCE_EXHAUSTED else PrivsynthClientError
    return cls(code, message, field_violations=violations, metadata=metadata)
