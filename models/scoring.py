"""Each record's loss under a trained generator, scored exactly as DP training scores it.

A membership-inference test asks whether the model's loss on a record tells whether it was
trained on: the loss must then be the training objective itself — the mean token cross-entropy
over the record's text and its end token, after the prompt of its own label (the prompt is
never scored, see :func:`privsynth.models.family.prompt_positions`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch
from privsynth.models.device import module_device
from privsynth.models.dp_train import Example, encode_example
from privsynth.models.family import Tokenizer, prompt_positions
from torch import nn
from torch.nn import functional as F  # noqa: N812

if TYPE_CHECKING:
    from privsynth.models.hf_lm import HFLoRALM
    from privsynth.models.transformer import TinyTransformerLM

__all__ = ["ScoringStopped", "record_losses"]


class ScoringStopped(Exception):
    """``should_stop`` asked to stop between batches."""


@torch.inference_mode()
def record_losses(
    model: TinyTransformerLM | HFLoRALM,
    tokenizer: Tokenizer,
    examples: Sequence[Example],
    *,
    batch_size: int = 32,
    should_stop: Callable[[], bool] | None = None,
) -> list[float]:
    """Mean token loss of each example (in input order), under its label's prompt.

    Records are batched shortest first, so a batch pads to little more than its records.

    Raises:
        ScoringStopped: ``should_stop`` returned True between batches.
    """
    pad = tokenizer.pad_id
    prompts: dict[str | None, list[int]] = {}
    seqs: list[list[int]] = []
    for ex, ids in zip(examples, tokenizer.encode_batch([e.text for e in examples]), strict=True):
        label = ex.label or None
        if label not in prompts:
            prompts[label] = tokenizer.prompt(label)
        seqs.append(encode_example(tokenizer, ids, prompts[label], model.cfg.max_len))
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    losses = [0.0] * len(seqs)
    model.eval()
    device = module_device(model)
    for start in range(0, len(order), batch_size):
        if should_stop is not None and should_stop():
            raise ScoringStopped
        idx = order[start : start + batch_size]
        batch = nn.utils.rnn.pad_sequence(
            [torch.tensor(seqs[i]) for i in idx], batch_first=True, padding_value=pad
        ).to(device)
        logits = model(batch[:, :-1])
        # A model with a cut output vocabulary (hf_lm) is scored on the tokens it can emit.
        targets = batch[:, 1:].masked_fill(batch[:, 1:] >= logits.shape[-1], pad)
        targets = targets.masked_fill(prompt_positions(batch, tokenizer.prompt_end), pad)
        tok = F.cross_entropy(logits.float().transpose(1, 2), targets, reduction="none")
        mask = (targets != pad).float()
        per_record = (tok * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        for i, value in zip(idx, per_record.tolist(), strict=True):
            losses[i] = float(value)
    return losses
