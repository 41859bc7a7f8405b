"""Checkpoint agreement across ranks (torch.distributed with gloo, two spawned processes).

The torchrun entry point itself, which trains a reserved job under the ledger, is tested in
tests/integration/test_distributed_job.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch


def _choose_on_rank(rank: int, init: str, root: str, key: dict[str, object]) -> None:
    from privsynth.models.checkpoints import CheckpointError, Checkpointing, choose_checkpoint

    torch.distributed.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    try:
        cfg = Checkpointing(path=Path(root) / "checkpoint.pt")
        try:
            chosen = choose_checkpoint(cfg, key, rank, 2)
            outcome = "fresh" if chosen is None else int(chosen["step"])
        except CheckpointError as exc:
            outcome = f"error: {exc}"
        (Path(root) / f"outcome{rank}.json").write_text(json.dumps(outcome))
    finally:
        torch.distributed.destroy_process_group()


def _choose(tmp_path: Path, held: dict[str, int | str], key: dict[str, object]) -> list[object]:
    """Write checkpoint files (name -> step, or "junk"), let two ranks choose, return choices."""
    from privsynth.models import checkpoints

    for name, step in held.items():
        rank = int(name.split(".rank")[1][0])
        path = tmp_path / name
        if step == "junk":
            path.write_bytes(b"not a checkpoint")
        else:
            run = {"format": checkpoints.CHECKPOINT_FORMAT, "run": key, "rank": rank, "step": step}
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
