"""The guided recipe as a job (issue 14): no DP-SGD, DP token statistics charged like training.

A :class:`JobRunner` over a real SQLite database and store, with a tiny random Llama standing in
for SmolLM2 (the recipe's code paths, not its text quality): the job plans no noisy step and
reserves the token-statistics release; when it ends, the statistics are released, bundled with
the model and committed to the ledger in one charge; the stored model decodes with the released
biases; an unlabelled dataset is refused before anything is reserved.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from job_runtime import add_dataset, job_runtime, wait_for_job
from privsynth.models import presets
from privsynth.models.family import load_generator
from privsynth.models.sampling import SamplingParams, sample
from privsynth.server.db import DatasetRow, LedgerRow, ModelRow
from privsynth.server.errors import FailedPrecondition, InvalidArgument
from privsynth.server.jobs.runner import JobRunner, JobSpec
from privsynth.server.privacy import ledger
from privsynth.server.runtime import Runtime
from sqlalchemy import select
from tiny_llama import tiny_llama_dir

PRESET = "test-guided"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_llama_dir(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture
def runtime(tmp_path: Path, base: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    guided = presets.TrainingPreset(
        PRESET, "hf-lora", str(base), "tiny base, guided", **presets.HF_GUIDED
    )
    monkeypatch.setitem(presets.PRESETS, PRESET, guided)
    with job_runtime(tmp_path, training_workers=1, torch_threads=1, checkpoint_every_s=0) as rt:
        yield rt


def test_a_guided_job_reserves_releases_and_commits_its_token_statistics(
    runtime: Runtime,
) -> None:
    runner = JobRunner(runtime)
    try:
        dataset_id = add_dataset(runtime, 120, labelled=True)
        # 120 records over 15 labels are too few for the DP label mix to release any label at
        # ε 0.4; declared public, the statistics get every label and the whole ε.
        job = runner.create(
            JobSpec(
                dataset_id=dataset_id,
                target_epsilon=4.0,
                preset=PRESET,
                label_distribution="public",
            )
        )
        # Planned up front: no noisy step, the token statistics' release reserved.
        assert job.planned_steps == 0 and job.noise_multiplier == 0.0
        assert job.stats_noise_multiplier is not None and job.label_noise_multiplier is None
        done = wait_for_job(runtime, job.id)
        assert done.state == "SUCCEEDED", done.error_message
        with runtime.db.session() as s:
            model = s.get(ModelRow, done.model_id)
            assert model is not None
            commits = (
                s.execute(
                    select(LedgerRow).where(
                        LedgerRow.job_id == job.id, LedgerRow.kind.in_(("reserve", "commit"))
                    )
                )
                .scalars()
                .all()
            )
            dataset = s.get(DatasetRow, dataset_id)
            assert dataset is not None
            budget = ledger.get_budget(s, dataset)
        assert {r.kind for r in commits} == {"reserve", "commit"}
        assert all(r.stats_noise_multiplier == job.stats_noise_multiplier for r in commits)
        card = model.card
        assert card["steps"] == 0 and card["recipe"] == "guided"
        assert card["token_stats"]["noise_multiplier"] == job.stats_noise_multiplier
        # The job's ε is the release's: nearly all of the target, never over it.
        assert 3.9 <= card["epsilon"] <= 4.0
        # The dataset's spend states it at the accounting δ (the cap, ten times the job's δ):
        # a little lower.
        assert 3.0 <= budget.epsilon_spent <= 4.0 and budget.epsilon_reserved == 0.0
        # The stored model decodes with the released statistics (bundled in its weights).
        weights = runtime.store.get(model.weights_path, sha256=model.weights_sha256)
        generator, tokenizer = load_generator(weights, model.model_config)
        released = set(card["label_distribution"]["distribution"])
        assert released and set(generator.label_biases or {}) == released  # type: ignore[union-attr]
        label = sorted(released)[0]
        records = list(
            sample(generator, tokenizer, SamplingParams(count=3, label=label, max_tokens=8))
        )
        assert len(records) == 3 and all(r.label == label for r in records)
    finally:
        runner.shutdown()


def test_a_guided_job_that_cannot_run_is_refused_before_any_reservation(
    runtime: Runtime,
) -> None:
    runner = JobRunner(runtime)
    try:
        dataset_id = add_dataset(runtime, 120, labelled=False)
        with pytest.raises(FailedPrecondition, match="labelled dataset"):
            runner.create(JobSpec(dataset_id=dataset_id, target_epsilon=4.0, preset=PRESET))
        labelled = add_dataset(runtime, 120, labelled=True)
        with pytest.raises(InvalidArgument, match="nothing to distribute"):
            runner.create(
                JobSpec(dataset_id=labelled, target_epsilon=4.0, preset=PRESET, distributed=True)
            )
        with runtime.db.session() as s:
            for refused in (dataset_id, labelled):
                rows = s.execute(select(LedgerRow).where(LedgerRow.dataset_id == refused))
                assert rows.scalars().all() == []
    finally:
        runner.shutdown()
