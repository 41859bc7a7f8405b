"""DP-SGD training of the generator with Opacus.

The privacy guarantee comes from three things done here and nowhere else: Poisson sampling of
each batch (Opacus' ``DPDataLoader``), per-sample gradient clipping to ``max_grad_norm``, and
Gaussian noise whose multiplier is calibrated by the named accountant so that the whole run
reaches ``target_epsilon`` at ``target_delta``. Each record's loss is averaged over its own tokens
only, so one record's length never changes another record's clipped gradient.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import random
import secrets
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from privsynth.models.family import Tokenizer, prompt_positions
from privsynth.models.presets import PRESETS, load_base
from privsynth.models.secret_rng import NOISE_SOURCE, secret_generator, system_random
from privsynth.models.transformer import TinyTransformerLM, TransformerConfig, get_preset
from torch import nn
from torch.nn import functional as F  # noqa: N812
from torch.utils.data import DataLoader, Dataset

if TYPE_CHECKING:
    from privsynth.models.hf_lm import HFLoRALM

__all__ = [
    "ACCOUNTANTS",
    "MIN_RECORDS",
    "CheckpointError",
    "Checkpointing",
    "DPConfig",
    "Example",
    "Progress",
    "TrainResult",
    "TrainingConfigError",
    "TrainingInterrupted",
    "bound_user_contributions",
    "encode_example",
    "initial_model",
    "train_dp",
]

MIN_RECORDS = 20
"""Smallest corpus accepted: below it the sampling rate is so high that DP noise swamps learning."""

GRAD_SAMPLE_MODES = ("auto", "ghost", "hooks")
"""How per-sample gradient norms are computed (recorded on the model card)."""

ACCOUNTANTS = ("prv", "rdp")
"""Accountants offered. ``gdp`` is left out: it under-reports ε and fails at ε ≥ 4."""


class TrainingConfigError(ValueError):
    """A training parameter is invalid; ``field`` names it (no corpus content in the message)."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name


class TrainingInterrupted(Exception):
    """Training ended early; carries the privacy already spent so the ledger can charge it.

    ``cancelled`` is True when ``should_stop`` asked for it; otherwise ``__cause__`` holds the
    error that broke the run. Either way the noisy steps taken so far were real releases.
    """

    def __init__(self, *, epsilon_spent: float, steps: int, cancelled: bool) -> None:
        super().__init__(f"training {'cancelled' if cancelled else 'failed'} after {steps} steps")
        self.epsilon_spent = epsilon_spent
        self.steps = steps
        self.cancelled = cancelled


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


@dataclass(frozen=True)
class Example:
    """One training record: scrubbed text, an optional label (control code) and user key.

    ``user`` is an opaque key (the server stores only a keyed hash of the user id); when any
    example has one, the privacy unit becomes the user and contributions are bounded by
    :func:`bound_user_contributions` before training.
    """

    text: str
    label: str | None = None
    user: str | None = None


def bound_user_contributions(
    examples: Sequence[Example], *, per_user: int = 1, rng: random.Random | None = None
) -> list[Example]:
    """Keep at most ``per_user`` records of each user, chosen at random.

    With one record per user, record-level DP-SGD on the result is user-level DP with the same
    (ε, δ): adding or removing a user changes at most one training record. Records without a
    user key count as users of their own. The choice is random (not, say, the longest record)
    so that which record survives does not depend on content, and secret (the OS's CSPRNG by
    default): with a public seed, removing one user would shift every later user's choice
    along a stream an attacker can replay. Bounding an already bounded list keeps it as is.

    Args:
        examples: The records.
        per_user: Records kept per user.
        rng: The coin flips; tests may pass a seeded one, production never does.
    """
    rng = rng if rng is not None else system_random()
    by_user: dict[str, list[int]] = {}
    keep: list[int] = []
    for i, ex in enumerate(examples):
        if ex.user:
            by_user.setdefault(ex.user, []).append(i)
        else:
            keep.append(i)
    for idxs in by_user.values():
        keep.extend(rng.sample(idxs, min(per_user, len(idxs))))
    return [examples[i] for i in sorted(keep)]


@dataclass(frozen=True, kw_only=True)
class DPConfig:
    """What a training run should guarantee and how hard it should work.

    Attributes:
        target_epsilon: ε the whole run may spend; the noise multiplier is calibrated to it.
        target_delta: δ of the guarantee.
        epochs: Passes over the data in expectation (Poisson sampling).
        preset: Training preset (see ``privsynth.models.presets.PRESETS``): architecture
            and the public base it starts from.
        batch_size: Expected logical batch size; the sampling rate is ``batch_size / n``.
        max_grad_norm: Per-sample clipping norm C.
        learning_rate: Adam learning rate.
        accountant: ``"prv"`` (default, tight) or ``"rdp"``.
        grad_sample_mode: ``"ghost"`` (fast gradient clipping: per-sample norms without
            materialising per-sample gradients), ``"hooks"`` (per-sample gradients), or
            ``"auto"``, which picks ghost: every layer of the transformer supports it.
        noise_multiplier: Use exactly this σ instead of calibrating one to ``target_epsilon``
            (the ledger calibrates at reservation time so that its composed budget and the
            run agree). The run still stops at the planned steps; the card reports the ε the
            accountant computes.
        max_physical_batch_size: Largest batch put through the model at once (0: no limit).
            A larger Poisson batch is split by Opacus' ``BatchMemoryManager`` and its clipped
            gradients accumulated into one noisy step, so the logical batch (and ε) is the
            same and only memory changes.
    """

    target_epsilon: float
    target_delta: float
    epochs: int
    preset: str = "small"
    batch_size: int = 64
    max_grad_norm: float = 1.0
    learning_rate: float = 5e-3
    accountant: str = "prv"
    grad_sample_mode: str = "auto"
    noise_multiplier: float | None = None
    max_physical_batch_size: int = 0

    @classmethod
    def for_preset(cls, preset: str, **kwargs: Any) -> DPConfig:
        """A config with the preset's tuned batch size, learning rate and physical batch.

        Every caller that trains a preset for real (the job runner, the torchrun entry
        point) builds its config here, so a preset's hyperparameters live in one place
        (``TrainingPreset``). Values given in ``kwargs`` win; an unknown preset keeps the
        class defaults and is rejected by :meth:`validate`.
        """
        tuned = PRESETS.get(preset)
        if tuned is not None:
            kwargs.setdefault("batch_size", tuned.batch_size)
            kwargs.setdefault("learning_rate", tuned.learning_rate)
            kwargs.setdefault("max_physical_batch_size", tuned.physical_batch)
        return cls(preset=preset, **kwargs)

    def validate(self, n_records: int) -> None:
        """Reject parameters that cannot give a meaningful guarantee.

        The rules, each naming its field in the error:

        * ``target_epsilon`` finite and > 0; ``epochs`` ≥ 1.
        * ``target_delta`` in (0, 1) and below 1/n: at δ ≥ 1/n a mechanism that publishes one
          random record verbatim is (ε, δ)-DP, so such a δ promises nothing. The server's
          default is far lower: a dataset's δ cap is ``min(1e-5, 1/(10 n))`` and a job takes a
          tenth of it unless told otherwise.
        * ``n_records`` ≥ :data:`MIN_RECORDS` (20) privacy units (field ``"dataset"``): below
          it the sampling rate (at least 1/4 of the data per step) is so high that the noise
          needed for any useful ε drowns the gradient. The server answers FAILED_PRECONDITION
          for a too-small dataset and INVALID_ARGUMENT for the other rules.

        Raises:
            TrainingConfigError: Naming the offending field.
        """
        if not (math.isfinite(self.target_epsilon) and self.target_epsilon > 0):
            raise TrainingConfigError("target_epsilon", "target_epsilon must be a number > 0")
        if not (0.0 < self.target_delta < 1.0):
            raise TrainingConfigError("target_delta", "target_delta must lie in (0, 1)")
        if n_records > 0 and self.target_delta >= 1.0 / n_records:
            raise TrainingConfigError(
                "target_delta",
                f"target_delta must be below 1/n = {1.0 / n_records:.3g} for n = {n_records} "
                "records, or a single record could be released in the clear",
            )
        if self.epochs <= 0:
            raise TrainingConfigError("epochs", "epochs must be a whole number ≥ 1")
        if self.max_physical_batch_size < 0:
            raise TrainingConfigError(
                "max_physical_batch_size", "max_physical_batch_size must be ≥ 0 (0: no limit)"
            )
        if self.preset not in PRESETS:
            raise TrainingConfigError("preset", f"unknown preset; choose one of {sorted(PRESETS)}")
        if self.grad_sample_mode not in GRAD_SAMPLE_MODES:
            raise TrainingConfigError(
                "grad_sample_mode", f"grad_sample_mode must be one of {GRAD_SAMPLE_MODES}"
            )
        if self.accountant not in ACCOUNTANTS:
            raise TrainingConfigError("accountant", f"accountant must be one of {ACCOUNTANTS}")
        if self.noise_multiplier is not None and not (
            math.isfinite(self.noise_multiplier) and self.noise_multiplier > 0
        ):
            raise TrainingConfigError("noise_multiplier", "noise_multiplier must be > 0")
        if self.batch_size <= 0 or self.max_grad_norm <= 0 or self.learning_rate <= 0:
            raise TrainingConfigError("batch_size", "batch_size, clipping norm and lr must be > 0")
        if n_records < MIN_RECORDS:
            raise TrainingConfigError(
                "dataset", f"DP training needs at least {MIN_RECORDS} records, got {n_records}"
            )


@dataclass(frozen=True)
class Progress:
    """A training progress event (no data content)."""

    step: int
    total_steps: int
    epoch: float
    loss: float
    epsilon: float
    elapsed_s: float


@dataclass
class TrainResult:
    """The trained generator and the facts its model card needs."""

    weights: bytes
    model_config: dict[str, Any]
    epsilon_spent: float
    card: dict[str, Any] = field(default_factory=dict)
    examples: list[Example] = field(default_factory=list)
    """The records trained on: after user-contribution bounding, the secretly chosen ones
    (a label release must count these, not choose again)."""


def encode_example(
    tokenizer: Tokenizer, text_ids: Sequence[int], prompt_ids: Sequence[int], max_len: int
) -> list[int]:
    """Lay out one record as ``prompt text EOS``, truncated to ``max_len + 1`` tokens.

    ``prompt_ids`` is ``tokenizer.prompt(label)``: the family's control-code layout.
    """
    seq = [*prompt_ids, *text_ids, tokenizer.eos_id]
    return seq[: max_len + 1]


class _TokenDataset(Dataset[torch.Tensor]):
    def __init__(self, seqs: list[list[int]]) -> None:
        self.seqs = [torch.tensor(s, dtype=torch.long) for s in seqs]

    def __len__(self) -> int:
        return len(self.seqs)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.seqs[i]


def _collate(pad_id: int) -> Callable[[list[torch.Tensor]], torch.Tensor]:
    """Pad each batch to its own longest record (fixed padding wastes most of the compute)."""

    def collate(batch: list[torch.Tensor]) -> torch.Tensor:
        return nn.utils.rnn.pad_sequence(batch, batch_first=True, padding_value=pad_id)

    return collate


def _per_record_loss(logits: torch.Tensor, targets: torch.Tensor, pad_id: int) -> torch.Tensor:
    """Mean token loss of each record over its own tokens, then the batch mean."""
    tok = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
    mask = (targets != pad_id).float()
    per_record = (tok * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
    return per_record.mean()


def initial_model(
    preset_name: str, tokenizer: Tokenizer
) -> tuple[TinyTransformerLM | HFLoRALM, dict[str, Any] | None]:
    """The model a run starts from: the preset's public base if it has one, else random.

    Returns:
        The model and the base's provenance (None when training from scratch).

    Raises:
        TrainingConfigError: The base was built with another tokenizer's vocabulary, or a
            Hugging Face base does not load.
    """
    preset = PRESETS[preset_name]
    if preset.architecture == "hf-lora":
        from privsynth.models.hf_lm import BaseLoadError, HFLoRAConfig, build_model

        assert preset.base is not None
        try:
            hf_model, _, provenance = build_model(
                HFLoRAConfig(base=preset.base, adaptation=preset.adaptation)
            )
        except BaseLoadError as exc:
            raise TrainingConfigError("preset", str(exc)) from exc
        return hf_model, provenance
    if preset.base is None:
        cfg = get_preset(preset.architecture, vocab_size=tokenizer.vocab_size)
        return TinyTransformerLM(cfg), None
    base = load_base(preset.base)
    cfg = TransformerConfig(**base.model_config)
    if cfg.vocab_size != tokenizer.vocab_size:
        raise TrainingConfigError("preset", "base model and tokenizer vocabularies differ")
    model = TinyTransformerLM(cfg)
    model.load_state_dict(
        torch.load(io.BytesIO(base.weights), map_location="cpu", weights_only=True)
    )
    return model, base.provenance


_CHECKPOINT_FORMAT = 2
"""2: the secret noise generator's state is saved (format 1 drew noise from a public seed)."""
_REPORT_COST_FACTOR = 4.0
"""Progress reports are at least this many times the ε computation's own cost apart."""


def _write_atomically(path: Path, data: bytes) -> None:
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


def _trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The parameters training changes (a frozen base is rebuilt from its source instead)."""
    return {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}


def _sampler_generator(loader: DataLoader[Any]) -> torch.Generator | None:
    """The Poisson sampler's own generator, if it has one (else it draws from torch's)."""
    gen = getattr(loader.batch_sampler, "generator", None)
    return gen if isinstance(gen, torch.Generator) else None


def _read_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint (tensors and plain containers only: never arbitrary pickles).

    Raises:
        CheckpointError: Unreadable or of an unknown format.
    """
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"checkpoint is unreadable ({type(exc).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != _CHECKPOINT_FORMAT:
        raise CheckpointError("checkpoint has an unknown format")
    return ckpt


def _with_fine_tuning(base: dict[str, Any] | None, cfg: Any) -> dict[str, Any] | None:
    """The card's base-model entry, naming how a Hugging Face base was fine-tuned."""
    if base is None or not hasattr(cfg, "adaptation"):
        return base
    return {**base, "fine_tuning": f"{cfg.adaptation} (top {cfg.trainable_layers} layers)"}


def _bounding_seed(checkpoint: Checkpointing | None, rank: int, world_size: int) -> int:
    """The secret seed of this run's choice of one record per user.

    Drawn from the OS for a fresh run; a resumed run must train on the very records its first
    part trained on (else a user could contribute one record before the resume and another
    after), so it takes the seed from its checkpoint, a private file. Under ``torchrun`` every
    rank must train on the same bounded corpus: rank 0's seed is broadcast.
    """
    seed: int | None = None
    if checkpoint is not None:
        for path in checkpoint.files(rank, world_size):
            if seed is None and path is not None and path.exists():
                with contextlib.suppress(CheckpointError, KeyError, TypeError, ValueError):
                    saved = _read_checkpoint(path).get("bounding_seed")
                    seed = None if saved is None else int(saved)
    if seed is None:
        seed = secrets.randbits(128)
    if world_size > 1:
        box: list[Any] = [seed]
        torch.distributed.broadcast_object_list(box, src=0)
        seed = int(box[0])
    return seed


def _mechanism_ran(
    engine: Any, optimizer: Any, loader: Any, *, delta: float, world_size: int
) -> dict[str, Any]:
    """The card's mechanism fields, read back from the objects that ran.

    σ, C and the expected batch from the optimizer, q from the Poisson loader, the noisy steps
    from the accountant's history (the events ε is computed from), δ as passed to the
    accountant. Nothing is copied from the config, so a card cannot state a mechanism other
    than the one that ran; if the accountant's history disagrees with the optimizer or the
    loader, the run's ε would describe another mechanism, and this raises instead.

    Raises:
        RuntimeError: The accountant's events differ from the optimizer's σ or the loader's q.
    """
    sigma = float(optimizer.noise_multiplier)
    rate = float(loader.sample_rate)
    history = list(engine.accountant.history)
    for event_sigma, event_rate, _ in history:
        if not (
            math.isclose(float(event_sigma), sigma, rel_tol=1e-12)
            and math.isclose(float(event_rate), rate, rel_tol=1e-12)
        ):
            raise RuntimeError("the accountant's events differ from the mechanism that ran")
    return {
        "noise_multiplier": sigma,
        "sample_rate": rate,
        "max_grad_norm": float(optimizer.max_grad_norm),
        "steps": sum(int(steps) for _, _, steps in history),
        "delta": float(delta),
        "expected_batch_size": round(float(optimizer.expected_batch_size) * world_size),
    }


def _any_rank(flags: Sequence[bool], world_size: int) -> list[bool]:
    """For each flag, whether it holds on any rank, in one all-reduce.

    Every rank must call this at the same point with as many flags.
    """
    if world_size == 1:
        return list(flags)
    values = torch.tensor([int(f) for f in flags])
    torch.distributed.all_reduce(values, op=torch.distributed.ReduceOp.MAX)
    return [bool(v) for v in values]


def _choose_checkpoint(
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
            ckpt = _read_checkpoint(path)
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


def train_dp(
    examples: Sequence[Example],
    *,
    config: DPConfig,
    tokenizer: Tokenizer,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    progress_every_s: float = 1.0,
    checkpoint: Checkpointing | None = None,
) -> TrainResult:
    """Train a fresh generator on ``examples`` with DP-SGD.

    Args:
        examples: Scrubbed records; the privacy unit is one record.
        config: Privacy target and training knobs (validated here).
        tokenizer: The public tokenizer; never fitted on ``examples``.
        on_progress: Called with step, loss and ε so far, at most every ``progress_every_s``.
        should_stop: Polled every step; when it returns True training stops.
        progress_every_s: Throttle for ``on_progress``. ε accounting is not free, so reports
            are also kept four times its measured cost apart (the last step always reports).
        checkpoint: Save resumable state periodically (and on stop); resume from
            ``checkpoint.path`` when it exists. See :class:`Checkpointing`.

    Returns:
        Weights, model config, ε actually spent and model-card fields.

    Raises:
        TrainingConfigError: Invalid parameters.
        TrainingInterrupted: ``should_stop`` fired or a step failed; carries the ε consumed.
        CheckpointError: The checkpoint to resume from is unreadable or from another run.
    """
    with warnings.catch_warnings():
        # Known, handled Opacus/torch notices: the secure-RNG advice (recorded on the card as
        # secure_rng=false), RDP's alpha-range hint, and the full-backward-hook notice.
        warnings.filterwarnings("ignore", message=".*Secure RNG turned off.*")
        warnings.filterwarnings("ignore", message=".*Optimal order is the largest alpha.*")
        warnings.filterwarnings("ignore", message=".*Full backward hook is firing.*")
        return _train_dp(
            examples,
            config=config,
            tokenizer=tokenizer,
            on_progress=on_progress,
            should_stop=should_stop,
            progress_every_s=progress_every_s,
            checkpoint=checkpoint,
        )


def _train_dp(
    examples: Sequence[Example],
    *,
    config: DPConfig,
    tokenizer: Tokenizer,
    on_progress: Callable[[Progress], None] | None,
    should_stop: Callable[[], bool] | None,
    progress_every_s: float,
    checkpoint: Checkpointing | None,
) -> TrainResult:
    from opacus import PrivacyEngine
    from opacus.data_loader import DPDataLoader

    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    world_size = torch.distributed.get_world_size() if distributed else 1
    rank = torch.distributed.get_rank() if distributed else 0
    user_level = any(e.user for e in examples)
    bounding_seed: int | None = None
    if user_level:
        bounding_seed = _bounding_seed(checkpoint, rank, world_size)
        examples = bound_user_contributions(examples, rng=random.Random(bounding_seed))
    n = len(examples)
    config.validate(n)
    # (The initial weights come from torch's global generator: they are public, no guarantee
    # rests on them. Every draw one does rests on comes from the secret generators below.)
    model, base = initial_model(config.preset, tokenizer)
    model_cfg = model.cfg
    text_ids = tokenizer.encode_batch([e.text for e in examples])
    prompts: dict[str | None, list[int]] = {}
    seqs = []
    for ex, ids in zip(examples, text_ids, strict=True):
        label = ex.label or None
        if label not in prompts:
            prompts[label] = tokenizer.prompt(label)
        seqs.append(encode_example(tokenizer, ids, prompts[label], model_cfg.max_len))
    # Shortest records first. Poisson sampling ignores order (each record is drawn
    # independently), but its batches list their indices in dataset order, and
    # BatchMemoryManager cuts them into physical batches in that order, each padded to its
    # own longest record: sorted, records of similar length share a physical batch and
    # little compute goes to padding.
    seqs.sort(key=len)

    batch_size = max(1, min(config.batch_size, n // 4))
    loader = DataLoader(
        _TokenDataset(seqs), batch_size=batch_size, collate_fn=_collate(tokenizer.pad_id)
    )
    train_module: nn.Module = model
    if distributed:
        # Data-parallel DP-SGD (torchrun): each rank Poisson-samples its shard at the same
        # rate, clipped gradients are summed across ranks and only one rank adds noise, so
        # the run is accounted exactly like a single process with that rate and step count.
        from opacus.distributed import (
            DifferentiallyPrivateDistributedDataParallel as DPDDP,  # noqa: N817
        )

        train_module = DPDDP(model)  # (broadcasts rank 0's initial weights)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    # Secret coin flips (see secret_rng): Poisson sampling and Gaussian noise each draw from a
    # generator seeded from the OS for this run and this rank (ranks sample their shards
    # independently; only rank 0 adds noise). Opacus gives ``secure_rng`` to the Poisson
    # sampler (without ``secure_mode``, which needs torchcsprng, its optimizer ignores it) and
    # ``noise_generator`` to the optimizer.
    sampler_rng, noise_rng = secret_generator(), secret_generator()
    engine = PrivacyEngine(accountant=config.accountant)
    engine.secure_rng = sampler_rng
    mode = "ghost" if config.grad_sample_mode == "auto" else config.grad_sample_mode
    criterion = nn.CrossEntropyLoss(ignore_index=tokenizer.pad_id)
    common: dict[str, Any] = {
        "module": train_module,
        "optimizer": optimizer,
        "data_loader": loader,
        "criterion": criterion,
        "max_grad_norm": config.max_grad_norm,
        "poisson_sampling": True,
        "grad_sample_mode": mode,
        "noise_generator": noise_rng,
    }
    if config.noise_multiplier is not None:
        made = engine.make_private(noise_multiplier=config.noise_multiplier, **common)
    else:
        made = engine.make_private_with_epsilon(
            target_epsilon=config.target_epsilon,
            target_delta=config.target_delta,
            epochs=config.epochs,
            **common,
        )
    if mode == "ghost":
        dp_model, dp_optimizer, dp_criterion, dp_loader = made
    else:
        dp_model, dp_optimizer, dp_loader = made
        dp_criterion = None
    assert isinstance(dp_loader, DPDataLoader)
    if _sampler_generator(dp_loader) is not sampler_rng:
        raise RuntimeError("Poisson sampler does not draw from the run's secret generator")
    # Floating-point-hardened noise (Opacus' secure-mode sampler: 2n draws summed), drawn from
    # our secret generator; Opacus' own secure_mode switch would also demand torchcsprng.
    dp_optimizer.secure_mode = True
    sample_rate = float(dp_loader.sample_rate)
    steps_per_epoch = len(dp_loader)
    total_steps = steps_per_epoch * config.epochs
    pad_id = tokenizer.pad_id
    memory = contextlib.ExitStack()
    train_loader: DataLoader[Any] = dp_loader
    if config.max_physical_batch_size > 0:
        # Poisson batches larger than this are split into physical batches whose clipped
        # gradients accumulate into one noisy step; an empty batch still yields one (empty)
        # physical batch, which takes the noise-only step below.
        from opacus.utils.batch_memory_manager import BatchMemoryManager

        train_loader = memory.enter_context(
            BatchMemoryManager(
                data_loader=dp_loader,
                max_physical_batch_size=config.max_physical_batch_size,
                optimizer=dp_optimizer,
            )
        )

    def spent() -> float:
        if not engine.accountant.history:
            return 0.0
        return float(engine.get_epsilon(config.target_delta))

    def accounted_steps() -> int:
        """Noisy steps the accountant counted (a split batch's partial passes are not)."""
        return sum(int(entry[2]) for entry in engine.accountant.history)

    started = time.monotonic()
    state = {
        "step": 0,
        "loss": math.nan,
        "last_report": -math.inf,
        "report_gap": progress_every_s,
        "last_save": started,
    }
    # The run's identity: a checkpoint of any other run (other data size, σ, q, steps) is
    # refused rather than resumed into a run whose accounting it would corrupt.
    run_key: dict[str, Any] = {
        "records": n,
        "sample_rate": sample_rate,
        "noise_multiplier": float(dp_optimizer.noise_multiplier),
        "total_steps": total_steps,
        "accountant": config.accountant,
        "max_grad_norm": config.max_grad_norm,
        "grad_sample_mode": mode,
        "preset": config.preset,
    }
    if world_size > 1:  # (absent for one process, so its older checkpoints still resume)
        run_key["world_size"] = world_size
    resume_rng: dict[str, Any] | None = None
    resumed_from: int | None = None
    ckpt = _choose_checkpoint(checkpoint, run_key, rank, world_size) if checkpoint else None
    if ckpt is not None:
        failure = ""
        saved = ckpt.get("model")
        if not isinstance(saved, dict) or set(saved) != set(_trainable_state(model)):
            failure = "checkpoint does not hold this model's trainable parameters"
        else:
            try:
                model.load_state_dict(saved, strict=False)
                dp_optimizer.load_state_dict(ckpt["optimizer"])
                engine.accountant.load_state_dict(ckpt["accountant"])
                state["step"] = int(ckpt["step"])
                state["loss"] = float(ckpt["loss"])
                state["last_report"] = -math.inf
                started = time.monotonic() - float(ckpt["elapsed_s"])
                resume_rng = {
                    "torch": ckpt["torch_rng"],
                    "sampler": ckpt["sampler_rng"],
                    "noise": ckpt["noise_rng"],
                }
            except (KeyError, RuntimeError, TypeError, ValueError) as exc:
                failure = f"checkpoint does not fit this run ({type(exc).__name__})"
            if not failure and accounted_steps() != int(state["step"]):
                failure = "checkpoint's accountant disagrees with its step count"
            if not failure and ckpt.get("bounding_seed") != bounding_seed:
                failure = "checkpoint was written for another choice of each user's record"
        # Every rank raises, or none does: a rank that trained on alone would hang the others.
        if _any_rank([bool(failure)], world_size)[0]:
            raise CheckpointError(failure or "another rank's checkpoint does not fit this run")
        resumed_from = int(state["step"])

    def save_checkpoint() -> None:
        assert checkpoint is not None
        gen = _sampler_generator(dp_loader)
        payload = {
            "format": _CHECKPOINT_FORMAT,
            "run": run_key,
            "rank": rank,
            "step": int(state["step"]),
            "loss": float(state["loss"]),
            "elapsed_s": time.monotonic() - started,
            "model": _trainable_state(model),
            "optimizer": dp_optimizer.state_dict(),
            "accountant": engine.accountant.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "sampler_rng": gen.get_state() if gen is not None else None,
            # Secret state: the file is private (0600) and deleted when the job ends.
            "noise_rng": noise_rng.get_state(),
            "bounding_seed": bounding_seed,
        }
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        latest, previous = checkpoint.files(rank, world_size)
        if previous is not None and latest.exists():
            os.replace(latest, previous)
        _write_atomically(latest, buffer.getvalue())
        state["last_save"] = time.monotonic()

    def checkpoint_and_stop(*, save_due: bool) -> None:
        """Save if due, stop if asked.

        Checked between logical steps only, so a saved state is never mid-batch; under
        ``torchrun`` all ranks act together (one all-reduce).
        """
        step = int(state["step"])
        stop = (should_stop is not None and should_stop()) or (
            checkpoint is not None and 0 < checkpoint.stop_at_step <= step
        )
        save_due, stop = _any_rank([save_due, stop], world_size)
        if checkpoint is not None and (save_due or (stop and checkpoint.on_stop)):
            save_checkpoint()
        if stop:
            raise TrainingInterrupted(epsilon_spent=spent(), steps=step, cancelled=True)

    def run_epoch(epoch: int) -> None:
        nonlocal resume_rng
        end = (epoch + 1) * steps_per_epoch
        if state["step"] >= end:
            return
        batches = iter(train_loader)
        if resume_rng is not None:
            # Creating the iterator draws the loader's base seed, as it did when the saved
            # epoch began; the sampler draws lazily. Restoring the saved RNG state after it
            # makes the remaining batches and noise those of the uninterrupted run.
            torch.set_rng_state(resume_rng["torch"])
            gen = _sampler_generator(dp_loader)
            if gen is not None and resume_rng["sampler"] is not None:
                gen.set_state(resume_rng["sampler"])
            noise_rng.set_state(resume_rng["noise"])
            resume_rng = None
        checkpoint_and_stop(save_due=False)
        for batch in batches:
            seq = batch[0] if isinstance(batch, list) else batch
            empty = seq.shape[0] == 0
            if empty:
                # An empty Poisson batch still takes a pure-noise step (skipping it would make
                # the released trajectory depend on whether the batch was empty). A dummy
                # record with zero weight contributes a zero clipped gradient; the optimizer
                # normalises by the expected batch size, so only noise is added.
                seq = torch.tensor([[*tokenizer.prompt(None), tokenizer.eos_id]])
            dp_optimizer.zero_grad(set_to_none=True)
            inputs, targets = seq[:, :-1].contiguous(), seq[:, 1:].contiguous()
            logits = dp_model(inputs)
            # Targets outside the model's output vocabulary (a public, data-independent cut;
            # see hf_lm) are not learned: they are masked like padding.
            targets = targets.masked_fill(targets >= logits.shape[-1], pad_id)
            targets = targets.masked_fill(prompt_positions(seq, tokenizer.prompt_end), pad_id)
            if dp_criterion is not None:
                b, t = targets.shape
                loss = dp_criterion(logits.reshape(b * t, -1), targets.reshape(-1), shape=(b, t))
            else:
                loss = _per_record_loss(logits, targets, pad_id)
            if empty:
                loss = loss * 0.0
            loss.backward()
            if not empty:
                value = float(loss.detach())
                ema = state["loss"]
                state["loss"] = value if math.isnan(ema) else 0.9 * ema + 0.1 * value
            dp_optimizer.step()
            if accounted_steps() == state["step"]:
                continue  # a physical part of a split Poisson batch: no noisy step yet
            state["step"] += 1
            step = int(state["step"])
            now = time.monotonic()
            if on_progress is not None and (
                now - state["last_report"] >= state["report_gap"] or step == total_steps
            ):
                state["last_report"] = now
                epsilon = spent()
                # PRV accounting takes ~0.5-1 s on 2 cores: never let reporting ε eat more
                # than a fifth of the training time.
                cost = time.monotonic() - now
                state["report_gap"] = max(progress_every_s, _REPORT_COST_FACTOR * cost)
                on_progress(
                    Progress(
                        step=step,
                        total_steps=total_steps,
                        epoch=epoch + (step - epoch * steps_per_epoch) / steps_per_epoch,
                        loss=state["loss"],
                        epsilon=epsilon,
                        elapsed_s=now - started,
                    )
                )
            if step >= end:
                break
            checkpoint_and_stop(
                save_due=checkpoint is not None
                and (
                    (checkpoint.every_steps > 0 and step % checkpoint.every_steps == 0)
                    or (checkpoint.every_s > 0 and now - state["last_save"] >= checkpoint.every_s)
                )
            )

    dp_model.train()
    try:
        for epoch in range(int(state["step"]) // steps_per_epoch, config.epochs):
            run_epoch(epoch)
    except TrainingInterrupted:
        raise
    except Exception as exc:
        raise TrainingInterrupted(
            epsilon_spent=spent(), steps=int(state["step"]), cancelled=False
        ) from exc
    finally:
        memory.close()
    step = int(state["step"])
    loss_ema = state["loss"]

    epsilon = spent()
    mechanism = _mechanism_ran(
        engine, dp_optimizer, dp_loader, delta=config.target_delta, world_size=world_size
    )
    if mechanism["steps"] != step:
        raise RuntimeError("the accountant counted another number of noisy steps than ran")
    buffer = io.BytesIO()
    # A frozen Hugging Face base is rebuilt from its package or path: store the adapters only
    # (for privsynth's own transformer every parameter trains, so this is its whole state).
    torch.save(_trainable_state(model), buffer)
    card = {
        "epsilon": epsilon,
        **mechanism,
        "target_epsilon": config.target_epsilon,
        "accountant": config.accountant,
        "max_physical_batch_size": config.max_physical_batch_size or None,
        "resumed_from_step": resumed_from,
        "epochs": config.epochs,
        "privacy_unit": "user" if user_level else "record",
        "records_per_user_cap": 1 if user_level else None,
        "training_records": n,
        "sampling": "poisson",
        "secure_rng": True,
        "noise_source": NOISE_SOURCE,
        "world_size": world_size,
        "grad_sample_mode": mode,
        "preset": config.preset,
        "base_model": _with_fine_tuning(base, model_cfg),
        "parameters": model.num_parameters(),
        "final_train_loss": loss_ema,
        "train_seconds": time.monotonic() - started,
        "label_conditioning": any(e.label for e in examples),
        "tokenizer": tokenizer.provenance,
    }
    return TrainResult(
        weights=buffer.getvalue(),
        model_config=model_cfg.to_dict(),
        epsilon_spent=epsilon,
        card=card,
        examples=list(examples),
    )
