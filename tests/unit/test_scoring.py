"""Per-record losses for membership inference: order, padding and labels do not change them."""

from __future__ import annotations

import math

import pytest
import torch
from corpus import fortune_examples
from privsynth.models.dp_train import Example, initial_model
from privsynth.models.family import tokenizer_for_preset
from privsynth.models.scoring import ScoringStopped, record_losses


def test_batched_losses_equal_one_at_a_time_in_input_order() -> None:
    torch.manual_seed(0)
    tok = tokenizer_for_preset("tiny")
    model, _ = initial_model("tiny", tok)
    examples = fortune_examples(12)
    batched = record_losses(model, tok, examples, batch_size=5)
    alone = [record_losses(model, tok, [e], batch_size=1)[0] for e in examples]
    assert batched == pytest.approx(alone, rel=1e-4)
    assert all(math.isfinite(x) and x > 0 for x in batched)
    # The label's prompt is part of the context: another label scores the same text otherwise.
    relabelled = [Example(text=e.text, label="zz-other") for e in examples[:3]]
    assert record_losses(model, tok, relabelled) != pytest.approx(batched[:3], rel=1e-6)


def test_scoring_stops_between_batches() -> None:
    tok = tokenizer_for_preset("tiny")
    model, _ = initial_model("tiny", tok)
    with pytest.raises(ScoringStopped):
        record_losses(model, tok, fortune_examples(4), batch_size=2, should_stop=lambda: True)
