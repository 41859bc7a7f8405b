"""The holdout split: its size, its secrecy, its stability, and the minimum dataset it needs."""

from __future__ import annotations

import pytest
from corpus import fortune_examples
from privsynth.models.dp_train import MIN_RECORDS, Example
from privsynth.server.errors import FailedPrecondition, InvalidArgument
from privsynth.server.privacy import holdout

KEY = b"k" * 32


def test_split_holds_out_the_fraction_and_partitions_the_records() -> None:
    examples = fortune_examples(200)
    result = holdout.split(examples, fraction=0.1, key=KEY, job_id="job1")
    assert (len(result.training), len(result.holdout)) == (180, 20)
    assert result.unit == "record" and result.held_units == 20 and result.units == 200
    ids = {id(e) for e in result.training} | {id(e) for e in result.holdout}
    assert ids == {id(e) for e in examples}  # disjoint and complete
    # Training keeps the dataset's order (what training would have read without a holdout).
    order = {id(e): i for i, e in enumerate(examples)}
    assert [order[id(e)] for e in result.training] == sorted(order[id(e)] for e in result.training)


def test_split_is_stable_per_job_and_secret_across_jobs_and_keys() -> None:
    examples = fortune_examples(200)
    first = holdout.split(examples, fraction=0.1, key=KEY, job_id="job1")
    again = holdout.split(list(examples), fraction=0.1, key=KEY, job_id="job1")
    assert [e.text for e in again.holdout] == [e.text for e in first.holdout]
    assert again.fingerprint == first.fingerprint
    other_job = holdout.split(examples, fraction=0.1, key=KEY, job_id="job2")
    other_key = holdout.split(examples, fraction=0.1, key=b"x" * 32, job_id="job1")
    for other in (other_job, other_key):
        assert other.fingerprint != first.fingerprint
        assert {e.text for e in other.holdout} != {e.text for e in first.holdout}


def test_user_level_split_keeps_each_user_on_one_side() -> None:
    examples = [Example(text=f"record {i}", label=None, user=f"user{i % 40}") for i in range(160)]
    result = holdout.split(examples, fraction=0.25, key=KEY, job_id="job")
    assert result.unit == "user" and result.units == 40 and result.held_units == 10
    held_users = {e.user for e in result.holdout}
    assert len(held_users) == 10 and len(result.holdout) == 40
    assert not held_users & {e.user for e in result.training}


def test_minimum_dataset_and_its_refusal() -> None:
    assert holdout.minimum_units(0.1) == 95  # round(9.5) = 10 held out, 85 left to train
    assert holdout.minimum_units(0.5) == 2 * MIN_RECORDS
    holdout.check_size(95, 0.1)
    with pytest.raises(FailedPrecondition, match="at least 95"):
        holdout.check_size(94, 0.1)


def _minimum_by_counting(fraction: float) -> int:
    n = MIN_RECORDS
    while holdout.holdout_units(n, fraction) < holdout.MIN_HOLDOUT_UNITS or (
        n - holdout.holdout_units(n, fraction) < MIN_RECORDS
    ):
        n += 1
    return n


@pytest.mark.parametrize("fraction", [0.001, 0.0333, 0.05, 0.1, 0.125, 0.2, 1 / 3, 0.45, 0.5])
def test_minimum_units_is_what_counting_up_gives(fraction: float) -> None:
    assert holdout.minimum_units(fraction) == _minimum_by_counting(fraction)


@pytest.mark.parametrize("fraction", [1e-9, 1e-300, 5e-324])
def test_a_tiny_fraction_is_answered_at_once_and_refused(fraction: float) -> None:
    # Counting up from MIN_RECORDS took ten over the fraction steps: a server thread spun for
    # good on a request for a holdout fraction of 1e-300.
    needed = holdout.minimum_units(fraction)
    assert needed == holdout.UNITS_BEYOND_ANY_DATASET or needed >= 9.5 / fraction - 1
    with pytest.raises(FailedPrecondition, match="at least"):
        holdout.check_size(10**9, fraction)


@pytest.mark.parametrize("fraction", [-0.1, 0.51, float("nan"), float("inf")])
def test_fraction_out_of_range_is_invalid(fraction: float) -> None:
    with pytest.raises(InvalidArgument) as info:
        holdout.check_fraction(fraction)
    assert info.value.field == "holdout_fraction"


def test_training_records_matches_the_split_for_record_level_data() -> None:
    for n in (95, 120, 333):
        split = holdout.split(fortune_examples(n), fraction=0.1, key=KEY, job_id="j")
        planned = holdout.training_records(records=n, units=n, unit="record", fraction=0.1)
        assert planned == len(split.training)
    assert holdout.training_records(records=50, units=50, unit="record", fraction=0.0) == 50


def test_card_entry_has_counts_and_fingerprint_only() -> None:
    split = holdout.split(fortune_examples(100), fraction=0.1, key=KEY, job_id="j")
    entry = holdout.card_entry(split, 0.1)
    assert entry["records"] == 10 and entry["training_records"] == 90
    assert len(entry["fingerprint"]) == 64
    assert not any(e.text in str(entry) for e in split.holdout)
