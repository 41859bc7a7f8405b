"""What a platform operator relies on: network isolation, disruption budget, ingress, TLS and
mutual TLS from Secrets, migrations before the pods, shared artifacts in a bucket, helm test.

Rendered offline with helm-python-sdk; the manifests of every scenario here are also validated
strictly against the Kubernetes schemas (GRPCRoute, a CRD, is checked by hand).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from test_chart import (
    KUBE_VERSIONS,
    NAMESPACE,
    RELEASE,
    SCENARIOS,
    Manifest,
    by_kind,
    container,
    env_value,
    helm,
    one,
    pod_spec,
    render,
    render_raw,
    scenario,
    schema_failures,
)

POSTGRES: dict[str, Any] = {"database": {"existingSecret": "privsynth-db"}}
MTLS: dict[str, Any] = {
    "tls": {
        "enabled": True,
        "existingSecret": "privsynth-tls",
        "clientCA": {"existingSecret": "privsynth-client-ca"},
    },
    "tests": {"clientSecret": "privsynth-test-client"},
}
SHARED = "object-store-mtls-3-replicas"
BUCKET: dict[str, Any] = {"objectStore": SCENARIOS[SHARED]["objectStore"]}


def _merge(*parts: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            out[key] = _merge(out[key], value) if isinstance(value, dict) and key in out else value
    return out


def _hooks(manifests: list[Manifest], hook: str) -> list[Manifest]:
    return [
        m
        for m in manifests
        if hook in m["metadata"].get("annotations", {}).get("helm.sh/hook", "").split(",")
    ]


def _pod_labels(manifests: list[Manifest]) -> dict[str, str]:
    labels: dict[str, str] = one(manifests, "Deployment")["spec"]["template"]["metadata"]["labels"]
    return labels


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a LabelSelector (matchLabels + In expressions) selects ``labels``."""
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expr in selector.get("matchExpressions", []):
        assert expr["operator"] == "In"
        if labels.get(expr["key"]) not in expr["values"]:
            return False
    return True


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize(
    "values",
    [
        pytest.param(_merge(POSTGRES, MTLS), id="postgres-mtls"),
        pytest.param(_merge(POSTGRES, {"migrations": {"mode": "startup"}}), id="startup"),
        pytest.param(
            {"networkPolicy": {"enabled": False}, "podDisruptionBudget": {"enabled": False}},
            id="no-policy",
        ),
    ],
)
def test_manifests_validate(values: dict[str, Any], kube_version: str) -> None:
    failures = schema_failures(render(values), kube_version)
    assert not failures, "\n".join(failures)


# --- NetworkPolicy ----------------------------------------------------------------------------


def test_network_policy_isolates_the_pods_by_default() -> None:
    manifests = scenario("default")
    policy = one(manifests, "NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert _selects(policy["podSelector"], _pod_labels(manifests))
    # Ingress: only the named gRPC and metrics ports (plus the release's test pods).
    ports = [{p["port"] for p in rule["ports"]} for rule in policy["ingress"]]
    assert ports == [{"grpc"}, {"metrics"}, {"grpc", "metrics"}]
    assert policy["ingress"][0]["from"] == [{"podSelector": {}}]  # this namespace only
    tests_from = policy["ingress"][2]["from"][0]["podSelector"]["matchLabels"]
    assert tests_from["app.kubernetes.io/component"] == "test"
    # Egress with SQLite: DNS and nothing else.
    (dns,) = policy["egress"]
    assert {(p["port"], p["protocol"]) for p in dns["ports"]} == {(53, "UDP"), (53, "TCP")}


def test_network_policy_opens_the_database_and_the_bucket_when_used() -> None:
    manifests = scenario(SHARED)
    policy = one(manifests, "NetworkPolicy")["spec"]
    egress_ports = [sorted(p["port"] for p in rule["ports"]) for rule in policy["egress"]]
    assert egress_ports == [[53, 53], [5432], [443]]
    # The migration and training Jobs are covered too (they reach the database and bucket).
    for kind_manifest in by_kind(manifests, "Job"):
        labels = kind_manifest["spec"]["template"]["metadata"]["labels"]
        assert _selects(policy["podSelector"], labels), labels
    # The health-only plaintext port is not opened to anyone.
    opened = {p["port"] for rule in policy["ingress"] for p in rule["ports"]}
    assert "health" not in opened and 50052 not in opened


def test_network_policy_peers_are_configurable() -> None:
    monitoring = {"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}
    gateway = {"namespaceSelector": {"matchLabels": {"name": "gateway"}}}
    otlp = {"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}], "ports": [{"port": 4317}]}
    values = {
        "networkPolicy": {
            "ingress": {"grpcFrom": [gateway], "metricsFrom": [monitoring]},
            "egress": {"database": {"to": [{"ipBlock": {"cidr": "10.1.0.0/16"}}]}, "extra": [otlp]},
        },
        "tests": {"enabled": False},
        **POSTGRES,
    }
    policy = one(render(values), "NetworkPolicy")["spec"]
    assert [rule["from"] for rule in policy["ingress"]] == [[gateway], [monitoring]]
    assert policy["egress"][1]["to"] == [{"ipBlock": {"cidr": "10.1.0.0/16"}}]
    assert policy["egress"][-1] == otlp


def test_the_test_pods_are_outside_the_policy_and_the_service() -> None:
    manifests = scenario("default")
    policy = one(manifests, "NetworkPolicy")["spec"]
    service_selector = one(manifests, "Service")["spec"]["selector"]
    for pod in by_kind(manifests, "Pod"):
        labels = pod["metadata"]["labels"]
        assert not _selects(policy["podSelector"], labels)
        assert not service_selector.items() <= labels.items()


# --- PodDisruptionBudget ----------------------------------------------------------------------


def test_pdb_selects_the_server_pods_and_never_blocks_a_single_replica() -> None:
    manifests = scenario("default")
    pdb = one(manifests, "PodDisruptionBudget")["spec"]
    assert pdb == {
        "selector": {"matchLabels": one(manifests, "Service")["spec"]["selector"]},
        "maxUnavailable": 1,
    }
    assert _selects(pdb["selector"], _pod_labels(manifests))
    # Training Job pods are not counted as servers.
    job_labels = one(scenario("training-job"), "Job")["spec"]["template"]["metadata"]["labels"]
    assert not _selects(pdb["selector"], job_labels)
    assert one(scenario(SHARED), "PodDisruptionBudget")["spec"]["minAvailable"] == 2


def test_pdb_needs_exactly_one_bound() -> None:
    with pytest.raises(helm.HelmRenderError, match="only one"):
        render({"podDisruptionBudget": {"minAvailable": 1}})
    with pytest.raises(helm.HelmRenderError, match="set one"):
        render({"podDisruptionBudget": {"maxUnavailable": ""}})


# --- Ingress and Gateway API ------------------------------------------------------------------


def test_no_ingress_or_route_by_default() -> None:
    assert not by_kind(scenario("default"), "Ingress")
    assert not by_kind(scenario("default"), "GRPCRoute")


def test_ingress_routes_grpc_to_the_service_port() -> None:
    manifests = scenario(SHARED)
    ingress = one(manifests, "Ingress")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    backend_protocol = ingress["metadata"]["annotations"]
    assert backend_protocol["nginx.ingress.kubernetes.io/backend-protocol"] == "GRPCS"
    (rule,) = ingress["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    assert path["backend"]["service"] == {
        "name": one(manifests, "Service")["metadata"]["name"],
        "port": {"name": "grpc"},
    }
    assert ingress["spec"]["tls"] == [
        {"secretName": "privsynth-ingress", "hosts": ["privsynth.example.com"]}
    ]


def test_grpc_route_attaches_to_the_gateway() -> None:
    manifests = scenario(SHARED)
    route = one(manifests, "GRPCRoute")
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    spec = route["spec"]
    assert spec["parentRefs"] == [{"name": "gateway", "namespace": "infra", "sectionName": "grpc"}]
    assert spec["hostnames"] == ["privsynth.example.com"]
    service = one(manifests, "Service")
    grpc_port = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "grpc")
    assert spec["rules"] == [
        {"backendRefs": [{"name": service["metadata"]["name"], "port": grpc_port}]}
    ]
    with pytest.raises(helm.HelmRenderError, match="parentRefs"):
        render({"grpcRoute": {"enabled": True}})


# --- TLS and mutual TLS -----------------------------------------------------------------------


def test_mtls_is_wired_from_secrets() -> None:
    manifests = render(_merge(POSTGRES, MTLS))
    main = container(manifests)
    assert env_value(manifests, "PRIVSYNTH_TLS_CERT_FILE")["value"] == "/etc/privsynth/tls/tls.crt"
    assert env_value(manifests, "PRIVSYNTH_TLS_KEY_FILE")["value"] == "/etc/privsynth/tls/tls.key"
    ca = env_value(manifests, "PRIVSYNTH_TLS_CLIENT_CA_FILE")["value"]
    assert ca == "/etc/privsynth/client-ca/ca.crt"
    volumes = {v["name"]: v for v in pod_spec(manifests)["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == "privsynth-tls"
    assert {i["path"] for i in volumes["tls"]["secret"]["items"]} == {"tls.crt", "tls.key"}
    assert volumes["client-ca"]["secret"]["secretName"] == "privsynth-client-ca"
    mounts = {m["mountPath"]: m for m in main["volumeMounts"]}
    assert mounts["/etc/privsynth/tls"]["readOnly"] is True
    # No key material in the ConfigMap; the probes use the plaintext health-only port.
    data = one(manifests, "ConfigMap")["data"]
    assert data["PRIVSYNTH_HEALTH_PORT"] == "50052"
    assert not [k for k in data if k.startswith("PRIVSYNTH_TLS")]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert main[probe]["grpc"]["port"] == 50052
    assert {p["name"]: p["containerPort"] for p in main["ports"]}["health"] == 50052


def test_without_tls_the_probes_use_the_grpc_port_and_no_health_port() -> None:
    manifests = scenario("default")
    assert "PRIVSYNTH_HEALTH_PORT" not in one(manifests, "ConfigMap")["data"]
    assert "health" not in {p["name"] for p in container(manifests)["ports"]}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"tls": {"enabled": True}}, "tls.existingSecret"),
        ({"tls": {"clientCA": {"existingSecret": "ca"}}}, "needs tls.enabled"),
        (
            {"tls": {"enabled": True, "existingSecret": "t", "clientCA": {"existingSecret": "t"}}},
            "tests.clientSecret",
        ),
        ({"tls": {"enabled": True, "existingSecret": "t", "healthPort": 9090}}, "healthPort"),
    ],
)
def test_tls_misconfigurations_fail_the_render(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmRenderError, match=message):
        render(values)


# --- migrations -------------------------------------------------------------------------------


def test_migrations_run_in_a_hook_job_before_the_pods_with_postgres() -> None:
    manifests = render(POSTGRES)
    (job,) = _hooks(manifests, "pre-upgrade")
    assert job["kind"] == "Job"
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    spec = job["spec"]["template"]["spec"]
    (migrate,) = spec["containers"]
    assert migrate["command"] == ["python", "-m", "privsynth.server.migrate"]
    # Hooks run before the release's ConfigMap and ServiceAccount exist: none is referenced.
    assert "envFrom" not in migrate
    assert "serviceAccountName" not in spec
    db = {e["name"]: e for e in migrate["env"]}["PRIVSYNTH_DATABASE_URL"]
    assert db["valueFrom"]["secretKeyRef"] == {"name": "privsynth-db", "key": "database-url"}
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert migrate["securityContext"]["readOnlyRootFilesystem"] is True
    # ... and the servers only check the schema.
    assert one(manifests, "ConfigMap")["data"]["PRIVSYNTH_MIGRATE_ON_START"] == "false"


def test_sqlite_migrates_at_start() -> None:
    manifests = scenario("default")
    assert not _hooks(manifests, "pre-upgrade")
    assert "PRIVSYNTH_MIGRATE_ON_START" not in one(manifests, "ConfigMap")["data"]
    startup = render(_merge(POSTGRES, {"migrations": {"mode": "startup"}}))
    assert not _hooks(startup, "pre-upgrade")
    with pytest.raises(helm.HelmRenderError, match="external database"):
        render({"migrations": {"mode": "job"}})


def test_plain_database_url_and_extra_env_reach_the_hook() -> None:
    url = "postgresql://db.internal:5432/privsynth"
    password = {"name": "PGPASSWORD", "valueFrom": {"secretKeyRef": {"name": "pg", "key": "pw"}}}
    values = {"config": {"databaseUrl": url}, "extraEnv": [password]}
    (job,) = _hooks(render(values), "pre-install")
    (migrate,) = job["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in migrate["env"]}
    assert env["PRIVSYNTH_DATABASE_URL"]["value"] == url
    assert env["PGPASSWORD"] == password


# --- shared artifacts in a bucket -------------------------------------------------------------


def test_object_store_is_wired_with_credentials_from_a_secret() -> None:
    manifests = scenario(SHARED)
    data = one(manifests, "ConfigMap")["data"]
    assert data["PRIVSYNTH_ARTIFACT_STORE_URL"] == "s3://privsynth-artifacts/prod"
    assert json.loads(data["PRIVSYNTH_ARTIFACT_STORE_OPTIONS"]) == {
        "endpoint_url": "http://minio.storage.svc:9000",
        "client_kwargs": {"region_name": "eu-west-1"},
    }
    assert not [v for v in data.values() if "secret" in v.lower()]
    training = [j for j in by_kind(manifests, "Job") if not _hooks([j], "pre-install")]
    for pod in [pod_spec(manifests), *(j["spec"]["template"]["spec"] for j in training)]:
        env = {e["name"]: e for e in pod["containers"][0]["env"]}
        for name, key in (
            ("AWS_ACCESS_KEY_ID", "access-key-id"),
            ("AWS_SECRET_ACCESS_KEY", "secret-access-key"),
        ):
            assert env[name]["valueFrom"]["secretKeyRef"] == {"name": "privsynth-s3", "key": key}
    # Three replicas, no shared volume: each pod's data dir is its own emptyDir.
    assert not by_kind(manifests, "PersistentVolumeClaim")
    deployment = one(manifests, "Deployment")
    assert deployment["spec"]["replicas"] == 3
    data_volume = {v["name"]: v for v in pod_spec(manifests)["volumes"]}["data"]
    assert "emptyDir" in data_volume


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"objectStore": {"enabled": True}}, "objectStore.url"),
        (
            _merge(POSTGRES, BUCKET, {"replicaCount": 2}),
            "ReadWriteOnce",  # the bucket shares artifacts; the RWO volume cannot be shared
        ),
        (
            _merge(POSTGRES, BUCKET, {"replicaCount": 2, "persistence": {"enabled": False}}),
            "userIdKey",
        ),
    ],
)
def test_object_store_guards(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmRenderError, match=message):
        render(values)


# --- helm test --------------------------------------------------------------------------------


def test_helm_test_pods_check_health_and_metrics_through_the_service() -> None:
    manifests = scenario("default")
    tests = _hooks(manifests, "test")
    assert sorted(t["metadata"]["name"] for t in tests) == [
        f"{RELEASE}-test-health",
        f"{RELEASE}-test-metrics",
    ]
    env = {
        t["metadata"]["name"]: {e["name"]: e["value"] for e in t["spec"]["containers"][0]["env"]}
        for t in tests
    }
    assert env[f"{RELEASE}-test-health"]["TARGET"] == f"{RELEASE}.{NAMESPACE}.svc:50051"
    assert env[f"{RELEASE}-test-health"]["TLS"] == "false"
    assert env[f"{RELEASE}-test-metrics"]["URL"] == f"http://{RELEASE}.{NAMESPACE}.svc:9090/metrics"
    for test in tests:
        assert test["spec"]["restartPolicy"] == "Never"
        assert test["spec"]["containers"][0]["securityContext"]["runAsNonRoot"] is True
    assert not _hooks(render({"tests": {"enabled": False}}), "test")


def test_helm_test_uses_a_client_certificate_under_mtls() -> None:
    manifests = render(_merge(POSTGRES, MTLS))
    health = next(t for t in _hooks(manifests, "test") if t["metadata"]["name"].endswith("health"))
    env = {e["name"]: e["value"] for e in health["spec"]["containers"][0]["env"]}
    assert env["TLS"] == "true"
    assert env["SERVER_NAME"] == f"{RELEASE}.{NAMESPACE}.svc"
    volumes = {v["name"]: v["secret"]["secretName"] for v in health["spec"]["volumes"]}
    assert volumes == {"server-ca": "privsynth-test-client", "client": "privsynth-test-client"}


def test_helm_test_script_is_valid_python() -> None:
    """The inline scripts compile (a syntax error would only show in the cluster)."""
    for test in _hooks(scenario("default"), "test"):
        command = test["spec"]["containers"][0]["command"]
        assert command[:2] == ["python", "-c"]
        compile(command[2], test["metadata"]["name"], "exec")


def test_notes_mention_helm_test_and_tls() -> None:
    notes = render_raw(_merge(POSTGRES, MTLS))[f"{RELEASE}/templates/NOTES.txt"]
    assert f"helm test {RELEASE}" in notes
    assert "-cert client.crt" in notes
