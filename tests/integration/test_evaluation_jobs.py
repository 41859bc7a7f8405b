"""Quality reports as jobs (issue 15), over a real database, store and a trained tiny model.

The runner checks its request (NOT_FOUND, FAILED_PRECONDITION, INVALID_ARGUMENT as the issue
lists them), computes the report on a worker thread with progress on the row, records the
private-data read in the audit log first, serves the report in the owner's and the auditor's
view, and stops on cancel.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from job_runtime import add_dataset, job_runtime, wait_for_job
from privsynth.server.db import AuditRow, EvaluationRow, ModelRow
from privsynth.server.errors import FailedPrecondition, InvalidArgument, NotFound
from privsynth.server.evaluation.runner import MAX_SAMPLES, MIN_SAMPLES, EvaluationRunner
from privsynth.server.jobs.runner import JobRunner, JobSpec
from privsynth.server.runtime import Runtime
from sqlalchemy import select


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Runtime, str, str]]:
    """A runtime with two trained models: one with a holdout, one without."""
    path: Path = tmp_path_factory.mktemp("evaluation")
    with job_runtime(path, training_workers=1, torch_threads=1, checkpoint_every_s=0) as rt:
        runner = JobRunner(rt)
        try:
            big = add_dataset(rt, 120, labelled=True)
            small = add_dataset(rt, 40, labelled=True)
            # The label mix declared public, so that every label is sampled (a DP release on
            # 108 records would keep few) and utility has labels to predict.
            jobs = [
                runner.create(
                    JobSpec(
                        dataset_id=d,
                        target_epsilon=4.0,
                        epochs=1,
                        preset="tiny",
                        label_distribution="public",
                    )
                )
                for d in (big, small)
            ]
            models = []
            for job in jobs:
                row = wait_for_job(rt, job.id, timeout=300)
                assert row.state == "SUCCEEDED", row.error_message
                models.append(row.model_id)
        finally:
            runner.shutdown()
        yield rt, models[0], models[1]


def _wait(runner: EvaluationRunner, evaluation_id: str, timeout: float = 500.0) -> EvaluationRow:
    deadline = time.monotonic() + timeout
    stages = set()
    while True:
        row = runner.get(evaluation_id)
        stages.add(row.stage)
        if row.state in {"SUCCEEDED", "FAILED", "CANCELLED"}:
            row.stage = ",".join(sorted(s for s in stages if s))  # (what the test saw)
            return row
        assert time.monotonic() < deadline, "evaluation did not finish"
        time.sleep(0.2)


def test_bad_requests_are_refused_before_any_work(world: tuple[Runtime, str, str]) -> None:
    rt, with_holdout, without = world
    runner = EvaluationRunner(rt)
    try:
        with pytest.raises(NotFound):
            runner.create("0123456789abcdef")
        with pytest.raises(NotFound):
            runner.create(with_holdout, tenant="someone-else")
        with pytest.raises(FailedPrecondition, match="cannot be evaluated: no holdout"):
            runner.create(without)
        for count in (MIN_SAMPLES - 1, MAX_SAMPLES + 1, -5):
            with pytest.raises(InvalidArgument) as info:
                runner.create(with_holdout, sample_count=count)
            assert info.value.field == "sample_count"
        with rt.db.session() as s:
            assert s.execute(select(EvaluationRow)).first() is None
    finally:
        runner.shutdown()


def test_evaluation_runs_as_a_job_and_serves_both_views(world: tuple[Runtime, str, str]) -> None:
    rt, model_id, _ = world
    runner = EvaluationRunner(rt)
    try:
        row = runner.create(model_id, sample_count=MIN_SAMPLES, actor="alice")
        assert row.state == "QUEUED" and row.stages_total == 6
        with rt.db.session() as s:
            entry = s.execute(
                select(AuditRow).where(AuditRow.action == "evaluation.read_private_data")
            ).scalar_one()
            assert entry.actor == "alice" and json.loads(entry.details)["covered_by_dp"] is False
        done = _wait(runner, row.id)
        assert done.state == "SUCCEEDED", done.error_message
        assert done.stages_done == done.stages_total
        assert "sampling" in done.stage  # progress was visible while it ran
        owner = runner.report(row.id)
        data = json.loads(owner.json)
        assert data["model"] == f"models/{model_id}"
        assert data["records"] == {"synthetic": 100, "training": 108, "holdout": 12}
        assert "auc" in data["leakage"]["membership_inference"]
        assert data["leakage"]["residual_pii"] == {"skipped": "no PII analyzer given"}
        assert data["utility"]["rows"][0]["kind"] == "synthetic"
        # Both DP baselines stand in the report, the centroid one embedded with MiniLM.
        names = [r["name"] for r in data["utility"]["rows"]]
        assert any(n.startswith("DP bag-of-words") for n in names)
        assert any(n.startswith("DP centroid bag-of-words") for n in names)
        assert data["utility"]["dp_centroid_embedding"].startswith("all-MiniLM-L6-v2")
        assert owner.html.startswith("<!DOCTYPE html>") and 'id="plot-roc"' in owner.html
        auditor = runner.report(row.id, auditor=True)
        assert auditor.view == "auditor" and "largest_term_shifts" not in auditor.json
        # No training or holdout record appears in either view.
        with rt.db.session() as s:
            model = s.get(ModelRow, model_id)
            assert model is not None
        from corpus import fortunes

        for record in fortunes(120):
            if len(record.text) > 25:
                assert record.text not in owner.json and record.text not in owner.html
    finally:
        runner.shutdown()


def test_cancel_stops_an_evaluation(world: tuple[Runtime, str, str]) -> None:
    rt, model_id, _ = world
    runner = EvaluationRunner(rt)
    try:
        row = runner.create(model_id, sample_count=MAX_SAMPLES)
        deadline = time.monotonic() + 120
        while runner.get(row.id).state == "QUEUED":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        runner.cancel(row.id)
        done = _wait(runner, row.id, timeout=120)
        assert done.state == "CANCELLED"
        with pytest.raises(FailedPrecondition, match="cancelled"):
            runner.report(row.id)
    finally:
        runner.shutdown()


def test_canary_audit_on_request_and_refused_for_a_model_without_dp_sgd(
    world: tuple[Runtime, str, str],
) -> None:
    from privsynth.models.privacy_audit import AuditConfig, AuditResult
    from privsynth.server.db import new_id
    from privsynth.server.errors import Reason
    from privsynth.server.privacy.empirical_audit import PrivacyAuditor

    rt, model_id, _ = world
    seen: list[AuditConfig] = []

    def audit(config: AuditConfig, **_kwargs: object) -> AuditResult:
        seen.append(config)
        return AuditResult(
            preset=config.preset, target_epsilon=config.target_epsilon, epsilon_claimed=4.0,
            delta=config.delta(), epsilon_lower_bound=0.0, significance=0.05, canaries=1000,
            canaries_included=500, guesses=1000, correct=497, public_records=1000,
            epochs=config.epochs, noise_multiplier=1.0, sample_rate=0.03, steps=33,
            train_seconds=1.0, wall_seconds=1.0,
        )  # fmt: skip

    # A model made without DP-SGD (the guided recipe's card): asked for, the audit is refused
    # before any work, with what to do; nothing is queued.
    with rt.db.session() as s:
        trained = s.get(ModelRow, model_id)
        assert trained is not None
        guided_id = new_id()
        s.add(
            ModelRow(
                id=guided_id,
                dataset_id=trained.dataset_id,
                job_id=trained.job_id,
                state="READY",
                created_at=trained.created_at,
                card={**trained.card, "recipe": "guided", "steps": 0},
                model_config=trained.model_config,
                weights_path=trained.weights_path,
                weights_sha256=trained.weights_sha256,
                tenant=trained.tenant,
            )
        )
        card = dict(trained.card)
    runner = EvaluationRunner(rt, auditor=PrivacyAuditor(run=audit))
    try:
        with pytest.raises(FailedPrecondition, match="evaluate it without canary_audit") as info:
            runner.create(guided_id, canary_audit=True)
        assert info.value.reason == Reason.CANARY_AUDIT_UNAVAILABLE
        with rt.db.session() as s:
            assert not s.execute(
                select(EvaluationRow).where(EvaluationRow.model_id == guided_id)
            ).first()

        row = runner.create(model_id, sample_count=MIN_SAMPLES, canary_audit=True)
        assert row.stages_total == 7
        done = _wait(runner, row.id)
        assert done.state == "SUCCEEDED", done.error_message
        assert "canary audit" in done.stage
        data = json.loads(runner.report(row.id).json)
        assert data["canary_audit"]["status"] == "ran"
        assert data["canary_audit"]["model_run"]["steps"] == card["steps"]
        # The audit re-ran the model's own recipe: preset, target ε, δ and epochs of its card.
        assert (seen[0].preset, seen[0].target_epsilon, seen[0].epochs) == ("tiny", 4.0, 1)
        assert seen[0].target_delta == pytest.approx(card["delta"])
        with rt.db.session() as s:
            details = [
                json.loads(e.details)
                for e in s.execute(
                    select(AuditRow).where(AuditRow.action == "evaluation.read_private_data")
                ).scalars()
            ]
        assert any(d.get("canary_audit") is True for d in details)
        auditor_view = json.loads(runner.report(row.id, auditor=True).json)
        assert auditor_view["canary_audit"] == data["canary_audit"]  # scores only already
    finally:
        runner.shutdown()


def test_a_tenant_queues_a_bounded_number_of_evaluations(
    world: tuple[Runtime, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Thirty 5,000-sample evaluations queued in 0.2 s were twelve hours of the one evaluation
    # worker, ahead of every other tenant's report.
    from privsynth.server.errors import Overloaded, Reason

    rt, model_id, _ = world
    monkeypatch.setattr(rt.settings, "max_queued_evaluations_per_tenant", 2)
    runner = EvaluationRunner(rt)
    monkeypatch.setattr(runner._pool, "submit", lambda *args, **kwargs: None)  # none starts
    queued = []
    try:
        queued = [runner.create(model_id, sample_count=MIN_SAMPLES) for _ in range(2)]
        with pytest.raises(Overloaded) as exc:
            runner.create(model_id, sample_count=MIN_SAMPLES)
        assert exc.value.reason == Reason.TOO_MANY_QUEUED_EVALUATIONS
        assert exc.value.subject == "evaluations/queued_per_tenant"
        runner.cancel(queued[0].id)  # a place comes free
        queued.append(runner.create(model_id, sample_count=MIN_SAMPLES))
    finally:
        for row in queued:
            runner.cancel(row.id)
        runner.shutdown()


def test_creating_and_cancelling_evaluations_meets_the_hourly_creation_limit(
    world: tuple[Runtime, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A cancelled evaluation frees its queue place but keeps its row: the hourly creation
    # limit bounds the churn.
    from privsynth.server.db import EvaluationRow
    from privsynth.server.errors import Overloaded, Reason
    from sqlalchemy import func, select

    rt, model_id, _ = world
    with rt.db.session() as s:  # the module's other tests created some this hour already
        earlier = s.execute(select(func.count()).select_from(EvaluationRow)).scalar_one()
    monkeypatch.setattr(rt.settings, "max_creations_per_tenant_per_hour", earlier + 2)
    runner = EvaluationRunner(rt)
    monkeypatch.setattr(runner._pool, "submit", lambda *args, **kwargs: None)  # none starts
    try:
        for _ in range(2):
            runner.cancel(runner.create(model_id, sample_count=MIN_SAMPLES).id)
        with pytest.raises(Overloaded) as exc:
            runner.create(model_id, sample_count=MIN_SAMPLES)
        assert exc.value.reason == Reason.CREATION_RATE_EXCEEDED
        assert exc.value.subject == "evaluations/created_per_hour"
    finally:
        runner.shutdown()
