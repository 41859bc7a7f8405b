"""The chart's monitoring: a PrometheusRule with privsynth's alerts and a Grafana dashboard.

Rendered offline with helm-python-sdk. The dashboard's ConfigMap is validated strictly against
the Kubernetes schema; PrometheusRule is a prometheus-operator CRD that kubernetes-validate has
no schema for, so its shape is checked here against the CRD's own structure (groups, rules,
``expr``, durations in the CRD's pattern, string labels). Every metric an alert or a dashboard
panel names is checked against what the server's registry exports, with its labels: an
expression over a metric that does not exist never fires and never draws.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from job_runtime import job_runtime
from privsynth.server.metrics import Metrics
from prometheus_client.metrics import MetricWrapperBase
from test_chart import (
    CHART_DIR,
    KUBE_VERSIONS,
    NAMESPACE,
    RELEASE,
    Manifest,
    by_kind,
    helm,
    one,
    render,
    schema_failures,
)

MONITORING: dict[str, Any] = {
    "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
    "monitoring": {
        "prometheusRule": {
            "enabled": True,
            "labels": {"release": "prometheus"},
            "alertLabels": {"team": "data-platform"},
        },
        "grafanaDashboard": {"enabled": True, "annotations": {"grafana_folder": "privsynth"}},
    },
}
ALERTS = {
    "PrivsynthServerDown",
    "PrivsynthServerNotReady",
    "PrivsynthTrainingJobsFailing",
    "PrivsynthBudgetRefusalsSpiking",
    "PrivsynthJobQueueStuck",
}
# Labels Prometheus itself puts on every scraped series (prometheus-operator's target labels).
TARGET_LABELS = frozenset(
    {"job", "namespace", "instance", "pod", "service", "endpoint", "container"}
)
# Series Prometheus makes per target, not the server.
PROMETHEUS_SERIES = {"up": frozenset()}

# prometheus-operator's PrometheusRule CRD (monitoring.coreos.com/v1), the parts a chart sets.
_DURATION = (
    r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
)
_STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}
PROMETHEUS_RULE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PrometheusRule"},
        "metadata": {
            "type": "object",
            "required": ["name", "namespace"],
            "properties": {
                "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
                "namespace": {"type": "string"},
                "labels": _STRINGS,
                "annotations": _STRINGS,
            },
        },
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "groups": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["name", "rules"],
                        "additionalProperties": False,
                        "properties": {
                            "name": {"type": "string", "minLength": 1},
                            "interval": {"type": "string", "pattern": _DURATION},
                            "rules": {
                                "type": "array",
                                "minItems": 1,
                                "items": {
                                    "type": "object",
                                    "required": ["expr"],
                                    "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
                                    "additionalProperties": False,
                                    "properties": {
                                        "alert": {"type": "string", "minLength": 1},
                                        "record": {"type": "string", "minLength": 1},
                                        "expr": {"type": ["string", "integer"]},
                                        "for": {"type": "string", "pattern": _DURATION},
                                        "keep_firing_for": {"type": "string", "pattern": _DURATION},
                                        "labels": _STRINGS,
                                        "annotations": _STRINGS,
                                    },
                                },
                            },
                        },
                    },
                }
            },
        },
    },
}


def _rules(manifests: list[Manifest]) -> list[dict[str, Any]]:
    rule = one(manifests, "PrometheusRule")
    return [r for group in rule["spec"]["groups"] for r in group["rules"]]


def _dashboard(manifests: list[Manifest]) -> dict[str, Any]:
    (config_map,) = [m for m in by_kind(manifests, "ConfigMap") if "privsynth.json" in m["data"]]
    dashboard: dict[str, Any] = json.loads(config_map["data"]["privsynth.json"])
    return dashboard


def _panel_exprs(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


# --- PromQL, as far as metric and label names go ------------------------------------------------

_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "bool", "offset"}
_CLAUSE = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)?\s*\{([^}]*)\}")
_MATCHER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)")
_NAME = re.compile(r"(?<![\w$.:])([A-Za-z_:][A-Za-z0-9_:]*)(?![\w:]|\s*\()")


def promql_names(expr: str) -> tuple[set[str], set[str]]:
    """The metric names an expression reads and the label names it matches or groups by."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals (values, $variables)
    text = re.sub(r"\[[^\]]*\]", "", text)  # range and subquery durations
    assert text.count("(") == text.count(")") and text.count("{") == text.count("}"), expr
    labels: set[str] = set()
    for _, names in _CLAUSE.findall(text):
        labels |= {n.strip() for n in names.split(",") if n.strip()}
    text = _CLAUSE.sub(" ", text)
    metrics: set[str] = set()
    for metric, matchers in _SELECTOR.findall(text):
        if metric:
            metrics.add(metric)
        labels |= {name for name, _ in _MATCHER.findall(matchers)}
    text = _SELECTOR.sub(" ", text)
    text = re.sub(r"\b\d+(\.\d+)?\b", " ", text)
    metrics |= {n for n in _NAME.findall(text) if n not in _KEYWORDS}
    return metrics, labels


def test_promql_names_reads_what_it_should() -> None:
    metrics, labels = promql_names(
        'histogram_quantile(0.95, sum by (le, kind) (rate(a_bucket{job=~"$job", x!="}"}'
        "[$__rate_interval]))) > 3 and on (kind) max(b) or vector(0)"
    )
    assert metrics == {"a_bucket", "b"}
    assert labels == {"le", "kind", "job", "x"}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, frozenset[str]]:
    """Every series name the server's registry exports, with the label names it carries."""
    metrics = Metrics()
    with job_runtime(Path(tmp_path_factory.mktemp("metrics"))) as rt:
        metrics.watch_jobs(rt.db)
        families = list(metrics.registry.collect())
    declared = {
        wrapper._name: frozenset(wrapper._labelnames)  # (prometheus_client's own)
        for wrapper in vars(metrics).values()
        if isinstance(wrapper, MetricWrapperBase)
    }
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_sum", "_count"),
        "gauge": ("",),
        "info": ("_info",),
        "summary": ("", "_sum", "_count"),
    }
    names: dict[str, frozenset[str]] = dict(PROMETHEUS_SERIES)
    for family in families:
        sampled = {label for sample in family.samples for label in sample.labels}
        labels = declared.get(family.name, frozenset()) | sampled
        for suffix in suffixes[family.type]:
            extra = {"le"} if suffix == "_bucket" else set()
            names[family.name + suffix] = frozenset(labels | extra)
    return names


def _check_expr(expr: str, exported: dict[str, frozenset[str]], where: str) -> None:
    metrics, labels = promql_names(expr)
    assert metrics, f"{where}: no metric read in {expr!r}"
    unknown = sorted(metrics - set(exported))
    assert not unknown, f"{where}: {unknown} are not exported by the server ({expr!r})"
    known = set(TARGET_LABELS).union(*(exported[m] for m in metrics))
    assert labels <= known, f"{where}: labels {sorted(labels - known)} not on {sorted(metrics)}"


def test_exported_names_include_the_servers_own(exported: dict[str, frozenset[str]]) -> None:
    assert exported["privsynth_jobs_queued"] == {"kind", "runner"}
    assert exported["grpc_server_handled_total"] == {
        "grpc_type",
        "grpc_service",
        "grpc_method",
        "grpc_code",
    }
    assert "le" in exported["privsynth_job_duration_seconds_bucket"]
    assert "process_resident_memory_bytes" in exported
    assert "python_gc_collections_total" in exported
    with pytest.raises(AssertionError, match="not exported"):
        _check_expr("rate(privsynth_jobs_failed_total[5m])", exported, "typo")
    with pytest.raises(AssertionError, match="labels"):
        _check_expr('privsynth_jobs_queued{status="x"}', exported, "typo")


def test_every_alert_reads_exported_metrics(exported: dict[str, frozenset[str]]) -> None:
    for rule in _rules(render(MONITORING)):
        _check_expr(str(rule["expr"]), exported, rule["alert"])


def test_every_dashboard_panel_reads_exported_metrics(
    exported: dict[str, frozenset[str]],
) -> None:
    dashboard = _dashboard(render(MONITORING))
    exprs = _panel_exprs(dashboard)
    assert len(exprs) >= 20
    for expr in exprs:
        _check_expr(expr, exported, "dashboard")
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            found = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", variable["definition"])
            assert found, variable["definition"]
            _check_expr(found[1], exported, variable["name"])
            # The label whose values the variable lists is a label of that metric.
            (metric,) = promql_names(found[1])[0]
            assert found[2] in TARGET_LABELS | exported[metric], variable["name"]


# --- the manifests ------------------------------------------------------------------------------


def test_off_by_default() -> None:
    manifests = render({})
    assert not by_kind(manifests, "PrometheusRule")
    assert not [m for m in by_kind(manifests, "ConfigMap") if "privsynth.json" in m["data"]]


def test_prometheus_rule_has_the_crds_shape_and_the_alerts() -> None:
    manifests = render(MONITORING)
    rule = one(manifests, "PrometheusRule")
    jsonschema.validate(rule, PROMETHEUS_RULE_SCHEMA)
    assert rule["metadata"]["namespace"] == NAMESPACE
    assert rule["metadata"]["labels"]["release"] == "prometheus"
    rules = _rules(manifests)
    assert {r["alert"] for r in rules} == ALERTS
    assert len(rules) == len(ALERTS)
    for r in rules:
        assert r["labels"]["team"] == "data-platform"
        assert r["labels"]["severity"] in {"critical", "warning"}
        assert r["annotations"]["summary"] and r["annotations"]["description"]
        # The release's series only, by the labels the chart's ServiceMonitor produces.
        assert f'job="{RELEASE}", namespace="{NAMESPACE}"' in r["expr"], r["alert"]
        # Prometheus' templating survives Helm's.
        assert "{{ $value" in r["annotations"]["description"] or "$" not in r["annotations"][
            "description"
        ].replace("{{ $labels", "")
    down = next(r for r in rules if r["alert"] == "PrivsynthServerDown")
    assert down["expr"] == f'absent(up{{job="{RELEASE}", namespace="{NAMESPACE}"}} == 1)'
    assert down["for"] == "5m"
    failing = next(r for r in rules if r["alert"] == "PrivsynthTrainingJobsFailing")
    assert 'state="failed"' in failing["expr"] and "[1h]" in failing["expr"]
    assert failing["expr"].rstrip().endswith(">= 3")


def test_alerts_follow_their_values() -> None:
    values = json.loads(json.dumps(MONITORING))
    rule_values = values["monitoring"]["prometheusRule"]
    rule_values["selector"] = 'cluster="eu-1", app="privsynth"'
    rule_values["alerts"] = {
        "serverDown": {"enabled": False},
        "budgetRefusals": {"threshold": 50, "window": "1h", "severity": "critical"},
        "queueStuck": {"for": "2h"},
    }
    rules = {r["alert"]: r for r in _rules(render(values))}
    assert set(rules) == ALERTS - {"PrivsynthServerDown", "PrivsynthServerNotReady"}
    refusals = rules["PrivsynthBudgetRefusalsSpiking"]
    assert '{cluster="eu-1", app="privsynth"}[1h]' in refusals["expr"]
    assert refusals["expr"].rstrip().endswith("> 50")
    assert refusals["labels"]["severity"] == "critical"
    assert rules["PrivsynthJobQueueStuck"]["for"] == "2h"


def test_dashboard_config_map_for_the_grafana_sidecar() -> None:
    manifests = render(MONITORING)
    (config_map,) = [m for m in by_kind(manifests, "ConfigMap") if "privsynth.json" in m["data"]]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "privsynth"}
    dashboard = _dashboard(manifests)
    assert dashboard["uid"] == "privsynth-overview"
    assert json.loads((CHART_DIR / "dashboards" / "privsynth.json").read_text()) == dashboard
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert variables == {"datasource", "namespace", "job"}
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}"
            assert panel["targets"], panel["title"]
    titles = {p["title"] for p in dashboard["panels"]}
    for wanted in ("Queued (all replicas)", "DP-SGD step time p50 / p95", "Resident memory"):
        assert wanted in titles


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_monitoring_manifests_validate_strictly(kube_version: str) -> None:
    manifests = [m for m in render(MONITORING) if m["kind"] != "PrometheusRule"]  # (above)
    assert one(manifests, "ServiceMonitor")
    failures = schema_failures(manifests, kube_version)
    assert not failures, "\n".join(failures)


def test_lint_strict_with_monitoring() -> None:
    report = helm.lint(CHART_DIR, MONITORING, strict=True, namespace=NAMESPACE)
    assert report["errors"] == [], json.dumps(report, indent=2)
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def _bad_values() -> Iterator[tuple[dict[str, Any], str]]:
    yield {"monitoring": {"prometheusRul": {}}}, "typo at the monitoring level"
    yield {"monitoring": {"prometheusRule": {"enabeld": True}}}, "typo in prometheusRule"
    yield (
        {"monitoring": {"prometheusRule": {"alerts": {"queueStuck": {"fro": "1h"}}}}},
        "typo in an alert",
    )
    yield (
        {"monitoring": {"prometheusRule": {"alerts": {"jobsFailing": {"window": "1 hour"}}}}},
        "a duration Prometheus cannot read",
    )
    yield (
        {"monitoring": {"prometheusRule": {"alerts": {"jobsFailing": {"threshold": "3"}}}}},
        "a threshold as a string",
    )
    yield {"monitoring": {"prometheusRule": {"selector": '{job="x"}'}}}, "braces in the selector"
    yield {"monitoring": {"grafanaDashboard": {"sidecarLabelValue": 1}}}, "a label value number"


@pytest.mark.parametrize(("values", "why"), list(_bad_values()))
def test_schema_refuses(values: dict[str, Any], why: str) -> None:
    with helm.Chart.load(CHART_DIR) as chart, pytest.raises(helm.HelmValuesError):
        chart.validate_schema(values)
