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
    ├── QuotaExceeded          RESOURCE_EXHAUSTED (a tenant's storage share is full; no retry)
    ├── DeadlineExceeded       DEADLINE_EXCEEDED  (a server-side time limit, named in the message)
    ├── PermissionDenied       PERMISSION_DENIED
    ├── Unauthenticated        UNAUTHENTICATED
    └── Unavailable            UNAVAILABLE

Each error also carries a :class:`Reason`, sent as ``google.rpc.ErrorInfo.reason``: the status
code says what kind of failure it was, the reason says which one (``DATASET_NOT_FOUND`` rather
than a second ``NOT_FOUND``), so that callers can branch on it without parsing messages. Every
class has a default reason; raise sites that know more pass ``reason=``. Reasons are part of the
API: add new ones freely, never rename one.
"""

from __future__ import annotations

from enum import StrEnum, auto

import grpc

__all__ = [
    "AlreadyExists",
    "DeadlineExceeded",
    "FailedPrecondition",
    "InvalidArgument",
    "NotFound",
    "Overloaded",
    "PermissionDenied",
    "PrivsynthError",
    "QuotaExceeded",
    "Reason",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
]


class Reason(StrEnum):
    """What went wrong, as ``ErrorInfo.reason`` (domain ``privsynth.v1``): one catalogue."""

    @staticmethod
    def _generate_next_value_(name: str, start: int, count: int, last_values: list[str]) -> str:
        return name  # each value is its own name, as ErrorInfo wants UPPER_SNAKE_CASE

    INTERNAL_ERROR = auto()
    """A fault of the server; the message carries a reference to its log."""

    # INVALID_ARGUMENT
    INVALID_FIELD = auto()
    """A request field is out of range or malformed; ``BadRequest`` names the field."""
    MALFORMED_REQUEST = auto()
    """The request bytes are not a message of the method's request type."""
    UNKNOWN_PRESET = auto()
    """The training preset is not one the server knows."""
    RECORD_INVALID = auto()
    """An uploaded record is empty, too long or not UTF-8; the field names the record."""
    DATASET_EMPTY = auto()
    """An upload carried no records."""
    DATASET_TOO_LARGE = auto()
    """An upload carried more records than the server accepts."""
    REQUEST_ID_REUSED = auto()
    """A request_id was sent again with other parameters."""
    PAGE_TOKEN_INVALID = auto()
    """A page_token is malformed or belongs to another listing."""
    LABEL_PROMPT_INVALID = auto()
    """A training request's label_prompt breaks a template rule (``{label}`` exactly once, no
    other braces, one printable line, length, no chat special-token strings); the message
    names the rule."""
    LABEL_PROMPT_UNSUPPORTED = auto()
    """A label_prompt was given for a preset whose model lays a label out as a control code
    (``tiny``, ``small``): it does not fit the chosen base."""
    # NOT_FOUND (also for resources of another tenant: existence is not disclosed)
    RESOURCE_NOT_FOUND = auto()
    """A named resource does not exist (when no more specific reason applies)."""
    DATASET_NOT_FOUND = auto()
    """No such dataset, or it belongs to another tenant."""
    JOB_NOT_FOUND = auto()
    """No such training job, or it belongs to another tenant."""
    MODEL_NOT_FOUND = auto()
    """No such model (or its weights were deleted), or it belongs to another tenant."""
    EVALUATION_NOT_FOUND = auto()
    """No such evaluation (quality report), or it belongs to another tenant."""
    # ALREADY_EXISTS
    RESOURCE_EXISTS = auto()
    """The resource to create exists already."""
    # FAILED_PRECONDITION
    PRECONDITION_UNMET = auto()
    """The system's state does not allow the request (when no more specific reason applies)."""
    EPSILON_UNREACHABLE = auto()
    """No finite noise reaches target_epsilon with this data, batch and epochs."""
    NOISE_PLANNING_TIMEOUT = auto()
    """Calibrating the noise for the request took too long."""
    DATASET_TOO_SMALL = auto()
    """The dataset has too few records for DP training."""
    BASE_MODEL_MISSING = auto()
    """The preset's public base model is not installed on the server."""
    MODEL_TRAINING = auto()
    """The model is still training."""
    MODEL_NOT_READY = auto()
    """The model has no usable weights (its job failed or was cancelled)."""
    SCRUB_SECRET_MISSING = auto()
    """The scrub policy needs the server's master secret, which is not configured."""
    HOLDOUT_TOO_SMALL = auto()
    """The dataset has too few privacy units for the requested holdout; the message says the
    minimum."""
    MODEL_HAS_NO_HOLDOUT = auto()
    """The model was trained without a holdout (before holdouts, or on too small a dataset),
    so it cannot be evaluated; train a new one."""
    EVALUATION_NOT_DONE = auto()
    """The evaluation has not succeeded (yet), so it has no report."""
    CANARY_AUDIT_UNAVAILABLE = auto()
    """A quality report asked for the canary audit of a model whose training cannot be
    audited (no DP-SGD run, or its preset is not offered here); the message says what to do."""
    # RESOURCE_EXHAUSTED
    BUDGET_EXCEEDED = auto()
    """The dataset's privacy budget cannot cover the request; metadata has the remaining ε."""
    TOO_MANY_CONCURRENT_CALLS = auto()
    """The server runs as many calls of this class as it allows; ``RetryInfo`` says when."""
    TOO_MANY_QUEUED_JOBS = auto()
    """The tenant has as many queued training jobs as it may."""
    TOO_MANY_QUEUED_EVALUATIONS = auto()
    """The tenant has as many queued evaluations (quality reports) as it may."""
    CREATION_RATE_EXCEEDED = auto()
    """The tenant created as many datasets, training jobs or evaluations in the last hour as
    it may (the ``QuotaFailure`` subject says which); ``RetryInfo`` says when one more fits."""
    STORAGE_QUOTA_EXCEEDED = auto()
    """The tenant keeps as many datasets, or as many bytes of them, as the server allows it;
    ``QuotaFailure`` names which and ``ErrorInfo`` metadata has ``limit`` and ``used``. Waiting
    does not help: delete datasets, or ask the operator for a larger share."""
    STORAGE_FULL = auto()
    """The server's disk (or quota) is full: nothing was stored; retry once an operator has
    made room (``RetryInfo`` says when to try)."""
    # DEADLINE_EXCEEDED
    TIME_LIMIT_EXCEEDED = auto()
    """The work ran past a time limit of the server's (the message names the setting); what
    it consumed is charged as for a cancel. Ask for less work per call."""
    # PERMISSION_DENIED
    ROLE_NOT_ALLOWED = auto()
    """The caller's role may not call this method."""
    NOT_TENANT_MEMBER = auto()
    """Only members of the dataset's tenant may do this."""
    ADMIN_DISABLED = auto()
    """Admin-only calls are disabled: the server has no admin identity."""
    # UNAUTHENTICATED
    TOKEN_MISSING = auto()
    """The server requires a bearer token and the call carried none."""
    TOKEN_MALFORMED = auto()
    """The authorization metadata is not exactly one ``Bearer <token>``."""
    TOKEN_UNKNOWN = auto()
    """The bearer token is not one the server knows."""
    # UNAVAILABLE
    SERVER_STARTING = auto()
    """Models are still loading; retry shortly."""
    SERVER_SHUTTING_DOWN = auto()
    """The server is stopping; retry against another replica or later."""
    SCRUB_WORKER_LOST = auto()
    """A scrub worker stopped or is restarting; retry."""
    AUDIT_IN_PROGRESS = auto()
    """Another privacy audit is running on this server; retry later."""


class PrivsynthError(Exception):
    """Base of every error the server reports to a caller."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    default_reason: Reason = Reason.INTERNAL_ERROR

    def __init__(self, message: str, *, reason: Reason | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason: Reason = reason or self.default_reason


class InvalidArgument(PrivsynthError):
    """A request field is malformed; ``field`` names it for a ``BadRequest`` detail."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    default_reason = Reason.INVALID_FIELD

    def __init__(self, message: str, *, field: str = "", reason: Reason | None = None) -> None:
        super().__init__(message, reason=reason)
        self.field = field


class NotFound(PrivsynthError):
    """The named resource does not exist (or is not visible to the caller)."""

    code = grpc.StatusCode.NOT_FOUND
    default_reason = Reason.RESOURCE_NOT_FOUND


class AlreadyExists(PrivsynthError):
    """The resource to create exists already."""

    code = grpc.StatusCode.ALREADY_EXISTS
    default_reason = Reason.RESOURCE_EXISTS


class FailedPrecondition(PrivsynthError):
    """The system is not in a state that allows the request (e.g. model still training)."""

    code = grpc.StatusCode.FAILED_PRECONDITION
    default_reason = Reason.PRECONDITION_UNMET


class ResourceExhausted(PrivsynthError):
    """A privacy budget would be exceeded; ``remaining`` is the ε still available."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    default_reason = Reason.BUDGET_EXCEEDED

    def __init__(self, message: str, *, remaining: float, reason: Reason | None = None) -> None:
        super().__init__(message, reason=reason)
        self.remaining = remaining


class Overloaded(PrivsynthError):
    """Too many calls of one class are running; ``retry_after_s`` becomes a ``RetryInfo``.

    ``subject`` names the class (e.g. ``concurrent_calls/watch``) in a ``QuotaFailure`` detail.
    """

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    default_reason = Reason.TOO_MANY_CONCURRENT_CALLS

    def __init__(
        self,
        message: str,
        *,
        subject: str,
        retry_after_s: float = 1.0,
        reason: Reason | None = None,
    ) -> None:
        super().__init__(message, reason=reason)
        self.subject = subject
        self.retry_after_s = retry_after_s


class QuotaExceeded(PrivsynthError):
    """A tenant's share of storage is full; unlike :class:`Overloaded`, retrying does not help.

    ``subject`` names the share, ``limit`` and ``used`` say how full it is (in the subject's
    unit: datasets or bytes).
    """

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    default_reason = Reason.STORAGE_QUOTA_EXCEEDED

    def __init__(self, message: str, *, subject: str, limit: int, used: int) -> None:
        super().__init__(message)
        self.subject = subject
        self.limit = limit
        self.used = used


class DeadlineExceeded(PrivsynthError):
    """The server stopped the work at a time limit of its own (not the caller's deadline)."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED
    default_reason = Reason.TIME_LIMIT_EXCEEDED


class PermissionDenied(PrivsynthError):
    """The caller is known but may not do this."""

    code = grpc.StatusCode.PERMISSION_DENIED
    default_reason = Reason.ROLE_NOT_ALLOWED


class Unauthenticated(PrivsynthError):
    """The caller presented no valid credentials."""

    code = grpc.StatusCode.UNAUTHENTICATED
    default_reason = Reason.TOKEN_UNKNOWN


class Unavailable(PrivsynthError):
    """The server is starting or shutting down."""

    code = grpc.StatusCode.UNAVAILABLE
    default_reason = Reason.SERVER_SHUTTING_DOWN
