"""AuditPrivacy over gRPC and the CLI: bad input refused up front; public audits cost nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import grpc
import pytest
from corpus import fortunes
from privsynth.client.cli import main
from privsynth.client.client import PrivsynthClient
from privsynth.client.errors import PrivsynthClientError
from privsynth.server.db import LedgerRow
from sqlalchemy import func, select


def _refusal(client: PrivsynthClient, **kw: Any) -> PrivsynthClientError:
    kw.setdefault("target_epsilon", 1.0)
    with pytest.raises(PrivsynthClientError) as exc:
        list(client.audit_privacy(**kw))
    return exc.value


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"canaries": 99}, "canaries"),
        ({"canaries": 0}, "canaries"),
        ({"canaries": 10_001}, "canaries"),
        ({"preset": "huge"}, "preset"),
        ({"target_epsilon": 0.0}, "target_epsilon"),
        ({"target_epsilon": float("nan")}, "target_epsilon"),
        ({"target_epsilon": 1e300}, "target_epsilon"),  # calibration would never end
        ({"target_epsilon": 100.5}, "target_epsilon"),
        ({"epochs": 100, "canaries": 10_000, "public_records": 9000}, "epochs"),  # 1.9M passes
        ({"epochs": 0}, "epochs"),
        ({"delta": 0.5}, "delta"),
    ],
)
def test_bad_audit_requests_are_invalid_argument(
    client: PrivsynthClient, kw: dict[str, Any], field: str
) -> None:
    err = _refusal(client, **kw)
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert field in err.field_violations


def test_audit_on_a_private_dataset_is_charged_like_training(
    server: Any, client: PrivsynthClient
) -> None:
    ds = client.upload_dataset(fortunes(30), display_name="audit-private", epsilon_cap=5)
    before = client.get_budget(ds.name)
    # Over the remaining budget: refused before anything is read, nothing reserved.
    err = _refusal(client, target_epsilon=8.0, dataset=ds.name, preset="tiny", canaries=100)
    assert err.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert client.get_budget(ds.name) == before
    events = list(
        client.audit_privacy(
            target_epsilon=2.0, dataset=ds.name, preset="tiny", canaries=100, epochs=1
        )
    )
    result = events[-1].result
    assert result.canaries == 100 and result.public_records == 30  # the dataset's records
    assert 0 < result.epsilon_claimed <= 2.0 + 1e-6
    # Reserved before, committed after: the ledger holds the run's own event.
    with server.runtime.db.session() as s:
        rows = s.execute(
            select(LedgerRow).where(LedgerRow.dataset_id == ds.name.split("/")[1])
        ).scalars()
        entries = [(r.kind, r.job_id, r.epsilon, r.steps) for r in rows if r.kind != "cap"]
    kinds = [k for k, *_ in entries]
    assert kinds == ["reserve", "commit", "release"]
    assert entries[0][1].startswith("audit-") and entries[0][2] == 2.0
    assert entries[1][2] == pytest.approx(result.epsilon_claimed) and entries[1][3] == result.steps
    after = client.get_budget(ds.name)
    assert after.epsilon_spent > before.epsilon_spent and after.epsilon_reserved == 0


def _ledger_rows(server: Any) -> int:
    with server.runtime.db.session() as s:
        return int(s.execute(select(func.count()).select_from(LedgerRow)).scalar_one())


def test_cli_audit_runs_on_the_public_corpus_and_touches_no_ledger(
    server: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _ledger_rows(server)
    out = tmp_path / "audit.json"
    code = main(
        [
            "--target",
            f"127.0.0.1:{server.port}",
            "audit",
            "privacy",
            "--epsilon",
            "2",
            "--preset",
            "tiny",
            "--canaries",
            "100",
            "--public-records",
            "20",
            "--epochs",
            "1",
            "--json",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "eps lower bound" in printed and "tiny" in printed
    [result] = json.loads(out.read_text())
    assert result["canaries"] == 100 and result["preset"] == "tiny"
    assert 0 <= result["epsilon_lower_bound"] < result["epsilon_claimed"] <= 2.0 + 1e-6
    assert result["refuted"] is False
    assert _ledger_rows(server) == before


def test_an_audit_past_the_servers_time_limit_ends_deadline_exceeded_and_is_charged(
    server: Any, client: PrivsynthClient
) -> None:
    # One audit runs at a time per server, and one at the per-field maxima held that place for
    # 2.5 hours; PRIVSYNTH_MAX_AUDIT_SECONDS now stops it (here: at its first step).
    ds = client.upload_dataset(fortunes(30), display_name="audit-time-limit", epsilon_cap=5)
    auditor = server.auditor
    limit = auditor.max_seconds
    auditor.max_seconds = 1e-6
    try:
        with pytest.raises(PrivsynthClientError) as exc:
            list(
                client.audit_privacy(
                    target_epsilon=2.0, dataset=ds.name, preset="tiny", canaries=100, epochs=1
                )
            )
    finally:
        auditor.max_seconds = limit
    assert exc.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert exc.value.reason == "TIME_LIMIT_EXCEEDED"
    assert "PRIVSYNTH_MAX_AUDIT_SECONDS" in exc.value.message
    with server.runtime.db.session() as s:
        rows = s.execute(
            select(LedgerRow).where(LedgerRow.dataset_id == ds.name.split("/")[1])
        ).scalars()
        kinds = [r.kind for r in rows if r.kind != "cap"]
    assert kinds == ["reserve", "commit", "release"]  # charged what it spent, nothing held
    assert client.get_budget(ds.name).epsilon_reserved == 0
    # The place is free again: the next audit runs.
    events = list(
        client.audit_privacy(
            target_epsilon=2.0, preset="tiny", canaries=100, public_records=20, epochs=1
        )
    )
    assert events[-1].HasField("result")
