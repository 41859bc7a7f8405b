"""Secret randomness: DP noise and sampling cannot be regenerated from public inputs.

The runs use a fixed σ and the tiny preset on 40 records (q = 0.2, 5 steps per epoch), so each
takes seconds. Nothing here replaces the secret generators (test_dp_checkpoint.py does, to
compare resumed runs bit for bit).
"""

from __future__ import annotations

import io
import random
from typing import Any

import pytest
import torch
from corpus import fortune_examples
from privsynth.models.dp_train import DPConfig, Example, TrainResult, bound_user_contributions
from privsynth.models.dp_train import train_dp as train
from privsynth.models.secret_rng import NOISE_SOURCE
from privsynth.models.tokenizer import load_tokenizer


def _cfg(**kw: object) -> DPConfig:
    base: dict[str, object] = {
        "target_epsilon": 4.0,
        "target_delta": 1e-5,
        "epochs": 1,
        "preset": "tiny",
        "batch_size": 8,
        "noise_multiplier": 1.0,
    }
    base.update(kw)
    return DPConfig(**base)  # type: ignore[arg-type]


def _weights(res: TrainResult) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = torch.load(io.BytesIO(res.weights), weights_only=True)
    return state


def test_two_jobs_with_equal_inputs_give_different_models() -> None:
    tok = load_tokenizer()
    # Even the process-wide generator reset to the same state before each run (what a fixed
    # seed used to do) leaves the two models different.
    torch.manual_seed(0)
    a = train(fortune_examples(40), config=_cfg(), tokenizer=tok)
    torch.manual_seed(0)
    b = train(fortune_examples(40), config=_cfg(), tokenizer=tok)
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    assert any(not torch.equal(wa[k], wb[k]) for k in wa)
    assert a.card["noise_source"] == NOISE_SOURCE and a.card["secure_rng"] is True
    assert a.card["steps"] == b.card["steps"] and a.epsilon_spent == b.epsilon_spent


def test_poisson_batches_and_noise_draw_from_secret_generators(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from opacus import PrivacyEngine
    from opacus.optimizers import optimizer as dp_optimizer
    from opacus.optimizers import optimizer_fast_gradient_clipping as ghost_optimizer

    used: dict[str, Any] = {}
    real_make_private = PrivacyEngine.make_private

    def capture(engine: PrivacyEngine, **kwargs: Any) -> Any:
        made = real_make_private(engine, **kwargs)
        used["noise_generator"] = kwargs.get("noise_generator")
        used["loader"] = made[-1]
        used["optimizer"] = made[1]
        return made

    seen: list[Any] = []
    real_noise = dp_optimizer._generate_noise

    def noise(*args: Any, **kwargs: Any) -> torch.Tensor:
        seen.append((kwargs.get("generator"), kwargs.get("secure_mode")))
        result: torch.Tensor = real_noise(*args, **kwargs)
        return result

    monkeypatch.setattr(PrivacyEngine, "make_private", capture)
    monkeypatch.setattr(dp_optimizer, "_generate_noise", noise)
    monkeypatch.setattr(ghost_optimizer, "_generate_noise", noise)
    train(fortune_examples(40), config=_cfg(), tokenizer=load_tokenizer())
    gen = used["noise_generator"]
    assert isinstance(gen, torch.Generator) and gen is not torch.default_generator
    sampler_gen = used["loader"].batch_sampler.generator
    assert isinstance(sampler_gen, torch.Generator) and sampler_gen is not gen
    # Every noise draw took the secret generator and the floating-point-hardened sampler.
    assert seen and all(g is gen and secure for g, secure in seen)


def test_the_card_states_the_mechanism_read_back_from_what_ran(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The optimizer that runs is made to differ from the config (clipping norm 0.5 instead of
    # the config's 1.0): the card must say what ran, not what was asked.
    from opacus import PrivacyEngine

    used: dict[str, Any] = {}
    real_make_private = PrivacyEngine.make_private

    def capture(engine: PrivacyEngine, **kwargs: Any) -> Any:
        made = real_make_private(engine, **kwargs)
        made[1].max_grad_norm = 0.5
        used.update(engine=engine, optimizer=made[1], loader=made[-1])
        return made

    monkeypatch.setattr(PrivacyEngine, "make_private", capture)
    config = _cfg(max_grad_norm=1.0, epochs=2)
    res = train(fortune_examples(40), config=config, tokenizer=load_tokenizer())
    card, opt, loader = res.card, used["optimizer"], used["loader"]
    history = used["engine"].accountant.history
    assert card["max_grad_norm"] == opt.max_grad_norm == 0.5
    assert card["noise_multiplier"] == opt.noise_multiplier
    assert card["sample_rate"] == loader.sample_rate
    assert card["steps"] == sum(steps for _, _, steps in history) == 2 * len(loader)
    assert card["expected_batch_size"] == opt.expected_batch_size
    assert all((s, q) == (opt.noise_multiplier, loader.sample_rate) for s, q, _ in history)
    assert card["delta"] == config.target_delta
    assert res.epsilon_spent == pytest.approx(
        used["engine"].accountant.get_epsilon(delta=card["delta"])
    )


def test_user_contribution_bounding_is_secret_and_per_user() -> None:
    examples = [Example(text=f"t{i}", user=f"u{i % 4}") for i in range(400)]
    choices = {tuple(e.text for e in bound_user_contributions(examples)) for _ in range(20)}
    assert len(choices) > 1  # not a fixed choice anyone can replay
    # A seeded choice (tests only) is reproducible; bounding a bounded list changes nothing.
    once = bound_user_contributions(examples, rng=random.Random(3))
    assert once == bound_user_contributions(examples, rng=random.Random(3))
    assert bound_user_contributions(once) == once
    # The records trained on are the chosen ones, for a label release to count.
    users = [
        Example(text=r.text, label=r.label, user=f"u{i % 25}")
        for i, r in enumerate(fortune_examples(75))
    ]
    res = train(users, config=_cfg(target_delta=1e-3), tokenizer=load_tokenizer())
    assert len(res.examples) == 25 == res.card["training_records"]
    assert {e.user for e in res.examples} == {f"u{i}" for i in range(25)}
