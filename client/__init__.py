"""privsynth client: the Python client library and the ``privsynth`` CLI.

Needs only grpcio and protobuf (plus gRPC's status and health helpers); it never imports the
server or the models, so teams can install it without torch or Presidio.
:class:`PrivsynthClient` blocks, :class:`AsyncPrivsynthClient` is the same surface on asyncio;
failures are the exception classes of :mod:`privsynth.client.errors`, one per status code.
"""

from privsynth.client.aio import AsyncPrivsynthClient
from privsynth.client.client import PrivsynthClient, RecordIn, TlsConfig
from privsynth.client.errors import (
    AlreadyExists,
    BudgetExhausted,
    Cancelled,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Overloaded,
    PermissionDenied,
    PrivsynthClientError,
    QuotaExceeded,
    ResourceExhausted,
    ServerError,
    Unauthenticated,
    Unavailable,
)
from privsynth.client.pagers import AsyncPager, Pager

__all__ = [
    "AlreadyExists",
    "AsyncPager",
    "AsyncPrivsynthClient",
    "BudgetExhausted",
    "Cancelled",
    "DeadlineExceeded",
    "FailedPrecondition",
    "InvalidArgument",
    "NotFound",
    "Overloaded",
    "Pager",
    "PermissionDenied",
    "PrivsynthClient",
    "PrivsynthClientError",
    "QuotaExceeded",
    "RecordIn",
    "ResourceExhausted",
    "ServerError",
    "TlsConfig",
    "Unauthenticated",
    "Unavailable",
]
