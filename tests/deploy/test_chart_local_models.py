"""The chart mounts operator-installed Hugging Face models (localModels) read-only.

Each ``<mountPath>/<name>`` becomes training preset ``hf:<name>``: the server reads
``PRIVSYNTH_MODEL_DIR``, which the distributed training Job reads from the same ConfigMap.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

pytest.importorskip("helm_python", reason="helm-python-sdk is not installed")
pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is not installed")

from test_chart import (
    CHART_DIR,
    DATA_DIR,
    KUBE_VERSIONS,
    NAMESPACE,
    RELEASE,
    Manifest,
    by_kind,
    container,
    helm,
    one,
    pod_spec,
    render,
    render_raw,
    schema_failures,
    volume_for_mount,
)

MODELS_CLAIM = "privsynth-models"
MOUNT_PATH = "/models"

ENABLED: dict[str, Any] = {
    "localModels": {"enabled": True, "existingClaim": MODELS_CLAIM},
    "trainingJob": {"enabled": True, "job": "jobs/abc"},
}


def _job_pod(manifests: list[Manifest]) -> dict[str, Any]:
    spec: dict[str, Any] = one(manifests, "Job")["spec"]["template"]["spec"]
    return spec


def _models_volumes(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        v
        for v in spec.get("volumes", [])
        if v.get("persistentVolumeClaim", {}).get("claimName") == MODELS_CLAIM
    ]


def test_default_render_has_no_model_dir() -> None:
    """Off by default: no PRIVSYNTH_MODEL_DIR, no models volume."""
    manifests = render({"trainingJob": {"enabled": True, "job": "jobs/abc"}})
    assert "PRIVSYNTH_MODEL_DIR" not in one(manifests, "ConfigMap")["data"]
    for spec in (pod_spec(manifests), _job_pod(manifests)):
        assert "models" not in {v["name"] for v in spec["volumes"]}
        mounts = {m["mountPath"] for c in spec["containers"] for m in c["volumeMounts"]}
        assert MOUNT_PATH not in mounts


def test_server_gets_model_dir_and_read_only_mount() -> None:
    """The ConfigMap names the mount path; the claim is mounted read-only there."""
    manifests = render(ENABLED)
    assert one(manifests, "ConfigMap")["data"]["PRIVSYNTH_MODEL_DIR"] == MOUNT_PATH
    volume = volume_for_mount(manifests, MOUNT_PATH)
    assert volume["persistentVolumeClaim"] == {"claimName": MODELS_CLAIM, "readOnly": True}
    (mount,) = [m for m in container(manifests)["volumeMounts"] if m["mountPath"] == MOUNT_PATH]
    assert mount["readOnly"] is True
    assert len(_models_volumes(pod_spec(manifests))) == 1
    # The data volume is untouched.
    assert "persistentVolumeClaim" in volume_for_mount(manifests, DATA_DIR)


def test_training_job_gets_model_dir_and_read_only_mount() -> None:
    """The distributed training Job mounts the same claim and reads the server's ConfigMap."""
    spec = _job_pod(render(ENABLED))
    (train,) = spec["containers"]
    assert train["envFrom"][0]["configMapRef"]["name"].endswith("-config")
    (mount,) = [m for m in train["volumeMounts"] if m["mountPath"] == MOUNT_PATH]
    assert mount["readOnly"] is True
    (volume,) = _models_volumes(spec)
    assert volume["name"] == mount["name"]
    assert volume["persistentVolumeClaim"]["readOnly"] is True


def test_mount_path_override() -> None:
    """mountPath moves the env var and both mounts together."""
    values = {**ENABLED, "localModels": {**ENABLED["localModels"], "mountPath": "/opt/hf"}}
    manifests = render(values)
    assert one(manifests, "ConfigMap")["data"]["PRIVSYNTH_MODEL_DIR"] == "/opt/hf"
    assert volume_for_mount(manifests, "/opt/hf")["persistentVolumeClaim"]["readOnly"] is True
    (train,) = _job_pod(manifests)["containers"]
    assert "/opt/hf" in {m["mountPath"] for m in train["volumeMounts"]}


def test_enabling_rolls_the_server_pod() -> None:
    """PRIVSYNTH_MODEL_DIR is in the ConfigMap, so the config checksum changes."""

    def checksum(values: dict[str, Any] | None) -> str:
        deployment = one(render(values), "Deployment")
        value: str = deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        return value

    assert checksum(None) != checksum({"localModels": ENABLED["localModels"]})


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_enabled_manifests_match_kubernetes_schema(kube_version: str) -> None:
    """Every object rendered with localModels on validates strictly."""
    manifests = render(ENABLED)
    assert by_kind(manifests, "Job")
    failures = schema_failures(manifests, kube_version)
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize(
    "values",
    [
        {"localModels": {"enabled": True}},
        {"localModels": {"enabled": True}, "trainingJob": {"enabled": True, "job": "jobs/abc"}},
    ],
)
def test_enabled_without_claim_fails(values: dict[str, Any]) -> None:
    """A missing claim is a render error that names the value to set."""
    with pytest.raises(helm.HelmRenderError, match=r"localModels\.existingClaim"):
        render(values)


@pytest.mark.parametrize("mount_path", [DATA_DIR, "/tmp"])
def test_mount_path_must_not_shadow_other_mounts(mount_path: str) -> None:
    """The models mount cannot reuse the data dir or /tmp (duplicate mount paths)."""
    values = {"localModels": {**ENABLED["localModels"], "mountPath": mount_path}}
    with pytest.raises(helm.HelmRenderError, match=r"localModels\.mountPath"):
        render(values)


@pytest.mark.parametrize(
    "local_models",
    [
        {"enabled": True, "existingClaim": MODELS_CLAIM, "mountPath": "models"},
        {"enabled": True, "existingClaim": MODELS_CLAIM, "claim": "typo"},
        {"enabled": "yes"},
    ],
)
def test_schema_rejects_bad_local_models(local_models: dict[str, Any]) -> None:
    """values.schema.json rejects relative paths, unknown keys and wrong types."""
    with helm.Chart.load(CHART_DIR) as chart, pytest.raises(helm.HelmValuesError):
        chart.validate_schema({"localModels": local_models})


def test_lint_strict_enabled() -> None:
    """`helm lint --strict` is clean with localModels (and the training Job) enabled."""
    report = helm.lint(CHART_DIR, ENABLED, strict=True, namespace=NAMESPACE)
    assert report["total_charts_linted"] == 1
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [], json.dumps(report, indent=2)
    assert problems == [], json.dumps(report, indent=2)


def test_notes_mention_local_models() -> None:
    """NOTES.txt tells the operator where the models are and how presets are named."""
    notes = render_raw(ENABLED)[f"{RELEASE}/templates/NOTES.txt"]
    assert MODELS_CLAIM in notes
    assert "hf:<name>" in notes
    assert "hf:<name>" not in render_raw()[f"{RELEASE}/templates/NOTES.txt"]
