"""Sampling from a trained generator: temperature and nucleus (top-p), seeded.

Sampling reads only the model, so everything here is post-processing of a DP release and keeps
its guarantee. The same seed and parameters give the same records on the same kind of device: a
fresh ``torch.Generator`` is seeded per call on the model's device (CUDA's generator is another
algorithm than the CPU's, so a seed reproduces a CPU run on the CPU, a GPU run on a GPU) and
nothing else draws from it. Every tensor made here follows the model's device.
"""

from __future__ import annotations

import io
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import torch
from privsynth.models.device import module_device
from privsynth.models.family import Tokenizer
from privsynth.models.transformer import TinyTransformerLM, TransformerConfig
from privsynth.models.word_cap import WordCap

if TYPE_CHECKING:
    from privsynth.models.hf_lm import HFLoRALM

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "Sample",
    "SamplingParams",
    "default_max_tokens",
    "label_topic",
    "load_model",
    "sample",
    "sample_labels",
    "sample_per_label",
]

DEFAULT_MAX_TOKENS = 64
"""New tokens per record when neither the request nor the model says otherwise."""


def default_max_tokens(model_config: dict[str, Any]) -> int:
    """New tokens per record for a request that names no length: the model's own, if any.

    A guided model's decoding may carry ``sample_tokens`` (the length its preset was measured
    at); everything else, and a model stored before the field existed, gets
    :data:`DEFAULT_MAX_TOKENS`.
    """
    decoding = model_config.get("decoding") or {}
    tokens = decoding.get("sample_tokens") if isinstance(decoding, dict) else None
    return int(tokens) if isinstance(tokens, int) and tokens > 0 else DEFAULT_MAX_TOKENS


@dataclass(frozen=True)
class Sample:
    """One generated record: its text and the label (control code) it was generated under."""

    text: str
    label: str | None


@dataclass(frozen=True, kw_only=True)
class SamplingParams:
    """How to draw records.

    Attributes:
        count: Number of records.
        temperature: Softmax temperature, > 0.
        top_p: Nucleus mass in (0, 1].
        max_tokens: Cap on generated tokens per record.
        seed: Seed of the sampler.
        label: Optional control code to condition on.
        guidance: Classifier-free guidance weight w ≥ 0 on the label (0: off). Each token is
            drawn from ``log p(x|label) + w · (log p(x|label) − log p(x))``, the unlabelled
            prompt giving p(x): it pushes text towards what is specific to the label, which DP
            fine-tuning blurs (its noise erases per-label signal first). Pure post-processing
            of the released model, so it costs no privacy; it doubles the sampling compute.
            What is most specific to the labelled prompt is the label's own words, so guidance
            never boosts the label's tokens, and a record that is nothing but the label is
            drawn again (:func:`sample`).
    """

    count: int
    temperature: float = 1.0
    top_p: float = 0.95
    max_tokens: int = DEFAULT_MAX_TOKENS
    seed: int = 0
    label: str | None = None
    guidance: float = 0.0


def load_model(weights: bytes, model_config: dict[str, Any]) -> TinyTransformerLM:
    """Rebuild a generator from stored weights and its config, in eval mode."""
    model = TinyTransformerLM(TransformerConfig(**model_config))
    state = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    model.eval()
    return model


NUCLEUS_CANDIDATES = 1024
"""Most probable tokens looked at first for the nucleus; the full sort runs only when a row's
nucleus is larger. Sorting a 49k-token vocabulary took ~1 s per step for a batch of 64 on 2 busy
cores, ``topk(1024)`` ~0.1 s; the result is the same nucleus."""


def _top_p_filter(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the smallest set of most probable tokens whose mass reaches ``top_p``; renormalise.

    A token is kept when the mass of the tokens before it (in descending order) is at most
    ``top_p``. When every row's nucleus lies within its :data:`NUCLEUS_CANDIDATES` most
    probable tokens (the mass before the first left out exceeds ``top_p``), those decide.
    """
    k = min(NUCLEUS_CANDIDATES, probs.shape[-1])
    sorted_p, idx = probs.topk(k, dim=-1)
    cum = sorted_p.cumsum(dim=-1)
    if k < probs.shape[-1] and not bool((cum[:, -1] > top_p).all()):
        sorted_p, idx = probs.sort(dim=-1, descending=True)
        cum = sorted_p.cumsum(dim=-1)
    sorted_p[(cum - sorted_p) > top_p] = 0.0
    filtered = torch.zeros_like(probs).scatter_(-1, idx, sorted_p)
    return filtered / filtered.sum(dim=-1, keepdim=True)


MAX_REDRAWS = 4
"""Batches drawn again at most, per ``count`` requested, for records that were only the label."""


def _label_token_ids(tokenizer: Tokenizer, label: str) -> list[int]:
    """Token ids of ``label`` as written: as is, capitalised, lower case, after a space."""
    forms = {label, label.lower(), label.capitalize()}
    ids: set[int] = set()
    for form in forms:
        ids.update(tokenizer.encode(form))
        ids.update(tokenizer.encode(" " + form))
    special = {tokenizer.eos_id, tokenizer.bos_id, tokenizer.pad_id, tokenizer.sep_id}
    return sorted(ids - special)


def _only_label(text: str, label: str) -> bool:
    """Whether a record says nothing but its label (" negative", "Positive.", "'sports'")."""
    bare = "".join(c for c in text.casefold() if c.isalnum())
    return bare == "".join(c for c in label.casefold() if c.isalnum())


def _fit_bias(logit_bias: torch.Tensor, width: int, eos: int) -> torch.Tensor:
    """The bias cut or zero-padded to the model's output width; end-of-text is never biased."""
    bias = torch.zeros(width, device=logit_bias.device)
    n = min(width, int(logit_bias.shape[0]))
    bias[:n] = logit_bias[:n].float()
    if 0 <= eos < width:
        bias[eos] = 0.0
    return bias


def _draw_keywords(
    plan: torch.Tensor, rows: int, *, words: int, width: int, generator: torch.Generator
) -> torch.Tensor | None:
    """``words`` keyword ids per row, drawn without replacement from ``plan`` (None: none).

    Each record gets its own keywords from its label's distribution, so the records together
    cover the label's vocabulary in proportion instead of all writing its top words. Ids at or
    past ``width`` (the model's output vocabulary) are never drawn.
    """
    q = plan.float()[:width].clamp(min=0.0)
    k = min(words, int((q > 0).sum()))
    if k == 0:
        return None
    q = q.to(generator.device)
    return torch.multinomial(q.expand(rows, -1), k, replacement=False, generator=generator)


def _named_words(tokenizer: Tokenizer, picks: list[int]) -> list[str]:
    """The keywords a request names: each picked token as a word, once (case-blind)."""
    seen: set[str] = set()
    out: list[str] = []
    for token in picks:
        word = tokenizer.decode([token]).strip()
        if word and word.casefold() not in seen:
            seen.add(word.casefold())
            out.append(word)
    return out


def label_topic(tokenizer: Tokenizer, plan: torch.Tensor, *, words: int, width: int) -> str:
    """The label named by its ``words`` most probable released words ("art, painting, music").

    Words are taken in order of probability, once each (case-blind), skipping tokens that are
    no word (punctuation, digits alone); "" when the distribution holds none.
    """
    q = plan.float()[:width]
    k = min(int((q > 0).sum()), 8 * words)
    if k == 0:
        return ""
    top = torch.topk(q, k).indices.tolist()
    picked = [w for w in _named_words(tokenizer, top) if any(c.isalpha() for c in w)]
    return ", ".join(picked[:words])


_TOKEN_FLAGS: dict[int, tuple[Tokenizer, torch.Tensor, torch.Tensor]] = {}
"""Per tokenizer (by identity, kept alive here): :func:`_token_flags`."""


def _token_flags(tokenizer: Tokenizer, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per token id below ``width``: whether it ends a clause, and whether it continues a word.

    A token ends a clause when its text ends in ``. , ; : ! ?`` or a newline; it continues a
    word when its text starts with a letter or digit (no space before it). One pass over the
    vocabulary per tokenizer and process.
    """
    held = _TOKEN_FLAGS.get(id(tokenizer))
    if held is not None and held[0] is tokenizer and held[1].numel() >= width:
        return held[1][:width], held[2][:width]
    ends = torch.zeros(width, dtype=torch.bool)
    continues = torch.zeros(width, dtype=torch.bool)
    for token in range(width):
        text = tokenizer.decode([token])
        stripped = text.rstrip(" ")
        ends[token] = bool(stripped) and stripped[-1] in ".,;:!?\n"
        continues[token] = bool(text) and text[0].isalnum()
    _TOKEN_FLAGS[id(tokenizer)] = (tokenizer, ends, continues)
    return ends, continues


def _left_padded(prompts: list[list[int]], pad: int) -> tuple[list[list[int]], list[int]]:
    """Prompts of different lengths as one block, padded on the left, and each row's padding."""
    width = max(len(p) for p in prompts)
    pads = [width - len(p) for p in prompts]
    return [[pad] * n + p for n, p in zip(pads, prompts, strict=True)], pads


def _weave(
    nxt: torch.Tensor,
    written: torch.Tensor,
    *,
    picks: torch.Tensor,
    woven: torch.Tensor,
    since: torch.Tensor,
    boundary: torch.Tensor,
    every: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Replace a row's drawn token by its next unwritten keyword when one is due.

    A keyword is due once ``every`` tokens have passed since the last one and the previous
    token ended a clause, or unconditionally after ``2 * every``: each record then carries its
    keywords spread through the text, as independent draws from the label's distribution
    would be, while the base writes what joins them.

    Returns:
        The tokens to write, the next keyword column per row, and tokens since a keyword.
    """
    rows = torch.arange(nxt.shape[0], device=nxt.device)
    k = picks.shape[1]
    # Skip keywords a row already wrote on its own.
    while True:
        col = woven.clamp(max=k - 1)
        pending = woven < k
        already = pending & (written == picks[rows, col].unsqueeze(1)).any(dim=1)
        if not bool(already.any()):
            break
        woven = woven + already.long()
    if written.shape[1]:
        at_boundary = boundary[written[:, -1].clamp(max=boundary.shape[0] - 1)]
    else:  # nothing written yet: the prompt's end counts as a boundary
        at_boundary = torch.ones_like(pending)
    due = (woven < k) & (since >= every) & (at_boundary | (since >= 2 * every))
    keyword = picks[rows, woven.clamp(max=k - 1)]
    out = torch.where(due, keyword, nxt)
    return out, woven + due.long(), torch.where(due, torch.zeros_like(since), since + 1)


@dataclass(frozen=True)
class _Decoding:
    """What a model asks of its sampler (a guided model's flags), read once per call."""

    in_prompt: bool
    cap_share: float
    spend: bool
    plans: dict[str, torch.Tensor] | None
    biases: dict[str, torch.Tensor] | None
    plan_words: int
    plan_boost: float
    named: int
    """Planned keywords a request names (0 unless the tokenizer writes requests in words)."""
    width: int
    opens: bool
    weave: int
    whole: bool
    topic: int
    mixes: bool
    """Whether rows with different requests may share a batch (the model takes ``pads``)."""

    @classmethod
    def of(cls, model: Any, tokenizer: Tokenizer) -> _Decoding:
        plans = getattr(model, "keyword_plans", None) or None
        plan_words = int(getattr(model, "plan_words", 0))
        named_ok = bool(getattr(tokenizer, "names_keywords", False))
        plan_width = max((int(p.shape[-1]) for p in plans.values()), default=0) if plans else 0
        return cls(
            in_prompt=bool(getattr(model, "label_in_prompt", True)),
            cap_share=float(getattr(model, "word_cap", 0.0)),
            spend=bool(getattr(model, "spend_boost", False)),
            plans=plans,
            biases=getattr(model, "label_biases", None) or None,
            plan_words=plan_words,
            plan_boost=float(getattr(model, "plan_boost", 0.0)),
            named=min(int(getattr(model, "prompt_words", 0)), plan_words) if named_ok else 0,
            width=int(getattr(model, "output_vocab", 0) or plan_width),
            opens=bool(getattr(model, "open_with_keyword", False)),
            weave=int(getattr(model, "weave_every", 0)),
            whole=bool(getattr(model, "whole_keywords", False)),
            topic=int(getattr(model, "topic_words", 0)) if named_ok else 0,
            mixes=bool(getattr(model, "mixes_requests", False)),
        )


@dataclass
class _Label:
    """One label's part of a call: its request, keyword plan, bias and word cap."""

    name: str | None
    prompt: list[int]
    subject: str | None
    plan: torch.Tensor | None
    keywords: int
    """Keywords planted per record (0: none)."""
    bias: torch.Tensor | None
    guided: bool
    """Whether classifier-free guidance applies to this label's rows."""
    unboosted: list[int]
    """The label's own token ids, which guidance leaves unboosted."""
    capper: WordCap | None

    @property
    def key(self) -> tuple[object, ...]:
        """Rows decode in one batch only when their keys are equal (see :func:`_batch_of`)."""
        return (self.keywords, self.name is None, self.guided, self.bias is None)


def _label_setup(
    tokenizer: Tokenizer,
    d: _Decoding,
    params: SamplingParams,
    name: str | None,
    logit_bias: torch.Tensor | None,
) -> _Label:
    """A label's request, plan, bias and cap, as :func:`sample` documents them."""
    plan = d.plans.get(name) if d.plans is not None and name is not None else None
    keywords = 0
    if plan is not None and d.plan_words > 0:
        keywords = min(d.plan_words, int((plan.float()[: d.width] > 0).sum()))
    subject = name if d.in_prompt else None
    if subject is not None and plan is not None and d.topic > 0:
        subject = label_topic(tokenizer, plan, words=d.topic, width=d.width) or subject
    bias = logit_bias
    if bias is None and d.biases is not None and name is not None:
        bias = d.biases.get(name)
    guided = d.in_prompt and name is not None and params.guidance > 0
    unboosted: list[int] = []
    if guided and name is not None:
        unboosted = [i for i in _label_token_ids(tokenizer, name) if i != tokenizer.eos_id]
    return _Label(
        name=name,
        prompt=tokenizer.prompt(subject),
        subject=subject,
        plan=plan if keywords else None,
        keywords=keywords,
        bias=bias,
        guided=guided,
        unboosted=unboosted,
        capper=WordCap(d.cap_share) if d.cap_share > 0 else None,
    )


def _row_biases(rows: list[_Label], width: int, eos: int, device: torch.device) -> torch.Tensor:
    """Each row's label bias fitted to ``width`` (zeros for a label without one), ``(B, V)``."""
    fitted: dict[int, torch.Tensor] = {}
    out = []
    for r in rows:
        assert r.bias is not None
        if id(r.bias) not in fitted:
            fitted[id(r.bias)] = _fit_bias(r.bias, width, eos).to(device)
        out.append(fitted[id(r.bias)])
    return torch.stack(out)


def _decode(
    model: TinyTransformerLM | HFLoRALM,
    tokenizer: Tokenizer,
    d: _Decoding,
    params: SamplingParams,
    *,
    rows: list[_Label],
    gen: torch.Generator,
) -> list[str]:
    """One batch: a record's text per row, each row under its own label (equal keys)."""
    device = module_device(model)
    b = len(rows)
    eos = tokenizer.eos_id
    first = rows[0]
    planted = first.keywords > 0
    guided = first.guided
    picks: torch.Tensor | None = None
    if planted:
        # Each label's rows draw their keywords from its own plan, in row order.
        picks = torch.empty((b, first.keywords), dtype=torch.long, device=gen.device)
        for plan_id in dict.fromkeys(id(r.plan) for r in rows):
            idx = [i for i, r in enumerate(rows) if id(r.plan) == plan_id]
            plan = rows[idx[0]].plan
            assert plan is not None
            drawn = _draw_keywords(
                plan, len(idx), words=first.keywords, width=d.width, generator=gen
            )
            assert drawn is not None
            picks[torch.tensor(idx, device=gen.device)] = drawn
    named = d.named if planted else 0
    if named and picks is not None:
        prompts = [
            tokenizer.prompt(r.subject, words=_named_words(tokenizer, row[:named]))  # type: ignore[call-arg]
            for r, row in zip(rows, picks.tolist(), strict=True)
        ]
    else:
        prompts = [r.prompt for r in rows]
    pad_kw: dict[str, torch.Tensor] = {}
    requests, pads = _left_padded(prompts, tokenizer.pad_id)
    if named or any(pads):
        pad_kw["pads"] = torch.tensor(pads, dtype=torch.long, device=device)
    plain = tokenizer.prompt(None) if guided else []
    longest = max(len(r.prompt) for r in rows)  # a longer per-record request does not count
    max_len = model.cfg.max_len
    budget = max(1, min(params.max_tokens, max_len - max(longest, len(plain))))
    opens = planted and d.opens
    weave = d.weave if planted else 0
    boundary: torch.Tensor | None = None
    continues: torch.Tensor | None = None
    if weave > 0 or (planted and d.whole):
        ends, continuing = _token_flags(tokenizer, d.width)
        boundary = ends.to(device) if weave > 0 else None
        continues = continuing.to(device) if planted and d.whole else None
    start = len(requests[0])  # where every row's text begins
    seq = torch.tensor(requests, dtype=torch.long, device=device)
    if opens and picks is not None:
        # Prefilled: the record opens with its first keyword (whose boost is then spent).
        seq = torch.cat([seq, picks[:, :1].to(device)], dim=1)
    done = torch.zeros(b, dtype=torch.bool, device=device)
    biased = first.bias is not None
    one_bias = all(r.bias is first.bias for r in rows)
    bias: torch.Tensor | None = None
    keep_cond: torch.Tensor | None = None
    # Weaving: the next keyword column each row writes, and tokens since its last one.
    woven = torch.full((b,), 1 if opens else 0, dtype=torch.long, device=device)
    since = torch.zeros(b, dtype=torch.long, device=device)
    logits, caches = model.forward_cached(seq, None, 0, **pad_kw)
    if guided:
        u_prompt = torch.tensor([plain] * b, dtype=torch.long, device=device)
        if seq.shape[1] > start:  # the opening keyword, for both branches
            u_prompt = torch.cat([u_prompt, seq[:, start:]], dim=1)
        u_logits, u_caches = model.forward_cached(u_prompt, None, 0)
    for step in range(budget):
        if guided:
            cond = torch.log_softmax(logits, dim=-1)
            logits = cond + params.guidance * (cond - torch.log_softmax(u_logits, dim=-1))
            if keep_cond is None:
                # A label's own words are what its labelled prompt favours most: left
                # unguided, they cannot take over the record (" negative", "positive.").
                keep_cond = torch.zeros_like(logits, dtype=torch.bool)
                for i, r in enumerate(rows):
                    ids = [t for t in r.unboosted if t < logits.shape[-1]]
                    keep_cond[i, ids] = True
            logits = torch.where(keep_cond, cond, logits)
        if biased:
            if bias is None:
                # Spent boosts and planted keywords are per record: a row of its own each.
                width = logits.shape[-1]
                if one_bias and not (d.spend or planted):
                    assert first.bias is not None
                    bias = _fit_bias(first.bias, width, eos).to(logits.device)
                else:
                    bias = _row_biases(rows, width, eos, logits.device)
                if picks is not None:
                    keep = picks < bias.shape[-1]
                    if opens:
                        keep[:, 0] = False
                    boost = torch.where(keep, d.plan_boost, 0.0).to(bias.dtype)
                    bias.scatter_add_(
                        1,
                        picks.clamp(max=bias.shape[-1] - 1).to(bias.device),
                        boost.to(bias.device),
                    )
            logits = logits + bias
        if continues is not None and picks is not None and seq.shape[1] > start:
            # A keyword just written ends its word: the base may not grow it into another
            # ("celeb" + "utrix"), which no classifier would count as the keyword.
            after = (seq[:, -1:] == picks.to(device)).any(dim=1)
            if bool(after.any()):
                n = min(logits.shape[-1], continues.shape[0])
                mask = after.unsqueeze(1) & continues[:n].unsqueeze(0)
                logits[:, :n] = logits[:, :n].masked_fill(mask, float("-inf"))
        probs = _top_p_filter(torch.softmax(logits / params.temperature, dim=-1), params.top_p)
        nxt = torch.multinomial(probs, 1, generator=gen).squeeze(1)
        if weave > 0 and picks is not None and boundary is not None:
            nxt, woven, since = _weave(
                nxt,
                seq[:, start:],
                picks=picks.to(device),
                woven=woven,
                since=since,
                boundary=boundary,
                every=weave,
            )
        nxt = torch.where(done, torch.full_like(nxt, eos), nxt)
        if d.spend and bias is not None and bias.dim() == 2:
            # A boosted token, once written, loses its boost in that record (a penalty
            # stays): a static bias otherwise makes the base repeat its top tokens.
            at = torch.arange(b, device=device)
            bias[at, nxt] = bias[at, nxt].clamp(max=0.0)
        seq = torch.cat([seq, nxt.unsqueeze(1)], dim=1)
        done |= nxt == eos
        if bool(done.all()) or seq.shape[1] - start + longest >= max_len:
            break
        logits, caches = model.forward_cached(nxt.unsqueeze(1), caches, seq.shape[1] - 1, **pad_kw)
        if guided:
            u_logits, u_caches = model.forward_cached(
                nxt.unsqueeze(1), u_caches, u_prompt.shape[1] + step
            )
    texts = []
    for row in seq.tolist():
        body = row[start:]
        if eos in body:
            body = body[: body.index(eos)]
        texts.append(tokenizer.decode(body))
    return texts


def _batch_of(queue: deque[_Label], batch_size: int, mixes: bool) -> list[_Label]:
    """The next batch: the queue's first row and the next ones that may decode beside it.

    Rows share a batch when their keys match (same keyword count, guidance and bias kind)
    and, for a model that cannot pad requests of different lengths, the same label.
    """
    head = queue.popleft()
    batch = [head]
    skipped: list[_Label] = []
    while queue and len(batch) < batch_size:
        r = queue.popleft()
        if r.key == head.key and (mixes or r.name == head.name):
            batch.append(r)
        else:
            skipped.append(r)
        if len(skipped) > 4 * batch_size:  # the rest wait for their own batch
            break
    queue.extendleft(reversed(skipped))
    return batch


def _sample_rows(
    model: TinyTransformerLM | HFLoRALM,
    tokenizer: Tokenizer,
    params: SamplingParams,
    labels: Sequence[str | None],
    *,
    batch_size: int,
    logit_bias: torch.Tensor | None,
) -> Iterator[Sample]:
    """One record per entry of ``labels``, in that order up to redraws (see :func:`sample`)."""
    d = _Decoding.of(model, tokenizer)
    gen = torch.Generator(device=module_device(model)).manual_seed(params.seed)
    setups = {
        name: _label_setup(tokenizer, d, params, name, logit_bias) for name in dict.fromkeys(labels)
    }
    queue = deque(setups[name] for name in labels)
    redraws = MAX_REDRAWS * max(1, -(-len(labels) // batch_size))
    while queue:
        rows = _batch_of(queue, batch_size, d.mixes)
        rejected: list[_Label] = []
        texts = _decode(model, tokenizer, d, params, rows=rows, gen=gen)
        for r, text in zip(rows, texts, strict=True):
            label_only = r.guided and r.name is not None and _only_label(text, r.name)
            if label_only and redraws > 0:  # drawn again in a later batch
                rejected.append(r)
                continue
            kept = r.capper.apply(text) if r.capper is not None else text
            yield Sample(text=kept, label=r.name)
        if rejected:
            redraws -= 1
            queue.extendleft(reversed(rejected))


@torch.inference_mode()
def sample(
    model: TinyTransformerLM | HFLoRALM,
    tokenizer: Tokenizer,
    params: SamplingParams,
    *,
    batch_size: int = 16,
    logit_bias: torch.Tensor | None = None,
) -> Iterator[Sample]:
    """Yield ``params.count`` records, ``batch_size`` sequences decoded at a time.

    Each record starts from ``tokenizer.prompt(params.label)``: the control code for a label,
    or the unlabelled prompt. A conditional model is asked for labels drawn from its released
    label mix (:func:`sample_labels`); it is never asked to write a label itself, since
    training scores only the text after the prompt.

    ``logit_bias`` (one value per token id) is added to every step's logits before the
    temperature: the DP-guided decoding of :mod:`privsynth.models.token_stats`, post-processing
    of a DP release like the model itself. Ids past the model's output vocabulary are ignored.
    Without it, a model that carries per-label biases (``label_biases``) gets the label's own;
    such a model may also keep the label out of the prompt (``label_in_prompt``), spend a
    token's boost once a record has written it (``spend_boost``), and plant ``plan_words``
    keywords per record drawn from its label's ``keyword_plans`` distribution, each
    ``plan_boost`` logits up until written (:func:`_draw_keywords`); of those, the request
    names ``prompt_words`` when the tokenizer writes requests in words (``names_keywords``),
    each row then left-padded to the longest request (:func:`_left_padded`); with
    ``open_with_keyword`` the first keyword is written as the record's opening word. With
    ``word_cap`` each record, once written, loses the words that already stand in that share
    of this call's records of its label (:class:`~privsynth.models.word_cap.WordCap`). With
    ``topic_words`` such a tokenizer's request names the label by its most probable
    released words instead of its name (:func:`label_topic`).
    """
    draws = getattr(model, "draw_samples", None)
    drawn = draws(params) if draws is not None else None
    if drawn is not None:  # a private-evolution model: its DP-selected population
        yield from drawn
        return
    labels = [params.label] * params.count
    yield from _sample_rows(
        model, tokenizer, params, labels, batch_size=batch_size, logit_bias=logit_bias
    )


@torch.inference_mode()
def sample_labels(
    model: TinyTransformerLM | HFLoRALM,
    tokenizer: Tokenizer,
    params: SamplingParams,
    labels: Sequence[str | None],
    *,
    batch_size: int = 16,
) -> Iterator[Sample]:
    """One record per entry of ``labels`` (``params.label`` and ``count`` are not read).

    Records come in the order of ``labels``, except that a record redrawn because it was only
    its label comes later. A model that pads requests of different lengths
    (``mixes_requests``: the HF family's) decodes rows of different labels in one batch, so a
    request for a dozen records over fifteen labels is one batch instead of twelve, and no
    label's last batch runs half empty; other models run one lazy :func:`sample` stream per
    label (seeded from ``params.seed`` and the label's place), interleaved in that order. The
    word cap counts each label's records on their own, as one :func:`sample` call per label
    would.
    """
    if hasattr(model, "draw_samples") or not getattr(model, "mixes_requests", False):
        # A private-evolution model draws from each label's population, and a model that
        # cannot pad decodes each label on its own.
        yield from sample_per_label(model, tokenizer, params, labels, batch_size=batch_size)
        return
    yield from _sample_rows(
        model, tokenizer, params, labels, batch_size=batch_size, logit_bias=None
    )


def sample_per_label(
    model: TinyTransformerLM | HFLoRALM,
    tokenizer: Tokenizer,
    params: SamplingParams,
    labels: Sequence[str | None],
    *,
    batch_size: int = 16,
) -> Iterator[Sample]:
    """:func:`sample_labels` one label per batch: a lazy :func:`sample` stream per label.

    Each label's stream is seeded from ``params.seed`` and the label's place among the
    distinct labels (first appearance); records come in the order of ``labels``.
    """
    streams: dict[str | None, Iterator[Sample]] = {}
    for i, name in enumerate(dict.fromkeys(labels)):
        sub = replace(
            params,
            count=labels.count(name),
            label=name,
            seed=(params.seed * 1_000_003 + i) % 2**63,
        )
        streams[name] = iter(sample(model, tokenizer, sub, batch_size=batch_size))
    for name in labels:
        yield next(streams[name])
