"""The audit log over gRPC and the CLI: what is recorded, export, verify, tamper detection."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest
from corpus import SECRET_EMAIL, SECRET_NAME, fortunes, tickets
from privsynth.client.audit import verify_chain
from privsynth.client.cli import main
from privsynth.client.client import PrivsynthClient
from privsynth.client.errors import BudgetExhausted, PrivsynthClientError
from privsynth.server.api.auth import Authenticator


@pytest.fixture(scope="module")
def history(server: object) -> dict[str, str]:
    """One dataset with a reservation, a cancellation, a refusal and a deletion."""
    with PrivsynthClient(f"127.0.0.1:{server.port}") as c:  # type: ignore[attr-defined]
        ds = c.upload_dataset(tickets(10) + fortunes(30), display_name="audited", epsilon_cap=3)
        job = c.create_training_job(ds.name, target_epsilon=2.0, epochs=50, preset="tiny")
        c.cancel_training_job(job.name)
        list(c.watch_training_job(job.name))  # until charged (if it had started)
        with pytest.raises(BudgetExhausted):
            c.create_training_job(ds.name, target_epsilon=5.0, preset="tiny")
        c.delete_dataset(ds.name)
        return {"dataset": ds.name, "job": job.name}


def test_actions_are_recorded_with_actor_and_time(
    client: PrivsynthClient, history: dict[str, str]
) -> None:
    chain = list(client.export_audit_log())
    assert verify_chain(chain).ok
    mine = [e for e in chain if e.dataset == history["dataset"]]
    actions = [e.action for e in mine]
    assert actions[:3] == ["dataset.created", "dataset.scrubbed", "budget.reserved"]
    assert actions[-1] == "dataset.deleted"
    assert {"budget.committed", "job.cancelled", "budget.refused"} <= set(actions)
    assert all(e.actor and e.time.endswith("Z") for e in mine)
    reserved = json.loads(next(e.details for e in mine if e.action == "budget.reserved"))
    assert reserved["epsilon"] == 2.0 and reserved["noise_multiplier"] > 0
    assert reserved["planned_steps"] > 0
    refused = json.loads(next(e.details for e in mine if e.action == "budget.refused"))
    assert refused["epsilon"] == 5.0 and 0 <= refused["epsilon_remaining"] <= 3.0
    scrubbed = json.loads(next(e.details for e in mine if e.action == "dataset.scrubbed"))
    assert scrubbed["entity_counts"]["EMAIL_ADDRESS"] >= 1
    text = "".join(e.details for e in chain)
    assert SECRET_NAME not in text and SECRET_EMAIL not in text and "audited" not in text


def test_cli_export_and_verify_detect_tampering(
    server: object,
    history: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    target = ["--target", f"127.0.0.1:{server.port}"]  # type: ignore[attr-defined]
    export = tmp_path / "audit.jsonl"
    assert main([*target, "audit", "export", "-o", str(export)]) == 0
    head = capsys.readouterr().err.split("head ")[-1].strip()
    lines = export.read_text().splitlines()
    assert len(lines) >= 7 and json.loads(lines[-1])["hash"] == head

    assert main([*target, "audit", "verify"]) == 0  # live from the server
    assert "intact" in capsys.readouterr().out
    assert main([*target, "audit", "verify", "--file", str(export), "--head", head]) == 0
    capsys.readouterr()

    def verify(tampered: list[str]) -> str:
        bad = tmp_path / "tampered.jsonl"
        bad.write_text("\n".join(tampered) + "\n")
        assert main([*target, "audit", "verify", "--file", str(bad), "--head", head]) == 1
        return capsys.readouterr().err

    edited = json.loads(lines[2])
    edited["actor"] = "someone-else"
    assert "edited" in verify([*lines[:2], json.dumps(edited), *lines[3:]])
    assert "deleted" in verify([*lines[:3], *lines[4:]])
    assert "reordered" in verify([*lines[:3], lines[4], lines[3], *lines[5:]])
    assert "head hash" in verify(lines[:-1])  # newest entry removed


def test_cap_change_needs_the_admin_token_and_is_recorded(
    server: object, client: PrivsynthClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = client.upload_dataset(fortunes(40), display_name="capped", epsilon_cap=1)
    with pytest.raises(BudgetExhausted):
        client.create_training_job(ds.name, target_epsilon=2.0, preset="tiny")
    with pytest.raises(PrivsynthClientError) as exc:  # no admin configured: nobody may
        client.update_budget_cap(ds.name, epsilon_cap=5)
    assert exc.value.code == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(
        PrivsynthClientError
    ) as exc:  # an unknown token is refused, open mode or not
        client.update_budget_cap(ds.name, epsilon_cap=5, admin_token="guess")
    assert exc.value.code == grpc.StatusCode.UNAUTHENTICATED
    # PRIVSYNTH_ADMIN_TOKEN=s3cret-admin, as the server would have read it at start-up:
    settings = server.runtime.settings.model_copy(update={"admin_token": "s3cret-admin"})  # type: ignore[attr-defined]
    interceptor = server.interceptor  # type: ignore[attr-defined]
    monkeypatch.setattr(interceptor, "authenticator", Authenticator.from_settings(settings))
    with pytest.raises(PrivsynthClientError) as exc:
        client.update_budget_cap(ds.name, epsilon_cap=5, admin_token="guess")
    assert exc.value.code == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(PrivsynthClientError) as exc:
        client.update_budget_cap(ds.name, epsilon_cap=5, delta=0.5, admin_token="s3cret-admin")
    assert exc.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert client.get_budget(ds.name).epsilon_cap == 1  # refusals changed nothing

    budget = client.update_budget_cap(ds.name, epsilon_cap=5, admin_token="s3cret-admin")
    assert budget.epsilon_cap == 5 and budget.epsilon_remaining == 5
    job = client.create_training_job(ds.name, target_epsilon=2.0, epochs=1, preset="tiny")
    client.cancel_training_job(job.name)
    entries = list(client.list_ledger_entries(ds.name))
    assert entries[0].kind == "cap" and entries[0].epsilon == 5 and entries[0].actor == "admin"
    changes = [e for e in client.export_audit_log() if e.dataset == ds.name]
    cap = next(e for e in changes if e.action == "budget.cap_changed")
    assert cap.actor == "admin"
    assert json.loads(cap.details)["old_epsilon_cap"] == 1
    assert json.loads(cap.details)["new_epsilon_cap"] == 5
    assert [e.action for e in changes].index("budget.cap_changed") < [
        e.action for e in changes
    ].index("budget.reserved")
