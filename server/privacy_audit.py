"""The server side of the empirical privacy audit: validate a request, run it, stream events.

The audit itself (canaries, coins, training, scoring, the one-run bound) lives in
:mod:`privsynth.models.privacy_audit`; this module decides what a caller may ask for and runs
one audit at a time on a background thread so the RPC can stream progress and stop the
training when the caller goes away.

Audits train on the public corpus shipped with the package only. They read no dataset and
never touch the ledger: nothing private is released, so nothing is charged. An audit on a
private dataset would be a training run on private data and would have to reserve and commit
budget like any job; it is refused (FAILED_PRECONDITION) until it is built that way.
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from privsynth.models.presets import PRESETS, base_available
from privsynth.models.privacy_audit import AuditConfig, AuditProgress, AuditResult
from privsynth.server.errors import FailedPrecondition, InvalidArgument, Unavailable

__all__ = [
    "DEFAULT_AUDIT_PRESET",
    "DEFAULT_CANARIES",
    "MAX_CANARIES",
    "MIN_CANARIES",
    "AuditRequest",
    "PrivacyAuditor",
    "audit_config",
]

MIN_CANARIES = 100
"""Fewest canaries a request may ask for: at 100, even all-correct guesses bound ε only up to
about 3 (95%, over the guess grid), and fewer could not refute any claim worth making."""
MAX_CANARIES = 10_000
DEFAULT_CANARIES = 1000
DEFAULT_AUDIT_PRESET = "small"
"""The fast preset: an audit trains once, and ``smollm2`` would take an hour on 2 cores."""
DEFAULT_EPOCHS = 3
MAX_EPOCHS = 100
MIN_PUBLIC_RECORDS = 20
MAX_PUBLIC_RECORDS = 9000
DEFAULT_PUBLIC_RECORDS = 1000


@dataclass(frozen=True, kw_only=True)
class AuditRequest:
    """An audit request as the caller sent it (None: not given)."""

    preset: str = ""
    target_epsilon: float
    delta: float | None = None
    epochs: int | None = None
    canaries: int | None = None
    public_records: int | None = None
    dataset: str = ""


def audit_config(request: AuditRequest) -> AuditConfig:
    """Check a request and turn it into the models-level config.

    Raises:
        InvalidArgument: A field out of range or an unknown preset (naming the field).
        FailedPrecondition: A private dataset was named, or the preset's base is not installed.
    """
    if request.dataset:
        raise FailedPrecondition(
            "privacy audits run on the public corpus shipped with the server; audits on a "
            "private dataset are not offered (they would be charged like a training job). "
            "Leave dataset empty",
        )
    preset = request.preset or DEFAULT_AUDIT_PRESET
    if preset not in PRESETS:
        raise InvalidArgument(
            f"unknown preset; choose one of {', '.join(sorted(PRESETS))}", field="preset"
        )
    if not (math.isfinite(request.target_epsilon) and request.target_epsilon > 0):
        raise InvalidArgument("target_epsilon must be a number > 0", field="target_epsilon")
    canaries = DEFAULT_CANARIES if request.canaries is None else request.canaries
    if not MIN_CANARIES <= canaries <= MAX_CANARIES:
        raise InvalidArgument(
            f"canaries must lie in {MIN_CANARIES}..{MAX_CANARIES}", field="canaries"
        )
    epochs = DEFAULT_EPOCHS if request.epochs is None else request.epochs
    if not 0 < epochs <= MAX_EPOCHS:
        raise InvalidArgument(f"epochs must lie in 1..{MAX_EPOCHS}", field="epochs")
    public = DEFAULT_PUBLIC_RECORDS if request.public_records is None else request.public_records
    if not MIN_PUBLIC_RECORDS <= public <= MAX_PUBLIC_RECORDS:
        raise InvalidArgument(
            f"public_records must lie in {MIN_PUBLIC_RECORDS}..{MAX_PUBLIC_RECORDS}",
            field="public_records",
        )
    if request.delta is not None and not (0.0 < request.delta < 1.0 / (public + canaries)):
        raise InvalidArgument(
            f"delta must lie in (0, 1/n) for up to n = {public + canaries} training records",
            field="delta",
        )
    base = PRESETS[preset].base
    if base is not None and not base_available(base):
        raise FailedPrecondition(
            f"preset {preset!r} needs the base model {base!r}, which is not installed; "
            "choose another preset"
        )
    return AuditConfig(
        preset=preset,
        target_epsilon=request.target_epsilon,
        target_delta=request.delta,
        epochs=epochs,
        canaries=canaries,
        public_records=public,
    )


_Event = AuditProgress | AuditResult | BaseException


class PrivacyAuditor:
    """Runs audits one at a time, each on its own thread, and streams their events.

    Args:
        torch_threads: Threads torch may use for an audit's training.
        run: The audit function (injected for tests; default
            :func:`privsynth.models.privacy_audit.run_privacy_audit`).
    """

    def __init__(
        self,
        *,
        torch_threads: int = 2,
        run: Callable[..., AuditResult] | None = None,
    ) -> None:
        self._torch_threads = torch_threads
        self._run = run
        self._busy = threading.Lock()

    def stream(
        self, config: AuditConfig, *, is_active: Callable[[], bool]
    ) -> Iterator[AuditProgress | AuditResult]:
        """Run ``config`` and yield progress, then the result.

        Training stops at its next step once ``is_active`` turns False (the caller cancelled
        or its deadline passed); the generator then ends without a result.

        Raises:
            Unavailable: Another audit is running on this server.
            privsynth.models.dp_train.TrainingConfigError: Parameters train_dp refuses.
            privsynth.models.dp_train.TrainingInterrupted: Training failed.
        """
        if not self._busy.acquire(blocking=False):
            raise Unavailable("another privacy audit is running on this server; retry later")
        events: queue.Queue[_Event] = queue.Queue()
        stop = threading.Event()

        def work() -> None:
            try:
                import torch
                from privsynth.models.privacy_audit import run_privacy_audit

                torch.set_num_threads(self._torch_threads)
                run = self._run or run_privacy_audit
                events.put(
                    run(
                        config,
                        on_progress=events.put,
                        should_stop=lambda: stop.is_set() or not is_active(),
                    )
                )
            except BaseException as exc:  # handed to the RPC thread, re-raised there
                events.put(exc)
            finally:
                self._busy.release()

        thread = threading.Thread(target=work, name="privacy-audit", daemon=True)
        thread.start()
        try:
            while True:
                try:
                    event = events.get(timeout=0.5)
                except queue.Empty:
                    if not is_active():
                        return
                    continue
                if isinstance(event, BaseException):
                    raise event
                yield event
                if isinstance(event, AuditResult):
                    return
        finally:
            stop.set()
