"""Offline tests for the privsynth Helm chart.

The chart is linted and rendered with helm-python-sdk (Helm's Go SDK through a
bundled shared library, no helm binary or cluster needed) and every rendered
manifest is validated against the bundled Kubernetes JSON schemas of
kubernetes-validate in strict mode.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

helm = pytest.importorskip(
    "helm_python", reason="helm-python-sdk is not installed (pip install helm-python-sdk)"
)
kv = pytest.importorskip(
    "kubernetes_validate",
    reason="kubernetes-validate is not installed (pip install kubernetes-validate)",
)

Manifest = dict[str, Any]

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "helm" / "privsynth"
RELEASE = "privsynth"
NAMESPACE = "privsynth-test"
DATA_DIR = "/var/lib/privsynth"
GRPC_PORT = 50051
METRICS_PORT = 9090

# Oldest version allowed by Chart.yaml's kubeVersion and the newest bundled schema.
KUBE_VERSIONS = ("1.27.0", kv.latest_version())

# CRD kinds kubernetes-validate ships no schema for: skipped by name, nothing else.
KINDS_WITHOUT_SCHEMA = frozenset(
    {
        ("monitoring.coreos.com/v1", "ServiceMonitor"),
        ("gateway.networking.k8s.io/v1", "GRPCRoute"),
    }
)

EXISTING_CLAIM = "privsynth-data-existing"

SCENARIOS: dict[str, dict[str, Any]] = {
    "default": {},
    "servicemonitor-existing-claim": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
        "persistence": {"existingClaim": EXISTING_CLAIM},
    },
    "postgres-rwx-2-replicas": {
        "replicaCount": 2,
        "strategy": {"type": "RollingUpdate"},
        "database": {"existingSecret": "privsynth-db"},
        "userIdKey": {"existingSecret": "privsynth-keys"},
        "auth": {"existingSecret": "privsynth-auth"},
        "persistence": {"accessModes": ["ReadWriteMany"], "storageClass": "nfs"},
    },
    "training-job": {"trainingJob": {"enabled": True, "nprocPerNode": 2, "job": "jobs/abc"}},
    # Several replicas without a shared volume: PostgreSQL, artifacts in a bucket, mutual TLS,
    # gRPC exposed through both an Ingress and a Gateway API GRPCRoute.
    "object-store-mtls-3-replicas": {
        "replicaCount": 3,
        "strategy": {"type": "RollingUpdate"},
        "database": {"existingSecret": "privsynth-db"},
        "userIdKey": {"existingSecret": "privsynth-keys"},
        "persistence": {"enabled": False},
        "objectStore": {
            "enabled": True,
            "url": "s3://privsynth-artifacts/prod",
            "endpoint": "http://minio.storage.svc:9000",
            "region": "eu-west-1",
            "credentials": {"existingSecret": "privsynth-s3"},
        },
        "tls": {
            "enabled": True,
            "existingSecret": "privsynth-tls",
            "clientCA": {"existingSecret": "privsynth-tls"},
        },
        "tests": {"clientSecret": "privsynth-test-client"},
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "annotations": {"nginx.ingress.kubernetes.io/backend-protocol": "GRPCS"},
            "tls": [{"secretName": "privsynth-ingress", "hosts": ["privsynth.example.com"]}],
        },
        "grpcRoute": {
            "enabled": True,
            "parentRefs": [{"name": "gateway", "namespace": "infra", "sectionName": "grpc"}],
            "hostnames": ["privsynth.example.com"],
        },
        "podDisruptionBudget": {"maxUnavailable": "", "minAvailable": 2},
        "trainingJob": {"enabled": True, "job": "jobs/abc"},
    },
    "ephemeral-no-sa": {
        "persistence": {"enabled": False},
        "serviceAccount": {"create": False},
        "probes": {"liveness": {"enabled": False}},
    },
    # Training and sampling on a GPU node pool (test_chart_gpu.py checks what it renders).
    "gpu": {
        "gpu": {
            "enabled": True,
            "count": 2,
            "nodeSelector": {"nvidia.com/gpu.present": "true"},
        },
        "nodeSelector": {"kubernetes.io/arch": "amd64"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ml"}],
    },
}

EXPECTED_DEFAULT_CONFIG = {
    "PRIVSYNTH_DATA_DIR": DATA_DIR,
    "PRIVSYNTH_HOST": "0.0.0.0",
    "PRIVSYNTH_GRPC_PORT": str(GRPC_PORT),
    "PRIVSYNTH_METRICS_PORT": str(METRICS_PORT),
    "PRIVSYNTH_LOG_LEVEL": "INFO",
    "PRIVSYNTH_SHUTDOWN_GRACE_SECONDS": "10",
    "PRIVSYNTH_TRAINING_WORKERS": "1",
    "PRIVSYNTH_JOB_LEASE_S": "60",
    "PRIVSYNTH_MAX_QUEUED_JOBS_PER_TENANT": "8",
    "PRIVSYNTH_MAX_DATASETS_PER_TENANT": "1000",
    "PRIVSYNTH_MAX_STORED_BYTES_PER_TENANT": "4294967296",
    "PRIVSYNTH_MAX_CREATIONS_PER_TENANT_PER_HOUR": "200",
    "PRIVSYNTH_MAX_RUNNING_JOBS_PER_TENANT": "1",
    "PRIVSYNTH_MAX_JOB_SECONDS": "86400",
    "PRIVSYNTH_MAX_AUDIT_SECONDS": "1800",
    "PRIVSYNTH_TORCH_THREADS": "2",
    "PRIVSYNTH_CHECKPOINT_EVERY_S": "60",
    "PRIVSYNTH_MAX_PHYSICAL_BATCH_SIZE": "0",
    "PRIVSYNTH_DEFAULT_EPSILON_CAP": "10.0",
    "PRIVSYNTH_MAX_STREAMS": "0",
    "PRIVSYNTH_MAX_WATCH_STREAMS": "4",
    "PRIVSYNTH_STREAM_IDLE_SECONDS": "120",
    "PRIVSYNTH_MAX_GENERATE_CALLS": "2",
    "PRIVSYNTH_MAX_SCRUB_CALLS": "8",
    "PRIVSYNTH_HOLDOUT_FRACTION": "0.1",
    "PRIVSYNTH_EVALUATION_WORKERS": "1",
    "PRIVSYNTH_DEVICE": "auto",
}


def render_raw(values: dict[str, Any] | None = None) -> dict[str, str]:
    """Render the chart offline; returns template path -> rendered text."""
    with helm.Chart.load(CHART_DIR) as chart:
        chart.validate_schema(values)
        rendered: dict[str, str] = chart.render(
            values, name=RELEASE, namespace=NAMESPACE, is_install=True
        )
    return rendered


def render(values: dict[str, Any] | None = None) -> list[Manifest]:
    """Render the chart and parse every non-empty YAML document (NOTES.txt excluded)."""
    manifests: list[Manifest] = []
    for path, text in sorted(render_raw(values).items()):
        if path.endswith("NOTES.txt"):
            continue
        manifests.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return manifests


@functools.cache
def _render_scenario_json(name: str) -> str:
    return json.dumps(render(SCENARIOS[name]))


def scenario(name: str) -> list[Manifest]:
    """Cached render of a named scenario (a fresh copy per call)."""
    manifests: list[Manifest] = json.loads(_render_scenario_json(name))
    return manifests


def by_kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    """All manifests of one kind."""
    return [m for m in manifests if m["kind"] == kind]


def one(manifests: list[Manifest], kind: str) -> Manifest:
    """The single manifest of a kind."""
    found = by_kind(manifests, kind)
    assert len(found) == 1, f"expected exactly one {kind}, got {len(found)}"
    return found[0]


def pod_spec(manifests: list[Manifest]) -> dict[str, Any]:
    """The Deployment's pod spec."""
    spec: dict[str, Any] = one(manifests, "Deployment")["spec"]["template"]["spec"]
    return spec


def container(manifests: list[Manifest]) -> dict[str, Any]:
    """The privsynth container."""
    containers = pod_spec(manifests)["containers"]
    assert [c["name"] for c in containers] == ["privsynth"]
    main: dict[str, Any] = containers[0]
    return main


def volume_for_mount(manifests: list[Manifest], mount_path: str) -> dict[str, Any]:
    """The pod volume mounted at ``mount_path`` in the container."""
    mounts = {m["mountPath"]: m["name"] for m in container(manifests)["volumeMounts"]}
    assert mount_path in mounts, f"nothing mounted at {mount_path}: {mounts}"
    volumes = {v["name"]: v for v in pod_spec(manifests)["volumes"]}
    volume: dict[str, Any] = volumes[mounts[mount_path]]
    return volume


def env_value(manifests: list[Manifest], name: str) -> dict[str, Any]:
    """The container's explicit env entry called ``name``."""
    entries = {e["name"]: e for e in container(manifests).get("env", [])}
    assert name in entries, f"env {name} not set; have {sorted(entries)}"
    entry: dict[str, Any] = entries[name]
    return entry


# --- chart-level checks -------------------------------------------------------


def test_chart_metadata() -> None:
    """Chart.yaml is an apiVersion v2 application chart with an appVersion."""
    with helm.Chart.load(CHART_DIR) as chart:
        meta = chart.metadata
    assert meta["apiVersion"] == "v2"
    assert meta["name"] == "privsynth"
    assert meta.get("type", "application") == "application"
    assert meta["appVersion"]
    assert meta["version"]


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_lint_strict(name: str) -> None:
    """`helm lint --strict` reports no errors or warnings (info such as icon is fine)."""
    report = helm.lint(CHART_DIR, SCENARIOS[name] or None, strict=True, namespace=NAMESPACE)
    assert report["total_charts_linted"] == 1
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [], json.dumps(report, indent=2)
    assert problems == [], json.dumps(report, indent=2)


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_manifests_match_kubernetes_schema(name: str, kube_version: str) -> None:
    """Every rendered object validates (strict) against the Kubernetes schema."""
    manifests = scenario(name)
    assert manifests, "chart rendered nothing"
    failures = schema_failures(manifests, kube_version)
    assert not failures, "\n".join(failures)


def schema_failures(manifests: list[dict[str, Any]], kube_version: str) -> list[str]:
    """Why each manifest fails strict validation against ``kube_version``'s schema."""
    failures: list[str] = []
    for manifest in manifests:
        kind = manifest["kind"]
        if (manifest["apiVersion"], kind) in KINDS_WITHOUT_SCHEMA:
            continue
        try:
            kv.validate(manifest, kube_version, strict=True)
        except kv.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            failures.append(f"{kind}/{manifest['metadata']['name']}: {path}: {exc.message}")
        except kv.SchemaNotFoundError as exc:
            failures.append(f"{kind}: no schema ({exc.message})")
    return failures


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_common_labels_and_namespace(name: str) -> None:
    """Every object carries the standard labels and the release namespace."""
    for manifest in scenario(name):
        meta = manifest["metadata"]
        assert meta["namespace"] == NAMESPACE, manifest["kind"]
        assert meta["labels"]["app.kubernetes.io/name"] == "privsynth"
        assert meta["labels"]["app.kubernetes.io/instance"] == RELEASE
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "Helm"


def test_schema_rejects_unknown_config_key() -> None:
    """values.schema.json catches typos in config keys (more in test_chart_schema.py)."""
    with helm.Chart.load(CHART_DIR) as chart, pytest.raises(helm.HelmValuesError):
        chart.validate_schema({"config": {"logLevl": "DEBUG"}})


def test_notes_render() -> None:
    """NOTES.txt renders and points at the gRPC endpoint."""
    notes = render_raw()[f"{RELEASE}/templates/NOTES.txt"]
    assert f"{RELEASE}.{NAMESPACE}.svc:{GRPC_PORT}" in notes
    assert "grpc.health.v1.Health/Check" in notes


# --- default render -----------------------------------------------------------


def test_default_object_kinds() -> None:
    """Defaults render the core objects, the NetworkPolicy, the PDB and two test pods only."""
    kinds = sorted(m["kind"] for m in scenario("default"))
    assert kinds == sorted(
        [
            "ConfigMap",
            "Deployment",
            "NetworkPolicy",
            "PersistentVolumeClaim",
            "Pod",
            "Pod",
            "PodDisruptionBudget",
            "Service",
            "ServiceAccount",
        ]
    )


def test_single_replica_recreate() -> None:
    """SQLite on an RWO volume: one replica, Recreate strategy."""
    deployment = one(scenario("default"), "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}


def test_image_defaults_to_app_version() -> None:
    """The image tag defaults to the chart's appVersion."""
    with helm.Chart.load(CHART_DIR) as chart:
        app_version = chart.metadata["appVersion"]
    assert container(scenario("default"))["image"] == f"privsynth:{app_version}"


def test_pod_security() -> None:
    """Non-root uid 10001, read-only root FS, no privilege escalation, caps dropped."""
    manifests = scenario("default")
    pod_sc = pod_spec(manifests)["securityContext"]
    assert pod_sc["runAsNonRoot"] is True
    assert pod_sc["runAsUser"] == 10001
    assert pod_sc["fsGroup"] == 10001
    assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}

    sc = container(manifests)["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["runAsUser"] == 10001
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc.get("privileged", False) is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert "add" not in sc["capabilities"]
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod_spec(manifests)["automountServiceAccountToken"] is False


def test_probes_are_grpc_on_50051() -> None:
    """Startup, readiness and liveness use native gRPC health on 50051."""
    main = container(scenario("default"))
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert probe in main, f"{probe} missing"
        assert main[probe]["grpc"]["port"] == GRPC_PORT, probe
        assert not {"httpGet", "tcpSocket", "exec"} & main[probe].keys(), probe
    startup = main["startupProbe"]
    budget = startup["periodSeconds"] * startup["failureThreshold"]
    assert budget >= 120, f"startup probe allows only {budget}s"


def test_probe_port_follows_grpc_port() -> None:
    """Changing config.grpcPort moves the container port, probes and env together."""
    manifests = render({"config": {"grpcPort": 6000}})
    main = container(manifests)
    assert {p["name"]: p["containerPort"] for p in main["ports"]}["grpc"] == 6000
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert main[probe]["grpc"]["port"] == 6000
    assert one(manifests, "ConfigMap")["data"]["PRIVSYNTH_GRPC_PORT"] == "6000"


def test_env_from_configmap() -> None:
    """The container loads the PRIVSYNTH_* ConfigMap with envFrom."""
    manifests = scenario("default")
    configmap = one(manifests, "ConfigMap")
    assert configmap["data"] == EXPECTED_DEFAULT_CONFIG
    refs = [
        e["configMapRef"]["name"] for e in container(manifests)["envFrom"] if "configMapRef" in e
    ]
    assert refs == [configmap["metadata"]["name"]]


def test_config_values_map_to_env_vars() -> None:
    """config.* keys land in the ConfigMap under their PRIVSYNTH_* names."""
    values = {
        "config": {
            "logLevel": "debug",
            "databaseUrl": "postgresql://db.internal:5432/privsynth",
            "shutdownGraceSeconds": 20,
            "trainingWorkers": 3,
            "torchThreads": 1,
            "defaultEpsilonCap": 2.5,
            "maxGenerateCalls": 4,
            "maxScrubCalls": 8,
            "extra": {"PRIVSYNTH_FEATURE_X": True},
        },
        "terminationGracePeriodSeconds": 45,
    }
    manifests = render(values)
    data = one(manifests, "ConfigMap")["data"]
    assert data["PRIVSYNTH_LOG_LEVEL"] == "DEBUG"
    assert data["PRIVSYNTH_DATABASE_URL"] == "postgresql://db.internal:5432/privsynth"
    assert data["PRIVSYNTH_SHUTDOWN_GRACE_SECONDS"] == "20"
    assert data["PRIVSYNTH_TRAINING_WORKERS"] == "3"
    assert data["PRIVSYNTH_TORCH_THREADS"] == "1"
    assert data["PRIVSYNTH_DEFAULT_EPSILON_CAP"] == "2.5"
    assert data["PRIVSYNTH_MAX_GENERATE_CALLS"] == "4"
    assert data["PRIVSYNTH_MAX_SCRUB_CALLS"] == "8"
    assert data["PRIVSYNTH_FEATURE_X"] == "true"
    assert pod_spec(manifests)["terminationGracePeriodSeconds"] == 45


def test_config_change_rolls_pods() -> None:
    """The pod template's config checksum changes with the ConfigMap."""

    def checksum(values: dict[str, Any] | None) -> str:
        deployment = one(render(values), "Deployment")
        value: str = deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        return value

    assert checksum(None) != checksum({"config": {"logLevel": "DEBUG"}})


def test_grace_period_must_exceed_shutdown_grace() -> None:
    """Kubernetes must not SIGKILL before the app's graceful stop ends."""
    with pytest.raises(helm.HelmRenderError, match="terminationGracePeriodSeconds"):
        render({"config": {"shutdownGraceSeconds": 30}, "terminationGracePeriodSeconds": 30})
    assert pod_spec(scenario("default"))["terminationGracePeriodSeconds"] > 10


def test_data_dir_on_pvc() -> None:
    """The chart's PVC is mounted at the data dir and kept on uninstall."""
    manifests = scenario("default")
    pvc = one(manifests, "PersistentVolumeClaim")
    volume = volume_for_mount(manifests, DATA_DIR)
    assert volume["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert pvc["spec"]["resources"]["requests"]["storage"] == "10Gi"
    assert "storageClassName" not in pvc["spec"]
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_data_dir_override_moves_mount() -> None:
    """config.dataDir sets both PRIVSYNTH_DATA_DIR and the volume mount path."""
    manifests = render({"config": {"dataDir": "/data"}})
    assert one(manifests, "ConfigMap")["data"]["PRIVSYNTH_DATA_DIR"] == "/data"
    assert "persistentVolumeClaim" in volume_for_mount(manifests, "/data")


def test_writable_tmp_and_home() -> None:
    """/tmp is an emptyDir and HOME/caches point there (read-only root FS)."""
    manifests = scenario("default")
    assert volume_for_mount(manifests, "/tmp")["emptyDir"] == {"sizeLimit": "2Gi"}
    assert env_value(manifests, "HOME")["value"] == "/tmp"
    assert env_value(manifests, "XDG_CACHE_HOME")["value"].startswith("/tmp")
    names = {e["name"] for e in container(manifests)["env"]}
    assert not {"PRIVSYNTH_DATABASE_URL", "PRIVSYNTH_USER_ID_KEY"} & names


def test_resources() -> None:
    """CPU/memory requests and limits are set; torch threads fit the CPU limit."""
    manifests = scenario("default")
    resources = container(manifests)["resources"]
    assert resources["requests"] == {"cpu": "2", "memory": "4Gi"}
    assert resources["limits"] == {"cpu": "2", "memory": "8Gi"}
    threads = int(one(manifests, "ConfigMap")["data"]["PRIVSYNTH_TORCH_THREADS"])
    assert threads <= int(resources["limits"]["cpu"])


def test_service_ports() -> None:
    """Service exposes grpc 50051 and metrics 9090 onto named container ports."""
    manifests = scenario("default")
    service = one(manifests, "Service")
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert ports["grpc"]["port"] == GRPC_PORT
    assert ports["metrics"]["port"] == METRICS_PORT
    container_ports = {p["name"]: p["containerPort"] for p in container(manifests)["ports"]}
    assert container_ports == {"grpc": GRPC_PORT, "metrics": METRICS_PORT}
    assert {p["targetPort"] for p in ports.values()} == set(container_ports)

    pod_labels = one(manifests, "Deployment")["spec"]["template"]["metadata"]["labels"]
    selector = service["spec"]["selector"]
    assert selector.items() <= pod_labels.items()


def test_service_account() -> None:
    """The pod runs as the chart's ServiceAccount, or 'default' when not created."""
    default = scenario("default")
    assert (
        pod_spec(default)["serviceAccountName"]
        == one(default, "ServiceAccount")["metadata"]["name"]
    )
    ephemeral = scenario("ephemeral-no-sa")
    assert by_kind(ephemeral, "ServiceAccount") == []
    assert pod_spec(ephemeral)["serviceAccountName"] == "default"


# --- non-default scenarios ----------------------------------------------------


def test_servicemonitor_and_existing_claim() -> None:
    """ServiceMonitor scrapes the metrics port; an existing claim replaces the PVC."""
    manifests = scenario("servicemonitor-existing-claim")
    assert by_kind(manifests, "PersistentVolumeClaim") == []
    volume = volume_for_mount(manifests, DATA_DIR)
    assert volume["persistentVolumeClaim"]["claimName"] == EXISTING_CLAIM

    monitor = one(manifests, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "metrics"
    assert endpoint["path"] == "/metrics"
    service = one(manifests, "Service")
    assert "metrics" in {p["name"] for p in service["spec"]["ports"]}
    match_labels = monitor["spec"]["selector"]["matchLabels"]
    assert match_labels.items() <= service["metadata"]["labels"].items()


def test_persistence_disabled_uses_emptydir() -> None:
    """Without persistence the data dir is an emptyDir and no PVC is rendered."""
    manifests = scenario("ephemeral-no-sa")
    assert by_kind(manifests, "PersistentVolumeClaim") == []
    assert "emptyDir" in volume_for_mount(manifests, DATA_DIR)
    assert "livenessProbe" not in container(manifests)


def test_secrets_from_existing_secrets() -> None:
    """Database URL and user-id key come from Secrets, never from the ConfigMap."""
    manifests = scenario("postgres-rwx-2-replicas")
    assert "PRIVSYNTH_DATABASE_URL" not in one(manifests, "ConfigMap")["data"]
    ref = env_value(manifests, "PRIVSYNTH_DATABASE_URL")["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "privsynth-db", "key": "database-url"}
    key_ref = env_value(manifests, "PRIVSYNTH_USER_ID_KEY")["valueFrom"]["secretKeyRef"]
    assert key_ref == {"name": "privsynth-keys", "key": "user-id-key"}
    tokens = env_value(manifests, "PRIVSYNTH_AUTH_TOKENS_FILE")["value"]
    assert tokens == "/etc/privsynth/auth/tokens.yaml"
    deployment = one(manifests, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (auth,) = [v for v in pod["volumes"] if v["name"] == "auth"]
    assert auth["secret"]["secretName"] == "privsynth-auth"
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "auth")
    assert mount == {"name": "auth", "mountPath": "/etc/privsynth/auth", "readOnly": True}
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    pvc = one(manifests, "PersistentVolumeClaim")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert pvc["spec"]["storageClassName"] == "nfs"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"replicaCount": 2}, "PostgreSQL"),
        ({"replicaCount": 2, "database": {"existingSecret": "db"}}, "ReadWriteMany"),
    ],
)
def test_multi_replica_guards(values: dict[str, Any], message: str) -> None:
    """More than one replica is refused on SQLite or on a ReadWriteOnce volume."""
    with pytest.raises(helm.HelmRenderError, match=message):
        render(values)


def test_training_job_runs_torchrun_on_the_data_volume() -> None:
    assert not by_kind(scenario("default"), "Job")
    job = one(scenario("training-job"), "Job")
    spec = job["spec"]["template"]["spec"]
    (train,) = spec["containers"]
    assert train["command"] == ["torchrun"]
    assert "--nproc_per_node=2" in train["args"]
    assert "privsynth.server.jobs.distributed" in train["args"]
    assert "--job=jobs/abc" in train["args"]
    # The server's configuration: the same ConfigMap (data dir, database, checkpoints).
    assert train["envFrom"][0]["configMapRef"]["name"].endswith("-config")
    assert spec["restartPolicy"] == "Never"
    assert spec["securityContext"]["runAsNonRoot"] is True
    mounts = {m["mountPath"] for m in train["volumeMounts"]}
    assert DATA_DIR in mounts


def test_training_job_survives_preemption_by_resuming_its_checkpoint() -> None:
    job = one(scenario("training-job"), "Job")
    (train,) = job["spec"]["template"]["spec"]["containers"]
    # The ranks checkpoint as often as the server's jobs do (the same ConfigMap), and on
    # SIGTERM within the grace.
    assert train["envFrom"][0]["configMapRef"]["name"]
    assert job["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 60
    # An evicted or preempted pod is replaced (and resumes) without using up backoffLimit.
    (rule,) = job["spec"]["podFailurePolicy"]["rules"]
    disrupted = {"type": "DisruptionTarget", "status": "True"}
    assert rule == {"action": "Ignore", "onPodConditions": [disrupted]}
