"""The chart wires the scrub master secret (keyed scrub strategies) from a Kubernetes Secret."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("helm_python", reason="helm-python-sdk is not installed")

from test_chart import container, one, render


def _env(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    return {e["name"]: e for e in container(manifests).get("env", [])}


def test_scrub_secret_comes_from_a_secret() -> None:
    manifests = render({"scrubSecret": {"existingSecret": "privsynth-scrub"}})
    ref = _env(manifests)["PRIVSYNTH_SCRUB_SECRET"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "privsynth-scrub", "key": "scrub-secret"}
    assert "PRIVSYNTH_SCRUB_SECRET" not in one(manifests, "ConfigMap")["data"]


def test_no_scrub_secret_by_default() -> None:
    assert "PRIVSYNTH_SCRUB_SECRET" not in _env(render())
