"""Two scrub workers on long records: a short interactive scrub answers within seconds, a
cancelled call stops at once, and a worker over its memory limit is replaced (issue 12).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from corpus import long_text
from privsynth.server.scrubbing.pipeline import ParallelScrubber, ScrubCancelled


@pytest.fixture(scope="module")
def parallel() -> Iterator[ParallelScrubber]:
    with ParallelScrubber(workers=2, residual_check=True) as ps:
        yield ps


def _idle(ps: ParallelScrubber, seconds: float) -> float:
    pool = ps.pool
    assert pool is not None
    started = time.monotonic()
    while pool.busy() or pool.queued():
        assert time.monotonic() - started < seconds
        time.sleep(0.05)
    return time.monotonic() - started


def test_short_scrub_does_not_wait_behind_long_records(parallel: ParallelScrubber) -> None:
    texts = [long_text(i) for i in range(30)]
    stop = threading.Event()
    done: list[int] = []

    def upload() -> None:
        try:
            done.append(sum(1 for _ in parallel.scrub_iter(texts, cancel=stop)))
        except ScrubCancelled:
            done.append(-1)

    t = threading.Thread(target=upload)
    t.start()
    try:
        time.sleep(3)
        latencies = []
        for _ in range(4):
            started = time.monotonic()
            out = parallel.scrub_batch(["Call Zebulon Quagmire, 555-0134."], interactive=True)
            latencies.append(time.monotonic() - started)
            assert "Zebulon" not in out[0].text
            time.sleep(0.3)
        assert not done, "the upload finished before the short scrubs were measured"
        print(f"\nshort scrub during an upload: {', '.join(f'{x:.2f}' for x in latencies)} s")
        assert max(latencies) < 5
    finally:
        stop.set()
        t.join(30)
    assert done == [-1]
    print(f"workers idle {_idle(parallel, 10):.2f} s after the cancel")


def test_cancel_drops_queued_work(parallel: ParallelScrubber) -> None:
    cancel = threading.Event()
    it = parallel.scrub_iter([long_text(i) for i in range(12)], cancel=cancel)
    next(it)
    pool = parallel.pool
    assert pool is not None and pool.queued() > 0
    cancel.set()
    started = time.monotonic()
    with pytest.raises(ScrubCancelled):
        list(it)
    assert time.monotonic() - started < 1
    assert pool.queued() == 0
    _idle(parallel, 10)


def test_worker_over_its_memory_limit_is_replaced() -> None:
    with ParallelScrubber(workers=1, max_worker_rss=1) as ps:  # any task exceeds 1 byte
        first = ps.worker_pids()
        assert ps.scrub_batch(["mail zq@quagmire-mail.net"])[0].entity_counts
        assert ps.pool is not None
        deadline = time.monotonic() + 120
        while ps.pool.recycled < 1 or ps.worker_pids() == first:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert ps.scrub_batch(["mail zq@quagmire-mail.net"])[0].entity_counts
