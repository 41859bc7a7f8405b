"""The CLI's exit codes: one table, shown in ``privsynth --help`` and the README.

Scripts branch on these, so each kind of failure a caller handles differently has its own code:
a usage error is fixed by the caller, a missing resource by another name, a spent budget by a
lower ε or a new dataset, a busy server by waiting. The numbers are stable; new kinds get new
numbers. Codes 64-78 follow sysexits(3) where one fits.
"""

from __future__ import annotations

from enum import IntEnum

import grpc
from privsynth.client.errors import (
    BudgetExhausted,
    Overloaded,
    PrivsynthClientError,
    QuotaExceeded,
)

__all__ = ["MEANING", "ExitCode", "for_error", "help_table"]


class ExitCode(IntEnum):
    """What a ``privsynth`` process's exit status means (:data:`MEANING` says it in words)."""

    OK = 0
    NEGATIVE = 1
    USAGE = 2
    BUDGET = 3
    NOT_FOUND = 4
    PERMISSION = 5
    UNAUTHENTICATED = 6
    CONFLICT = 7
    QUOTA = 8
    DATAERR = 65
    NOINPUT = 66
    UNAVAILABLE = 69
    SERVER_ERROR = 70
    BUSY = 75
    INTERRUPTED = 130


MEANING: dict[ExitCode, str] = {
    ExitCode.OK: "done",
    ExitCode.NEGATIVE: "ran, and the answer is no: job failed or cancelled, audit chain broken, "
    "claim refuted",
    ExitCode.USAGE: "bad command line, or a value the server refused (INVALID_ARGUMENT)",
    ExitCode.BUDGET: "privacy budget exceeded; nothing was spent",
    ExitCode.NOT_FOUND: "no such dataset, job or model (or another tenant's)",
    ExitCode.PERMISSION: "your role may not do this (PERMISSION_DENIED)",
    ExitCode.UNAUTHENTICATED: "no token, or one the server does not know",
    ExitCode.CONFLICT: "not in this state: still training, epsilon out of reach, exists already",
    ExitCode.QUOTA: "the tenant's storage share is full; nothing was stored, delete datasets "
    "or ask the operator (waiting does not help)",
    ExitCode.DATAERR: "malformed corpus file (lines named by number)",
    ExitCode.NOINPUT: "a file missing, unreadable or unwritable (corpus, token, certificate, "
    "output)",
    ExitCode.UNAVAILABLE: "server unreachable, or no answer before the deadline",
    ExitCode.SERVER_ERROR: "the server failed (INTERNAL, UNKNOWN, ...); its log has the reference",
    ExitCode.BUSY: "server at capacity; nothing was done, retry later",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C) or cancelled",
}
"""One line per code, for --help and the README."""


_BY_CODE: dict[grpc.StatusCode, ExitCode] = {
    grpc.StatusCode.INVALID_ARGUMENT: ExitCode.USAGE,
    grpc.StatusCode.OUT_OF_RANGE: ExitCode.USAGE,
    grpc.StatusCode.NOT_FOUND: ExitCode.NOT_FOUND,
    grpc.StatusCode.PERMISSION_DENIED: ExitCode.PERMISSION,
    grpc.StatusCode.UNAUTHENTICATED: ExitCode.UNAUTHENTICATED,
    grpc.StatusCode.FAILED_PRECONDITION: ExitCode.CONFLICT,
    grpc.StatusCode.ALREADY_EXISTS: ExitCode.CONFLICT,
    grpc.StatusCode.ABORTED: ExitCode.CONFLICT,
    grpc.StatusCode.UNAVAILABLE: ExitCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: ExitCode.UNAVAILABLE,
    grpc.StatusCode.CANCELLED: ExitCode.INTERRUPTED,
}


def for_error(exc: PrivsynthClientError) -> ExitCode:
    """The exit code of a failed call."""
    if isinstance(exc, BudgetExhausted):
        return ExitCode.BUDGET
    if isinstance(exc, Overloaded):
        return ExitCode.BUSY
    if isinstance(exc, QuotaExceeded):
        return ExitCode.QUOTA
    return _BY_CODE.get(exc.code, ExitCode.SERVER_ERROR)


def help_table() -> str:
    """The table as plain lines for ``--help`` (argparse's RawDescriptionHelpFormatter)."""
    lines = ["exit codes:"]
    for code, meaning in MEANING.items():
        lines.append(f"  {code.value:>3}  {meaning}")
    return "\n".join(lines)
