"""Copy the Kubernetes types the chart's values use into ``values.schema.json``.

Values such as ``securityContext``, ``resources`` or ``networkPolicy.ingress.grpcFrom`` are
Kubernetes objects passed through to the manifests. So that a typo in them (``runAsNonroot``)
fails ``helm install`` like a typo anywhere else, the schema refers to their definitions
(``#/definitions/io.k8s.…``), and this script copies those definitions, with everything they
refer to, from the strict (``additionalProperties: false``) JSON schemas that
``kubernetes-validate`` bundles. Helm validates values offline, so the definitions must live in
the file itself, not behind a URL.

    python helm/update_schema_definitions.py           # rewrite the io.k8s.* definitions
    python helm/update_schema_definitions.py --check   # exit 1 if they are out of date

The hand-written part of the schema (everything not named ``io.k8s.*``) is left as it is.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate

SCHEMA = Path(__file__).resolve().parent / "privsynth" / "values.schema.json"
PREFIX = "#/definitions/"
K8S = "io.k8s."
# Keys of the OpenAPI export that mean nothing to a JSON schema validator (and `format`, whose
# int32/int64/byte names Helm's validator does not know).
DROPPED = ("format", "x-kubernetes-")


def _bundle() -> dict[str, Any]:
    """The strict definitions of the newest Kubernetes version kubernetes-validate ships."""
    version = kubernetes_validate.latest_version()
    root = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    path = root / f"v{version}-local-strict" / "_definitions.json"
    defs: dict[str, Any] = json.loads(path.read_text())["$defs"]
    return defs


def _clean(node: Any) -> Any:
    """A definition with local refs rewritten to ``#/definitions/`` and export-only keys cut."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key.startswith(DROPPED):
                continue
            if key == "$ref" and isinstance(value, str):
                out[key] = PREFIX + value.rpartition("/")[2]
            else:
                out[key] = _clean(value)
        return out
    if isinstance(node, list):
        return [_clean(v) for v in node]
    return node


def _refs(node: Any) -> set[str]:
    """Names of the ``io.k8s.*`` definitions ``node`` refers to."""
    found: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(PREFIX + K8S):
            found.add(ref.removeprefix(PREFIX))
        for value in node.values():
            found |= _refs(value)
    elif isinstance(node, list):
        for value in node:
            found |= _refs(value)
    return found


def updated(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with exactly the ``io.k8s.*`` definitions it needs, freshly copied."""
    bundle = _bundle()
    own = {k: v for k, v in schema.get("definitions", {}).items() if not k.startswith(K8S)}
    needed: dict[str, Any] = {}
    todo = sorted(_refs({"properties": schema.get("properties", {}), "definitions": own}))
    while todo:
        name = todo.pop()
        if name in needed:
            continue
        if name not in bundle:
            raise SystemExit(f"no Kubernetes definition {name!r} in kubernetes-validate")
        needed[name] = _clean(bundle[name])
        todo.extend(sorted(_refs(needed[name]) - needed.keys()))
    return {**schema, "definitions": {**own, **dict(sorted(needed.items()))}}


def render(schema: dict[str, Any]) -> str:
    """The file's text: two-space JSON and a final newline."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    """Rewrite (or, with --check, verify) the copied definitions."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only say whether it is current")
    args = parser.parse_args()
    text = SCHEMA.read_text()
    fresh = render(updated(json.loads(text)))
    if args.check:
        if fresh != text:
            print(f"{SCHEMA} is out of date: run python {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    SCHEMA.write_text(fresh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
