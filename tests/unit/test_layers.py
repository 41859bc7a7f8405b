"""The layering contracts run, see the import arrows, and hold.

``make check`` runs ``lint-imports`` with the contracts in pyproject.toml. Because the folders are
mapped into ``privsynth.*``, a tool that follows paths would see no arrows and pass anything;
these tests prove the contracts are evaluated on the real graph: a contract that the code breaks
(the server does import the models) is reported broken, and the project's own contracts hold.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _lint_imports(config: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.fail("lint-imports is not installed: `make setup` installs the dev extra")
    return subprocess.run(
        [exe, "--config", str(config), "--no-cache"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=ROOT,
    )


def test_the_projects_contracts_hold() -> None:
    proc = _lint_imports(ROOT / "pyproject.toml")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "0 broken" in proc.stdout


def test_a_violated_contract_is_reported(tmp_path: Path) -> None:
    config = tmp_path / "contracts.toml"
    config.write_text(
        "[tool.importlinter]\n"
        'root_packages = ["privsynth.server", "privsynth.models"]\n\n'
        "[[tool.importlinter.contracts]]\n"
        'name = "a false claim: the job runner never imports the DP trainer"\n'
        'type = "forbidden"\n'
        'source_modules = ["privsynth.server.jobs"]\n'
        'forbidden_modules = ["privsynth.models.dp_train"]\n'
    )
    proc = _lint_imports(config)
    assert proc.returncode != 0
    assert "BROKEN" in proc.stdout and "privsynth.server.jobs" in proc.stdout
