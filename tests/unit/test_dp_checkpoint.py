"""Resumable DP training (checkpoints carry the accountant) and physical-batch splitting.

A fixed σ keeps these runs fast (no calibration); every run is the tiny preset on 40 records
with an expected batch of 8 (q = 0.2, 5 steps per epoch).

Every run draws its noise and batches from generators seeded secretly from the OS, so two runs
never match. To compare a resumed run with an uninterrupted one bit for bit, this module (and
only this test module) replaces the secret seeds with the same fixed ones in every run; that
the production generators are secret is tested in test_secret_noise.py.
"""

from __future__ import annotations

import io
import itertools
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from corpus import fortune_examples
from privsynth.models import dp_train
from privsynth.models.dp_train import (
    CheckpointError,
    Checkpointing,
    DPConfig,
    Progress,
    TrainingConfigError,
    TrainingInterrupted,
    TrainResult,
    train_dp,
)
from privsynth.models.tokenizer import load_tokenizer

STEPS_PER_EPOCH = 5


def _cfg(**kw: object) -> DPConfig:
    base: dict[str, object] = {
        "target_epsilon": 4.0,
        "target_delta": 1e-5,
        "epochs": 2,
        "preset": "tiny",
        "batch_size": 8,
        "noise_multiplier": 1.0,
    }
    base.update(kw)
    return DPConfig(**base)  # type: ignore[arg-type]


def _weights(res: TrainResult) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = torch.load(io.BytesIO(res.weights), weights_only=True)
    return state


def _same_weights(a: TrainResult, b: TrainResult, atol: float = 0.0) -> bool:
    wa, wb = _weights(a), _weights(b)
    return wa.keys() == wb.keys() and all(torch.allclose(wa[k], wb[k], atol=atol) for k in wa)


def _replayable_generator(seeds: Iterator[int]) -> Any:
    def factory(device: torch.device | str = "cpu") -> torch.Generator:
        generator = torch.Generator(device=device)
        generator.manual_seed(next(seeds))
        return generator

    return factory


@pytest.fixture(scope="module", autouse=True)
def replayable_secrets() -> Iterator[None]:
    """Test-only: each run's (sampler, noise) generators get seeds 11 and 12.

    The (public) initial weights come from torch's global generator, which is reset first too.
    """
    real_initial_model = dp_train.initial_model

    def seeded_initial_model(*args: Any, **kwargs: Any) -> Any:
        torch.manual_seed(0)
        return real_initial_model(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            dp_train, "secret_generator", _replayable_generator(itertools.cycle([11, 12]))
        )
        patch.setattr(dp_train, "initial_model", seeded_initial_model)
        yield


@pytest.fixture(scope="module")
def uninterrupted() -> TrainResult:
    return train_dp(fortune_examples(40), config=_cfg(), tokenizer=load_tokenizer())


def test_resume_after_stop_equals_the_uninterrupted_run(
    uninterrupted: TrainResult, tmp_path: Path
) -> None:
    ckpt = Checkpointing(path=tmp_path / "job" / "checkpoint.pt", every_s=0)
    calls = {"n": 0}

    def stop_after_three() -> bool:
        calls["n"] += 1
        return calls["n"] > 3

    with pytest.raises(TrainingInterrupted) as exc:
        train_dp(
            fortune_examples(40),
            config=_cfg(),
            tokenizer=load_tokenizer(),
            should_stop=stop_after_three,
            checkpoint=ckpt,
        )
    assert exc.value.cancelled and exc.value.steps == 3
    assert 0 < exc.value.epsilon_spent < uninterrupted.epsilon_spent
    assert ckpt.path.exists()
    assert not list(ckpt.path.parent.glob(".*.tmp"))  # written atomically, nothing left over
    # It holds the secret generators' state: private to the server's user.
    assert stat.S_IMODE(ckpt.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(ckpt.path.parent.stat().st_mode) == 0o700

    events: list[Progress] = []
    resumed = train_dp(
        fortune_examples(40),
        config=_cfg(),
        tokenizer=load_tokenizer(),
        checkpoint=ckpt,
        on_progress=events.append,
        progress_every_s=3600.0,  # the first step and the last
    )
    # Neither forgotten nor double-counted: the steps and ε of one uninterrupted run.
    assert resumed.card["steps"] == uninterrupted.card["steps"] == 2 * STEPS_PER_EPOCH
    assert resumed.epsilon_spent == uninterrupted.epsilon_spent
    assert resumed.card["resumed_from_step"] == 3
    assert uninterrupted.card["resumed_from_step"] is None
    assert [e.step for e in events] == [4, 2 * STEPS_PER_EPOCH]
    assert exc.value.epsilon_spent < events[0].epsilon < events[1].epsilon
    # Model, optimizer and RNG state are restored too: the very same weights come out.
    assert _same_weights(resumed, uninterrupted)


def test_resume_after_a_crash_retakes_the_steps_after_the_checkpoint(
    uninterrupted: TrainResult, tmp_path: Path
) -> None:
    # Checkpoints every 4 steps; the run dies after step 7 (an epoch boundary lies between).
    ckpt = Checkpointing(path=tmp_path / "checkpoint.pt", every_s=0, every_steps=4)
    calls = {"n": 0}

    def crash_after_seven() -> bool:
        calls["n"] += 1
        if calls["n"] > 7:
            raise OSError("disk gone")
        return False

    with pytest.raises(TrainingInterrupted) as exc:
        train_dp(
            fortune_examples(40),
            config=_cfg(),
            tokenizer=load_tokenizer(),
            checkpoint=ckpt,
            should_stop=crash_after_seven,
        )
    assert not exc.value.cancelled and exc.value.steps == 7
    resumed = train_dp(
        fortune_examples(40), config=_cfg(), tokenizer=load_tokenizer(), checkpoint=ckpt
    )
    assert resumed.card["steps"] == uninterrupted.card["steps"]
    assert resumed.epsilon_spent == uninterrupted.epsilon_spent
    assert _same_weights(resumed, uninterrupted)


def test_a_checkpoint_of_another_run_is_refused(tmp_path: Path) -> None:
    ckpt = Checkpointing(path=tmp_path / "checkpoint.pt", every_s=0)
    with pytest.raises(TrainingInterrupted):
        train_dp(
            fortune_examples(40),
            config=_cfg(),
            tokenizer=load_tokenizer(),
            should_stop=lambda: True,
            checkpoint=ckpt,
        )
    with pytest.raises(CheckpointError):
        train_dp(
            fortune_examples(40),
            config=_cfg(noise_multiplier=2.0),
            tokenizer=load_tokenizer(),
            checkpoint=ckpt,
        )
    ckpt.path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        train_dp(fortune_examples(40), config=_cfg(), tokenizer=load_tokenizer(), checkpoint=ckpt)


@pytest.mark.parametrize("mode", ["ghost", "hooks"])
def test_physical_batch_splitting_keeps_steps_and_epsilon(
    uninterrupted: TrainResult, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Poisson batches of ~8 put through the model at most 3 at a time: the clipped gradients
    # of the parts add up to one noisy step, so steps, ε and (up to rounding) the weights match.
    seen: list[int] = []
    real_initial_model = dp_train.initial_model

    def watched_initial_model(*args: Any, **kwargs: Any) -> Any:
        model, base = real_initial_model(*args, **kwargs)
        model.register_forward_pre_hook(lambda _m, inputs: seen.append(inputs[0].shape[0]))
        return model, base

    monkeypatch.setattr(dp_train, "initial_model", watched_initial_model)
    split = train_dp(
        fortune_examples(40),
        config=_cfg(max_physical_batch_size=3, grad_sample_mode=mode),
        tokenizer=load_tokenizer(),
    )
    assert split.card["steps"] == uninterrupted.card["steps"]
    assert split.card["max_physical_batch_size"] == 3
    assert split.epsilon_spent == uninterrupted.epsilon_spent
    assert max(seen) <= 3 and len(seen) > split.card["steps"]  # batches were really split
    if mode == "ghost":
        assert _same_weights(split, uninterrupted, atol=1e-4)


def test_physical_batch_splitting_keeps_empty_batch_noise_steps() -> None:
    # An expected batch of 1 out of 20 records: about a third of the Poisson batches are
    # empty, and each must still be a counted noise-only step when batches are split.
    res = train_dp(
        fortune_examples(20),
        config=_cfg(batch_size=1, epochs=1, max_physical_batch_size=1),
        tokenizer=load_tokenizer(),
    )
    assert res.card["steps"] == 20


@pytest.mark.parametrize(
    ("kw", "n", "field"),
    [
        ({"epochs": 0}, 40, "epochs"),
        ({"epochs": -3}, 40, "epochs"),
        ({"max_physical_batch_size": -1}, 40, "max_physical_batch_size"),
        ({}, 19, "dataset"),
        ({}, 0, "dataset"),
    ],
)
def test_bad_schedules_and_corpora_name_the_field(
    kw: dict[str, object], n: int, field: str
) -> None:
    with pytest.raises(TrainingConfigError) as exc:
        _cfg(target_delta=1e-6, **kw).validate(n)
    assert exc.value.field == field


def test_resume_continues_the_noise_stream_without_reuse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every noise tensor each run draws, in order: the stopped run's and the resumed run's
    # draws together are exactly the uninterrupted run's, none repeated.
    from opacus.optimizers import optimizer as dp_optimizer
    from opacus.optimizers import optimizer_fast_gradient_clipping as ghost_optimizer

    draws: list[torch.Tensor] = []
    real = dp_optimizer._generate_noise

    def recording(*args: Any, **kwargs: Any) -> torch.Tensor:
        noise: torch.Tensor = real(*args, **kwargs)
        draws.append(noise.clone())
        return noise

    monkeypatch.setattr(dp_optimizer, "_generate_noise", recording)
    monkeypatch.setattr(ghost_optimizer, "_generate_noise", recording)
    train_dp(fortune_examples(40), config=_cfg(), tokenizer=load_tokenizer())
    whole = list(draws)
    draws.clear()
    ckpt = Checkpointing(path=tmp_path / "checkpoint.pt", every_s=0)
    calls = {"n": 0}

    def stop_after_three() -> bool:
        calls["n"] += 1
        return calls["n"] > 3

    with pytest.raises(TrainingInterrupted):
        train_dp(
            fortune_examples(40),
            config=_cfg(),
            tokenizer=load_tokenizer(),
            should_stop=stop_after_three,
            checkpoint=ckpt,
        )
    before = len(draws)
    train_dp(fortune_examples(40), config=_cfg(), tokenizer=load_tokenizer(), checkpoint=ckpt)
    assert 0 < before < len(draws) == len(whole)
    assert all(torch.equal(a, b) for a, b in zip(draws, whole, strict=True))
    flat = [d.flatten()[:8].tolist() for d in draws if d.numel() >= 8]
    assert len({tuple(x) for x in flat}) == len(flat)  # no noise drawn twice
