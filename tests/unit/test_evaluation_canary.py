"""The canary audit in the quality report (issue 15, item 4): known answers on small inputs.

Two hand-made audits with answers known in advance: a mechanism whose canaries are perfectly
separable (every guess right: the bound is the closed form logit((α/6)^(1/m)) and exceeds a
claim of ε = 1) and one whose scores carry no membership signal (the bound is 0). Around them:
when the audit can run for a model (a DP-SGD card of a preset this server offers) and, when it
cannot, that the report says so instead of failing; and that the report labels it as reading
no private data.
"""

from __future__ import annotations

import json
import math
import random
import threading
from typing import Any

import pytest
from privsynth.models.dp_train import TrainingInterrupted
from privsynth.models.privacy_audit import GUESS_FRACTIONS, AuditConfig, AuditResult
from privsynth.server.errors import FailedPrecondition, Reason
from privsynth.server.evaluation import EvaluationStopped
from privsynth.server.evaluation.canary import (
    CanaryAudit,
    for_model,
    largest_bound,
    result_section,
    section,
)
from privsynth.server.evaluation.page import plot_ids, render
from privsynth.server.privacy.empirical_audit import PrivacyAuditor, model_audit_config
from report_fixture import audit_result, small_report

M = 200


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def separable() -> AuditResult:
    """Every included canary scores above every excluded one: all guesses right."""
    included = [i % 2 == 0 for i in range(M)]
    return audit_result([1.0 if x else 0.0 for x in included], included, claimed=1.0)


def no_signal() -> AuditResult:
    """Scores independent of inclusion: guessing is chance."""
    rng = random.Random(0)
    included = [rng.random() < 0.5 for _ in range(M)]
    return audit_result([rng.random() for _ in range(M)], included, claimed=4.0)


DP_SGD_CARD: dict[str, Any] = {
    "preset": "tiny",
    "epsilon": 3.9,
    "target_epsilon": 4.0,
    "delta": 1e-6,
    "epochs": 2,
    "steps": 40,
    "noise_multiplier": 1.3,
    "sample_rate": 0.04,
}


def test_largest_bound_is_the_closed_form() -> None:
    # Every one of m guesses right, pure DP, significance split over the grid (Bonferroni).
    for m in (200, 1000):
        level = 0.05 / len(GUESS_FRACTIONS)
        got = largest_bound(canaries=m, delta=0.0, significance=0.05)
        assert got == pytest.approx(_logit(level ** (1 / m)), abs=1e-5)
    assert largest_bound(canaries=1000, delta=0.0, significance=0.05) == pytest.approx(5.339, 1e-3)


def test_a_leaking_mechanism_is_refuted() -> None:
    data = result_section(separable(), model_mechanism={"epsilon": 1.0, "steps": 20})
    assert data["status"] == "ran" and data["refuted"] is True
    assert data["correct"] == data["guesses"] == M  # every guess right at the full grid point
    assert data["epsilon_lower_bound"] == pytest.approx(data["largest_possible_bound"], abs=1e-5)
    assert data["epsilon_lower_bound"] > data["epsilon_claimed"] == 1.0
    assert data["verdict"].startswith("Refuted")
    assert data["model_run"] == {"epsilon": 1.0, "steps": 20}
    assert len(data["grid"]) == len(GUESS_FRACTIONS)


def test_a_mechanism_without_signal_is_not_refuted() -> None:
    data = result_section(no_signal(), model_mechanism={})
    assert data["status"] == "ran" and data["refuted"] is False
    assert data["epsilon_lower_bound"] == 0.0
    assert data["verdict"].startswith("Not refuted") and "no evidence" in data["verdict"]
    assert "not that the claim is tight" in data["verdict"]
    assert "no private data" in data["reads"]


def test_the_section_says_plainly_when_the_audit_did_not_run() -> None:
    not_asked = section(CanaryAudit())
    assert not_asked["status"] == "not requested" and not_asked["available"] is True
    assert "--canary-audit" in not_asked["note"]
    cannot = section(CanaryAudit(unavailable="models/x cannot have a canary audit: guided"))
    assert cannot == {
        "status": "not requested",
        "available": False,
        "note": "models/x cannot have a canary audit: guided",
    }
    asked = section(CanaryAudit(requested=True, unavailable="why not"))
    assert asked == {"status": "unavailable", "reason": "why not"}
    assert section(CanaryAudit(requested=True))["status"] == "unavailable"  # no auditor


def test_a_failed_audit_leaves_the_report_standing_and_a_stop_stops_it() -> None:
    def broken(_stop: object) -> AuditResult:
        raise RuntimeError("scoring broke on a canary: qwerty")

    failed = section(CanaryAudit(requested=True, run=broken))
    assert failed["status"] == "failed" and "RuntimeError" in failed["reason"]
    assert "qwerty" not in json.dumps(failed)  # never the exception's message
    with pytest.raises(EvaluationStopped):
        section(CanaryAudit(requested=True, run=lambda _stop: None))


def test_when_a_model_can_be_audited() -> None:
    config = model_audit_config(DP_SGD_CARD, model="models/m")
    assert (config.preset, config.target_epsilon, config.target_delta, config.epochs) == (
        "tiny",
        4.0,
        1e-6,
        2,
    )
    guided = {**DP_SGD_CARD, "recipe": "guided", "steps": 0, "epochs": 0}
    for card, words in (
        (guided, "not trained with DP-SGD"),
        ({**DP_SGD_CARD, "steps": 0}, "not trained with DP-SGD"),
        ({**DP_SGD_CARD, "preset": "hf:gone"}, "not offered by this server"),
        ({**DP_SGD_CARD, "delta": 0.01}, "delta must lie in"),
    ):
        with pytest.raises(FailedPrecondition, match=words) as info:
            model_audit_config(card, model="models/m")
        assert info.value.reason == Reason.CANARY_AUDIT_UNAVAILABLE
        assert "models/m cannot have a canary audit" in str(info.value)
        # In a report that did not ask for it, the same reason is stated, not raised.
        audit = for_model(card, model="models/m", requested=False, auditor=None)
        assert section(audit)["available"] is False and words in section(audit)["note"]


def test_for_model_runs_the_cards_mechanism_on_the_shared_auditor() -> None:
    seen: list[AuditConfig] = []

    def fake(config: AuditConfig, **_kwargs: object) -> AuditResult:
        seen.append(config)
        return no_signal()

    audit = for_model(
        DP_SGD_CARD, model="models/m", requested=True, auditor=PrivacyAuditor(run=fake)
    )
    data = section(audit)
    assert data["status"] == "ran"
    assert seen[0].target_epsilon == 4.0 and seen[0].target_delta == 1e-6
    assert data["model_run"] == {
        "epsilon": 3.9,
        "delta": 1e-6,
        "noise_multiplier": 1.3,
        "sample_rate": 0.04,
        "steps": 40,
    }


def test_an_evaluations_audit_waits_its_turn_and_honours_a_stop() -> None:
    release = threading.Event()
    started = threading.Event()
    calls = []

    def slow(config: AuditConfig, **_kwargs: object) -> AuditResult:
        calls.append(config)
        started.set()
        release.wait(10)
        return no_signal()

    auditor = PrivacyAuditor(run=slow)
    config = model_audit_config(DP_SGD_CARD, model="models/m")
    first: list[AuditResult | None] = []
    thread = threading.Thread(
        target=lambda: first.append(auditor.run(config, should_stop=lambda: False))
    )
    thread.start()
    assert started.wait(10)
    polls = iter(range(100))
    # Another audit runs: this one waits, and gives up when told to stop.
    assert auditor.run(config, should_stop=lambda: next(polls) >= 2) is None
    assert len(calls) == 1
    release.set()
    thread.join(10)
    assert first and first[0] is not None

    def cancelled(config: AuditConfig, **_kwargs: object) -> AuditResult:
        raise TrainingInterrupted(epsilon_spent=0.1, steps=3, cancelled=True)

    assert PrivacyAuditor(run=cancelled).run(config, should_stop=lambda: True) is None

    def failed(config: AuditConfig, **_kwargs: object) -> AuditResult:
        raise TrainingInterrupted(epsilon_spent=0.1, steps=3, cancelled=False)

    with pytest.raises(TrainingInterrupted):
        PrivacyAuditor(run=failed).run(config, should_stop=lambda: False)


def test_a_reports_audit_past_the_time_limit_fails_its_section_only() -> None:
    # Only AuditPrivacy streams were held to PRIVSYNTH_MAX_AUDIT_SECONDS; a quality report's
    # audit of a model trained for many epochs could hold the one audit place for hours.
    now = [0.0]

    def endless(config: AuditConfig, *, should_stop: Any, **_kwargs: object) -> AuditResult:
        for step in range(1_000):
            now[0] += 60.0  # each step takes a minute on this clock
            if should_stop():
                raise TrainingInterrupted(epsilon_spent=0.1, steps=step + 1, cancelled=True)
        raise AssertionError("the audit was not stopped")

    auditor = PrivacyAuditor(run=endless, max_seconds=600, clock=lambda: now[0])
    audit = for_model(DP_SGD_CARD, model="models/m", requested=True, auditor=auditor)
    out = section(audit)
    assert out["status"] == "failed"
    assert "PRIVSYNTH_MAX_AUDIT_SECONDS" in out["reason"] and "10 steps" in out["reason"]
    assert auditor._busy.acquire(blocking=False), "the audit place was not given back"


def _report(audit: CanaryAudit, stages: list[str] | None = None) -> dict[str, Any]:
    return small_report(
        model="models/canary-test",
        canary_audit=audit,
        on_progress=None if stages is None else lambda s, _i, _n: stages.append(s),
    )


def test_the_report_runs_it_last_and_labels_it_as_reading_no_private_data() -> None:
    stages: list[str] = []
    report = _report(CanaryAudit(requested=True, run=lambda _stop: separable()), stages)
    assert stages == ["utility", "fidelity", "diversity", "leakage", "bias", "canary audit"]
    audit = report["canary_audit"]
    assert audit["status"] == "ran" and audit["refuted"] is True
    marks = {m["measurement"]: m for m in report["honesty"]["measurements"]}
    canary = next(m for name, m in marks.items() if name.startswith("canary audit"))
    assert canary["covered_by_dp"] is True and canary["reads"] == [
        "public text and random canaries"
    ]
    assert not marks["verbatim n-gram overlap"]["covered_by_dp"]  # unchanged around it
    assert "reads no private data and spends no budget" in report["honesty"]["statement"]
    assert "canary_audit" in report["seconds"]
    page = render(report)
    assert "plot-canary" in plot_ids(report) and 'id="plot-canary"' in page
    assert "Canary audit of the training mechanism" in page and "Refuted" in page


def test_a_report_that_did_not_ask_says_how_to() -> None:
    report = _report(CanaryAudit())
    assert report["canary_audit"]["status"] == "not requested"
    assert not any(m["measurement"].startswith("canary") for m in report["honesty"]["measurements"])
    assert "plot-canary" not in plot_ids(report)
    assert "Not requested: request it with" in render(report)
