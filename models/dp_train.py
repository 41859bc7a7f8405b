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
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from privsynth.models.checkpoints import (
    CHECKPOINT_FORMAT,
    CheckpointError,
    Checkpointing,
    any_rank,
    choose_checkpoint,
    read_checkpoint,
    write_atomically,
)
from privsynth.models.device import describe_device, resolve_device
from privsynth.models.family import Tokenizer, prompt_positions
from privsynth.models.label_prompt import DEFAULT_LABEL_PROMPT
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
    "DPTrainingRun",
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
        # The request template the records are laid out with is stored in the model config,
        # so that sampling asks exactly what training asked.
        template = getattr(tokenizer, "label_prompt", DEFAULT_LABEL_PROMPT)
        try:
            hf_model, _, provenance = build_model(
                HFLoRAConfig(
                    base=preset.base,
                    adaptation=preset.adaptation,
                    trainable_layers=preset.trainable_layers,
                    output_vocab=preset.output_vocab,
                    label_prompt=template,
                )
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


_REPORT_COST_FACTOR = 4.0
"""Progress reports are at least this many times the ε computation's own cost apart."""


def _trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The parameters training changes (a frozen base is rebuilt from its source instead).

    On the CPU, wherever the model ran, so stored weights and checkpoints name no device.
    """
    return {name: p.detach().cpu() for name, p in model.named_parameters() if p.requires_grad}


def _sampler_generator(loader: DataLoader[Any]) -> torch.Generator | None:
    """The Poisson sampler's own generator, if it has one (else it draws from torch's)."""
    gen = getattr(loader.batch_sampler, "generator", None)
    return gen if isinstance(gen, torch.Generator) else None


def _with_fine_tuning(base: dict[str, Any] | None, cfg: Any) -> dict[str, Any] | None:
    """The card's base-model entry, naming how a Hugging Face base was fine-tuned."""
    if base is None or not hasattr(cfg, "adaptation"):
        return base
    return {**base, "fine_tuning": f"{cfg.adaptation} (top {cfg.trainable_layers} layers)"}


def _label_prompt_entry(cfg: Any) -> dict[str, Any]:
    """The card's ``label_prompt``: the request template of a model that prompts in words."""
    template = getattr(cfg, "label_prompt", None)
    return {"label_prompt": template} if template else {}


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


def train_dp(
    examples: Sequence[Example],
    *,
    config: DPConfig,
    tokenizer: Tokenizer,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    progress_every_s: float = 1.0,
    checkpoint: Checkpointing | None = None,
    device: torch.device | str = "cpu",
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
        device: Where the model and its batches live (:mod:`privsynth.models.device`): a
            :class:`torch.device` or a setting (``auto``, ``cpu``, ``cuda``, ``cuda:N``).
            The mechanism (σ, q, C, steps, the secret noise) is the same on every device.

    Returns:
        Weights, model config, ε actually spent and model-card fields.

    Raises:
        TrainingConfigError: Invalid parameters.
        TrainingInterrupted: ``should_stop`` fired or a step failed; carries the ε consumed.
        CheckpointError: The checkpoint to resume from is unreadable or from another run.
        privsynth.models.device.DeviceUnavailableError: ``device`` names CUDA where there is
            none.
    """
    with warnings.catch_warnings():
        # Known, handled Opacus/torch notices: the secure-RNG advice (recorded on the card as
        # secure_rng=false), RDP's alpha-range hint, and the full-backward-hook notice.
        warnings.filterwarnings("ignore", message=".*Secure RNG turned off.*")
        warnings.filterwarnings("ignore", message=".*Optimal order is the largest alpha.*")
        warnings.filterwarnings("ignore", message=".*Full backward hook is firing.*")
        return DPTrainingRun(
            examples,
            config=config,
            tokenizer=tokenizer,
            on_progress=on_progress,
            should_stop=should_stop,
            progress_every_s=progress_every_s,
            checkpoint=checkpoint,
            device=device,
        ).run()


class DPTrainingRun:
    """One DP-SGD run: the objects that hold its state, and one method per thing it does.

    The state is explicit: the model and its DP wrappers (module, optimizer, Poisson loader,
    criterion), the accountant (``engine.accountant``), the run's secret generators
    (``sampler_rng``, ``noise_rng``; see :mod:`privsynth.models.secret_rng`), the seed of its
    secret choice of one record per user, the checkpoint policy, and the counters (``step``,
    ``loss_ema``, report and save times). The rules that a stated ε rests on have one home
    each here:

    * secret randomness: :meth:`_make_private` (generators) and :meth:`_agree_bounding_seed`;
    * resume: :meth:`_resume` restores weights, optimizer, accountant and counters before the
      first step and the generators' state as the first resumed epoch starts
      (:meth:`_restore_generators`), so the run continues its own noise stream;
    * what the card states: :meth:`result` reads the mechanism back from the objects that ran;
    * distributed agreement: every rank saves and stops at the same step
      (:meth:`_checkpoint_and_stop`, one all-reduce per step).

    Use :func:`train_dp`; a run is single-use.
    """

    def __init__(
        self,
        examples: Sequence[Example],
        *,
        config: DPConfig,
        tokenizer: Tokenizer,
        on_progress: Callable[[Progress], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        progress_every_s: float = 1.0,
        checkpoint: Checkpointing | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        self.device = resolve_device(device) if isinstance(device, str) else device
        self.config = config
        self.tokenizer = tokenizer
        self.on_progress = on_progress
        self.should_stop = should_stop
        self.progress_every_s = progress_every_s
        self.checkpoint = checkpoint
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        self.world_size = torch.distributed.get_world_size() if distributed else 1
        self.rank = torch.distributed.get_rank() if distributed else 0
        self.user_level = any(e.user for e in examples)
        self.bounding_seed: int | None = None
        if self.user_level:
            self.bounding_seed = self._agree_bounding_seed()
            examples = bound_user_contributions(examples, rng=random.Random(self.bounding_seed))
        self.examples = list(examples)
        self.n = len(self.examples)
        config.validate(self.n)
        # (The initial weights come from torch's global generator: they are public, no
        # guarantee rests on them. Every draw one does rests on comes from the secret
        # generators made in _make_private.)
        self.model, self.base = initial_model(config.preset, tokenizer)
        self.model.to(self.device)  # (built on the CPU; the batches follow in _train_step)
        self.batch_size = max(1, min(config.batch_size, self.n // 4))
        self.mode = "ghost" if config.grad_sample_mode == "auto" else config.grad_sample_mode
        self._make_private(self._loader(), distributed=distributed)
        self.steps_per_epoch = len(self.dp_loader)
        self.total_steps = self.steps_per_epoch * config.epochs
        self.memory = contextlib.ExitStack()
        self.train_loader: DataLoader[Any] = self.dp_loader
        if config.max_physical_batch_size > 0:
            # Poisson batches larger than this are split into physical batches whose clipped
            # gradients accumulate into one noisy step; an empty batch still yields one
            # (empty) physical batch, which takes the noise-only step.
            from opacus.utils.batch_memory_manager import BatchMemoryManager

            self.train_loader = self.memory.enter_context(
                BatchMemoryManager(
                    data_loader=self.dp_loader,
                    max_physical_batch_size=config.max_physical_batch_size,
                    optimizer=self.optimizer,
                )
            )
        self.started = time.monotonic()
        self.step = 0
        self.loss_ema = math.nan
        self.last_report = -math.inf
        self.report_gap = progress_every_s
        self.last_save = self.started
        self.resumed_from: int | None = None
        self._resume_rng: dict[str, Any] | None = None
        # The run's identity: a checkpoint of any other run (other data size, σ, q, steps) is
        # refused rather than resumed into a run whose accounting it would corrupt.
        self.run_key: dict[str, Any] = {
            "records": self.n,
            "sample_rate": self.sample_rate,
            "noise_multiplier": float(self.optimizer.noise_multiplier),
            "total_steps": self.total_steps,
            "accountant": config.accountant,
            "max_grad_norm": config.max_grad_norm,
            "grad_sample_mode": self.mode,
            "preset": config.preset,
        }
        if self.world_size > 1:  # (absent for one process, so its older checkpoints resume)
            self.run_key["world_size"] = self.world_size

    # -- set-up -------------------------------------------------------------------------------

    def _loader(self) -> DataLoader[torch.Tensor]:
        """The records as token sequences, shortest first, in a plain loader for Opacus."""
        tokenizer = self.tokenizer
        text_ids = tokenizer.encode_batch([e.text for e in self.examples])
        prompts: dict[str | None, list[int]] = {}
        seqs = []
        for ex, ids in zip(self.examples, text_ids, strict=True):
            label = ex.label or None
            if label not in prompts:
                prompts[label] = tokenizer.prompt(label)
            seqs.append(encode_example(tokenizer, ids, prompts[label], self.model.cfg.max_len))
        # Shortest records first. Poisson sampling ignores order (each record is drawn
        # independently), but its batches list their indices in dataset order, and
        # BatchMemoryManager cuts them into physical batches in that order, each padded to its
        # own longest record: sorted, records of similar length share a physical batch and
        # little compute goes to padding.
        seqs.sort(key=len)
        return DataLoader(
            _TokenDataset(seqs), batch_size=self.batch_size, collate_fn=_collate(tokenizer.pad_id)
        )

    def _make_private(self, loader: DataLoader[torch.Tensor], *, distributed: bool) -> None:
        """Wrap model, optimizer and loader with Opacus, drawing from secret generators."""
        from opacus import PrivacyEngine
        from opacus.data_loader import DPDataLoader

        config = self.config
        train_module: nn.Module = self.model
        if distributed:
            # Data-parallel DP-SGD (torchrun): each rank Poisson-samples its shard at the same
            # rate, clipped gradients are summed across ranks and only one rank adds noise, so
            # the run is accounted exactly like a single process with that rate and step count.
            from opacus.distributed import (
                DifferentiallyPrivateDistributedDataParallel as DPDDP,  # noqa: N817
            )

            train_module = DPDDP(self.model)  # (broadcasts rank 0's initial weights)
        optimizer = torch.optim.Adam(self.model.parameters(), lr=config.learning_rate)
        # Secret coin flips (see secret_rng): Poisson sampling and Gaussian noise each draw
        # from a generator seeded from the OS for this run and this rank (ranks sample their
        # shards independently; only rank 0 adds noise). Opacus gives ``secure_rng`` to the
        # Poisson sampler (without ``secure_mode``, which needs torchcsprng, its optimizer
        # ignores it) and ``noise_generator`` to the optimizer. The sampler draws batch
        # indices on the CPU; the noise is drawn on the parameters' device (Opacus calls
        # torch.normal there with our generator, which must live on the same device).
        self.sampler_rng = secret_generator()
        self.noise_rng = secret_generator(self.device)
        self.engine = PrivacyEngine(accountant=config.accountant)
        self.engine.secure_rng = self.sampler_rng
        common: dict[str, Any] = {
            "module": train_module,
            "optimizer": optimizer,
            "data_loader": loader,
            "criterion": nn.CrossEntropyLoss(ignore_index=self.tokenizer.pad_id),
            "max_grad_norm": config.max_grad_norm,
            "poisson_sampling": True,
            "grad_sample_mode": self.mode,
            "noise_generator": self.noise_rng,
        }
        if config.noise_multiplier is not None:
            made = self.engine.make_private(noise_multiplier=config.noise_multiplier, **common)
        else:
            try:
                # The PRV accountant's CDF evaluates exp(t) on both branches of an np.where:
                # the overflowing branch is discarded, so its warning is noise (and an error
                # wherever warnings are errors). errstate is per thread, unlike warning filters.
                with np.errstate(over="ignore", divide="ignore"):
                    made = self.engine.make_private_with_epsilon(
                        target_epsilon=config.target_epsilon,
                        target_delta=config.target_delta,
                        epochs=config.epochs,
                        **common,
                    )
            except ValueError:  # Opacus: "The privacy budget is too low."
                raise TrainingConfigError(
                    "target_epsilon",
                    "target_epsilon is too small to reach with any noise for this data size "
                    "and schedule; raise it, lower epochs or train on more records",
                ) from None
        self.dp_criterion: Any = None
        if self.mode == "ghost":
            self.dp_model, self.optimizer, self.dp_criterion, dp_loader = made
        else:
            self.dp_model, self.optimizer, dp_loader = made
        assert isinstance(dp_loader, DPDataLoader)
        self.dp_loader: DataLoader[Any] = dp_loader
        if _sampler_generator(dp_loader) is not self.sampler_rng:
            raise RuntimeError("Poisson sampler does not draw from the run's secret generator")
        # Floating-point-hardened noise (Opacus' secure-mode sampler: 2n draws summed), drawn
        # from our secret generator; Opacus' own secure_mode switch would also demand
        # torchcsprng.
        self.optimizer.secure_mode = True
        self.sample_rate = float(dp_loader.sample_rate)

    def _agree_bounding_seed(self) -> int:
        """The secret seed of this run's choice of one record per user.

        Drawn from the OS for a fresh run; a resumed run must train on the very records its
        first part trained on (else a user could contribute one record before the resume and
        another after), so it takes the seed from its checkpoint, a private file. Under
        ``torchrun`` every rank must train on the same bounded corpus: rank 0's seed is
        broadcast.
        """
        seed: int | None = None
        if self.checkpoint is not None:
            for path in self.checkpoint.files(self.rank, self.world_size):
                if seed is None and path is not None and path.exists():
                    with contextlib.suppress(CheckpointError, KeyError, TypeError, ValueError):
                        saved = read_checkpoint(path).get("bounding_seed")
                        seed = None if saved is None else int(saved)
        if seed is None:
            seed = secrets.randbits(128)
        if self.world_size > 1:
            box: list[Any] = [seed]
            torch.distributed.broadcast_object_list(box, src=0)
            seed = int(box[0])
        return seed

    # -- accounting ---------------------------------------------------------------------------

    def spent(self) -> float:
        """ε the accountant reports for the noisy steps taken so far."""
        if not self.engine.accountant.history:
            return 0.0
        with np.errstate(over="ignore", divide="ignore"):  # see _make_private
            return float(self.engine.get_epsilon(self.config.target_delta))

    def accounted_steps(self) -> int:
        """Noisy steps the accountant counted (a split batch's partial passes are not)."""
        return sum(int(entry[2]) for entry in self.engine.accountant.history)

    # -- checkpoints --------------------------------------------------------------------------

    def _resume(self) -> None:
        """Restore the chosen checkpoint (every rank together), or start afresh.

        Raises:
            CheckpointError: Unreadable, from another run, or not fitting this one.
        """
        if self.checkpoint is None:
            return
        ckpt = choose_checkpoint(self.checkpoint, self.run_key, self.rank, self.world_size)
        if ckpt is None:
            return
        failure = ""
        saved = ckpt.get("model")
        if not isinstance(saved, dict) or set(saved) != {
            name for name, p in self.model.named_parameters() if p.requires_grad
        }:
            failure = "checkpoint does not hold this model's trainable parameters"
        else:
            try:
                self.model.load_state_dict(saved, strict=False)
                self.optimizer.load_state_dict(ckpt["optimizer"])
                self.engine.accountant.load_state_dict(ckpt["accountant"])
                self.step = int(ckpt["step"])
                self.loss_ema = float(ckpt["loss"])
                self.last_report = -math.inf
                self.started = time.monotonic() - float(ckpt["elapsed_s"])
                self._resume_rng = {
                    "torch": ckpt["torch_rng"],
                    "sampler": ckpt["sampler_rng"],
                    "noise": ckpt["noise_rng"],
                    # (checkpoints from before GPU support drew noise on the CPU)
                    "noise_device": str(ckpt.get("noise_rng_device", "cpu")),
                }
            except (KeyError, RuntimeError, TypeError, ValueError) as exc:
                failure = f"checkpoint does not fit this run ({type(exc).__name__})"
            if not failure and self.accounted_steps() != self.step:
                failure = "checkpoint's accountant disagrees with its step count"
            if not failure and ckpt.get("bounding_seed") != self.bounding_seed:
                failure = "checkpoint was written for another choice of each user's record"
        # Every rank raises, or none does: a rank that trained on alone would hang the others.
        if any_rank([bool(failure)], self.world_size)[0]:
            raise CheckpointError(failure or "another rank's checkpoint does not fit this run")
        self.resumed_from = self.step

    def _restore_generators(self) -> None:
        """Continue the saved noise and sampling streams (called as the resumed epoch starts).

        Creating the epoch's iterator draws the loader's base seed, as it did when the saved
        epoch began; the sampler draws lazily. Restoring the saved state after it makes the
        remaining batches and noise those the interrupted run would have drawn: no draw is
        repeated and none is skipped.
        """
        saved = self._resume_rng
        if saved is None:
            return
        torch.set_rng_state(saved["torch"])
        gen = _sampler_generator(self.dp_loader)
        if gen is not None and saved["sampler"] is not None:
            gen.set_state(saved["sampler"])
        if saved["noise_device"] == self.noise_rng.device.type:
            self.noise_rng.set_state(saved["noise"])
        # Else the run moved between the CPU and a GPU (a CUDA generator's state does not fit
        # a CPU one): it keeps the fresh generator _make_private seeded from the OS. Its draws
        # are as secret and as independent of every earlier draw as the saved stream's would
        # have been, so the guarantee is unchanged; only the noise is not the interrupted
        # run's bit for bit.
        self._resume_rng = None

    def save_checkpoint(self) -> None:
        """Write this rank's resumable state (a private file; see :class:`Checkpointing`)."""
        checkpoint = self.checkpoint
        assert checkpoint is not None
        gen = _sampler_generator(self.dp_loader)
        payload = {
            "format": CHECKPOINT_FORMAT,
            "run": self.run_key,
            "rank": self.rank,
            "step": self.step,
            "loss": float(self.loss_ema),
            "elapsed_s": time.monotonic() - self.started,
            "model": _trainable_state(self.model),
            "optimizer": self.optimizer.state_dict(),
            "accountant": self.engine.accountant.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "sampler_rng": gen.get_state() if gen is not None else None,
            # Secret state: the file is private (0600) and deleted when the job ends.
            "noise_rng": self.noise_rng.get_state(),
            "noise_rng_device": self.noise_rng.device.type,
            "bounding_seed": self.bounding_seed,
        }
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        latest, previous = checkpoint.files(self.rank, self.world_size)
        if previous is not None and latest.exists():
            os.replace(latest, previous)
        write_atomically(latest, buffer.getvalue())
        self.last_save = time.monotonic()

    def _checkpoint_and_stop(self, *, save_due: bool) -> None:
        """Save if due, stop if asked.

        Checked between logical steps only, so a saved state is never mid-batch; under
        ``torchrun`` all ranks act together (one all-reduce).

        Raises:
            TrainingInterrupted: Asked to stop (``cancelled``), after saving if configured.
        """
        checkpoint = self.checkpoint
        stop = (self.should_stop is not None and self.should_stop()) or (
            checkpoint is not None and 0 < checkpoint.stop_at_step <= self.step
        )
        save_due, stop = any_rank([save_due, stop], self.world_size)
        if checkpoint is not None and (save_due or (stop and checkpoint.on_stop)):
            self.save_checkpoint()
        if stop:
            raise TrainingInterrupted(epsilon_spent=self.spent(), steps=self.step, cancelled=True)

    def _save_due(self, now: float) -> bool:
        checkpoint = self.checkpoint
        return checkpoint is not None and (
            (checkpoint.every_steps > 0 and self.step % checkpoint.every_steps == 0)
            or (checkpoint.every_s > 0 and now - self.last_save >= checkpoint.every_s)
        )

    # -- training -----------------------------------------------------------------------------

    def _train_step(self, batch: Any) -> bool:
        """Put one (physical) batch through the model; True when it completed a noisy step."""
        tokenizer = self.tokenizer
        pad_id = tokenizer.pad_id
        seq = batch[0] if isinstance(batch, list) else batch
        empty = seq.shape[0] == 0
        if empty:
            # An empty Poisson batch still takes a pure-noise step (skipping it would make the
            # released trajectory depend on whether the batch was empty). A dummy record with
            # zero weight contributes a zero clipped gradient; the optimizer normalises by the
            # expected batch size, so only noise is added.
            seq = torch.tensor([[*tokenizer.prompt(None), tokenizer.eos_id]])
        seq = seq.to(self.device, non_blocking=True)
        self.optimizer.zero_grad(set_to_none=True)
        inputs, targets = seq[:, :-1].contiguous(), seq[:, 1:].contiguous()
        logits = self.dp_model(inputs)
        # Targets outside the model's output vocabulary (a public, data-independent cut; see
        # hf_lm) are not learned: they are masked like padding.
        targets = targets.masked_fill(targets >= logits.shape[-1], pad_id)
        targets = targets.masked_fill(prompt_positions(seq, tokenizer.prompt_end), pad_id)
        if self.dp_criterion is not None:
            b, t = targets.shape
            loss = self.dp_criterion(logits.reshape(b * t, -1), targets.reshape(-1), shape=(b, t))
        else:
            loss = _per_record_loss(logits, targets, pad_id)
        if empty:
            loss = loss * 0.0
        loss.backward()
        if not empty:
            value = float(loss.detach())
            ema = self.loss_ema
            self.loss_ema = value if math.isnan(ema) else 0.9 * ema + 0.1 * value
        self.optimizer.step()
        if self.accounted_steps() == self.step:
            return False  # a physical part of a split Poisson batch: no noisy step yet
        self.step += 1
        return True

    def _report(self, epoch: int, now: float) -> None:
        """Tell ``on_progress`` (throttled: ε accounting is not free)."""
        if self.on_progress is None or not (
            now - self.last_report >= self.report_gap or self.step == self.total_steps
        ):
            return
        self.last_report = now
        epsilon = self.spent()
        # PRV accounting takes ~0.5-1 s on 2 cores: never let reporting ε eat more than a
        # fifth of the training time.
        cost = time.monotonic() - now
        self.report_gap = max(self.progress_every_s, _REPORT_COST_FACTOR * cost)
        spe = self.steps_per_epoch
        self.on_progress(
            Progress(
                step=self.step,
                total_steps=self.total_steps,
                epoch=epoch + (self.step - epoch * spe) / spe,
                loss=self.loss_ema,
                epsilon=epsilon,
                elapsed_s=now - self.started,
            )
        )

    def _run_epoch(self, epoch: int) -> None:
        end = (epoch + 1) * self.steps_per_epoch
        if self.step >= end:
            return
        batches = iter(self.train_loader)
        self._restore_generators()
        self._checkpoint_and_stop(save_due=False)
        for batch in batches:
            if not self._train_step(batch):
                continue
            now = time.monotonic()
            self._report(epoch, now)
            if self.step >= end:
                break
            self._checkpoint_and_stop(save_due=self._save_due(now))

    def run(self) -> TrainResult:
        """Resume if there is a checkpoint, train the remaining steps, return the result.

        Raises:
            CheckpointError: The checkpoint cannot be resumed (before any step).
            TrainingInterrupted: Stopped or failed; carries the ε consumed.
        """
        self._resume()
        self.dp_model.train()
        try:
            for epoch in range(self.step // self.steps_per_epoch, self.config.epochs):
                self._run_epoch(epoch)
        except TrainingInterrupted:
            raise
        except Exception as exc:
            raise TrainingInterrupted(
                epsilon_spent=self.spent(), steps=self.step, cancelled=False
            ) from exc
        finally:
            self.memory.close()
        return self.result()

    def result(self) -> TrainResult:
        """Weights, model config, ε and the card, the mechanism read back from what ran.

        Raises:
            RuntimeError: The accountant's events disagree with the optimizer or the loader.
        """
        config = self.config
        epsilon = self.spent()
        mechanism = _mechanism_ran(
            self.engine,
            self.optimizer,
            self.dp_loader,
            delta=config.target_delta,
            world_size=self.world_size,
        )
        if mechanism["steps"] != self.step:
            raise RuntimeError("the accountant counted another number of noisy steps than ran")
        buffer = io.BytesIO()
        # A frozen Hugging Face base is rebuilt from its package or path: store the adapters
        # only (for privsynth's own transformer every parameter trains: its whole state).
        torch.save(_trainable_state(self.model), buffer)
        card = {
            "epsilon": epsilon,
            **mechanism,
            "target_epsilon": config.target_epsilon,
            "accountant": config.accountant,
            "max_physical_batch_size": config.max_physical_batch_size or None,
            "resumed_from_step": self.resumed_from,
            "epochs": config.epochs,
            "privacy_unit": "user" if self.user_level else "record",
            "records_per_user_cap": 1 if self.user_level else None,
            "training_records": self.n,
            "sampling": "poisson",
            "secure_rng": True,
            "noise_source": NOISE_SOURCE,
            "world_size": self.world_size,
            "device": describe_device(self.device),
            "grad_sample_mode": self.mode,
            "preset": config.preset,
            "base_model": _with_fine_tuning(self.base, self.model.cfg),
            "parameters": self.model.num_parameters(),
            "final_train_loss": self.loss_ema,
            "train_seconds": time.monotonic() - self.started,
            "label_conditioning": any(e.label for e in self.examples),
            "tokenizer": self.tokenizer.provenance,
            **_label_prompt_entry(self.model.cfg),
        }
        return TrainResult(
            weights=buffer.getvalue(),
            model_config=self.model.cfg.to_dict(),
            epsilon_spent=epsilon,
            card=card,
            examples=list(self.examples),
        )
