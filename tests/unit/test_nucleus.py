"""Nucleus (top-p) filtering: the fast path over the most probable tokens is the full sort's."""

from __future__ import annotations

import pytest
import torch
from privsynth.models import sampling


def _by_full_sort(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    sorted_p, idx = probs.sort(dim=-1, descending=True)
    cum = sorted_p.cumsum(dim=-1)
    sorted_p[(cum - sorted_p) > top_p] = 0.0
    out = torch.zeros_like(probs).scatter_(-1, idx, sorted_p)
    return out / out.sum(dim=-1, keepdim=True)


@pytest.mark.parametrize("scale", [0.05, 1.0, 4.0, 12.0])
@pytest.mark.parametrize("top_p", [0.5, 0.95, 1.0])
def test_nucleus_equals_the_full_sort_whether_it_is_small_or_spans_the_vocabulary(
    scale: float, top_p: float
) -> None:
    # Flat rows (scale 0.05) need the full sort; peaked ones (12) stay in the fast path.
    generator = torch.Generator().manual_seed(3)
    probs = (torch.randn(6, 5000, generator=generator) * scale).softmax(dim=-1)
    fast = sampling._top_p_filter(probs.clone(), top_p)
    assert torch.allclose(fast, _by_full_sort(probs.clone(), top_p), atol=1e-7)
    kept = (fast > 0).sum(dim=-1)
    if scale >= 12.0 and top_p < 1.0:
        assert int(kept.max()) < sampling.NUCLEUS_CANDIDATES
    if scale <= 0.05 and top_p >= 0.95:
        assert int(kept.min()) > sampling.NUCLEUS_CANDIDATES
