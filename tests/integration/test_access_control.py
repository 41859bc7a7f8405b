"""Access control over TLS: members, auditors, admins, unauthenticated callers; mTLS.

One server with a tokens file and a TLS certificate (the production shape) serves the role
tests; it trains nothing (``training_workers=0``), so jobs stay QUEUED and cancel at no cost.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from corpus import fortunes
from grpc_health.v1 import health_pb2, health_pb2_grpc
from privsynth.client.cli import main
from privsynth.client.client import PrivsynthClient, TlsConfig
from privsynth.client.errors import PrivsynthClientError
from privsynth.client.exit_codes import ExitCode
from tls_certs import Pki, make_pki

TOKENS = {
    "alice": "tok-alice-acme-0001",
    "bob": "tok-bob-globex-0002",
    "audrey": "tok-audrey-auditor-0003",
    "root": "tok-root-admin-0004",
}
LEGACY_ADMIN = "tok-legacy-admin-0005"


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _tokens_file(path: Path) -> Path:
    path.write_text(
        "tokens:\n"
        f"  - {{identity: alice, role: member, tenant: acme, sha256: {_sha(TOKENS['alice'])}}}\n"
        f"  - {{identity: bob, role: member, tenant: globex, token: {TOKENS['bob']}}}\n"
        f"  - {{identity: audrey, role: auditor, sha256: {_sha(TOKENS['audrey'])}}}\n"
        f"  - {{identity: root, role: admin, sha256: {_sha(TOKENS['root'])}}}\n",
        encoding="utf-8",
    )
    return path


@dataclass
class Deployment:
    port: int
    pki: Pki
    server: object

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def tls(self, *, client_cert: bool = False) -> TlsConfig:
        if client_cert:
            return TlsConfig.from_files(
                ca=str(self.pki.ca), cert=str(self.pki.client_cert), key=str(self.pki.client_key)
            )
        return TlsConfig.from_files(ca=str(self.pki.ca))

    def client(self, who: str | None) -> PrivsynthClient:
        token = "" if who is None else TOKENS.get(who, who)
        return PrivsynthClient(self.target, timeout=30, token=token, tls=self.tls())


def _start(data_dir: Path, **settings: object) -> object:
    from privsynth.server.app import PrivsynthServer
    from privsynth.server.config import Settings

    srv = PrivsynthServer(
        Settings(
            data_dir=data_dir,
            host="127.0.0.1",
            grpc_port=0,
            metrics_port=-1,
            training_workers=0,
            torch_threads=1,
            **settings,  # type: ignore[arg-type]
        )
    )
    srv.start()
    assert srv.wait_ready(timeout=300), f"server failed to load: {srv.load_error}"
    return srv


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    root = tmp_path_factory.mktemp("authz")
    pki = make_pki(root / "pki")
    srv = _start(
        root / "data",
        auth_tokens_file=_tokens_file(root / "tokens.yaml"),
        admin_token=LEGACY_ADMIN,
        tls_cert_file=pki.server_cert,
        tls_key_file=pki.server_key,
    )
    yield Deployment(port=srv.port, pki=pki, server=srv)  # type: ignore[attr-defined]
    srv.stop(grace=1)  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def acme(deployment: Deployment) -> dict[str, str]:
    """alice's dataset, job and model (tenant acme)."""
    with deployment.client("alice") as c:
        ds = c.upload_dataset(fortunes(40), display_name="acme-data", epsilon_cap=4)
        job = c.create_training_job(ds.name, target_epsilon=1.0, epochs=1, preset="tiny")
    return {"dataset": ds.name, "job": job.name, "model": job.model}


def _code(fn: object, *args: object, **kwargs: object) -> grpc.StatusCode:
    def call() -> None:
        result = fn(*args, **kwargs)  # type: ignore[operator]
        if hasattr(result, "__iter__"):  # streams and listings fail when read
            list(result)

    with pytest.raises(PrivsynthClientError) as exc:
        call()
    return exc.value.code


def test_unauthenticated_calls_are_refused_but_health_stays_open(
    deployment: Deployment,
) -> None:
    with deployment.client(None) as c:
        assert _code(c.list_datasets) == grpc.StatusCode.UNAUTHENTICATED
        assert _code(c.get_budget, "datasets/abc") == grpc.StatusCode.UNAUTHENTICATED
        assert _code(c.export_audit_log) == grpc.StatusCode.UNAUTHENTICATED
        assert _code(c.upload_dataset, fortunes(3)) == grpc.StatusCode.UNAUTHENTICATED
        health = health_pb2_grpc.HealthStub(c.channel)
        resp = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
        assert resp.status == health_pb2.HealthCheckResponse.SERVING
        c.wait_until_serving(timeout=10)
    with deployment.client("not-a-token") as c:
        assert _code(c.list_datasets) == grpc.StatusCode.UNAUTHENTICATED


def test_reflection_stays_open(deployment: Deployment) -> None:
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    with deployment.client(None) as c:
        stub = reflection_pb2_grpc.ServerReflectionStub(c.channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        responses = list(stub.ServerReflectionInfo(iter([request]), timeout=10))
    names = {s.name for s in responses[0].list_services_response.service}
    assert "privsynth.v1.Privacy" in names


def test_member_works_in_its_own_tenant(deployment: Deployment, acme: dict[str, str]) -> None:
    with deployment.client("alice") as c:
        assert [d.name for d in c.list_datasets()] == [acme["dataset"]]
        assert c.get_dataset(acme["dataset"]).scrub_report.records_scrubbed == 40
        assert c.get_budget(acme["dataset"]).epsilon_reserved > 0
        assert c.get_training_job(acme["job"]).dataset == acme["dataset"]
        assert [j.name for j in c.list_training_jobs()] == [acme["job"]]
        assert c.get_model(acme["model"]).dataset == acme["dataset"]
        assert [m.name for m in c.list_models()] == [acme["model"]]
        entries = list(c.list_ledger_entries(acme["dataset"]))
        # The identity, never the token, is the actor.
        assert [(e.kind, e.actor) for e in entries] == [("reserve", "alice")]
        # Generate reaches the model (still training: no auth error).
        assert _code(c.generate, acme["model"], count=1) == grpc.StatusCode.FAILED_PRECONDITION
        assert c.scrub_text("Please call Zebulon Quagmire tomorrow.").text
        # Members may not read the audit log (it spans tenants) nor change caps.
        assert _code(c.export_audit_log) == grpc.StatusCode.PERMISSION_DENIED
        assert (
            _code(c.update_budget_cap, acme["dataset"], epsilon_cap=9)
            == grpc.StatusCode.PERMISSION_DENIED
        )


def test_other_tenants_resources_look_missing(deployment: Deployment, acme: dict[str, str]) -> None:
    missing = grpc.StatusCode.NOT_FOUND
    with deployment.client("bob") as c:
        assert list(c.list_datasets()) == []
        assert list(c.list_training_jobs()) == []
        assert list(c.list_models()) == []
        assert list(c.list_models(dataset=acme["dataset"])) == []
        assert _code(c.get_dataset, acme["dataset"]) == missing
        assert _code(c.get_budget, acme["dataset"]) == missing
        assert _code(c.list_ledger_entries, acme["dataset"]) == missing
        assert (
            _code(c.create_training_job, acme["dataset"], target_epsilon=1.0, preset="tiny")
            == missing
        )
        assert _code(c.get_training_job, acme["job"]) == missing
        assert _code(c.cancel_training_job, acme["job"]) == missing
        assert _code(c.watch_training_job, acme["job"]) == missing
        assert _code(c.get_model, acme["model"]) == missing
        assert _code(c.generate, acme["model"], count=1) == missing
        assert _code(c.delete_dataset, acme["dataset"]) == missing
        own = c.upload_dataset(fortunes(30), display_name="globex-data")
        assert [d.name for d in c.list_datasets()] == [own.name]
    with deployment.client("alice") as c:
        assert c.get_dataset(acme["dataset"]).name == acme["dataset"]  # untouched
        assert _code(c.get_dataset, own.name) == missing


def test_auditor_reads_every_tenant_but_no_text(
    deployment: Deployment, acme: dict[str, str]
) -> None:
    denied = grpc.StatusCode.PERMISSION_DENIED
    with deployment.client("audrey") as c:
        names = {d.name for d in c.list_datasets()}
        assert acme["dataset"] in names
        assert c.get_dataset(acme["dataset"]).scrub_report.records_scrubbed == 40
        assert c.get_budget(acme["dataset"]).epsilon_cap == 4
        assert next(iter(c.list_ledger_entries(acme["dataset"]))).actor == "alice"
        assert c.get_model(acme["model"]).name == acme["model"]
        assert acme["job"] in {j.name for j in c.list_training_jobs()}
        chain = list(c.export_audit_log())
        created = next(
            e for e in chain if e.action == "dataset.created" and e.dataset == acme["dataset"]
        )
        assert created.actor == "alice"
        assert _code(c.generate, acme["model"], count=1) == denied
        assert _code(c.scrub_text, "no text for auditors") == denied
        assert _code(c.upload_dataset, fortunes(3)) == denied
        assert _code(c.create_training_job, acme["dataset"], target_epsilon=1.0) == denied
        assert _code(c.cancel_training_job, acme["job"]) == denied
        assert _code(c.delete_dataset, acme["dataset"]) == denied
        assert _code(c.update_budget_cap, acme["dataset"], epsilon_cap=9) == denied
        # An audit on a dataset trains on it and spends its budget: members only.
        assert _code(c.audit_privacy, target_epsilon=1.0, dataset=acme["dataset"]) == denied


def test_admin_changes_caps_and_is_recorded_by_name(
    deployment: Deployment, acme: dict[str, str]
) -> None:
    with deployment.client("root") as c:
        budget = c.update_budget_cap(acme["dataset"], epsilon_cap=6)
        assert budget.epsilon_cap == 6
        assert _code(c.generate, acme["model"], count=1) == grpc.StatusCode.PERMISSION_DENIED
        assert _code(c.upload_dataset, fortunes(3)) == grpc.StatusCode.PERMISSION_DENIED
        # The legacy PRIVSYNTH_ADMIN_TOKEN is an identity "admin" with role admin.
        budget = c.update_budget_cap(acme["dataset"], epsilon_cap=7, admin_token=LEGACY_ADMIN)
        assert budget.epsilon_cap == 7
        caps = [e for e in c.list_ledger_entries(acme["dataset"]) if e.kind == "cap"]
        assert [(e.epsilon, e.actor) for e in caps] == [(6, "root"), (7, "admin")]
        chain = list(c.export_audit_log())
    text = json.dumps([e.__dict__ for e in chain])
    assert not any(token in text for token in (*TOKENS.values(), LEGACY_ADMIN))


def test_tokens_never_reach_the_logs(
    deployment: Deployment, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        with deployment.client("not-a-token") as c:
            _code(c.list_datasets)
        with deployment.client("alice") as c:
            _code(c.get_dataset, "datasets/0000")
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "not-a-token" not in logged and TOKENS["alice"] not in logged


def test_cli_sends_token_over_tls(
    deployment: Deployment,
    acme: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = ["--target", deployment.target, "--tls-ca", str(deployment.pki.ca)]
    assert main([*base, "--token", TOKENS["alice"], "budget", acme["dataset"]]) == 0
    assert acme["dataset"] in capsys.readouterr().out
    assert main([*base, "budget", acme["dataset"]]) == ExitCode.UNAUTHENTICATED  # no token
    assert "UNAUTHENTICATED" in capsys.readouterr().err
    # A member may not change caps: its own exit code, options after the command too.
    bob = ["--token", TOKENS["bob"]]
    assert (
        main(["set-cap", acme["dataset"], "--epsilon-cap", "9", *base, *bob]) == ExitCode.PERMISSION
    )
    assert "PERMISSION_DENIED" in capsys.readouterr().err
    monkeypatch.setenv("PRIVSYNTH_TOKEN", TOKENS["bob"])  # read when the parser is built
    assert main([*base, "budget", acme["dataset"]]) == ExitCode.NOT_FOUND
    assert "NOT_FOUND" in capsys.readouterr().err
    token_file = tmp_path / "root.token"
    token_file.write_text(TOKENS["root"] + "\n")
    args = [*base, "--auth-token-file", str(token_file)]
    assert main([*args, "set-cap", acme["dataset"], "--epsilon-cap", "8"]) == 0
    assert "cap now eps=8" in capsys.readouterr().out
    # An auditor reports on any tenant's dataset; a member's report lacks the audit log.
    report = tmp_path / "report.html"
    auditor = [*base, "--token", TOKENS["audrey"]]
    assert main([*auditor, "audit", "report", "--dataset", acme["dataset"], "-o", str(report)]) == 0
    assert "audit chain intact" in capsys.readouterr().out
    data = json.loads(report.with_suffix(".json").read_text())
    assert data["dataset"]["name"] == acme["dataset"]
    assert [m["name"] for m in data["models"]] == [acme["model"]]
    member = [*base, "--token", TOKENS["alice"]]
    assert main([*member, "audit", "report", "--dataset", acme["dataset"], "-o", str(report)]) == 0
    assert "audit chain not readable" in capsys.readouterr().out
    # Plaintext against the TLS port fails.
    no_tls = ["--target", deployment.target, "--timeout", "5", "--token", TOKENS["alice"]]
    assert main([*no_tls, "budget", acme["dataset"]]) == ExitCode.UNAVAILABLE
    capsys.readouterr()


def test_tls_needs_the_right_ca(deployment: Deployment) -> None:
    with PrivsynthClient(deployment.target, timeout=5, token=TOKENS["alice"]) as c:
        assert _code(c.list_datasets) == grpc.StatusCode.UNAVAILABLE  # plaintext
    wrong = TlsConfig.from_files(ca=str(deployment.pki.other_ca))
    with PrivsynthClient(deployment.target, timeout=5, token=TOKENS["alice"], tls=wrong) as c:
        assert _code(c.list_datasets) == grpc.StatusCode.UNAVAILABLE
    with PrivsynthClient(
        deployment.target, timeout=5, token=TOKENS["alice"], tls=deployment.tls()
    ) as c:
        assert len(list(c.list_datasets())) >= 1


def test_mutual_tls_requires_a_client_certificate(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    srv = _start(
        tmp_path / "data",
        tls_cert_file=pki.server_cert,
        tls_key_file=pki.server_key,
        tls_client_ca_file=pki.ca,
    )
    try:
        target = f"127.0.0.1:{srv.port}"  # type: ignore[attr-defined]
        server_only = TlsConfig.from_files(ca=str(pki.ca))
        with PrivsynthClient(target, timeout=5, tls=server_only) as c:
            assert _code(c.list_datasets) == grpc.StatusCode.UNAVAILABLE
        mutual = TlsConfig.from_files(
            ca=str(pki.ca), cert=str(pki.client_cert), key=str(pki.client_key)
        )
        with PrivsynthClient(target, timeout=5, tls=mutual) as c:
            # No tokens file: open mode, so the certificate alone admits the call.
            assert list(c.list_datasets()) == []
    finally:
        srv.stop(grace=1)  # type: ignore[attr-defined]


def test_one_member_cannot_hold_every_stream(deployment: Deployment) -> None:
    # Twelve idle uploads from one member once refused every tenant's uploads, samples and
    # watches for as long as that member liked. A caller now holds at most half the streams.
    import threading
    import time

    from privsynth.client.client import RecordIn
    from privsynth.client.errors import Overloaded

    admission = deployment.server.admission  # type: ignore[attr-defined]
    share = admission.per_caller
    assert 1 <= share < admission.limits["streams"]
    release = threading.Event()

    def idle() -> Iterator[RecordIn]:
        yield RecordIn(text="a record")
        release.wait(60)
        raise RuntimeError("given up")  # the client cancels the upload: nothing is stored

    def hold() -> None:
        with deployment.client("alice") as c, contextlib.suppress(Exception):
            c.upload_dataset(idle(), display_name="idle")

    holders = [threading.Thread(target=hold) for _ in range(share)]
    for t in holders:
        t.start()
    try:
        deadline = time.monotonic() + 30
        while admission.open_count("streams") < share and time.monotonic() < deadline:
            time.sleep(0.05)
        assert admission.open_count("streams") == share
        with deployment.client("alice") as c, pytest.raises(Overloaded) as exc:
            c.upload_dataset(fortunes(3), display_name="one more")
        assert exc.value.work_class == "streams_per_caller"
        with deployment.client("bob") as c:  # another member is still served
            assert c.upload_dataset(fortunes(3), display_name="bob's").record_count == 3
    finally:
        release.set()
        for t in holders:
            t.join(60)
    # The client's cancel returns before the server's end-of-call callback frees the place.
    deadline = time.monotonic() + 30
    while admission.open_count("streams") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert admission.open_count("streams") == 0


def test_deleting_a_dataset_keeps_a_shard_another_dataset_reads(deployment: Deployment) -> None:
    # Shards are content-addressed: bob's upload of the text alice had uploaded shares her
    # file, and deleting his copy used to delete hers (her next job failed, file not found).
    from privsynth.client.client import RecordIn
    from privsynth.server.db import DatasetRow

    runtime = deployment.server.runtime  # type: ignore[attr-defined]
    text = [RecordIn(text=f"note {i} on a shared file about the weather") for i in range(5)]
    with deployment.client("alice") as alice, deployment.client("bob") as bob:
        hers = alice.upload_dataset(text, display_name="shared text")
        his = bob.upload_dataset(text, display_name="the same text")
        assert hers.content_sha256 == his.content_sha256
        bob.delete_dataset(his.name)
        with runtime.db.session() as s:
            row = s.get(DatasetRow, hers.name.split("/", 1)[1])
            path, digest = row.shard_path, row.content_sha256
        assert runtime.store.get(path, sha256=digest).count(b"\n") == 5
        alice.delete_dataset(hers.name)  # the last one to name it takes the file with it
    with pytest.raises(FileNotFoundError):
        runtime.store.get(path)
