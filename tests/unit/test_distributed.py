"""Two-process DP training (torchrun, gloo): accounted like one process, and resumable."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
from pathlib import Path

import torch
from corpus import fortunes
from privsynth.models.distributed import EXIT_RESUMABLE


def _shard(tmp_path: Path) -> Path:
    data = tmp_path / "shard.jsonl"
    if not data.exists():
        with data.open("w") as fh:
            for r in fortunes(80):
                fh.write(json.dumps({"text": r.text, "label": r.label}) + "\n")
    return data


def _torchrun(tmp_path: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    with socket.socket() as sock:  # torchrun's static rendezvous needs a concrete port
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            port,
            "-m",
            "privsynth.models.distributed",
            "--data",
            str(_shard(tmp_path)),
            "--epsilon",
            "4",
            "--delta",
            "1e-5",
            "--epochs",
            "2",
            "--preset",
            "tiny",
            "--out",
            str(out),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _weights(out: Path) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = torch.load(
        io.BytesIO((out / "weights.pt").read_bytes()), weights_only=True
    )
    return state


def test_two_ranks_report_single_process_epsilon(tmp_path: Path) -> None:
    from opacus.accountants import PRVAccountant

    out = tmp_path / "run"
    proc = _torchrun(tmp_path, out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    card = json.loads((out / "card.json").read_text())
    assert card["world_size"] == 2
    assert card["backend"] == "gloo"
    # The same sampling rate, noise and step count on one process give the same epsilon.
    single = PRVAccountant()
    single.history = [(card["noise_multiplier"], card["sample_rate"], card["steps"])]
    assert abs(single.get_epsilon(delta=1e-5) - card["epsilon"]) < 1e-6
    assert 0.9 * 4 < card["epsilon"] <= 4 + 1e-6
    assert (out / "weights.pt").stat().st_size > 0


def test_preempted_two_rank_run_resumes_with_the_uninterrupted_accounting(tmp_path: Path) -> None:
    whole = tmp_path / "whole"
    assert _torchrun(tmp_path, whole).returncode == 0

    sliced = tmp_path / "sliced"
    first = _torchrun(tmp_path, sliced, "--stop-at-step", "3")
    assert first.returncode != 0  # torchrun reports its workers' EXIT_RESUMABLE as a failure
    assert f"exitcode  : {EXIT_RESUMABLE}" in first.stderr or "stopped at step 3" in first.stderr
    assert not (sliced / "weights.pt").exists()
    saved = sorted(p.name for p in (sliced / "checkpoint").iterdir())
    assert saved == ["checkpoint.rank0-of-2.pt", "checkpoint.rank1-of-2.pt"]

    second = _torchrun(tmp_path, sliced)
    assert second.returncode == 0, second.stderr[-3000:]
    card, reference = (json.loads((d / "card.json").read_text()) for d in (sliced, whole))
    assert card["resumed_from_step"] == 3
    # Neither forgotten nor double-counted: the resumed run is accounted as the whole one.
    assert card["steps"] == reference["steps"]
    assert card["epsilon"] == reference["epsilon"]
    # Each run draws its noise and batches from secret generators seeded by the OS, on every
    # rank: two runs with equal inputs never give the same model. (That a resumed run
    # continues its own noise stream is shown bit for bit in test_dp_checkpoint.py.)
    got, want = _weights(sliced), _weights(whole)
    assert got.keys() == want.keys()
    assert any(not torch.equal(got[k], want[k]) for k in want)
    assert card["noise_source"] == reference["noise_source"] and card["secure_rng"] is True
    # A finished run leaves no checkpoint that a rerun could resume into, and a rerun (a
    # replacement pod) does not train again: that would be a second, unaccounted release.
    assert list((sliced / "checkpoint").iterdir()) == []
    weights = (sliced / "weights.pt").read_bytes()
    third = _torchrun(tmp_path, sliced)
    assert third.returncode == 0 and "already holds a finished run" in third.stderr
    assert (sliced / "weights.pt").read_bytes() == weights


def _choose_on_rank(rank: int, init: str, root: str, key: dict[str, object]) -> None:
    from privsynth.models.dp_train import CheckpointError, Checkpointing, _choose_checkpoint

    torch.distributed.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    try:
        cfg = Checkpointing(path=Path(root) / "checkpoint.pt")
        try:
            chosen = _choose_checkpoint(cfg, key, rank, 2)
            outcome = "fresh" if chosen is None else int(chosen["step"])
        except CheckpointError as exc:
            outcome = f"error: {exc}"
        (Path(root) / f"outcome{rank}.json").write_text(json.dumps(outcome))
    finally:
        torch.distributed.destroy_process_group()


def _choose(tmp_path: Path, held: dict[str, int | str], key: dict[str, object]) -> list[object]:
    """Write checkpoint files (name -> step, or "junk"), let two ranks choose, return choices."""
    from privsynth.models import dp_train

    for name, step in held.items():
        rank = int(name.split(".rank")[1][0])
        path = tmp_path / name
        if step == "junk":
            path.write_bytes(b"not a checkpoint")
        else:
            run = {"format": dp_train._CHECKPOINT_FORMAT, "run": key, "rank": rank, "step": step}
            torch.save(run, path)
    init = f"file://{tmp_path / 'rendezvous'}"
    torch.multiprocessing.spawn(_choose_on_rank, args=(init, str(tmp_path), key), nprocs=2)
    return [json.loads((tmp_path / f"outcome{r}.json").read_text()) for r in (0, 1)]


def test_ranks_resume_from_the_latest_step_all_of_them_saved(tmp_path: Path) -> None:
    # Rank 0 saved step 6; rank 1 died before it did: step 3 is the one both still hold.
    key = {"world_size": 2, "records": 80}
    held = {
        "checkpoint.rank0-of-2.pt": 6,
        "checkpoint.rank0-of-2.prev.pt": 3,
        "checkpoint.rank1-of-2.pt": 3,
        "checkpoint.rank1-of-2.prev.pt": 0,
    }
    assert _choose(tmp_path, held, key) == [3, 3]
    # Rank 0's step 3 is its latest again (the unshared step 6 is dropped), so its next save
    # keeps step 3 as the previous generation and a later crash still finds a common step.
    promoted = torch.load(tmp_path / "checkpoint.rank0-of-2.pt", weights_only=True)
    assert promoted["step"] == 3
    assert not (tmp_path / "checkpoint.rank0-of-2.prev.pt").exists()


def test_ranks_start_afresh_together_without_a_common_step(tmp_path: Path) -> None:
    # The run died before rank 1 saved once: both start afresh, and rank 0's stale file goes.
    key = {"world_size": 2, "records": 80}
    assert _choose(tmp_path, {"checkpoint.rank0-of-2.pt": 3}, key) == ["fresh", "fresh"]
    assert not (tmp_path / "checkpoint.rank0-of-2.pt").exists()


def test_one_ranks_bad_checkpoint_fails_every_rank(tmp_path: Path) -> None:
    key = {"world_size": 2, "records": 80}
    held: dict[str, int | str] = {"checkpoint.rank0-of-2.pt": 3, "checkpoint.rank1-of-2.pt": "junk"}
    outcomes = _choose(tmp_path, held, key)
    assert all(str(o).startswith("error: checkpoint is unreadable") for o in outcomes)
