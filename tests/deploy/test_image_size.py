"""The image's dependency size, computed from what it installs, and kept at or below 1.5 GB.

No Docker engine is needed: the image's venv holds exactly the packages pinned in
requirements/server.txt (plus the project), minus what requirements/prune.txt deletes. Every
one of them is installed at its pinned version in this environment (CI installs dev.txt, a
superset that agrees), so the size of the image's venv is the installed size of those files
here, read from each package's RECORD. The python:3.11-slim base image comes on top (about
125 MB uncompressed on amd64); the optional extras are reported for builds that add them.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
import sysconfig
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCKS = REPO_ROOT / "requirements"
sys.path.insert(0, str(LOCKS))

from lock import OPTIONAL, canonical, pins  # noqa: E402
from prune import pruned  # noqa: E402

LIMIT_BYTES = 1_500_000_000  # 1.5 GB, decimal as `docker images` reports
SITE = Path(sysconfig.get_paths()["purelib"])


def _installed() -> dict[str, importlib.metadata.Distribution]:
    found = {}
    for dist in importlib.metadata.distributions(path=[str(SITE)]):
        found.setdefault(canonical(dist.metadata["Name"]), dist)
    return found


def _files(dist: importlib.metadata.Distribution) -> list[Path]:
    """The package's installed files (RECORD), scripts in bin/ included, that exist."""
    out = []
    for entry in dist.files or []:
        path = Path(os.path.normpath(SITE / entry))
        if path.is_file():
            out.append(path)
    return out


def _lock_size(lock: str, dists: dict[str, importlib.metadata.Distribution]) -> dict[str, int]:
    """Bytes each package of ``lock`` occupies in the image (pruned directories left out)."""
    skip = tuple(f"{p}{os.sep}" for p in pruned(SITE))
    sizes = {}
    missing = []
    for name, version in pins((LOCKS / lock).read_text()).items():
        dist = dists.get(name)
        if dist is None or dist.version != version:
            missing.append(f"{name}=={version}")
            continue
        sizes[name] = sum(f.stat().st_size for f in _files(dist) if not str(f).startswith(skip))
    assert not missing, f"not installed at the locked version (run make setup): {missing}"
    return sizes


def _project_size() -> int:
    """The project's packages as the image installs them (an editable install has no RECORD).

    Every file of client/, server/ and models/ (package data included, caches not), Python
    sources counted twice: the install compiles each to bytecode of about the same size.
    """
    total = 0
    for package in ("client", "server", "models"):
        for path in (REPO_ROOT / package).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                total += path.stat().st_size * (2 if path.suffix == ".py" else 1)
    return total


def _report(title: str, sizes: dict[str, int], top: int = 12) -> None:
    print(f"\n{title}: {sum(sizes.values()) / 1e6:,.0f} MB in {len(sizes)} packages")
    for name, size in sorted(sizes.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {size / 1e6:8.1f} MB  {name}")


def test_image_dependencies_fit_in_1_5_gb() -> None:
    dists = _installed()
    base = _lock_size("server.txt", dists)
    project = _project_size()
    total = sum(base.values()) + project
    _report("image venv (server.txt, pruned)", base)
    print(f"  {project / 1e6:8.1f} MB  privsynth (the project)")
    print(f"  total {total / 1e6:,.0f} MB (limit {LIMIT_BYTES / 1e6:,.0f} MB), plus the base image")
    for extra in OPTIONAL:
        _report(f"--build-arg EXTRAS={extra} adds", _lock_size(f"{extra}.txt", dists), top=3)
    _report("  and hf's weights (weights.txt)", _lock_size("weights.txt", dists), top=2)
    assert total <= LIMIT_BYTES, f"image dependencies {total / 1e6:,.0f} MB > 1,500 MB"
    # torch's C++ headers and tests really are left out (they are 145 MB).
    assert base["torch"] < 700_000_000
