"""Private Evolution as a job (issue 14): T vote histograms reserved, run and committed.

A :class:`JobRunner` over a real SQLite database and store, a tiny random Llama standing in for
SmolLM2 (the recipe's code paths, not its text quality) and the real MiniLM embedder: the job
plans T Gaussian mechanisms (σ, sample rate 1, T steps) before it reads data, the ledger
reserves and commits exactly that event, the card says what ran, and the stored model serves
records from its population. Requests that cannot run are refused before anything is reserved.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from job_runtime import add_dataset, job_outcome, job_runtime, wait_for_job
from privsynth.models import presets
from privsynth.models.family import load_generator
from privsynth.models.private_evolution import Population
from privsynth.models.sampling import SamplingParams, sample
from privsynth.server.db import LedgerRow
from privsynth.server.errors import FailedPrecondition, InvalidArgument
from privsynth.server.jobs.runner import JobRunner, JobSpec
from privsynth.server.runtime import Runtime
from sqlalchemy import select
from tiny_llama import tiny_llama_dir

PRESET = "test-pe"
EVOLUTION = {
    **presets.PRIVATE_EVOLUTION,
    "population": 4,
    "iterations": 2,
    "max_new_tokens": 8,
}


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_llama_dir(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture
def runtime(tmp_path: Path, base: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    pe = presets.TrainingPreset(
        PRESET,
        "hf-lora",
        str(base),
        "tiny base, private evolution",
        **{**presets.HF_PE, "evolution": EVOLUTION},
    )
    monkeypatch.setitem(presets.PRESETS, PRESET, pe)
    with job_runtime(tmp_path, training_workers=1, torch_threads=1, checkpoint_every_s=0) as rt:
        yield rt


def test_a_pe_job_reserves_runs_and_commits_its_vote_histograms(runtime: Runtime) -> None:
    runner = JobRunner(runtime)
    try:
        dataset_id = add_dataset(runtime, 120, labelled=True)
        job = runner.create(
            JobSpec(
                dataset_id=dataset_id,
                target_epsilon=4.0,
                preset=PRESET,
                label_distribution="public",
            )
        )
        # Planned up front: T Gaussian mechanisms of sampling probability 1.
        assert job.planned_steps == 2 and job.sample_rate == 1.0
        assert job.noise_multiplier is not None and job.noise_multiplier > 0
        assert job.label_noise_multiplier is None and job.stats_noise_multiplier is None
        done = wait_for_job(runtime, job.id)
        assert done.state == "SUCCEEDED", done.error_message
        model, rows, budget = job_outcome(runtime, done)
        assert {r.kind for r in rows} == {"reserve", "commit"}
        assert all(
            r.noise_multiplier == job.noise_multiplier and r.sample_rate == 1.0 and r.steps == 2
            for r in rows
        )
        card = model.card
        assert card["recipe"] == "private-evolution" and card["steps"] == 2
        assert card["private_evolution"]["iterations"] == 2
        assert card["private_evolution"]["population"] == 4
        assert card["private_evolution"]["noise_multiplier"] == job.noise_multiplier
        # The job's ε is the T histograms': nearly all of the target, never over it.
        assert 3.9 <= card["epsilon"] <= 4.0
        assert 3.0 <= budget.epsilon_spent <= 4.0 and budget.epsilon_reserved == 0.0
        # The stored model serves records from its population.
        weights = runtime.store.get(model.weights_path, sha256=model.weights_sha256)
        population = Population.from_bytes(weights)
        generator, tokenizer = load_generator(weights, model.model_config)
        label = population.labels[0]
        records = list(
            sample(generator, tokenizer, SamplingParams(count=3, label=label, max_tokens=64))
        )
        assert len(records) == 3 and all(r.label == label for r in records)
        assert all(r.text in population.texts[label] for r in records)
        # A label the population lacks falls back to the base itself.
        other = list(sample(generator, tokenizer, SamplingParams(count=2, label="zzz")))
        assert len(other) == 2
    finally:
        runner.shutdown()


def test_a_pe_job_that_cannot_run_is_refused_before_any_reservation(runtime: Runtime) -> None:
    runner = JobRunner(runtime)
    try:
        unlabelled = add_dataset(runtime, 120, labelled=False)
        with pytest.raises(FailedPrecondition, match="labelled dataset"):
            runner.create(JobSpec(dataset_id=unlabelled, target_epsilon=4.0, preset=PRESET))
        labelled = add_dataset(runtime, 120, labelled=True)
        with pytest.raises(InvalidArgument, match="nothing to distribute"):
            runner.create(
                JobSpec(dataset_id=labelled, target_epsilon=4.0, preset=PRESET, distributed=True)
            )
        # At ε = 0.05 the vote noise drowns every candidate's votes: refused, saying what ε
        # the iterations need.
        with pytest.raises(FailedPrecondition, match="cannot fit 2 private-evolution") as info:
            runner.create(JobSpec(dataset_id=labelled, target_epsilon=0.05, preset=PRESET))
        assert "at least about" in str(info.value)
        with runtime.db.session() as s:
            for refused in (unlabelled, labelled):
                found = s.execute(select(LedgerRow).where(LedgerRow.dataset_id == refused))
                assert found.scalars().all() == []
    finally:
        runner.shutdown()
