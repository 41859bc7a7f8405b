"""The server side of the empirical privacy audit: validate a request, run it, stream events.

The audit itself (canaries, coins, training, scoring, the one-run bound) lives in
:mod:`privsynth.models.privacy_audit`; this module decides what a caller may ask for and runs
one audit at a time on a background thread so the RPC can stream progress and stop the
training when the caller goes away.

By default an audit trains on the public corpus shipped with the package: it reads no dataset
and never touches the ledger, since nothing private is released. An audit on a private dataset
(``dataset`` set) is a training run on private data, so it is charged like any training job
(:class:`AuditCharge`): its ε is reserved in the dataset's ledger before any record is read
(RESOURCE_EXHAUSTED over the remaining budget, nothing spent), and what the run actually spent
is committed when it ends, however it ends — the accountant's ε for a finished or stopped run,
the full reservation when it failed in a way that leaves its progress unknown.

A quality report asked for a canary audit (``EvaluateModelRequest.canary_audit``) audits the
mechanism its model was trained with (:func:`model_audit_config`: the card's preset, target ε,
δ and epochs, on the public corpus) on the same :class:`PrivacyAuditor`, waiting its turn
(:meth:`PrivacyAuditor.run`) rather than being refused.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from privsynth.models.presets import PRESETS, base_available
from privsynth.models.privacy_audit import AuditConfig, AuditProgress, AuditResult
from privsynth.server.db import new_id
from privsynth.server.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    Reason,
    ResourceExhausted,
    Unavailable,
)
from privsynth.server.privacy import audit, ledger
from privsynth.server.privacy.caps import MIN_DELTA, check_target_epsilon
from privsynth.server.runtime import Runtime

if TYPE_CHECKING:
    from privsynth.models.dp_train import Example

__all__ = [
    "DEFAULT_AUDIT_PRESET",
    "DEFAULT_CANARIES",
    "MAX_CANARIES",
    "MIN_CANARIES",
    "AuditCharge",
    "AuditRequest",
    "PrivacyAuditor",
    "audit_config",
    "model_audit_config",
]

log = logging.getLogger(__name__)

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
MAX_PUBLIC_PASSES = 100_000
"""Most records an audit on the public corpus may train on, epochs x (public records +
canaries); 17x the default. Such an audit spends no budget, so nothing else bounds it, and at
the per-field maxima one call ran 22,000 steps in 1.4 GB while every other audit waited."""


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


def audit_config(
    request: AuditRequest, *, dataset_records: int | None = None, bound_passes: bool = True
) -> AuditConfig:
    """Check a request and turn it into the models-level config.

    Args:
        request: The request as sent.
        dataset_records: Size of the private dataset the audit trains on (None: the public
            corpus); the run's δ must stay below 1/n for the records plus the canaries.
        bound_passes: Hold a public-corpus audit to :data:`MAX_PUBLIC_PASSES` (a caller's
            request); a model's own audit repeats its card's epochs, whatever they were.

    Raises:
        InvalidArgument: A field out of range or an unknown preset (naming the field).
        FailedPrecondition: The preset's base is not installed.
    """
    preset = request.preset or DEFAULT_AUDIT_PRESET
    if preset not in PRESETS:
        raise InvalidArgument(
            f"unknown preset; choose one of {', '.join(sorted(PRESETS))}",
            field="preset",
            reason=Reason.UNKNOWN_PRESET,
        )
    # The same bound as a job's: noise calibration for an ε like 1e300 never ends, and it runs
    # before the first step, where a caller who goes away cannot stop it.
    check_target_epsilon(request.target_epsilon)
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
    records = public if dataset_records is None else dataset_records
    passes = epochs * (public + canaries)
    if bound_passes and dataset_records is None and passes > MAX_PUBLIC_PASSES:
        raise InvalidArgument(
            f"an audit on the public corpus trains on at most {MAX_PUBLIC_PASSES} records in "
            f"all: epochs x (public_records + canaries) is {passes}",
            field="epochs",
        )
    if request.delta is not None and not (MIN_DELTA <= request.delta < 1.0 / (records + canaries)):
        raise InvalidArgument(
            f"delta must lie in [{MIN_DELTA:g}, 1/n) for up to n = {records + canaries} "
            "training records",
            field="delta",
        )
    base = PRESETS[preset].base
    if base is not None and not base_available(base):
        raise FailedPrecondition(
            f"preset {preset!r} needs the base model {base!r}, which is not installed; "
            "choose another preset",
            reason=Reason.BASE_MODEL_MISSING,
        )
    return AuditConfig(
        preset=preset,
        target_epsilon=request.target_epsilon,
        target_delta=request.delta,
        epochs=epochs,
        canaries=canaries,
        public_records=public,
    )


def model_audit_config(card: Mapping[str, Any], *, model: str) -> AuditConfig:
    """The canary audit of the mechanism a model was trained with, on the public corpus.

    A model is never trained with canaries (they would cost its owner utility and, on a private
    dataset, budget), so its own weights cannot be audited. What can be checked is the
    mechanism that made them: the same preset's DP-SGD calibrated to the card's target ε, δ and
    epochs, run once more on the shipped public corpus with random canaries. That run reads no
    private data and spends no budget; its sampling rate and noise are those the recipe picks
    for the audit's data size, not the model's (the report shows both).

    Args:
        card: The model card.
        model: The model's resource name, for messages.

    Raises:
        FailedPrecondition: (reason CANARY_AUDIT_UNAVAILABLE) the model was not trained with
            DP-SGD, its preset is not offered by this server, or the card's parameters are
            outside what an audit accepts; the message says what to do instead.
    """

    def unavailable(why: str) -> FailedPrecondition:
        return FailedPrecondition(
            f"{model} cannot have a canary audit: {why}", reason=Reason.CANARY_AUDIT_UNAVAILABLE
        )

    preset = str(card.get("preset") or "")
    if card.get("recipe", "dp-sgd") != "dp-sgd" or not int(card.get("steps") or 0):
        raise unavailable(
            "it was not trained with DP-SGD (the guided recipe spends its epsilon on DP token "
            "statistics, private evolution on DP vote histograms), and the canary audit "
            "checks DP-SGD training; evaluate it without canary_audit"
        )
    if preset not in PRESETS:
        raise unavailable(
            f"its preset {preset!r} is not offered by this server (an operator-installed base "
            "that is no longer mounted?); evaluate it without canary_audit, or on a server "
            "that offers the preset"
        )
    epsilon = float(card.get("target_epsilon") or card.get("epsilon") or 0.0)
    delta = card.get("delta")
    try:
        return audit_config(
            AuditRequest(
                preset=preset,
                target_epsilon=epsilon,
                delta=None if delta is None else float(delta),
                epochs=int(card.get("epochs") or DEFAULT_EPOCHS),
            ),
            bound_passes=False,
        )
    except (InvalidArgument, FailedPrecondition) as exc:
        raise unavailable(
            f"{exc}; run AuditPrivacy with parameters of your choice instead"
        ) from None


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
        max_seconds: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._torch_threads = torch_threads
        self._run = run
        self._busy = threading.Lock()
        self.max_seconds = max_seconds
        """Longest an audit may train, a caller's (:meth:`stream`) or a quality report's
        (:meth:`run`); 0: no limit. There is one audit place per server, and a caller's audit
        at the per-field maxima held it 2.5 hours."""
        self._clock = clock

    def run(
        self,
        config: AuditConfig,
        *,
        should_stop: Callable[[], bool],
        on_progress: Callable[[AuditProgress], None] | None = None,
    ) -> AuditResult | None:
        """Run a public-corpus audit on the calling thread, after any audit already running.

        For callers that are background jobs themselves (a quality report): they wait their
        turn instead of being refused, and train on their own thread. Nothing is charged: the
        audit reads only the public corpus.

        Returns:
            The result, or None when ``should_stop`` turned True (waiting or training).

        Raises:
            DeadlineExceeded: The audit trained for ``max_seconds`` (the wait for the place
                does not count) and was stopped.
            privsynth.models.dp_train.TrainingConfigError: Parameters train_dp refuses.
            privsynth.models.dp_train.TrainingInterrupted: Training failed (not stopped).
        """
        from privsynth.models.dp_train import TrainingInterrupted

        while not self._busy.acquire(timeout=0.5):
            if should_stop():
                return None
        try:
            import torch
            from privsynth.models.privacy_audit import run_privacy_audit

            torch.set_num_threads(self._torch_threads)
            run = self._run or run_privacy_audit
            time_up = self._time_limit()
            try:
                return run(
                    config,
                    on_progress=on_progress,
                    should_stop=lambda: should_stop() or time_up(),
                )
            except TrainingInterrupted as exc:
                if exc.cancelled and not should_stop() and time_up():
                    raise self._past_limit(exc.steps) from None
                if exc.cancelled:
                    return None
                raise
        finally:
            self._busy.release()

    def _time_limit(self) -> Callable[[], bool]:
        """Whether an audit starting now has run past :attr:`max_seconds` (never, at 0)."""
        deadline = self._clock() + self.max_seconds if self.max_seconds > 0 else math.inf
        return lambda: self._clock() >= deadline

    def _past_limit(self, steps: int) -> DeadlineExceeded:
        return DeadlineExceeded(
            f"the audit trained {steps} steps in {self.max_seconds:g} s, the server's limit "
            "(PRIVSYNTH_MAX_AUDIT_SECONDS), and was stopped; what it spent is charged as for a "
            "cancel. Ask for fewer epochs, canaries or public_records"
        )

    def stream(
        self,
        config: AuditConfig,
        *,
        is_active: Callable[[], bool],
        load_records: Callable[[], Sequence[Example]] | None = None,
        charge: AuditCharge | None = None,
    ) -> Iterator[AuditProgress | AuditResult]:
        """Run ``config`` and yield progress, then the result.

        Training stops at its next step once ``is_active`` turns False (the caller cancelled
        or its deadline passed); the generator then ends without a result.

        Args:
            config: The audit.
            is_active: Whether the caller is still there.
            load_records: Reads a private dataset's records to train on, called on the run's
                thread once ``charge`` has reserved (then ``charge`` is required).
            charge: Reserves before the run starts and commits when it ends, from the run's
                own thread, whether or not the caller is still listening.

        Raises:
            Unavailable: Another audit is running on this server.
            DeadlineExceeded: The audit trained for ``max_seconds`` and was stopped (charged
                as a cancel).
            privsynth.server.errors.ResourceExhausted: The dataset's budget cannot pay.
            privsynth.models.dp_train.TrainingConfigError: Parameters train_dp refuses.
            privsynth.models.dp_train.TrainingInterrupted: Training failed.
        """
        from privsynth.models.dp_train import TrainingInterrupted

        if load_records is not None and charge is None:
            raise ValueError("an audit on private records must be charged")
        if not self._busy.acquire(blocking=False):
            raise Unavailable(
                "another privacy audit is running on this server; retry later",
                reason=Reason.AUDIT_IN_PROGRESS,
            )
        if charge is not None:
            try:
                charge.reserve()
            except BaseException:
                self._busy.release()
                raise
        events: queue.Queue[_Event] = queue.Queue()
        stop = threading.Event()
        time_up = self._time_limit()

        def work() -> None:
            try:
                import torch
                from privsynth.models.privacy_audit import run_privacy_audit

                torch.set_num_threads(self._torch_threads)
                run = self._run or run_privacy_audit
                extra: dict[str, Any] = {}
                if load_records is not None:  # (after the reservation: see charge)
                    extra["records"] = load_records()
                outcome: AuditResult | BaseException = run(
                    config,
                    on_progress=events.put,
                    should_stop=lambda: stop.is_set() or not is_active() or time_up(),
                    **extra,
                )
            except BaseException as exc:  # handed to the RPC thread, re-raised there
                outcome = exc
            try:
                # Charged before the caller hears the outcome: a result it holds is paid for.
                if charge is not None:
                    charge.settle(outcome)
            finally:
                events.put(outcome)
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
                if isinstance(event, TrainingInterrupted) and event.cancelled and time_up():
                    raise self._past_limit(event.steps) from None
                if isinstance(event, BaseException):
                    raise event
                yield event
                if isinstance(event, AuditResult):
                    return
        finally:
            stop.set()


class AuditCharge:
    """The ledger side of an audit on a private dataset: reserve before, commit after.

    The audit's DP-SGD run is charged as one generic (ε, δ) mechanism at reservation (its
    sampling rate depends on the secret number of included canaries, so its exact event is
    known only once it ran) and committed with the event that ran: σ, q and the noisy steps.
    """

    def __init__(
        self, runtime: Runtime, dataset_id: str, *, epsilon: float, delta: float, actor: str
    ) -> None:
        self.runtime = runtime
        self.dataset_id = dataset_id
        self.epsilon = epsilon
        self.delta = delta
        self.actor = actor
        self.job_id = f"audit-{new_id()}"
        """The ledger's name for the audit run (no job row: an audit produces no model)."""

    def reserve(self) -> None:
        """Reserve the audit's ε, or refuse at no cost (recorded in the audit log).

        Raises:
            ResourceExhausted: Over the dataset's remaining budget.
        """
        try:
            with self.runtime.db.session() as s:
                ledger.reserve(
                    s,
                    self.dataset_id,
                    job_id=self.job_id,
                    epsilon=self.epsilon,
                    delta=self.delta,
                    actor=self.actor,
                )
        except ResourceExhausted as exc:
            self.runtime.metrics.budget_refusals.inc()
            with self.runtime.db.session() as s:
                audit.append(
                    s,
                    action="budget.refused",
                    actor=self.actor,
                    dataset_id=self.dataset_id,
                    details={
                        "epsilon": self.epsilon,
                        "delta": self.delta,
                        "purpose": "privacy audit",
                        "epsilon_remaining": exc.remaining,
                    },
                )
            raise

    def settle(self, outcome: AuditResult | BaseException) -> None:
        """Commit what the run spent (once), whatever ended it."""
        from privsynth.models.dp_train import TrainingConfigError, TrainingInterrupted

        sigma: float | None = None
        rate: float | None = None
        if isinstance(outcome, AuditResult):
            epsilon, steps, state = outcome.epsilon_claimed, outcome.steps, "SUCCEEDED"
            sigma, rate = outcome.noise_multiplier, outcome.sample_rate
            note = f"privacy audit trained {steps} steps; charged the accountant's epsilon"
        elif isinstance(outcome, TrainingInterrupted):
            epsilon, steps = outcome.epsilon_spent, outcome.steps
            state = "CANCELLED" if outcome.cancelled else "FAILED"
            note = f"privacy audit {state.lower()} after {steps} steps; charged what it spent"
        elif isinstance(outcome, TrainingConfigError):
            epsilon, steps, state = 0.0, 0, "FAILED"
            note = "privacy audit refused its parameters before training; nothing consumed"
        else:
            # Failed outside training (e.g. while scoring): the run may have finished, so
            # charge the safe upper bound.
            epsilon, steps, state = self.epsilon, None, "FAILED"
            note = f"privacy audit failed ({type(outcome).__name__}); charged the reservation"
        try:
            with self.runtime.db.session() as s:
                ledger.commit(
                    s,
                    self.dataset_id,
                    job_id=self.job_id,
                    epsilon_spent=epsilon,
                    delta=self.delta,
                    reserved_epsilon=self.epsilon,
                    reserved_delta=self.delta,
                    note=note,
                    steps=steps,
                    noise_multiplier=sigma,
                    sample_rate=rate,
                    actor=self.actor,
                    outcome=state,
                )
            self.runtime.metrics.epsilon_committed.inc(epsilon)
        except Exception as exc:  # the reservation stays held: safe, and visible in the ledger
            log.error("privacy audit %s: commit failed: %s", self.job_id, type(exc).__name__)
