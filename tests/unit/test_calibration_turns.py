"""At most two training requests calibrate their noise at once; the others wait their turn.

At the extremes (ε near 100, 1,000 epochs) one calibration took 45 s of CPU and 2-3 GB until
its time limit, and nothing bounded how many ran at once.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from privsynth.models.dp_train import DPConfig
from privsynth.server.errors import Overloaded
from privsynth.server.jobs import create
from privsynth.server.jobs.requests import MAX_CONCURRENT_CALIBRATIONS
from privsynth.server.privacy.accounting import PlanningAbandoned


def test_calibrations_run_two_at_a_time_and_all_finish(monkeypatch: pytest.MonkeyPatch) -> None:
    lock = threading.Lock()
    running, most, done = [0], [0], []

    def slow_plan(**kwargs: Any) -> str:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.2)
        with lock:
            running[0] -= 1
        return "plan"

    monkeypatch.setattr(create, "plan_dp_sgd", slow_plan)
    config = DPConfig(target_epsilon=8.0, target_delta=1e-5, epochs=1, batch_size=16)

    def request() -> None:
        done.append(create.JobCreation._plan(config, 100))

    threads = [threading.Thread(target=request) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert done == ["plan"] * 6  # every request got its turn
    assert most[0] == MAX_CONCURRENT_CALIBRATIONS


def test_a_request_waiting_for_a_turn_gives_up_or_leaves(monkeypatch: pytest.MonkeyPatch) -> None:
    held = [create._CALIBRATIONS.acquire(timeout=1) for _ in range(MAX_CONCURRENT_CALIBRATIONS)]
    assert all(held)
    try:
        with pytest.raises(PlanningAbandoned):  # the caller went away
            create._wait_for_a_calibration_turn(lambda: False)
        monkeypatch.setattr(create, "PLANNING_TIME_LIMIT_S", 0.3)
        with pytest.raises(Overloaded) as exc:
            create._wait_for_a_calibration_turn(None)
        assert exc.value.subject == "concurrent_calls/planning"
    finally:
        for _ in held:
            create._CALIBRATIONS.release()
