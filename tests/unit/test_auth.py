"""The access policy and the token table, without a server."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from privsynth.client.pb import (
    datasets_pb2,
    evaluation_pb2,
    generation_pb2,
    models_pb2,
    privacy_pb2,
    scrubbing_pb2,
    training_pb2,
)
from privsynth.server.api.auth import (
    ANONYMOUS,
    POLICY,
    Authenticator,
    Identity,
    Role,
    load_tokens,
)
from privsynth.server.config import Settings
from privsynth.server.errors import PermissionDenied, Unauthenticated

MODULES = (
    datasets_pb2,
    evaluation_pb2,
    generation_pb2,
    models_pb2,
    privacy_pb2,
    scrubbing_pb2,
    training_pb2,
)


def _bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


def test_every_rpc_has_a_policy() -> None:
    methods = {
        f"/{service.full_name}/{method.name}"
        for module in MODULES
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }
    assert methods == set(POLICY)


def test_tokens_file_yaml_and_json(tmp_path: Path) -> None:
    yaml_file = tmp_path / "tokens.yaml"
    digest = hashlib.sha256(b"t-alice").hexdigest()
    yaml_file.write_text(
        f"tokens:\n  - {{identity: alice, role: member, tenant: acme, sha256: {digest}}}\n"
        "  - {identity: audrey, role: AUDITOR, token: t-audrey, tenant: ignored}\n"
    )
    table = load_tokens(yaml_file)
    assert table[digest] == Identity("alice", Role.MEMBER, "acme")
    audrey = table[hashlib.sha256(b"t-audrey").hexdigest()]
    assert audrey.role is Role.AUDITOR and audrey.tenant == "" and audrey.tenant_scope is None
    json_file = tmp_path / "tokens.json"
    json_file.write_text(json.dumps([{"identity": "root", "role": "admin", "token": "t-root"}]))
    assert list(load_tokens(json_file).values()) == [Identity("root", Role.ADMIN)]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"role": "member", "tenant": "a", "token": "x"}, "'identity' is required"),
        ({"identity": "a", "role": "boss", "token": "x"}, "role must be one of"),
        ({"identity": "a", "role": "member", "token": "x"}, "needs a 'tenant'"),
        ({"identity": "a", "role": "auditor", "sha256": "abc"}, "64 hex digits"),
    ],
)
def test_bad_entries_are_refused_without_echoing_tokens(
    tmp_path: Path, entry: dict[str, str], message: str
) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps({"tokens": [entry]}))
    with pytest.raises(ValueError, match=message) as exc:
        load_tokens(path)
    assert "'x'" not in str(exc.value)


def test_open_mode_and_legacy_admin(tmp_path: Path) -> None:
    auth = Authenticator.from_settings(Settings(data_dir=tmp_path, admin_token="adm"))
    assert auth.open_mode
    assert auth.authorize("/privsynth.v1.Datasets/ListDatasets", []) is ANONYMOUS
    assert auth.authorize("/privsynth.v1.Privacy/ExportAuditLog", None) is ANONYMOUS
    with pytest.raises(PermissionDenied):
        auth.authorize("/privsynth.v1.Privacy/UpdateBudgetCap", [])
    admin = auth.authorize("/privsynth.v1.Privacy/UpdateBudgetCap", _bearer("adm"))
    assert admin == Identity("admin", Role.ADMIN)
    with pytest.raises(Unauthenticated):
        auth.authorize("/privsynth.v1.Datasets/ListDatasets", _bearer("guess"))
    with pytest.raises(Unauthenticated):
        auth.authorize("/privsynth.v1.Datasets/ListDatasets", [("authorization", "Basic adm")])


def test_closed_mode_refuses_tokenless_calls(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text("tokens:\n  - {identity: bob, role: member, tenant: g, token: t-bob}\n")
    auth = Authenticator.from_settings(Settings(data_dir=tmp_path, auth_tokens_file=path))
    assert not auth.open_mode
    with pytest.raises(Unauthenticated):
        auth.authorize("/privsynth.v1.Datasets/ListDatasets", [])
    bob = auth.authorize("/privsynth.v1.Datasets/ListDatasets", _bearer("t-bob"))
    assert bob.tenant_scope == "g" and bob.sees("g") and not bob.sees("other")
    with pytest.raises(PermissionDenied):
        auth.authorize("/privsynth.v1.Privacy/ExportAuditLog", _bearer("t-bob"))
    with pytest.raises(PermissionDenied):
        auth.authorize("/privsynth.v1.Unknown/Method", _bearer("t-bob"))
    assert not Authenticator.protects("/grpc.health.v1.Health/Check")
    assert not Authenticator.protects(
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
    )


def test_tls_settings_must_come_in_pairs(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="KEY_FILE"):
        Settings(data_dir=tmp_path, tls_cert_file=tmp_path / "c.pem")
    with pytest.raises(ValueError, match="server certificate"):
        Settings(data_dir=tmp_path, tls_client_ca_file=tmp_path / "ca.pem")


@pytest.mark.parametrize("open_mode", [True, False])
def test_two_authorization_headers_are_refused(tmp_path: Path, open_mode: bool) -> None:
    """Ambiguous credentials are refused, whichever header a proxy would have kept."""
    path = tmp_path / "tokens.yaml"
    path.write_text(
        "tokens:\n"
        "  - {identity: bob, role: member, tenant: g, token: t-bob}\n"
        "  - {identity: root, role: admin, token: t-root}\n"
    )
    settings = Settings(data_dir=tmp_path, auth_tokens_file=None if open_mode else path)
    auth = Authenticator.from_settings(settings)
    if open_mode:
        auth = Authenticator(load_tokens(path), open_mode=True)
    for headers in (
        [*_bearer("t-bob"), *_bearer("t-root")],
        [*_bearer("t-bob"), *_bearer("t-bob")],
        [*_bearer("t-bob"), ("authorization", "")],
    ):
        with pytest.raises(Unauthenticated, match="more than one") as exc:
            auth.authorize("/privsynth.v1.Datasets/ListDatasets", headers)
        assert "t-bob" not in str(exc.value) and "t-root" not in str(exc.value)
