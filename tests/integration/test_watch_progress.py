"""WatchTrainingJob streams step, loss, ε spent so far and an ETA while the job runs."""

from __future__ import annotations

import itertools
import math

from corpus import fortunes
from privsynth.client.client import PrivsynthClient, RecordIn
from privsynth.client.pb import training_pb2


def test_watch_streams_growing_epsilon_and_a_shrinking_eta(client: PrivsynthClient) -> None:
    # Unlabelled records: the job is DP-SGD only. 40 records, batch 10: 4 steps per epoch.
    records = [RecordIn(text=r.text) for r in fortunes(40)]
    ds = client.upload_dataset(records, display_name="watched")
    job = client.create_training_job(ds.name, target_epsilon=4.0, epochs=8, preset="tiny")
    snapshots = list(client.watch_training_job(job.name))
    assert snapshots[-1].state == training_pb2.JOB_STATE_SUCCEEDED
    running = [
        s.progress
        for s in snapshots
        if s.state == training_pb2.JOB_STATE_RUNNING and 0 < s.progress.step < 32
    ]
    # Reports come every second at most, and further apart when ε accounting is slow.
    assert len(running) >= 2, "expected progress events while running"
    for p in running:
        assert p.total_steps == 32
        assert p.eta_seconds > 0 and p.elapsed_seconds > 0
        assert math.isfinite(p.loss) and p.loss > 0
    # ε spent so far grows with the steps taken and stays within the target.
    for a, b in itertools.pairwise(running):
        if b.step > a.step:
            assert a.epsilon_spent < b.epsilon_spent <= 4.0 + 1e-6
    # The ETA shrinks as the job nears its end (compared over the run, not event by event:
    # the step rate wobbles on a shared machine).
    assert running[-1].step > running[0].step
    assert running[-1].eta_seconds < running[0].eta_seconds
    final = snapshots[-1].progress
    assert final.step == final.total_steps == 32 and final.eta_seconds == 0
    assert final.epsilon_spent >= running[-1].epsilon_spent
