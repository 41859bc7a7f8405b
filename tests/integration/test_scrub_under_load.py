"""Uploads of long records: cancellable, and no obstacle to a short ScrubText (issue 12).

The session server has one scrub worker, the hardest case for fairness (two workers:
``tests/unit/test_scrub_fairness.py``). Values are synthetic.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from corpus import long_text
from privsynth.client.client import PrivsynthClient
from privsynth.client.pb import datasets_pb2, scrubbing_pb2

RECORDS = 40  # x 64 KB: minutes of one worker's time, far more than any test waits


def _requests(name: str) -> Iterator[datasets_pb2.UploadDatasetRequest]:
    yield datasets_pb2.UploadDatasetRequest(
        metadata=datasets_pb2.DatasetMetadata(display_name=name)
    )
    for i in range(RECORDS):
        rec = datasets_pb2.Record(text=long_text(i).encode("utf-8"))
        yield datasets_pb2.UploadDatasetRequest(records=datasets_pb2.RecordBatch(records=[rec]))


def _names(client: PrivsynthClient) -> set[str]:
    return {d.display_name for d in client.list_datasets(page_size=100)}


def _idle_within(server: Any, seconds: float) -> float:
    """Seconds until the scrub pool has nothing queued or running (fails after ``seconds``)."""
    started = time.monotonic()
    pool = server.runtime.scrubber.pool
    while pool.busy() or pool.queued():
        assert time.monotonic() - started < seconds, "scrubbing went on after the cancel"
        time.sleep(0.05)
    return time.monotonic() - started


def _scrub_text_latency(client: PrivsynthClient) -> float:
    started = time.monotonic()
    resp = client.scrubbing.ScrubText(
        scrubbing_pb2.ScrubTextRequest(text="Call Zebulon Quagmire on 555-0134."), timeout=10
    )
    assert "Zebulon" not in resp.text
    return time.monotonic() - started


@pytest.mark.parametrize("how", ["cancel", "deadline"])
def test_cancelled_upload_stops_scrubbing_and_stores_nothing(
    server: Any, client: PrivsynthClient, how: str
) -> None:
    name = f"cancelled-upload-{how}"
    future = client.datasets.UploadDataset.future(
        _requests(name), timeout=4 if how == "deadline" else 300
    )
    time.sleep(4)  # well into the scrubbing of the first records
    if how == "cancel":
        future.cancel()
    with pytest.raises(grpc.FutureCancelledError if how == "cancel" else grpc.RpcError):
        future.result()
    stopped = _idle_within(server, 10)
    print(f"\nscrubbing stopped {stopped:.2f} s after the upload ended ({how})")
    assert name not in _names(client)
    assert _scrub_text_latency(client) < 5


def test_short_scrub_text_does_not_wait_behind_an_upload(
    server: Any, client: PrivsynthClient
) -> None:
    future = client.datasets.UploadDataset.future(_requests("big-upload"), timeout=300)
    try:
        time.sleep(3)
        latencies = []
        for _ in range(3):
            assert not future.done()  # the upload is still scrubbing
            latencies.append(_scrub_text_latency(client))
            time.sleep(0.5)
        print(f"\nScrubText during an upload: {', '.join(f'{x:.2f}' for x in latencies)} s")
        # One worker: a ScrubText waits for the task it is running (one 64 KB record at
        # most); before, it queued behind whole batches of 64 records (DEADLINE_EXCEEDED).
        assert max(latencies) < 9
    finally:
        future.cancel()
    _idle_within(server, 10)
