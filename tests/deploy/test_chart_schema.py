"""values.schema.json is strict: every value described, unknown keys refused at every level.

Helm validates the merged values against the schema on install, upgrade, template and lint, so
a typo fails the command instead of being ignored. The Kubernetes types passed through (security
contexts, resources, affinity, NetworkPolicy peers, ...) are copied from kubernetes-validate's
strict schemas by ``helm/update_schema_definitions.py``; a test keeps the copy current.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from test_chart import CHART_DIR, REPO_ROOT, container, helm, one, render

SCHEMA_FILE = CHART_DIR / "values.schema.json"


@functools.cache
def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA_FILE.read_text())
    return schema


def _validate(values: dict[str, Any]) -> None:
    with helm.Chart.load(CHART_DIR) as chart:
        chart.validate_schema(values)


def _object_nodes(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every sub-schema that describes an object, with its path in the schema."""
    if isinstance(node, dict):
        types = node.get("type")
        if types == "object" or (isinstance(types, list) and "object" in types):
            yield path, node
        for key, value in node.items():
            yield from _object_nodes(value, f"{path}/{key}")
    elif isinstance(node, list):
        for n, value in enumerate(node):
            yield from _object_nodes(value, f"{path}/{n}")


def _own(node: Any) -> Any:
    """``node``, or the chart's own definition it refers to (Kubernetes types stay refs)."""
    ref = node.get("$ref", "") if isinstance(node, dict) else ""
    if ref.startswith("#/definitions/") and not ref.startswith("#/definitions/io.k8s."):
        return _schema()["definitions"][ref.removeprefix("#/definitions/")]
    return node


def _chart_properties(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, Any]]:
    """The chart's own values (not the copied Kubernetes types), with their paths."""
    for name, sub in node.get("properties", {}).items():
        yield f"{path}.{name}".lstrip("."), sub
        if isinstance(sub, dict):
            yield from _chart_properties(_own(sub), f"{path}.{name}")
            items = _own(sub.get("items"))
            if isinstance(items, dict):
                yield from _chart_properties(items, f"{path}.{name}[]")


def _value_paths(values: Any, path: str = "") -> Iterator[str]:
    """Paths of every key in values.yaml (maps and lists of maps included)."""
    if isinstance(values, dict):
        for key, value in values.items():
            yield f"{path}.{key}".lstrip(".")
            yield from _value_paths(value, f"{path}.{key}")


# --- the schema itself ------------------------------------------------------------------------


def test_every_object_level_decides_on_unknown_keys() -> None:
    """No object schema leaves additionalProperties unset (which would admit any typo).

    It is ``false`` almost everywhere; maps whose keys are the operator's (labels,
    annotations, config.extra, the object store's backend options) declare what their values
    may be.
    """
    undecided = [
        path for path, node in _object_nodes(_schema()) if "additionalProperties" not in node
    ]
    assert undecided == [], undecided
    open_maps = sorted(
        path
        for path, node in _object_nodes(_schema())
        if node["additionalProperties"] is not False and "properties" in node
    )
    assert open_maps == [], f"objects with fixed keys must refuse others: {open_maps}"


def test_every_chart_value_is_described() -> None:
    schema = _schema()
    roots = [("", schema)] + [
        (f"definitions.{name}", node)
        for name, node in schema["definitions"].items()
        if not name.startswith("io.k8s.")
    ]
    missing = [
        f"{root}:{path}"
        for root, node in roots
        for path, sub in _chart_properties(node)
        if not (isinstance(sub, dict) and sub.get("description"))
    ]
    assert missing == [], missing


def test_values_yaml_has_no_key_the_schema_does_not_know() -> None:
    """Every key of the shipped values.yaml is a described property (and they validate)."""
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    described = {path for path, _ in _chart_properties(_schema())}
    free_form = ("config.extra.", "objectStore.options.")
    unknown = [
        p
        for p in _value_paths(values)
        if p not in described
        and not p.startswith(free_form)
        # values of Kubernetes types (resources.limits.cpu ...) are checked by their definitions
        and p.split(".")[0] in {path.split(".")[0] for path in described}
        and not any(p.startswith(f"{d}.") for d in described if _is_k8s(d))
        and not any(p.startswith(f"{d}.") for d in described if _is_map(d))
    ]
    assert unknown == [], unknown
    _validate(values)


def _node(path: str) -> dict[str, Any]:
    return dict(_chart_properties(_schema()))[path]  # type: ignore[no-any-return]


def _is_k8s(path: str) -> bool:
    node = _node(path)
    refs = [node.get("$ref", "")] + [n.get("$ref", "") for n in node.get("allOf", [])]
    return any(r.startswith("#/definitions/io.k8s.") for r in refs)


def _is_map(path: str) -> bool:
    node = _node(path)
    return "properties" not in node and node.get("additionalProperties") not in (None, False)


def test_copied_kubernetes_definitions_are_current() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "helm" / "update_schema_definitions.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


# --- what it accepts and refuses ------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "where"),
    [
        ({"replicas": 3}, "'replicas' not allowed"),
        ({"persistence": {"sise": "1Gi"}}, "'sise' not allowed"),
        ({"trainingJob": {"epsilon": "abc"}}, "'epsilon' not allowed"),
        ({"trainingJob": {"nprocPerNode": "two"}}, "/trainingJob/nprocPerNode"),
        ({"image": {"tag": 1.1}}, "/image/tag"),  # what YAML makes of an unquoted 1.10
        ({"securityContext": {"runAsNonroot": True}}, "'runAsNonroot' not allowed"),
        ({"resources": {"limit": {"cpu": "1"}}}, "'limit' not allowed"),
        ({"affinity": {"podAntiAffinty": {}}}, "'podAntiAffinty' not allowed"),
        ({"networkPolicy": {"ingress": {"grpcFrom": [{"podSelectr": {}}]}}}, "'podSelectr'"),
        ({"tls": {"enable": True}}, "'enable' not allowed"),
        ({"objectStore": {"url": "bucket/without/scheme"}}, "/objectStore/url"),
        ({"strategy": {"type": "Rolling"}}, "/strategy/type"),
        ({"migrations": {"mode": "sometimes"}}, "/migrations/mode"),
        ({"podDisruptionBudget": {"minAvailable": "half"}}, "/podDisruptionBudget/minAvailable"),
        ({"config": {"extra": {"LOG_LEVEL": "x"}}}, "PRIVSYNTH_"),
        ({"serviceMonitor": {"relabelings": [{"acton": "drop"}]}}, "'acton' not allowed"),
    ],
)
def test_typos_and_wrong_types_are_refused(values: dict[str, Any], where: str) -> None:
    with pytest.raises(helm.HelmValuesError, match=where):
        _validate(values)


@pytest.mark.parametrize(
    "values",
    [
        {"config": {"trainingWorkers": 0}},  # the documented API-only pod
        {"image": {"tag": "1.10"}},
        {"resources": {"limits": {"cpu": 1, "memory": "1Gi"}, "requests": {"cpu": "500m"}}},
        {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}}},
        {"podDisruptionBudget": {"maxUnavailable": "", "minAvailable": "50%"}},
        {"objectStore": {"options": {"s3_additional_kwargs": {"ServerSideEncryption": "aws:kms"}}}},
        {"serviceMonitor": {"relabelings": [{"action": "drop", "sourceLabels": ["a"]}]}},
    ],
)
def test_valid_values_are_accepted(values: dict[str, Any]) -> None:
    _validate(values)


def test_api_only_pod_renders_no_workers() -> None:
    data = one(render({"config": {"trainingWorkers": 0}}), "ConfigMap")["data"]
    assert data["PRIVSYNTH_TRAINING_WORKERS"] == "0"


def test_image_tag_stays_a_string() -> None:
    """A version like 1.10 reaches the pod as written, never as the float 1.1."""
    assert container(render({"image": {"tag": "1.10"}}))["image"] == "privsynth:1.10"
    digest = "sha256:" + "ab" * 32
    assert container(render({"image": {"tag": "1.10", "digest": digest}}))["image"] == (
        f"privsynth@{digest}"
    )
