"""DP-SGD training of the generator with Opacus.

The privacy guarantee comes from three things done here and nowhere else: Poisson sampling of
each batch (Opacus' ``DPDataLoader``), per-sample gradient clipping to ``max_grad_norm``, and
Gaussian noise whose multiplier is calibrated by the named accountant so that the whole run
reaches ``target_epsilon`` at ``target_delta``. Each record's loss is averaged over its own tokens
only, so one record's length never changes another record's clipped gradient.
"""

from __future__ import annotations

import io
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from privsynth.models.presets import PRESETS, Base, load_base
from privsynth.models.tokenizer import PublicTokenizer
from privsynth.models.transformer import TinyTransformerLM, TransformerConfig, get_preset
from torch import nn
from torch.nn import functional as F  # noqa: N812
from torch.utils.data import DataLoader, Dataset

__all__ = [
    "ACCOUNTANTS",
    "MIN_RECORDS",
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
    examples: Sequence[Example], *, per_user: int = 1, seed: int = 0
) -> list[Example]:
    """Keep at most ``per_user`` records of each user, chosen at random.

    With one record per user, record-level DP-SGD on the result is user-level DP with the same
    (ε, δ): adding or removing a user changes at most one training record. Records without a
    user key count as users of their own. The choice is random (not, say, the longest record)
    so that which record survives does not depend on content.
    """
    import random

    rng = random.Random(seed)
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
        seed: Seed of the model initialisation.
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
    seed: int = 0

    def validate(self, n_records: int) -> None:
        """Reject parameters that cannot give a meaningful guarantee.

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
            raise TrainingConfigError("epochs", "epochs must be > 0")
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


def encode_example(
    tokenizer: PublicTokenizer, text_ids: Sequence[int], label_ids: Sequence[int], max_len: int
) -> list[int]:
    """Lay out one record as ``BOS label SEP text EOS``, truncated to ``max_len + 1`` tokens."""
    seq = [tokenizer.bos_id, *label_ids, tokenizer.sep_id, *text_ids, tokenizer.eos_id]
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
    preset_name: str, tokenizer: PublicTokenizer
) -> tuple[TinyTransformerLM, Base | None]:
    """The model a run starts from: the preset's public base if it has one, else random.

    Raises:
        TrainingConfigError: The base was built with another tokenizer's vocabulary.
    """
    preset = PRESETS[preset_name]
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
    return model, base


def train_dp(
    examples: Sequence[Example],
    *,
    config: DPConfig,
    tokenizer: PublicTokenizer,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    progress_every_s: float = 1.0,
) -> TrainResult:
    """Train a fresh generator on ``examples`` with DP-SGD.

    Args:
        examples: Scrubbed records; the privacy unit is one record.
        config: Privacy target and training knobs (validated here).
        tokenizer: The public tokenizer; never fitted on ``examples``.
        on_progress: Called with step, loss and ε so far, at most every ``progress_every_s``.
        should_stop: Polled every step; when it returns True training stops.
        progress_every_s: Throttle for ``on_progress`` (ε accounting is not free).

    Returns:
        Weights, model config, ε actually spent and model-card fields.

    Raises:
        TrainingConfigError: Invalid parameters.
        TrainingInterrupted: ``should_stop`` fired or a step failed; carries the ε consumed.
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
        )


def _train_dp(
    examples: Sequence[Example],
    *,
    config: DPConfig,
    tokenizer: PublicTokenizer,
    on_progress: Callable[[Progress], None] | None,
    should_stop: Callable[[], bool] | None,
    progress_every_s: float,
) -> TrainResult:
    from opacus import PrivacyEngine
    from opacus.data_loader import DPDataLoader

    user_level = any(e.user for e in examples)
    if user_level:
        examples = bound_user_contributions(examples, seed=config.seed)
    n = len(examples)
    config.validate(n)
    torch.manual_seed(config.seed)
    model, base = initial_model(config.preset, tokenizer)
    model_cfg = model.cfg
    text_ids = tokenizer.encode_batch([e.text for e in examples])
    label_cache: dict[str, list[int]] = {}
    seqs = []
    for ex, ids in zip(examples, text_ids, strict=True):
        label_ids: list[int] = []
        if ex.label:
            label_ids = label_cache.setdefault(ex.label, tokenizer.encode(ex.label))
        seqs.append(encode_example(tokenizer, ids, label_ids, model_cfg.max_len))

    batch_size = max(1, min(config.batch_size, n // 4))
    loader = DataLoader(
        _TokenDataset(seqs), batch_size=batch_size, collate_fn=_collate(tokenizer.pad_id)
    )
    world_size = 1
    train_module: nn.Module = model
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        # Data-parallel DP-SGD (torchrun): each rank Poisson-samples its shard at the same
        # rate, clipped gradients are summed across ranks and only one rank adds noise, so
        # the run is accounted exactly like a single process with that rate and step count.
        from opacus.distributed import (
            DifferentiallyPrivateDistributedDataParallel as DPDDP,  # noqa: N817
        )

        world_size = torch.distributed.get_world_size()
        train_module = DPDDP(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    engine = PrivacyEngine(accountant=config.accountant)
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
    sample_rate = float(dp_loader.sample_rate)
    steps_per_epoch = len(dp_loader)
    total_steps = steps_per_epoch * config.epochs
    pad_id = tokenizer.pad_id

    def spent() -> float:
        if not engine.accountant.history:
            return 0.0
        return float(engine.get_epsilon(config.target_delta))

    started = time.monotonic()
    state = {"step": 0, "loss": math.nan, "last_report": -math.inf}

    def run_epoch(epoch: int) -> None:
        for batch in dp_loader:
            if should_stop is not None and should_stop():
                raise TrainingInterrupted(
                    epsilon_spent=spent(), steps=int(state["step"]), cancelled=True
                )
            seq = batch[0] if isinstance(batch, list) else batch
            empty = seq.shape[0] == 0
            if empty:
                # An empty Poisson batch still takes a pure-noise step (skipping it would make
                # the released trajectory depend on whether the batch was empty). A dummy
                # record with zero weight contributes a zero clipped gradient; the optimizer
                # normalises by the expected batch size, so only noise is added.
                seq = torch.tensor([[tokenizer.bos_id, tokenizer.sep_id, tokenizer.eos_id]])
            dp_optimizer.zero_grad(set_to_none=True)
            inputs, targets = seq[:, :-1].contiguous(), seq[:, 1:].contiguous()
            logits = dp_model(inputs)
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
            state["step"] += 1
            step = int(state["step"])
            now = time.monotonic()
            if on_progress is not None and (
                now - state["last_report"] >= progress_every_s or step == total_steps
            ):
                state["last_report"] = now
                on_progress(
                    Progress(
                        step=step,
                        total_steps=total_steps,
                        epoch=epoch + (step - epoch * steps_per_epoch) / steps_per_epoch,
                        loss=state["loss"],
                        epsilon=spent(),
                        elapsed_s=now - started,
                    )
                )

    dp_model.train()
    try:
        for epoch in range(config.epochs):
            run_epoch(epoch)
    except TrainingInterrupted:
        raise
    except Exception as exc:
        raise TrainingInterrupted(
            epsilon_spent=spent(), steps=int(state["step"]), cancelled=False
        ) from exc
    step = int(state["step"])
    loss_ema = state["loss"]

    epsilon = spent()
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    card = {
        "epsilon": epsilon,
        "delta": config.target_delta,
        "target_epsilon": config.target_epsilon,
        "accountant": config.accountant,
        "noise_multiplier": float(dp_optimizer.noise_multiplier),
        "sample_rate": sample_rate,
        "expected_batch_size": batch_size,
        "max_grad_norm": config.max_grad_norm,
        "steps": step,
        "epochs": config.epochs,
        "privacy_unit": "user" if user_level else "record",
        "records_per_user_cap": 1 if user_level else None,
        "training_records": n,
        "sampling": "poisson",
        "secure_rng": False,
        "world_size": world_size,
        "grad_sample_mode": mode,
        "preset": config.preset,
        "base_model": base.provenance if base is not None else None,
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
    )
