"""Training jobs split their holdout off when they start (issue 15).

A :class:`JobRunner` over a real SQLite database and store (preset "tiny", jobs of seconds): the
default 10% holdout on a dataset large enough for it, the plan made for the records that remain,
the card recording it; a requested holdout on too small a dataset refused with the minimum; the
default on a small dataset training on every record as before.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from job_runtime import add_dataset, job_runtime, wait_for_job
from privsynth.server.db import DatasetRow, ModelRow
from privsynth.server.errors import FailedPrecondition
from privsynth.server.jobs.runner import JobRunner, JobSpec
from privsynth.server.privacy import holdout
from privsynth.server.runtime import Runtime
from privsynth.server.shards import read_examples


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    with job_runtime(tmp_path, training_workers=1, torch_threads=1, checkpoint_every_s=0) as rt:
        yield rt


def test_default_holdout_is_split_off_planned_for_and_on_the_card(runtime: Runtime) -> None:
    runner = JobRunner(runtime)
    try:
        dataset_id = add_dataset(runtime, 120, labelled=True)
        job = runner.create(
            JobSpec(dataset_id=dataset_id, target_epsilon=4.0, epochs=1, preset="tiny")
        )
        assert job.holdout_fraction == pytest.approx(0.1)
        done = wait_for_job(runtime, job.id)
        assert done.state == "SUCCEEDED", done.error_message
        with runtime.db.session() as s:
            model = s.get(ModelRow, done.model_id)
            dataset = s.get(DatasetRow, dataset_id)
            assert model is not None and dataset is not None
        card = model.card
        assert card["training_records"] == 108  # 120 less the 12 held out
        assert card["holdout"]["records"] == 12 and card["holdout"]["fraction"] == 0.1
        # The run's sampling rate is the one the ledger reserved (planned for 108 records).
        assert card["sample_rate"] == pytest.approx(done.sample_rate)
        # The split recomputed later (as an evaluation does) is the very one training used.
        again = holdout.split(
            read_examples(runtime.store, dataset),
            fraction=0.1,
            key=runtime.user_key,
            job_id=job.id,
        )
        assert again.fingerprint == card["holdout"]["fingerprint"]
    finally:
        runner.shutdown()


def test_requested_holdout_on_a_small_dataset_is_refused_with_the_minimum(
    runtime: Runtime,
) -> None:
    runner = JobRunner(runtime)
    try:
        dataset_id = add_dataset(runtime, 40)
        spec = JobSpec(
            dataset_id=dataset_id, target_epsilon=2.0, epochs=1, preset="tiny", holdout_fraction=0.1
        )
        with pytest.raises(FailedPrecondition, match="at least 95"):
            runner.create(spec)
        # The server's default does not refuse it: the job trains on every record.
        job = runner.create(
            JobSpec(dataset_id=dataset_id, target_epsilon=2.0, epochs=1, preset="tiny")
        )
        assert job.holdout_fraction == 0.0
        done = wait_for_job(runtime, job.id)
        assert done.state == "SUCCEEDED", done.error_message
        with runtime.db.session() as s:
            model = s.get(ModelRow, done.model_id)
            assert model is not None
        assert model.card["training_records"] == 40
        assert (
            model.card["holdout"]["records"] == 0 and "no holdout" in model.card["holdout"]["note"]
        )
    finally:
        runner.shutdown()
