"""Every ε through the ledger: each code path that runs a DP mechanism is listed and charged.

The package is scanned for calls of ``train_dp`` (the only function that runs DP-SGD), of
``release_token_stats`` / ``release_label_centroids`` / ``release_for_model`` (the only ones
that release per-label token statistics or embedding centroids) and of ``evolve`` /
``build_private_evolution`` (the only ones that release Private Evolution's vote histograms).
Each caller must be in :data:`CHARGED` (resp. :data:`STATS_CHARGED`,
:data:`EVOLUTION_CHARGED`), which names the test proving that the path reserves before it reads
data and commits after (or, for the privacy audit, that it reads no private data and therefore
owes nothing). A new caller fails here until it is charged and listed.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIRS = {
    "client": "privsynth.client",
    "server": "privsynth.server",
    "models": "privsynth.models",
}

CHARGED: dict[str, tuple[str, str]] = {
    # A server worker: CreateTrainingJob reserves, the worker commits what the accountant spent.
    "privsynth.server.jobs.execution": (
        "tests.integration.test_job_resume",
        "test_a_job_stopped_by_shutdown_resumes_and_is_charged_once",
    ),
    # torchrun across processes: claims a job reserved with distributed=true, commits after.
    "privsynth.server.jobs.distributed": (
        "tests.integration.test_distributed_job",
        "test_a_distributed_job_reserves_waits_trains_on_two_ranks_and_commits",
    ),
    # The empirical audit: the public corpus costs nothing; a dataset is reserved and committed.
    "privsynth.models.privacy_audit": (
        "tests.integration.test_privacy_audit_rpc",
        "test_audit_on_a_private_dataset_is_charged_like_training",
    ),
}


STATS_CHARGED: dict[str, tuple[str, str]] = {
    # The guided recipe's release, made when its job ends; reserved at create, committed then.
    "privsynth.server.jobs.endings": (
        "tests.integration.test_guided_jobs",
        "test_a_guided_job_reserves_releases_and_commits_its_token_statistics",
    ),
    # The wrapper the job ending calls (tokenises or embeds, then releases token counts or
    # label centroids); listed above through it. Its default preset releases centroids.
    "privsynth.models.guided": (
        "tests.integration.test_guided_jobs",
        "test_a_guided_job_reserves_releases_and_commits_its_token_statistics",
    ),
}


STATS_NOT_RELEASED: dict[str, str] = {
    # The quality report's DP centroid bag-of-words reference: like the plain DP bag of words
    # (which has its own noise code), it is computed inside the evaluation and only its
    # classifier score leaves it. The evaluation is audited as reading private data
    # (tests.integration.test_evaluation_jobs), not charged as a release.
    "privsynth.server.evaluation.dp_centroid_bow": "evaluation reference, never released",
}


EVOLUTION_CHARGED: dict[str, tuple[str, str]] = {
    # A private-evolution job: T vote histograms reserved at create, committed when it ends.
    "privsynth.server.jobs.execution": (
        "tests.integration.test_pe_jobs",
        "test_a_pe_job_reserves_runs_and_commits_its_vote_histograms",
    ),
    # The builder the job calls (base, embedder, label release, then the iterations).
    "privsynth.models.evolution_lm": (
        "tests.integration.test_pe_jobs",
        "test_a_pe_job_reserves_runs_and_commits_its_vote_histograms",
    ),
}


def _callers(function: str = "train_dp") -> set[str]:
    found: set[str] = set()
    for folder, package in PACKAGE_DIRS.items():
        for path in (ROOT / folder).rglob("*.py"):
            if "pb" in path.relative_to(ROOT / folder).parts:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.Call):
                    func = node.func
                    name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                    if name == function:
                        module = path.relative_to(ROOT / folder).with_suffix("")
                        parts = [p for p in module.parts if p != "__init__"]
                        found.add(".".join([package, *parts]))
    return found


def test_every_path_that_trains_is_listed_as_charged() -> None:
    callers = _callers()
    assert "privsynth.server.jobs.execution" in callers  # the scan sees the known caller
    unlisted = callers - set(CHARGED)
    assert not unlisted, f"train_dp called outside the ledger's known paths: {sorted(unlisted)}"
    # The old ledger-free torchrun entry point is gone.
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("privsynth.models.distributed")


def test_every_path_that_releases_token_statistics_is_listed_as_charged() -> None:
    callers = (
        _callers("release_token_stats")
        | _callers("release_label_centroids")
        | _callers("release_for_model")
    )
    assert "privsynth.server.jobs.endings" in callers  # the scan sees the known caller
    unlisted = callers - set(STATS_CHARGED) - set(STATS_NOT_RELEASED)
    assert not unlisted, f"token statistics released outside the ledger: {sorted(unlisted)}"
    assert set(STATS_NOT_RELEASED) <= callers  # no stale exemption


def test_every_path_that_releases_vote_histograms_is_listed_as_charged() -> None:
    callers = _callers("evolve") | _callers("build_private_evolution")
    assert "privsynth.server.jobs.execution" in callers  # the scan sees the known caller
    unlisted = callers - set(EVOLUTION_CHARGED)
    assert not unlisted, f"vote histograms released outside the ledger: {sorted(unlisted)}"


LISTED = [
    (module, *charged)
    for table in (CHARGED, STATS_CHARGED, EVOLUTION_CHARGED)
    for module, charged in sorted(table.items())
]


@pytest.mark.parametrize(("module", "test_module", "test_name"), LISTED)
def test_each_listed_path_has_its_charging_test(
    module: str, test_module: str, test_name: str
) -> None:
    path = ROOT / Path(*test_module.split(".")).with_suffix(".py")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    assert test_name in names, f"{module}: {test_module}::{test_name} is missing"
