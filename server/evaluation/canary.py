"""The canary audit in a quality report: the model's training mechanism checked from outside.

The other leakage measurements attack the model's outputs and read private data to do it. The
empirical canary audit (:mod:`privsynth.models.privacy_audit`, the Privacy service's
AuditPrivacy) asks another question: does the DP-SGD that trained the model keep the ε its card
states? A model is never trained with canaries, so its own weights cannot be audited; the
report runs, when asked, the same preset's DP-SGD once more at the card's target ε, δ and
epochs on the shipped public corpus with random canaries, and turns the canaries' guessed
membership into a 95%-confidence lower bound on ε (the one-run method of Steinke, Nasr and
Jagielski). That run reads no private data and spends no budget.

How the section reads:

``not requested``  with whether it could be, and how to ask (or why it cannot run)
``unavailable``    asked for, but the model's training cannot be audited here (and why)
``ran``            the claim beside the bound, the grid of guesses, and a verdict
``failed``         the audit's own training failed; the rest of the report stands
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from privsynth.models.privacy_audit import GUESS_FRACTIONS, AuditResult, epsilon_lower_bound
from privsynth.server.errors import DeadlineExceeded, FailedPrecondition
from privsynth.server.evaluation.control import EvaluationStopped, StopFn
from privsynth.server.privacy.empirical_audit import PrivacyAuditor, model_audit_config

__all__ = [
    "HOW_TO_REQUEST",
    "STAGE",
    "WHAT",
    "CanaryAudit",
    "for_model",
    "largest_bound",
    "result_section",
    "section",
]

log = logging.getLogger(__name__)

STAGE = "canary audit"
"""The report stage's name (last, and only when requested)."""

WHAT = (
    "the model's preset retrained with DP-SGD at the model's target ε, δ and epochs on public "
    "text plus random canaries, each trained on with probability ½; which canaries were trained "
    "on is guessed from how much training lowered their loss"
)
CHECKS = (
    "the training mechanism (noise, clipping, Poisson sampling, accountant) the model was made "
    "with, not this model's weights: the audit's sampling rate and noise are those the recipe "
    "picks for the audit's data"
)
HOW_TO_REQUEST = (
    "request it with EvaluateModelRequest.canary_audit (privsynth evaluate "
    "--canary-audit); it trains the model's recipe once more on public text (minutes for "
    "'small', tens of minutes for 'smollm2'), reads no private data and spends no budget"
)

AuditRun = Callable[[StopFn | None], AuditResult | None]
"""Runs the audit; None when it was stopped."""


@dataclass(frozen=True, kw_only=True)
class CanaryAudit:
    """The canary audit as one report is asked for it."""

    requested: bool = False
    unavailable: str = ""
    """Why the model's training cannot be audited ('' when it can)."""
    run: AuditRun | None = None
    """Runs it (None: no auditor, e.g. a report computed outside the server)."""
    model_mechanism: Mapping[str, float | int] = field(default_factory=dict)
    """The model's own run from its card (epsilon, delta, noise_multiplier, sample_rate,
    steps), shown beside the audit's."""


def for_model(
    card: Mapping[str, Any], *, model: str, requested: bool, auditor: PrivacyAuditor | None
) -> CanaryAudit:
    """The audit of a model's mechanism: runnable if its card allows, or why not."""
    mechanism: dict[str, float | int] = {
        k: card[k]
        for k in ("epsilon", "delta", "noise_multiplier", "sample_rate", "steps")
        if isinstance(card.get(k), int | float) and not isinstance(card.get(k), bool)
    }
    try:
        config = model_audit_config(card, model=model)
    except FailedPrecondition as exc:
        return CanaryAudit(requested=requested, unavailable=str(exc), model_mechanism=mechanism)
    run: AuditRun | None = None
    if auditor is not None:
        audits = auditor

        def run(should_stop: StopFn | None) -> AuditResult | None:
            return audits.run(config, should_stop=should_stop or (lambda: False))

    return CanaryAudit(requested=requested, run=run, model_mechanism=mechanism)


def largest_bound(*, canaries: int, delta: float, significance: float) -> float:
    """The most this audit could show: every one of ``canaries`` guesses right.

    With m canaries even a perfect guesser proves only this much (the grid's Bonferroni share
    of the significance included), so a bound must be read against it, not against infinity.
    """
    return epsilon_lower_bound(
        canaries=canaries,
        guesses=canaries,
        correct=canaries,
        delta=delta,
        significance=significance / len(GUESS_FRACTIONS),
    )


def _verdict(result: AuditResult, ceiling: float) -> str:
    confidence = f"{1 - result.significance:.0%}"
    claim, bound = result.epsilon_claimed, result.epsilon_lower_bound
    if result.refuted:
        return (
            f"Refuted: with {confidence} confidence the training mechanism is not "
            f"(ε = {claim:.3g}, δ = {result.delta:.2g})-DP; it leaks at least ε = {bound:.3g}. "
            "The model's stated ε cannot be relied on: report this."
        )
    found = (
        "no evidence of leakage (lower bound 0)"
        if bound <= 0
        else f"ε ≥ {bound:.3g} with {confidence} confidence"
    )
    return (
        f"Not refuted: the audit found {found} against the claimed ε = {claim:.3g}; with "
        f"{result.canaries:,} canaries it could show at most ε ≥ {ceiling:.3g}. A bound below "
        "the claim means this attack did not break it, not that the claim is tight."
    )


def result_section(
    result: AuditResult, *, model_mechanism: Mapping[str, float | int]
) -> dict[str, Any]:
    """The report's section for a finished audit (numbers and names only)."""
    ceiling = largest_bound(
        canaries=result.canaries, delta=result.delta, significance=result.significance
    )
    return {
        "status": "ran",
        "what": WHAT,
        "checks": CHECKS,
        "verdict": _verdict(result, ceiling),
        "preset": result.preset,
        "epsilon_claimed": result.epsilon_claimed,
        "epsilon_lower_bound": result.epsilon_lower_bound,
        "confidence": 1 - result.significance,
        "refuted": result.refuted,
        "largest_possible_bound": ceiling,
        "delta": result.delta,
        "canaries": result.canaries,
        "canaries_included": result.canaries_included,
        "guesses": result.guesses,
        "correct": result.correct,
        "public_records": result.public_records,
        "epochs": result.epochs,
        "audit_run": {
            "epsilon": result.epsilon_claimed,
            "delta": result.delta,
            "noise_multiplier": result.noise_multiplier,
            "sample_rate": result.sample_rate,
            "steps": result.steps,
        },
        "model_run": dict(model_mechanism),
        "grid": [asdict(g) for g in result.grid],
        "method": result.method,
        "score": result.score,
        "wall_seconds": result.wall_seconds,
        "reads": "public text shipped with the package and random canaries; no private data, "
        "no privacy budget",
    }


def section(audit: CanaryAudit, *, should_stop: StopFn | None = None) -> dict[str, Any]:
    """Run the audit if asked and possible, and say plainly what happened.

    A failure of the audit's own training does not fail the report: the section says so.

    Raises:
        EvaluationStopped: The evaluation was asked to stop while the audit waited or trained.
    """
    if not audit.requested:
        return {
            "status": "not requested",
            "available": not audit.unavailable,
            "note": audit.unavailable or HOW_TO_REQUEST,
        }
    if audit.unavailable or audit.run is None:
        return {
            "status": "unavailable",
            "reason": audit.unavailable or "this report was computed without an auditor",
        }
    try:
        result = audit.run(should_stop)
    except EvaluationStopped:
        raise
    except DeadlineExceeded as exc:  # our own message: the server's time limit, no text
        return {"status": "failed", "reason": exc.message}
    except Exception as exc:
        # Only the type: the audit reads public text, but no message is trusted blindly.
        log.error("canary audit failed: %s", type(exc).__name__)
        return {
            "status": "failed",
            "reason": f"the audit's training failed ({type(exc).__name__}); the rest of the "
            "report stands: evaluate again with canary_audit, or run AuditPrivacy",
        }
    if result is None:
        raise EvaluationStopped
    return result_section(result, model_mechanism=audit.model_mechanism)
