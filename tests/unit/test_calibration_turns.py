"""At most two training requests calibrate their noise at once, one per tenant; others wait.

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

    def request(tenant: str) -> None:
        done.append(create.JobCreation._plan(config, 100, tenant=tenant))

    tenants = ["acme", "globex", "initech"] * 2
    threads = [threading.Thread(target=request, args=(t,)) for t in tenants]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert done == ["plan"] * 6  # every request got its turn
    assert most[0] == MAX_CONCURRENT_CALIBRATIONS


def test_one_tenant_never_holds_every_place() -> None:
    places = create._CalibrationPlaces(2)
    far = time.monotonic() + 30
    places.take("mallory", is_active=None, give_up_at=far)
    with pytest.raises(Overloaded) as exc:  # its second request waits behind its first
        places.take("mallory", is_active=None, give_up_at=time.monotonic() + 0.3)
    assert exc.value.subject == "concurrent_calls/planning"
    places.take("alice", is_active=None, give_up_at=far)  # another tenant's goes ahead
    with pytest.raises(PlanningAbandoned):  # both places taken; the caller leaves
        places.take("bob", is_active=lambda: False, give_up_at=far)
    places.give_back("mallory")
    places.take("bob", is_active=None, give_up_at=far)
    places.give_back("alice")
    places.give_back("bob")
    assert not places._busy
