"""How a long evaluation reports progress and is stopped (one place, shared by every section)."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["EvaluationStopped", "ProgressFn", "StopFn", "check"]

StopFn = Callable[[], bool]
"""Returns True once the evaluation should stop (a cancel, a lost lease, shutdown)."""

ProgressFn = Callable[[str, int, int], None]
"""Called with (stage name, stages done, stages in all) as each stage starts."""


class EvaluationStopped(Exception):
    """The evaluation was asked to stop; nothing was written."""


def check(should_stop: StopFn | None) -> None:
    """Raise :class:`EvaluationStopped` if ``should_stop`` says so.

    Raises:
        EvaluationStopped: ``should_stop()`` returned True.
    """
    if should_stop is not None and should_stop():
        raise EvaluationStopped
