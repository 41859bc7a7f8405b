"""GPU values of the chart: a GPU limit, GPU node selection and tolerations, PRIVSYNTH_DEVICE.

The scenario ``gpu`` of test_chart.py also goes through the strict lint and the Kubernetes
schema validation there; these tests check what it renders.
"""

from __future__ import annotations

from typing import Any

import pytest
from test_chart import CHART_DIR, KUBE_VERSIONS, container, helm, one, pod_spec, render, scenario
from test_chart import schema_failures as kube_schema_failures

NVIDIA_TAINT = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def test_default_asks_for_no_gpu() -> None:
    """Off by default: no GPU limit, no GPU node selection or toleration, device auto."""
    manifests = scenario("default")
    assert "nvidia.com/gpu" not in container(manifests)["resources"].get("limits", {})
    spec = pod_spec(manifests)
    assert "nodeSelector" not in spec
    assert "tolerations" not in spec
    assert one(manifests, "ConfigMap")["data"]["PRIVSYNTH_DEVICE"] == "auto"


def test_gpu_limit_node_selector_tolerations_and_device() -> None:
    """gpu.enabled: the GPU count as a limit beside CPU and memory, selectors and tolerations
    added to the pod's own, and auto rendered as cuda (a GPU pod without CUDA torch stops)."""
    manifests = scenario("gpu")
    resources = container(manifests)["resources"]
    assert resources["limits"] == {"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": 2}
    assert resources["requests"] == {"cpu": "2", "memory": "4Gi"}
    spec = pod_spec(manifests)
    assert spec["nodeSelector"] == {
        "kubernetes.io/arch": "amd64",
        "nvidia.com/gpu.present": "true",
    }
    assert spec["tolerations"] == [
        {"key": "dedicated", "operator": "Equal", "value": "ml"},
        NVIDIA_TAINT,
    ]
    assert one(manifests, "ConfigMap")["data"]["PRIVSYNTH_DEVICE"] == "cuda"


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_gpu_manifests_match_kubernetes_schema(kube_version: str) -> None:
    """The GPU limit, selector and tolerations are valid Kubernetes (strict schemas)."""
    assert kube_schema_failures(scenario("gpu"), kube_version) == []


def test_gpu_with_its_own_resource_name_and_device() -> None:
    """Another device plugin's resource, no default toleration, an explicit device index."""
    values: dict[str, Any] = {
        "gpu": {"enabled": True, "resourceName": "amd.com/gpu", "tolerations": []},
        "config": {"device": "cuda:0"},
    }
    manifests = render(values)
    assert container(manifests)["resources"]["limits"] == {
        "cpu": "2",
        "memory": "8Gi",
        "amd.com/gpu": 1,
    }
    assert "tolerations" not in pod_spec(manifests)
    assert one(manifests, "ConfigMap")["data"]["PRIVSYNTH_DEVICE"] == "cuda:0"


def test_explicit_cpu_device_is_kept_without_gpu() -> None:
    manifests = render({"config": {"device": "cpu"}})
    assert one(manifests, "ConfigMap")["data"]["PRIVSYNTH_DEVICE"] == "cpu"


def test_gpu_with_cpu_device_is_refused() -> None:
    """A GPU the server would never use is a mistake, caught at render time."""
    with pytest.raises(helm.HelmRenderError, match=r"config\.device=cpu"):
        render({"gpu": {"enabled": True}, "config": {"device": "cpu"}})


@pytest.mark.parametrize(
    "values",
    [
        {"config": {"device": "gpu"}},
        {"config": {"device": "cuda:x"}},
        {"gpu": {"enabled": True, "count": 0}},
        {"gpu": {"enabled": True, "cuont": 1}},
        {"gpu": {"tolerations": [{"key": "a", "operatr": "Exists"}]}},
    ],
)
def test_schema_refuses_bad_gpu_values(values: dict[str, Any]) -> None:
    with helm.Chart.load(CHART_DIR) as chart, pytest.raises(helm.HelmValuesError):
        chart.validate_schema(values)


def test_training_job_stays_on_the_cpu() -> None:
    """Distributed (torchrun) runs reduce over gloo on the CPU: no GPU asked for there."""
    manifests = render(
        {"gpu": {"enabled": True}, "trainingJob": {"enabled": True, "job": "jobs/a"}}
    )
    job = one(manifests, "Job")["spec"]["template"]["spec"]
    assert all(
        "nvidia.com/gpu" not in c.get("resources", {}).get("limits", {}) for c in job["containers"]
    )
