"""Resumable DP training state on disk: where it goes, how it is written, which one resumes.

A checkpoint holds what a run needs to continue exactly where it stopped: the trainable
weights, the optimizer and accountant state, the step counter and the state of the run's
secret generators (see :mod:`privsynth.models.secret_rng`). The last makes it as secret as the
noise itself, so every file is private (0600 in a 0700 directory) and deleted when its job
ends. Under ``torchrun`` each rank keeps its own file (and the previous one) and the ranks agree
on one step to resume from. The rules of *what* a resumed run does with this state live with
the run (:class:`privsynth.models.dp_train.DPTrainingRun`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "CHECKPOINT_FORMAT",
    "CheckpointError",
    "Checkpointing",
    "any_rank",
    "choose_checkpoint",
    "read_checkpoint",
    "write_atomically",
]


class CheckpointError(ValueError):
    """A checkpoint cannot be resumed: unreadable, or written by a different run.

    Raised before any step of the resumed run, so nothing new was consumed.
    """


@dataclass(frozen=True, kw_only=True)
class Checkpointing:
    """Where and how often a run saves the state it can resume from.

    A checkpoint holds the trainable weights, the optimizer state, the accountant's state
    (Opacus' ``history`` of (σ, q, steps)), the step counter, the elapsed time and the state
    of the run's secret generators (Poisson sampling, noise) and the seed of its choice of one
    record per user. That state is as secret as the noise itself: the file is private (0600 in
    a 0700 directory) and whoever runs the job deletes it when the job ends. A run resumed
    from step k therefore continues the very noise stream it left (it never draws fresh noise
    for a step it already released, nor releases a step twice), takes exactly the remaining
    steps and reports the ε of the whole run: the steps before k are neither forgotten nor
    counted twice. Steps taken after the last checkpoint by a run that then died are discarded
    unreleased (their model state never left the process) and are taken again, with the same
    coin flips: a replay of the same run, not a second release.

    Under ``torchrun`` (world size W > 1) every rank saves its own file next to ``path``
    (``<stem>.rank<r>-of-<W><suffix>``, its RNG state being its own), at the same step: the
    ranks agree on when to save and when to stop through one small all-reduce per step. Each
    rank keeps its previous file too (``….prev``), so a crash between two ranks' writes still
    leaves a step every rank holds; a resumed run takes the latest such step, and starts afresh
    when there is none.

    Attributes:
        path: The checkpoint file, written atomically (temporary file, fsync, rename). When
            it exists at the start of ``train_dp`` the run resumes from it.
        every_s: Save when this many seconds passed since the last save (0: never by time).
        every_steps: Save every this many optimizer steps (0: never by count).
        on_stop: Also save when ``should_stop`` ends the run, so it can be resumed.
        stop_at_step: Save and stop, resumably, once the run reaches this step (0: never); for
            time-sliced runs on preemptible capacity. Raises ``TrainingInterrupted`` like a
            stop request.
    """

    path: Path
    every_s: float = 60.0
    every_steps: int = 0
    on_stop: bool = True
    stop_at_step: int = 0

    def files(self, rank: int, world_size: int) -> tuple[Path, Path | None]:
        """This rank's latest checkpoint file and, under ``torchrun``, its previous one."""
        if world_size == 1:
            return self.path, None
        stem = f"{self.path.stem}.rank{rank}-of-{world_size}"
        return (
            self.path.with_name(f"{stem}{self.path.suffix}"),
            self.path.with_name(f"{stem}.prev{self.path.suffix}"),
        )

    def remove(self, rank: int, world_size: int) -> None:
        """Delete this rank's checkpoint files (a finished run, or a stale partial one)."""
        for path in self.files(rank, world_size):
            if path is not None:
                path.unlink(missing_ok=True)


CHECKPOINT_FORMAT = 2
"""2: the secret noise generator's state is saved (format 1 drew noise from a public seed)."""


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so a reader sees the old file or the new one, never a part.

    The file is private (0600, in a 0700 directory) whatever the umask: a checkpoint holds the
    state of the run's secret noise generator, and whoever read it could replay the noise.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(OSError):  # (a directory we do not own stays as it is)
        path.parent.chmod(0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        os.fchmod(fh.fileno(), 0o600)
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    with contextlib.suppress(OSError):  # make the rename itself durable where possible
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint (tensors and plain containers only: never arbitrary pickles).

    Raises:
        CheckpointError: Unreadable or of an unknown format.
    """
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"checkpoint is unreadable ({type(exc).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError("checkpoint has an unknown format")
    return ckpt


def any_rank(flags: Sequence[bool], world_size: int) -> list[bool]:
    """For each flag, whether it holds on any rank, in one all-reduce.

    Every rank must call this at the same point with as many flags.
    """
    if world_size == 1:
        return list(flags)
    values = torch.tensor([int(f) for f in flags])
    torch.distributed.all_reduce(values, op=torch.distributed.ReduceOp.MAX)
    return [bool(v) for v in values]


def choose_checkpoint(
    cfg: Checkpointing, run_key: dict[str, Any], rank: int, world_size: int
) -> dict[str, Any] | None:
    """The checkpoint this rank resumes from, or None to start afresh.

    One process resumes from ``cfg.path`` if it exists. Under ``torchrun`` the ranks pick the
    latest step that every rank holds a file of (latest or previous generation); with none
    (e.g. the run died before every rank had saved once), all start afresh and drop their
    stale files, so no later resume can mix them in.

    Raises:
        CheckpointError: A file is unreadable or from another run (on every rank together).
    """
    held: dict[int, dict[str, Any]] = {}
    source: dict[int, Path] = {}
    failure = ""
    for path in cfg.files(rank, world_size):
        if path is None or not path.exists():
            continue
        try:
            ckpt = read_checkpoint(path)
            step = int(ckpt["step"])
        except CheckpointError as exc:
            failure = str(exc)
            continue
        except (KeyError, TypeError, ValueError):
            failure = "checkpoint has no step"
            continue
        if ckpt.get("run") != run_key or ckpt.get("rank", 0) != rank:
            failure = "checkpoint was written by a run with other parameters"
            continue
        held[step] = ckpt
        source[step] = path
    if world_size == 1:
        if failure:
            raise CheckpointError(failure)
        return next(iter(held.values()), None)
    gathered: list[Any] = [None] * world_size
    torch.distributed.all_gather_object(gathered, (sorted(held), failure))
    failures = [f for _, f in gathered if f]
    if failures:
        raise CheckpointError(failures[0])
    common = set.intersection(*(set(steps) for steps, _ in gathered))
    if not common:
        cfg.remove(rank, world_size)
        return None
    chosen = max(common)
    latest, _ = cfg.files(rank, world_size)
    if source[chosen] != latest:
        # Resuming from the previous generation: it becomes the latest again (the newer file,
        # which not every rank reached, is dropped), so the next save keeps it as previous.
        os.replace(source[chosen], latest)
    return held[chosen]
