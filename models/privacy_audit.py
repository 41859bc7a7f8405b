"""Empirical privacy audit: a 95%-confidence lower bound on ε from one training run.

A model card states an ε computed by an accountant from (σ, q, steps). That number is only as
true as the mechanism that ran: a fixed noise seed, a clipping bug or a mis-set sampling rate
leaves the card unchanged and the guarantee void. This module checks the mechanism from
outside, with the one-run method of Steinke, Nasr and Jagielski ("Privacy Auditing with One (1)
Training Run", NeurIPS 2023):

1. Draw m random **canary** records (random words from the public corpus' vocabulary) and flip
   a fair, secret coin for each (``secrets.SystemRandom``): heads, it joins the training data.
2. Train with the job's exact mechanism (:func:`privsynth.models.dp_train.train_dp`, the preset's
   tuned config, the requested ε, δ and epochs) on a public corpus the package ships plus the
   included canaries. No private data is read, so no private budget is spent.
3. Score each canary by how much training lowered its loss (the loss under the preset's public
   base minus the loss under the trained model; without a base, minus the trained loss), guess
   "in" for the k₊ highest scores and "out" for the k₋ lowest, abstain on the rest.
4. Turn the number of correct guesses into a lower bound on ε: if the mechanism were
   (ε, δ)-DP with respect to each canary, the number of correct guesses among r would be
   stochastically dominated by Binomial(r, e^ε / (1 + e^ε)) up to a δ term (their Theorem 5.2;
   :func:`one_run_p_value`). The bound is the largest ε that hypothesis test rejects at the
   chosen significance (:func:`epsilon_lower_bound`).

The number of guesses r is not tuned on the result: a fixed grid (:data:`GUESS_FRACTIONS` of m)
is tried and the significance is split evenly over it (Bonferroni), so reporting the best of
the grid still holds with 95% confidence. A bound above the claimed ε means the claim is false
(with 95% confidence); a bound below it proves nothing more than that this attack did not
break it: one-run audits of DP-SGD's last iterate with input-space canaries are far from tight
(the paper reports the same), and with m canaries the bound can never exceed
logit((significance / 6)^(1/m)) even if every guess is right (5.3 at m = 1,000).
"""

from __future__ import annotations

import math
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from privsynth.models.dp_train import Example

__all__ = [
    "GUESS_FRACTIONS",
    "AuditConfig",
    "AuditProgress",
    "AuditResult",
    "GuessOutcome",
    "audit_bound",
    "canary_vocabulary",
    "epsilon_lower_bound",
    "make_canaries",
    "one_run_p_value",
    "run_privacy_audit",
]

GUESS_FRACTIONS = (0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
"""Numbers of guesses tried, as shares of the canaries (half "in", half "out" each).

Fixed before any run: few confident guesses win when only the most memorised canaries stand
out, many when the whole score distribution shifts. The significance is divided by the grid's
size (Bonferroni), the price of trying them all.
"""

BOUND_METHOD = (
    "one-run audit, Steinke, Nasr & Jagielski (NeurIPS 2023), Theorem 5.2 (approximate DP, "
    "with delta); guesses on the top and bottom canary scores, number of guesses from a fixed "
    "grid with Bonferroni correction"
)
"""What the result's ``method`` says."""


# -- the bound ---------------------------------------------------------------------------------


def _log_binom_pmf(k: int, n: int, log_p: float, log_q: float) -> float:
    return (
        math.lgamma(n + 1)
        - math.lgamma(k + 1)
        - math.lgamma(n - k + 1)
        + k * log_p
        + (n - k) * log_q
    )


def _binom_pmfs(n: int, p: float) -> list[float]:
    """P[Binomial(n, p) = k] for k = 0..n, computed in log space (no overflow for large n)."""
    if p >= 1.0:
        return [0.0] * n + [1.0]
    if p <= 0.0:
        return [1.0] + [0.0] * n
    log_p, log_q = math.log(p), math.log1p(-p)
    return [math.exp(_log_binom_pmf(k, n, log_p, log_q)) for k in range(n + 1)]


def one_run_p_value(
    *, canaries: int, guesses: int, correct: int, epsilon: float, delta: float
) -> float:
    """Probability of at least ``correct`` right guesses if the mechanism were (ε, δ)-DP.

    Steinke, Nasr and Jagielski, Theorem 5.2 (their Algorithm 2 computes it): with m canaries
    each included with probability ½ and r guesses, the number of correct guesses W of any
    guesser satisfies P[W ≥ v] ≤ β + 2mδ·α, where q = e^ε/(1 + e^ε), β = P[Binomial(r, q) ≥ v]
    and α = max over i = 1..v of P[v − i ≤ Binomial(r, q) < v] / i. With δ = 0 this is the
    pure-DP bound of their Theorem 3.1, the binomial tail alone.

    Args:
        canaries: m, the number of canaries (each in with probability ½).
        guesses: r, guesses made (abstentions excluded).
        correct: v, correct guesses.
        epsilon: ε of the null hypothesis, ≥ 0.
        delta: δ of the null hypothesis, in [0, 1].

    Returns:
        The p-value, in [0, 1].

    Raises:
        ValueError: Counts out of order (0 ≤ v ≤ r ≤ m) or parameters out of range.
    """
    if not 0 <= correct <= guesses <= canaries:
        raise ValueError("need 0 <= correct <= guesses <= canaries")
    if not (epsilon >= 0.0 and 0.0 <= delta <= 1.0):
        raise ValueError("need epsilon >= 0 and delta in [0, 1]")
    q = 1.0 / (1.0 + math.exp(-epsilon)) if epsilon < 700 else 1.0
    pmf = _binom_pmfs(guesses, q)
    beta = min(1.0, math.fsum(pmf[correct:]))
    if delta == 0.0:
        return beta
    alpha, below = 0.0, 0.0
    for i in range(1, correct + 1):
        below += pmf[correct - i]  # P[v - i <= Binomial(r, q) < v]
        alpha = max(alpha, below / i)
    return min(1.0, beta + alpha * delta * 2 * canaries)


def epsilon_lower_bound(
    *,
    canaries: int,
    guesses: int,
    correct: int,
    delta: float,
    significance: float = 0.05,
    tolerance: float = 1e-6,
) -> float:
    """The largest ε whose (ε, δ)-DP hypothesis the observed guesses reject.

    Every ε below the returned value has ``one_run_p_value < significance``: with probability
    at least 1 − significance over the canary coins, a mechanism that is (ε, δ)-DP does not
    produce a bound above its ε. Found by bisection (the p-value grows with ε).

    Returns:
        ε_lb ≥ 0 (0 when not even ε = 0 is rejected).

    Raises:
        ValueError: As :func:`one_run_p_value`, or significance outside (0, 1).
    """
    if not 0.0 < significance < 1.0:
        raise ValueError("significance must lie in (0, 1)")

    def rejected(eps: float) -> bool:
        return (
            one_run_p_value(
                canaries=canaries, guesses=guesses, correct=correct, epsilon=eps, delta=delta
            )
            < significance
        )

    if not rejected(0.0):
        return 0.0
    lo, hi = 0.0, 1.0
    while rejected(hi):
        lo, hi = hi, hi * 2
        if hi > 1e4:  # only reachable with δ = 0 and every guess right at huge r
            return lo
    while hi - lo > tolerance:
        mid = (lo + hi) / 2
        if rejected(mid):
            lo = mid
        else:
            hi = mid
    return lo


@dataclass(frozen=True)
class GuessOutcome:
    """One point of the guess grid: how many guesses, how many right, and its bound."""

    guesses: int
    guessed_in: int
    correct: int
    epsilon_lower_bound: float


def audit_bound(
    scores: Sequence[float],
    included: Sequence[bool],
    *,
    delta: float,
    significance: float = 0.05,
    fractions: Sequence[float] = GUESS_FRACTIONS,
) -> tuple[GuessOutcome, list[GuessOutcome]]:
    """Guess each canary's inclusion from its score and bound ε from the hits.

    For each share f of :data:`GUESS_FRACTIONS` (fixed a priori), r = round(f·m) guesses are
    made: "in" for the ⌈r/2⌉ highest scores, "out" for the ⌊r/2⌋ lowest. Each r is tested at
    significance / len(fractions), so the best of them is a valid bound at ``significance``.

    Args:
        scores: Per canary, higher means "more likely trained on".
        included: Per canary, the coin flip (used only to count correct guesses).
        delta: δ of the claim.
        significance: 1 − confidence, e.g. 0.05 for a 95% lower bound.
        fractions: The guess grid.

    Returns:
        The best outcome and every outcome of the grid.

    Raises:
        ValueError: Lengths differ or fewer than 2 canaries.
    """
    m = len(scores)
    if m != len(included) or m < 2:
        raise ValueError("need one inclusion flag per score and at least 2 canaries")
    order = sorted(range(m), key=lambda i: scores[i])  # ascending: lowest scores first
    level = significance / len(fractions)
    outcomes = []
    for r in sorted({min(m, max(2, round(f * m))) for f in fractions}):
        k_in = (r + 1) // 2
        k_out = r - k_in
        hits = sum(1 for i in order[m - k_in :] if included[i])
        hits += sum(1 for i in order[:k_out] if not included[i])
        bound = epsilon_lower_bound(
            canaries=m, guesses=r, correct=hits, delta=delta, significance=level
        )
        outcomes.append(GuessOutcome(r, k_in, hits, bound))
    # On a tie (typically every bound 0) report the most guesses: the plainest summary.
    best = max(outcomes, key=lambda o: (o.epsilon_lower_bound, o.guesses))
    return best, outcomes


# -- the experiment ----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class AuditConfig:
    """What to audit: a preset's DP-SGD at a target ε, and how many canaries.

    Attributes:
        preset: Training preset (``privsynth.models.presets.PRESETS``).
        target_epsilon: ε the audited run is calibrated to, as a job would be.
        target_delta: δ of the run; None: a tenth of ``min(1e-5, 1/(10 n))`` for the largest
            possible training set n, the rule the server applies to a dataset of that size.
        epochs: Passes over the data, as in a job (default 3, the jobs' default).
        canaries: m, random canary records, each included with probability ½.
        public_records: Records of the shipped public corpus trained on beside the canaries.
        canary_words: Random words per canary.
        significance: 1 − confidence of the lower bound.
    """

    preset: str = "small"
    target_epsilon: float
    target_delta: float | None = None
    epochs: int = 3
    canaries: int = 1000
    public_records: int = 1000
    canary_words: int = 8
    significance: float = 0.05

    def delta(self) -> float:
        """The δ of the audited run (see ``target_delta``)."""
        if self.target_delta is not None:
            return self.target_delta
        n_max = self.public_records + self.canaries
        return min(1e-5, 1.0 / (10 * n_max)) / 10


@dataclass(frozen=True)
class AuditProgress:
    """Where an audit is: ``phase`` is "training" or "scoring" (no data content)."""

    phase: str
    step: int
    total_steps: int
    elapsed_s: float


@dataclass
class AuditResult:
    """The claim beside the bound, with what is needed to reproduce the verdict.

    ``epsilon_claimed`` is the ε the trained model's card states (the accountant's value for
    the run that happened, at ``delta``); ``refuted`` is whether the bound exceeds it.
    """

    preset: str
    target_epsilon: float
    epsilon_claimed: float
    delta: float
    epsilon_lower_bound: float
    significance: float
    canaries: int
    canaries_included: int
    guesses: int
    correct: int
    public_records: int
    epochs: int
    noise_multiplier: float
    sample_rate: float
    steps: int
    train_seconds: float
    wall_seconds: float
    method: str = BOUND_METHOD
    score: str = ""
    grid: list[GuessOutcome] = field(default_factory=list)

    @property
    def refuted(self) -> bool:
        """Whether the audit proves the claimed ε false (at the stated confidence)."""
        return self.epsilon_lower_bound > self.epsilon_claimed

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (numbers and names only; no canary or corpus text)."""
        out = asdict(self)
        out["refuted"] = self.refuted
        return out


def canary_vocabulary(texts: Sequence[str], *, min_count: int = 5) -> list[str]:
    """Lower-case words of at least three letters seen ``min_count`` times in public text.

    Canaries are drawn from these so that the public tokenizer encodes them in few tokens and
    no canary resembles another more than chance makes it.
    """
    counts: dict[str, int] = {}
    for text in texts:
        for word in re.findall(r"[a-z]{3,}", text.lower()):
            counts[word] = counts.get(word, 0) + 1
    return sorted(w for w, c in counts.items() if c >= min_count)


def make_canaries(count: int, *, words: Sequence[str], length: int, rng: Any) -> list[str]:
    """``count`` distinct canaries of ``length`` words drawn uniformly from ``words``."""
    out: set[str] = set()
    while len(out) < count:
        out.add(" ".join(rng.choice(words) for _ in range(length)))
    return sorted(out)


def _record_losses(model: Any, tokenizer: Any, texts: Sequence[str]) -> list[float]:
    """Each record's mean token loss over its text and EOS, exactly as DP training scores it."""
    import torch
    from privsynth.models.device import module_device
    from privsynth.models.dp_train import encode_example
    from privsynth.models.family import prompt_positions
    from torch import nn
    from torch.nn import functional as F  # noqa: N812

    pad = tokenizer.pad_id
    prompt = tokenizer.prompt(None)
    seqs = [
        encode_example(tokenizer, ids, prompt, model.cfg.max_len)
        for ids in tokenizer.encode_batch(list(texts))
    ]
    losses: list[float] = []
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(seqs), 64):
            batch = nn.utils.rnn.pad_sequence(
                [torch.tensor(s) for s in seqs[start : start + 64]],
                batch_first=True,
                padding_value=pad,
            ).to(module_device(model))
            logits = model(batch[:, :-1])
            targets = batch[:, 1:].masked_fill(batch[:, 1:] >= logits.shape[-1], pad)
            targets = targets.masked_fill(prompt_positions(batch, tokenizer.prompt_end), pad)
            tok = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
            mask = (targets != pad).float()
            per_record = (tok * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
            losses.extend(float(x) for x in per_record)
    return losses


def run_privacy_audit(
    config: AuditConfig,
    *,
    on_progress: Callable[[AuditProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    rng: Any = None,
    records: Sequence[Example] | None = None,
) -> AuditResult:
    """Train once with canaries on public data and bound ε from membership guesses.

    Args:
        config: The mechanism to audit and the audit's size. Unless ``records`` are given,
            the records beside the canaries are ``config.public_records`` of the Austen
            paragraphs shipped with the package, and nothing private is spent.
        on_progress: Called with the phase and, while training, the step.
        should_stop: Polled during training; when True the audit ends with
            ``TrainingInterrupted`` (nothing private was spent).
        rng: Source of canary words and inclusion coins; ``secrets.SystemRandom()`` unless a
            test passes a seeded one. The coins must stay unknown to the training run.
        records: A private dataset's scrubbed records to train on beside the canaries instead
            of the public corpus (user keys kept, so a user-level dataset keeps one record per
            user, as training does). Training on them releases a DP model of them: only a caller
            that reserved the run's ε in the dataset's ledger (and commits what the run spent,
            as :mod:`privsynth.server.privacy.empirical_audit` does) may pass them. The canary words
            still come from the public corpus.

    Returns:
        The claimed ε beside the lower bound.

    Raises:
        privsynth.models.dp_train.TrainingConfigError: The run's parameters are invalid.
        privsynth.models.dp_train.TrainingInterrupted: Stopped or failed while training.
    """
    from privsynth.models.dp_train import DPConfig, Example, Progress, initial_model, train_dp
    from privsynth.models.family import load_generator, tokenizer_for_preset
    from privsynth.models.presets import PRESETS
    from privsynth.models.pretrain import read_public_corpus

    started = time.monotonic()
    rng = rng if rng is not None else secrets.SystemRandom()
    public_texts = read_public_corpus()[0]
    if records is None:
        base_records = [Example(text=t) for t in public_texts[: config.public_records]]
    else:
        base_records = list(records)
    words = canary_vocabulary(public_texts)
    canaries = make_canaries(config.canaries, words=words, length=config.canary_words, rng=rng)
    included = [rng.random() < 0.5 for _ in canaries]
    examples = list(base_records)
    examples += [Example(text=c) for c, keep in zip(canaries, included, strict=True) if keep]
    delta = config.delta()
    dp_config = DPConfig.for_preset(
        config.preset,
        target_epsilon=config.target_epsilon,
        target_delta=delta,
        epochs=config.epochs,
    )
    tokenizer = tokenizer_for_preset(config.preset)

    def progress(p: Progress) -> None:
        if on_progress is not None:
            on_progress(
                AuditProgress("training", p.step, p.total_steps, time.monotonic() - started)
            )

    result = train_dp(
        examples,
        config=dp_config,
        tokenizer=tokenizer,
        on_progress=progress,
        should_stop=should_stop,
    )
    if on_progress is not None:
        on_progress(AuditProgress("scoring", 0, 0, time.monotonic() - started))
    model, _ = load_generator(result.weights, result.model_config)
    trained = _record_losses(model, tokenizer, canaries)
    if PRESETS[config.preset].base is not None:
        reference, _ = initial_model(config.preset, tokenizer)
        before = _record_losses(reference, tokenizer, canaries)
        scores = [b - a for a, b in zip(trained, before, strict=True)]
        score = "loss under the public base minus loss under the trained model"
    else:
        scores = [-a for a in trained]
        score = "negative loss under the trained model"
    best, grid = audit_bound(scores, included, delta=delta, significance=config.significance)
    card = result.card
    return AuditResult(
        preset=config.preset,
        target_epsilon=config.target_epsilon,
        epsilon_claimed=float(result.epsilon_spent),
        delta=delta,
        epsilon_lower_bound=best.epsilon_lower_bound,
        significance=config.significance,
        canaries=len(canaries),
        canaries_included=sum(included),
        guesses=best.guesses,
        correct=best.correct,
        public_records=len(base_records),
        epochs=config.epochs,
        noise_multiplier=float(card.get("noise_multiplier", 0.0)),
        sample_rate=float(card.get("sample_rate", 0.0)),
        steps=int(card.get("steps", 0)),
        train_seconds=float(card.get("train_seconds", 0.0)),
        wall_seconds=time.monotonic() - started,
        score=score,
        grid=grid,
    )
