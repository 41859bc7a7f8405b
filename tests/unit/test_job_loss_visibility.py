"""The raw training loss is outside the DP guarantee: only the owning tenant sees it."""

from __future__ import annotations

import pytest

pytest.importorskip("sqlalchemy")

from privsynth.server.api.auth import Identity, Role
from privsynth.server.api.services.convert import job_pb
from privsynth.server.api.services.training import _owner
from privsynth.server.db import JobRow


def _row() -> JobRow:
    return JobRow(
        id="j1",
        dataset_id="d1",
        model_id="m1",
        state="RUNNING",
        target_epsilon=8.0,
        delta=1e-6,
        epochs=2,
        preset="small",
        step=5,
        total_steps=10,
        loss=3.25,
        epsilon_spent=4.0,
        elapsed_seconds=10.0,
    )


def test_member_sees_loss_and_readers_of_all_tenants_do_not() -> None:
    member = Identity(name="alice", role=Role.MEMBER, tenant="acme")
    auditor = Identity(name="audrey", role=Role.AUDITOR)
    admin = Identity(name="root", role=Role.ADMIN)
    assert job_pb(_row(), show_loss=_owner(member)).progress.loss == pytest.approx(3.25)
    for reader in (auditor, admin):
        shown = job_pb(_row(), show_loss=_owner(reader))
        assert shown.progress.loss == 0.0
        # Everything that is DP or public metadata is still there.
        assert shown.progress.epsilon_spent == pytest.approx(4.0)
        assert shown.progress.eta_seconds == pytest.approx(10.0)
