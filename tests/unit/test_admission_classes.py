"""Admission's accounting: which calls hold main-pool threads, and one caller's share."""

from __future__ import annotations

import pytest
from privsynth.server.api.admission import Admission
from privsynth.server.errors import Overloaded

SCRUB = "/privsynth.v1.Scrubbing/ScrubText"
UPLOAD = "/privsynth.v1.Datasets/UploadDataset"


def _subject(exc: pytest.ExceptionInfo[Overloaded]) -> str:
    return str(exc.value.subject)


def test_slow_scrub_calls_and_streams_share_the_threads_streams_may_hold() -> None:
    # Twelve idle uploads plus eight slow ScrubText calls held all sixteen threads of the main
    # pool: every unary call then waited 13 s. Both now count against max_streams together.
    adm = Admission(max_streams=3, max_watch_streams=2, max_scrub_calls=8)
    scrub = adm.classes(SCRUB, streaming=False)
    upload = adm.classes(UPLOAD, streaming=True)
    held = [adm.acquire(upload), adm.acquire(scrub), adm.acquire(scrub)]
    for classes in (scrub, upload):
        with pytest.raises(Overloaded) as exc:
            adm.acquire(classes)
        assert _subject(exc) == "concurrent_calls/long_running"
    held.pop().release()
    adm.acquire(scrub).release()
    assert adm.classes("/privsynth.v1.Datasets/ListDatasets", streaming=False) == ("unary",)


def test_an_authenticated_caller_holds_at_most_its_share_of_streams() -> None:
    adm = Admission(max_streams=6, max_watch_streams=2)
    upload = adm.classes(UPLOAD, streaming=True)
    assert adm.per_caller == 3
    mine = [adm.acquire(upload, caller="mallory") for _ in range(3)]
    with pytest.raises(Overloaded) as exc:
        adm.acquire(upload, caller="mallory")
    assert _subject(exc) == "concurrent_calls/streams_per_caller"
    theirs = adm.acquire(upload, caller="alice")  # another caller is still admitted
    with pytest.raises(Overloaded):  # slow scrub calls hold threads too: the same share
        adm.acquire(adm.classes(SCRUB, streaming=False), caller="mallory")
    assert adm.classes("/privsynth.v1.Datasets/ListDatasets", streaming=False) == ("unary",)
    mine[0].release()
    mine[0].release()  # idempotent: frees one place, not two
    mine.append(adm.acquire(upload, caller="mallory"))
    with pytest.raises(Overloaded):
        adm.acquire(upload, caller="mallory")
    for slot in [*mine, theirs]:
        slot.release()
    assert adm.open_count("streams") == 0 and adm.open_count("long_running") == 0
    # Without authentication every caller is the same one: only the server-wide bound holds.
    anonymous = [adm.acquire(upload) for _ in range(6)]
    with pytest.raises(Overloaded) as exc:
        adm.acquire(upload)
    assert _subject(exc) == "concurrent_calls/streams"
    for slot in anonymous:
        slot.release()


GENERATE = "/privsynth.v1.Generation/Generate"
WATCH = "/privsynth.v1.Training/WatchTrainingJob"


def test_a_caller_holds_at_most_half_of_each_smaller_class() -> None:
    # Two long Generate calls from one member (2 places server-wide) refused every other
    # tenant's sampling for over an hour; four watches on a job that never starts held
    # every watch place (the per-caller share, 6, was larger than the class, 4).
    adm = Admission(max_streams=12, max_watch_streams=4, max_generate_calls=2)
    assert adm.shares["generation"] == 1 and adm.shares["watch"] == 2
    generate = adm.classes(GENERATE, streaming=True)
    watch = adm.classes(WATCH, streaming=True)
    held = [adm.acquire(generate, caller="mallory")]
    with pytest.raises(Overloaded) as exc:
        adm.acquire(generate, caller="mallory")
    assert _subject(exc) == "concurrent_calls/generation_per_caller"
    held.append(adm.acquire(generate, caller="alice"))  # the other place is another's
    held += [adm.acquire(watch, caller="mallory") for _ in range(2)]
    with pytest.raises(Overloaded) as exc:
        adm.acquire(watch, caller="mallory")
    assert _subject(exc) == "concurrent_calls/watch_per_caller"
    held.append(adm.acquire(watch, caller="alice"))
    for slot in held:
        slot.release()
    assert not adm._by_caller  # every place given back


def test_a_gateway_share_lifts_every_per_caller_bound() -> None:
    adm = Admission(max_streams=12, max_watch_streams=4, max_streams_per_caller=12)
    generate = adm.classes(GENERATE, streaming=True)
    held = [adm.acquire(generate, caller="gateway") for _ in range(2)]
    with pytest.raises(Overloaded) as exc:  # the server-wide bound still holds
        adm.acquire(generate, caller="gateway")
    assert _subject(exc) == "concurrent_calls/generation"
    for slot in held:
        slot.release()


def test_a_raised_stream_share_is_not_capped_at_half() -> None:
    adm = Admission(max_streams=12, max_watch_streams=4, max_streams_per_caller=10)
    upload = adm.classes(UPLOAD, streaming=True)
    held = [adm.acquire(upload, caller="gateway") for _ in range(10)]
    with pytest.raises(Overloaded) as exc:
        adm.acquire(upload, caller="gateway")
    assert _subject(exc) == "concurrent_calls/streams_per_caller"
    for slot in held:
        slot.release()


LIST = "/privsynth.v1.Datasets/ListDatasets"


def test_a_callers_other_unary_calls_are_bounded_by_its_share_alone() -> None:
    # A member keeping 4,000 ListDatasets in flight made every other tenant's calls wait
    # 11.6 s behind them: one caller now runs at most its share; the class has no bound.
    adm = Admission(max_streams=12, max_watch_streams=4, max_unary_per_caller=3)
    unary = adm.classes(LIST, streaming=False)
    mine = [adm.acquire(unary, caller="mallory") for _ in range(3)]
    with pytest.raises(Overloaded) as exc:
        adm.acquire(unary, caller="mallory")
    assert _subject(exc) == "concurrent_calls/unary_per_caller"
    assert exc.value.retry_after_s > 0
    theirs = [adm.acquire(unary, caller="alice") for _ in range(3)]
    anonymous = [adm.acquire(unary) for _ in range(100)]  # open mode: no share, no bound
    mine.pop().release()
    mine.append(adm.acquire(unary, caller="mallory"))
    for slot in [*mine, *theirs, *anonymous]:
        slot.release()
    assert adm.open_count("unary") == 0
    # A gateway (max_streams_per_caller >= max_streams) has every share lifted, this one too.
    gateway = Admission(
        max_streams=12, max_watch_streams=4, max_streams_per_caller=12, max_unary_per_caller=3
    )
    held = [gateway.acquire(unary, caller="gateway") for _ in range(50)]
    for slot in held:
        slot.release()
