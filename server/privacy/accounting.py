"""Privacy accounting for the ledger: plan a job's DP-SGD event, compose a dataset's jobs.

A DP-SGD run is fully described, for accounting, by one event: ``steps`` compositions of the
Poisson-subsampled Gaussian mechanism with noise multiplier σ and sample rate q. The ledger
needs that event *before* the job runs (to check the cap on the composed value), so the noise
multiplier is calibrated here at reservation time, exactly as Opacus'
``make_private_with_epsilon`` would calibrate it, and the training run is then told to use the
stored σ instead of calibrating again.

Composition across a dataset's jobs uses the privacy loss distribution (PLD) accountant of
Google's ``dp-accounting``: tight for these events, unlike summing per-job ε. PLD discretisation
is pessimistic, so the composed ε is an upper bound; we also never report more than the plain
sum (basic composition is a valid bound too, so a single job costs at most its own ε).

**Accounting δ.** Every job holds its own δ_j of the dataset's δ cap (Σ δ_j ≤ cap, checked at
reservation), but the dataset's composed ε is stated at one *fixed* δ per dataset, the
*accounting δ*: the δ cap (:func:`accounting_delta`). Composing at Σ δ_j instead let the
composed spend *fall* when a job was charged, because the new δ_j loosened the δ at which every
earlier job was evaluated by more than the new job's steps cost (7.98 → 5.57 for an ε = 8 job
at δ = 1e-8 followed by an ε = 0.5 job at δ = 5e-6, 60 records, one epoch each), and it made a
running job look free. At a fixed δ the composed ε only grows with each charge: composing one
more mechanism never lowers the optimal δ(ε) (dropping its output is post-processing), and the
PLD's discretisation rounds pessimistically either way (tests check the sequence above). Each
label-release threshold holds ``LABEL_THRESHOLD_DELTA_SHARE × δ_j`` outright, outside the PLD,
so the PLD is evaluated at the accounting δ less those shares: that δ only shrinks, and ε only
grows, as jobs are added. The plain sum Σ ε_j is a valid bound at Σ δ_j ≤ the accounting δ
(basic composition; a guarantee at some δ holds at every larger δ) and never decreases either,
so min(composed, plain sum) is valid at the accounting δ and never decreases after a charge
(the minimum of two non-decreasing sequences). A job's own ε (on its card) is stated at its own
δ_j; restated at the larger accounting δ it is a little smaller.

Only a cap change moves the accounting δ. Raising the δ cap lowers the composed figures (a
weaker guarantee is stated), lowering it raises them (a stricter one). A δ cap lowered below the
δ the jobs already hold cannot be stated for them, so the accounting δ is then Σ δ_j (the
smallest δ at which their guarantees add up) until it fits again; new reservations are refused
meanwhile, so the only later change is a release of unused δ, which raises ε.

**Label distribution.** A job on a labelled dataset may release its label mix with DP (the mix
Generate samples labels from): per-label counts plus Gaussian noise of standard deviation
``label_noise_multiplier × sensitivity`` (sensitivity: records one privacy unit may contribute,
1 per record under add/remove), then only labels whose noisy count passes a threshold (the label
*set* is data-dependent too). That release is one more event of the job — a Gaussian mechanism,
sampling probability 1, count 1 — composed with the DP-SGD steps in the same accountant, so σ
for DP-SGD is calibrated with it and the job's ε (and the dataset's composed ε) includes it. The
threshold costs a fixed share of the job's δ (:data:`LABEL_THRESHOLD_DELTA_SHARE`): the chance
that a label only one unit holds passes it; the events are composed at the rest of δ.

**Token statistics.** A job whose recipe decodes with DP per-label token statistics
(``privsynth.models.token_stats``) releases them by one more Gaussian mechanism (L2 sensitivity
1, sampling probability 1, count 1; every cell of a public vocabulary, so no threshold and no δ
share): ``stats_noise_multiplier`` on the plan, the job and its ledger entries, composed with
the job's other events exactly like the label release. A recipe without DP-SGD (the public base
decoded with the statistics alone) plans no noisy steps; its σ_T is then set so that the
releases together are (ε, δ)-DP: Gaussian mechanisms compose to the Gaussian mechanism with
``1/σ² = Σ 1/σ_i²`` (Dong, Roth & Su's μ-GDP, tight for Gaussians).

**Private Evolution.** A job of the ``private-evolution`` recipe
(``privsynth.models.private_evolution``) trains nothing; each of its T iterations releases one
vote histogram with Gaussian noise of L2 sensitivity 1 (every record votes once). That is the
DP-SGD event with sampling probability 1: its plan, job row and ledger entries carry the vote
σ as ``noise_multiplier``, ``sample_rate`` 1 and ``steps`` T, so the ledger's PLD and the
job's accountant compose T Gaussian mechanisms (and the label release) with no new column.
:func:`plan_private_evolution` sets σ so that they fit the target:
``T/σ² + 1/σ_L² = μ(ε)²``.
"""

from __future__ import annotations

import functools
import math
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "COMPOSITION",
    "DEFAULT_LABEL_EPSILON_SHARE",
    "LABEL_THRESHOLD_DELTA_SHARE",
    "MAX_NOISE_MULTIPLIER",
    "PLD_DISCRETIZATION",
    "DpSgdPlan",
    "JobCharge",
    "PlanningAbandoned",
    "UnreachableEpsilon",
    "accounting_delta",
    "compose_epsilon",
    "epsilon_curve",
    "gaussian_sigma",
    "job_epsilon",
    "label_threshold",
    "plan_dp_sgd",
    "plan_private_evolution",
]

MAX_NOISE_MULTIPLIER = 50.0
"""Largest DP-SGD σ a job may be planned with. Beyond it the noise is ~50× the clipped gradient
of a record and training learns nothing, so a target that needs more is refused up front."""

DEFAULT_LABEL_EPSILON_SHARE = 0.1
"""Share of a job's target ε given to the DP release of its label distribution, unless the
request says otherwise: the release alone is (share × ε)-DP at the job's δ. Composition is
sub-additive, so DP-SGD loses far less than this share: on 2,000 records, 3 epochs, batch 64,
σ rises by 0.6% at ε = 8 and 1.5% at ε = 1 (labels then need noisy counts of about 28 and 191)."""

LABEL_THRESHOLD_DELTA_SHARE = 0.1
"""Share of a job's δ spent on thresholding the released label set."""

PLD_DISCRETIZATION = 1e-3
"""PLD value discretisation. Coarser is faster and only more pessimistic (never optimistic);
at 1e-3 the composed ε moved by < 0.2% against 1e-4 on our presets, for a tenth of the time."""

COMPOSITION = (
    "PLD composition (dp-accounting) of each job's Poisson-subsampled Gaussian DP-SGD steps "
    "and DP label releases, at a fixed accounting delta: the dataset's delta cap (less the "
    "label thresholds' share); never above the plain sum; jobs' deltas add up to at most the cap"
)
"""How budgets combine jobs, named in every budget (see the module docstring for why)."""


@dataclass(frozen=True)
class DpSgdPlan:
    """What a DP-SGD run will do, fixed before it reads data.

    Attributes:
        noise_multiplier: σ, the Gaussian noise standard deviation over the clipping norm.
        sample_rate: q, the Poisson sampling probability of each record per step.
        steps: Planned noisy steps (epochs × steps per epoch).
        expected_batch_size: The expected batch size the sample rate was derived from.
        label_noise_multiplier: σ of the label-distribution release over its sensitivity
            (None: no DP release of labels).
        stats_noise_multiplier: σ of the per-label token-statistics release (None: none).
    """

    noise_multiplier: float
    sample_rate: float
    steps: int
    expected_batch_size: int
    label_noise_multiplier: float | None = None
    stats_noise_multiplier: float | None = None


class UnreachableEpsilon(ValueError):
    """No σ ≤ :data:`MAX_NOISE_MULTIPLIER` reaches the target with this data size and schedule.

    ``smallest_epsilon`` is (an upper bound on) the smallest ε reachable with σ at the cap.
    """

    def __init__(self, *, smallest_epsilon: float, sample_rate: float, steps: int) -> None:
        super().__init__(f"smallest reachable epsilon is {smallest_epsilon:.3g}")
        self.smallest_epsilon = smallest_epsilon
        self.sample_rate = sample_rate
        self.steps = steps


class PlanningAbandoned(Exception):
    """Calibration stopped because its caller has gone (``keep_going`` returned False).

    Deliberately not a :class:`ValueError`: the request ended, nothing about its parameters is
    wrong.
    """


@dataclass(frozen=True)
class JobCharge:
    """One job's contribution to a dataset's spend.

    ``noise_multiplier``, ``sample_rate`` and ``steps`` describe the job's DP-SGD event; they are
    None for entries written before events were recorded, which are then composed as generic
    (ε, δ)-DP mechanisms (still valid, less tight).

    Attributes:
        epsilon: The job's own ε (committed, or its reserved target).
        delta: The job's δ.
        noise_multiplier: σ, or None when unknown.
        sample_rate: q, or None when unknown.
        steps: Noisy steps charged (actual when finished, planned while reserved).
        label_noise_multiplier: σ of the job's label-distribution release, when it made (or
            reserved) one; it then also holds :data:`LABEL_THRESHOLD_DELTA_SHARE` of ``delta``.
        stats_noise_multiplier: σ of the job's token-statistics release, when it made (or
            reserved) one.
    """

    epsilon: float
    delta: float
    noise_multiplier: float | None = None
    sample_rate: float | None = None
    steps: int | None = None
    label_noise_multiplier: float | None = None
    stats_noise_multiplier: float | None = None

    @property
    def threshold_delta(self) -> float:
        """δ the label threshold holds (0 without a DP label release)."""
        return self.delta * LABEL_THRESHOLD_DELTA_SHARE if self.label_noise_multiplier else 0.0

    @property
    def has_event(self) -> bool:
        """Whether the DP-SGD event is known."""
        return (
            self.noise_multiplier is not None
            and self.sample_rate is not None
            and self.steps is not None
        )


def expected_batch_size(n_records: int, batch_size: int) -> int:
    """The expected batch size ``models.dp_train`` uses for ``n_records`` records.

    Mirrors ``train_dp``: at most ``batch_size``, at most a quarter of the data, at least one.
    """
    return max(1, min(batch_size, n_records // 4))


_PLAN_CACHE_SIZE = 256
_plans: OrderedDict[tuple[object, ...], DpSgdPlan] = OrderedDict()
_plan_locks: dict[tuple[object, ...], threading.Lock] = {}
_plan_locks_guard = threading.Lock()

CALIBRATION_RELATIVE_TOLERANCE = 1e-3
"""σ is calibrated until its ε lies within ``max(0.01, this × target)`` below the target.

Up to ε = 10 that is Opacus' absolute 0.01 (the same σ as ``make_private_with_epsilon``); above,
an absolute 0.01 cost ~4 more accountant evaluations per decade of ε, each of them the slowest
of the search (small σ), for a precision nobody can use."""


def plan_dp_sgd(
    *,
    n_records: int,
    batch_size: int,
    epochs: int,
    target_epsilon: float,
    target_delta: float,
    accountant: str = "prv",
    label_epsilon_share: float | None = None,
    stats_epsilon_share: float | None = None,
    dp_sgd: bool = True,
    keep_going: Callable[[], bool] | None = None,
) -> DpSgdPlan:
    """Calibrate σ for a run before it starts, the way ``make_private_with_epsilon`` does.

    Opacus' ``DPDataLoader`` samples with rate ``1 / len(data_loader)``, where the original
    loader has ``ceil(n / b)`` batches, and takes ``int(1 / q)`` steps per epoch; the noise
    multiplier comes from the bisection of ``get_noise_multiplier`` with the same accountant (and,
    up to ε = 10, the same tolerance: :data:`CALIBRATION_RELATIVE_TOLERANCE`). The training run
    is then told to use the planned σ, so the ledger's event is the event that runs.
    Calibration takes seconds, so results are cached and concurrent identical requests wait for
    one computation rather than racing. Its cost grows as σ shrinks (a larger target): callers
    bound the target first (:data:`privsynth.server.privacy.caps.MAX_TARGET_EPSILON`).

    Args:
        n_records: Privacy units in the dataset.
        batch_size: The configured (maximum) expected batch size.
        epochs: Passes over the data in expectation.
        target_epsilon: ε the run may spend.
        target_delta: δ of the guarantee.
        accountant: Opacus accountant used for calibration.
        label_epsilon_share: When set, the job also releases its label distribution with DP:
            that Gaussian release gets σ_L so that alone it is (share × ε)-DP, and σ for DP-SGD
            is calibrated so that both events composed (at δ less the threshold's share) stay
            within ``target_epsilon``.
        stats_epsilon_share: When set, the job also releases per-label token statistics with
            DP: that Gaussian release gets σ_T so that alone it is (share × ε)-DP, composed
            like the label release. Ignored without ``dp_sgd``, where the statistics take
            whatever ε the label release leaves.
        dp_sgd: False for a recipe that trains nothing (the base decoded with the token
            statistics): no noisy steps are planned (σ = q = steps = 0) and σ_T is set so
            that the releases compose to just under ``target_epsilon``.
        keep_going: Asked between accountant evaluations (each well under a second to a few
            seconds); once it returns False calibration stops (e.g. the client has gone).

    Returns:
        σ, q, planned steps, the expected batch size and the label release's σ_L.

    Raises:
        UnreachableEpsilon: Reaching the target would need σ > :data:`MAX_NOISE_MULTIPLIER`.
        PlanningAbandoned: ``keep_going`` returned False.
    """
    key = (
        n_records,
        batch_size,
        epochs,
        target_epsilon,
        target_delta,
        accountant,
        label_epsilon_share,
        stats_epsilon_share,
        dp_sgd,
    )
    with _plan_locks_guard:
        lock = _plan_locks.setdefault(key, threading.Lock())
    with lock:
        with _plan_locks_guard:
            if key in _plans:
                _plans.move_to_end(key)
                return _plans[key]
        if not dp_sgd:
            plan = _plan_releases_only(
                n_records, batch_size, target_epsilon, target_delta, accountant, label_epsilon_share
            )
        else:
            plan = _plan(
                n_records,
                batch_size,
                epochs,
                target_epsilon,
                target_delta,
                accountant,
                label_epsilon_share,
                stats_epsilon_share,
                keep_going or (lambda: True),
            )
        with _plan_locks_guard:
            _plans[key] = plan
            while len(_plans) > _PLAN_CACHE_SIZE:
                old, _ = _plans.popitem(last=False)
                _plan_locks.pop(old, None)
        return plan


def _plan(  # noqa: PLR0917
    n_records: int,
    batch_size: int,
    epochs: int,
    target_epsilon: float,
    target_delta: float,
    accountant: str,
    label_epsilon_share: float | None,
    stats_epsilon_share: float | None,
    keep_going: Callable[[], bool],
) -> DpSgdPlan:
    b = expected_batch_size(n_records, batch_size)
    loader_len = math.ceil(n_records / b)
    sample_rate = 1 / loader_len
    steps_per_epoch = int(1 / sample_rate)
    steps = epochs * steps_per_epoch
    extra: list[tuple[float, float, int]] = []
    label_sigma: float | None = None
    delta = target_delta
    if label_epsilon_share is not None:
        delta = target_delta * (1 - LABEL_THRESHOLD_DELTA_SHARE)
        label_sigma = gaussian_sigma(epsilon=label_epsilon_share * target_epsilon, delta=delta)
        extra = [(label_sigma, 1.0, 1)]
    stats_sigma: float | None = None
    if stats_epsilon_share is not None:
        stats_sigma = gaussian_sigma(epsilon=stats_epsilon_share * target_epsilon, delta=delta)
        extra.append((stats_sigma, 1.0, 1))
    floor = _accountant_epsilon(
        accountant, [(MAX_NOISE_MULTIPLIER, sample_rate, steps), *extra], delta
    )
    if floor > target_epsilon:
        smallest = floor
        if label_epsilon_share is not None:
            # σ at the cap for DP-SGD alone, plus the label share on top: an upper bound on
            # the smallest target a labelled job can reach (composition is sub-additive).
            sgd = _accountant_epsilon(
                accountant, [(MAX_NOISE_MULTIPLIER, sample_rate, steps)], delta
            )
            smallest = sgd / (1 - label_epsilon_share - (stats_epsilon_share or 0.0))
        raise UnreachableEpsilon(smallest_epsilon=smallest, sample_rate=sample_rate, steps=steps)
    tolerance = max(0.01, CALIBRATION_RELATIVE_TOLERANCE * target_epsilon)
    if not extra:
        # Opacus' get_noise_multiplier, step for step (its step count, its doubling from 10,
        # its bisection from 0), so that up to ε = 10 σ is the one make_private_with_epsilon
        # finds; but stoppable between evaluations, with a relative tolerance above ε = 10,
        # and never searched above the cap (known to reach the target).
        opacus_steps = int(epochs / sample_rate)
        high, eps_high = 10.0, math.inf
        while eps_high > target_epsilon:
            high *= 2
            if high > 1e6:  # (Opacus' MAX_SIGMA)
                raise ValueError("the privacy budget is too low")
            _check(keep_going)
            eps_high = _accountant_epsilon(
                accountant, [(high, sample_rate, opacus_steps)], target_delta
            )
        sigma = _bisect(
            lambda s: _accountant_epsilon(
                accountant, [(s, sample_rate, opacus_steps)], target_delta
            ),
            target_epsilon,
            high=high,
            eps_high=eps_high,
            tolerance=tolerance,
            keep_going=keep_going,
        )
        # The bisection stops within the tolerance of the target, which for a tiny target can
        # leave σ above the cap although the cap is known to reach it.
        sigma = min(sigma, MAX_NOISE_MULTIPLIER)
    else:
        history = [(MAX_NOISE_MULTIPLIER, sample_rate, steps), *extra]
        sigma = _bisect(
            lambda s: _accountant_epsilon(accountant, [(s, sample_rate, steps), *extra], delta),
            target_epsilon,
            high=MAX_NOISE_MULTIPLIER,
            eps_high=_accountant_epsilon(accountant, history, delta),
            tolerance=tolerance,
            keep_going=keep_going,
        )
    return DpSgdPlan(
        noise_multiplier=sigma,
        sample_rate=sample_rate,
        steps=steps,
        expected_batch_size=b,
        label_noise_multiplier=label_sigma,
        stats_noise_multiplier=stats_sigma,
    )


RELEASES_ONLY_MARGIN = 2e-3
"""A plan without DP-SGD aims this share below its target: the Gaussian composition is exact,
but the accountants that check it (PLD in the ledger, PRV on the card) discretise
pessimistically and must not find the job over its own target."""


def _plan_releases_only(  # noqa: PLR0917
    n_records: int,
    batch_size: int,
    target_epsilon: float,
    target_delta: float,
    accountant: str,
    label_epsilon_share: float | None,
) -> DpSgdPlan:
    """Labels (if asked) and token statistics only: Gaussian releases, no noisy step.

    The statistics get what the label release leaves: with ``μ = 1/σ``, Gaussian releases
    compose to a Gaussian with ``μ² = Σ μ_i²``, so ``μ_T² = μ(ε)² − μ_L²`` where ``μ(ε)``
    is the one Gaussian that is exactly (ε, δ)-DP (the analytic Gaussian mechanism). The
    job's accountant then checks the pair; where its discretisation finds it over the target
    (PRV overstates small ε by up to ~1%), the goal is lowered by what it overshot.
    """
    delta = (
        target_delta * (1 - LABEL_THRESHOLD_DELTA_SHARE) if label_epsilon_share else target_delta
    )
    goal = target_epsilon * (1 - RELEASES_ONLY_MARGIN)
    for _ in range(8):
        label_sigma = (
            gaussian_sigma(epsilon=label_epsilon_share * goal, delta=delta)
            if label_epsilon_share
            else None
        )
        mu_total = 1.0 / gaussian_sigma(epsilon=goal, delta=delta)
        mu_label = 0.0 if label_sigma is None else 1.0 / label_sigma
        stats_sigma = 1.0 / math.sqrt(mu_total**2 - mu_label**2)
        events = [(stats_sigma, 1.0, 1)] + ([(label_sigma, 1.0, 1)] if label_sigma else [])
        reached = _accountant_epsilon(accountant, events, delta)
        if reached <= target_epsilon:
            break
        goal *= target_epsilon / reached * (1 - RELEASES_ONLY_MARGIN)
    return DpSgdPlan(
        noise_multiplier=0.0,
        sample_rate=0.0,
        steps=0,
        expected_batch_size=expected_batch_size(n_records, batch_size),
        label_noise_multiplier=label_sigma,
        stats_noise_multiplier=stats_sigma,
    )


def plan_private_evolution(
    *,
    n_records: int,
    iterations: int,
    target_epsilon: float,
    target_delta: float,
    accountant: str = "prv",
    label_epsilon_share: float | None = None,
) -> DpSgdPlan:
    """σ of each of ``iterations`` vote-histogram releases, and the label release's σ_L.

    Gaussian mechanisms compose exactly in μ-GDP (``μ² = Σ μ_i²``): the label release gets
    σ_L for ``label_epsilon_share × ε`` alone, and the T votes share what is left,
    ``T/σ² = μ(ε)² − 1/σ_L²``. The job's accountant then checks the events (T Gaussian
    mechanisms with sampling probability 1, and the label release); where its pessimistic
    discretisation finds them over the target, the goal is lowered by what it overshot, as
    for the token statistics.

    Returns:
        A plan with ``noise_multiplier`` σ, ``sample_rate`` 1 and ``steps`` T (the event the
        ledger composes), ``label_noise_multiplier`` σ_L.

    Raises:
        ValueError: ``iterations`` < 1 or the target is not a number > 0.
    """
    if iterations < 1:
        raise ValueError("iterations must be >= 1")
    if not (math.isfinite(target_epsilon) and target_epsilon > 0):
        raise ValueError("target_epsilon must be a number > 0")
    release = _plan_releases_only(
        n_records, 1, target_epsilon, target_delta, accountant, label_epsilon_share
    )
    assert release.stats_noise_multiplier is not None
    delta = (
        target_delta * (1 - LABEL_THRESHOLD_DELTA_SHARE) if label_epsilon_share else target_delta
    )
    label_sigma = release.label_noise_multiplier
    # One Gaussian of σ_1 is exactly T Gaussians of σ_1·√T: start there, check with the
    # accountant (its T-fold composition discretises differently), nudge σ up if over.
    sigma = release.stats_noise_multiplier * math.sqrt(iterations)
    for _ in range(20):
        events = [(sigma, 1.0, iterations)] + ([(label_sigma, 1.0, 1)] if label_sigma else [])
        if _accountant_epsilon(accountant, events, delta) <= target_epsilon:
            break
        sigma *= 1.0 + RELEASES_ONLY_MARGIN
    return DpSgdPlan(
        noise_multiplier=sigma,
        sample_rate=1.0,
        steps=iterations,
        expected_batch_size=n_records,
        label_noise_multiplier=label_sigma,
    )


def _check(keep_going: Callable[[], bool]) -> None:
    if not keep_going():
        raise PlanningAbandoned("noise calibration abandoned: its caller has gone")


def _bisect(
    epsilon_of: Callable[[float], float],
    target_epsilon: float,
    *,
    high: float,
    eps_high: float,
    tolerance: float,
    keep_going: Callable[[], bool],
) -> float:
    """Opacus' bisection of σ on ``[0, high]``: the smallest σ found with ε ≤ the target.

    ``eps_high`` (ε at ``high``) is at most the target. Stops once ε lies within ``tolerance``
    below the target (or σ is known to 1e-9 relative, where ε no longer moves).
    """
    low = 0.0
    while target_epsilon - eps_high > tolerance and high - low > 1e-9 * high:
        _check(keep_going)
        mid = (low + high) / 2
        eps = epsilon_of(mid)
        if eps < target_epsilon:
            high, eps_high = mid, eps
        else:
            low = mid
    return high


def _accountant_epsilon(
    accountant: str, history: Sequence[tuple[float, float, int]], delta: float
) -> float:
    """ε at ``delta`` of a history of (σ, q, steps) events under an Opacus accountant."""
    from opacus.accountants import create_accountant

    acc = create_accountant(mechanism=accountant)
    acc.history = list(history)
    # PRV takes log(1 - q): -inf at q = 1 (the label release), which it handles correctly.
    # numpy's errstate is per thread (a context variable), unlike the warnings filters: a
    # training thread leaving its own ``catch_warnings`` restores the global filter list and
    # could drop an ignore set here mid-computation (seen in CI, where warnings are errors).
    with warnings.catch_warnings(), np.errstate(divide="ignore"):
        warnings.filterwarnings("ignore", message=".*Optimal order is the largest alpha.*")
        return float(acc.get_epsilon(delta=delta))


def _normal_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def gaussian_sigma(*, epsilon: float, delta: float) -> float:
    """Smallest noise multiplier σ (std over L2 sensitivity) for an (ε, δ)-DP Gaussian.

    The exact condition of Balle & Wang (2018, the analytic Gaussian mechanism). ε above 50 is
    treated as 50 (the noise is negligible there anyway).
    """
    eps = min(epsilon, 50.0)

    def delta_of(sigma: float) -> float:
        a = 1.0 / (2.0 * sigma)
        return _normal_cdf(-eps * sigma + a) - math.exp(eps) * _normal_cdf(-eps * sigma - a)

    low, high = 1e-4, 1.0
    while delta_of(high) > delta:
        low, high = high, high * 2
    for _ in range(100):
        mid = (low + high) / 2
        if delta_of(mid) > delta:
            low = mid
        else:
            high = mid
    return high


def label_threshold(*, noise_multiplier: float, sensitivity: float, delta: float) -> float:
    """Noisy count a label needs to be released.

    Chosen so that a label held by one privacy unit only (at most ``sensitivity`` records, so
    at most that many labels) is released with probability at most
    ``LABEL_THRESHOLD_DELTA_SHARE × delta`` (union bound over its labels).
    """
    from statistics import NormalDist

    tail = delta * LABEL_THRESHOLD_DELTA_SHARE / max(1.0, sensitivity)
    z = -NormalDist().inv_cdf(tail)
    return sensitivity * (1.0 + z * noise_multiplier)


def job_epsilon(
    *,
    noise_multiplier: float,
    sample_rate: float,
    steps: int,
    delta: float,
    accountant: str,
    label_noise_multiplier: float | None,
    stats_noise_multiplier: float | None = None,
) -> float:
    """A job's ε at ``delta``: its DP-SGD steps and, if made, its label and token releases.

    Composed by the job's accountant, at δ less the threshold's share when labels were released.
    """
    history: list[tuple[float, float, int]] = []
    if steps > 0:
        history.append((noise_multiplier, sample_rate, steps))
    if label_noise_multiplier is not None:
        history.append((label_noise_multiplier, 1.0, 1))
        delta *= 1 - LABEL_THRESHOLD_DELTA_SHARE
    if stats_noise_multiplier is not None:
        history.append((stats_noise_multiplier, 1.0, 1))
    if not history:
        return 0.0
    return _accountant_epsilon(accountant, history, delta)


def _active(charges: Iterable[JobCharge]) -> list[JobCharge]:
    """Jobs that cost something: jobs that took no noisy step contribute nothing, δ included."""
    return [c for c in charges if c.epsilon > 0 or (c.steps or 0) > 0]


def accounting_delta(*, delta_cap: float, charges: Iterable[JobCharge]) -> float:
    """The fixed δ at which a dataset's composed ε is stated.

    The δ cap, so that the composed spend never decreases after a charge; only if the cap was
    lowered below the δ its jobs already hold, Σ δ_j (no guarantee holds at a smaller δ). Pass
    every job that counts, finished and reserved, so the spent and the reserved figures of one
    budget are stated at the same δ.

    Args:
        delta_cap: The dataset's δ cap.
        charges: The dataset's finished and reserved jobs.

    Returns:
        ``max(delta_cap, Σ δ_j)``.
    """
    return max(delta_cap, math.fsum(c.delta for c in _active(charges)))


def compose_epsilon(charges: Iterable[JobCharge], *, delta: float) -> tuple[float, float, float]:
    """Compose a dataset's jobs at the accounting δ: ``(composed ε, plain-sum ε, Σ δ_j)``.

    The composed ε is the PLD accountant's ε for (ε, ``delta``)-DP of all the jobs together,
    capped by the plain sum Σ ε_j. Both are valid there: the PLD events are evaluated at
    ``delta`` less the label thresholds' δ (held outright), and basic composition holds at
    Σ δ_j ≤ ``delta``. At a fixed ``delta`` both grow with every job added, so their minimum
    never decreases after a charge (see the module docstring). Jobs that took no noisy step
    contribute nothing.

    Args:
        charges: One entry per job.
        delta: The accounting δ (:func:`accounting_delta`); at least Σ δ_j.

    Returns:
        The composed ε at ``delta``, the plain sum of ε, and Σ δ_j (what the δ cap limits).

    Raises:
        ValueError: ``delta`` is below Σ δ_j, where the jobs' own guarantees do not add up.
    """
    active = _active(charges)
    total_delta = math.fsum(c.delta for c in active)
    plain = math.fsum(c.epsilon for c in active)
    if not active:
        return 0.0, 0.0, 0.0
    if total_delta > delta * (1 + 1e-9):
        raise ValueError(
            f"accounting delta {delta:.3g} is below the jobs' total delta {total_delta:.3g}; "
            "compose at accounting_delta(...)"
        )
    keys: list[tuple[float, float, int, float, float]] = []
    for c in active:
        keys.append(_charge_key(c))
        if c.label_noise_multiplier is not None:
            # The label release: one Gaussian event with sampling probability 1.
            keys.append((c.label_noise_multiplier, 1.0, 1, -1.0, -1.0))
        if c.stats_noise_multiplier is not None:
            keys.append((c.stats_noise_multiplier, 1.0, 1, -1.0, -1.0))
    pld_delta = max(delta, total_delta) - math.fsum(c.threshold_delta for c in active)
    composed = _pld_epsilon(tuple(sorted(keys)), pld_delta)
    return min(composed, plain), plain, total_delta


def _charge_key(c: JobCharge) -> tuple[float, float, int, float, float]:
    if c.has_event:
        assert c.noise_multiplier is not None
        assert c.sample_rate is not None
        assert c.steps is not None
        return (c.noise_multiplier, c.sample_rate, c.steps, -1.0, -1.0)
    if c.label_noise_multiplier is not None:
        return (-1.0, -1.0, 0, c.epsilon, c.delta - c.threshold_delta)
    return (-1.0, -1.0, 0, c.epsilon, c.delta)


@functools.lru_cache(maxsize=2048)
def _pld_epsilon(events: Sequence[tuple[float, float, int, float, float]], delta: float) -> float:
    """PLD ε of a multiset of events (cached: refusals recompute the same set many times)."""
    from dp_accounting.pld import common  # type: ignore[import-untyped]
    from dp_accounting.pld import privacy_loss_distribution as pld

    total = pld.identity(value_discretization_interval=PLD_DISCRETIZATION)
    for sigma, q, steps, eps, dlt in events:
        if sigma >= 0:
            if steps <= 0 or q <= 0:
                continue
            if sigma == 0:
                return math.inf
            part = pld.from_gaussian_mechanism(
                standard_deviation=sigma,
                sampling_prob=min(1.0, q),
                value_discretization_interval=PLD_DISCRETIZATION,
            ).self_compose(steps)
        else:
            part = pld.from_privacy_parameters(
                common.DifferentialPrivacyParameters(eps, dlt),
                value_discretization_interval=PLD_DISCRETIZATION,
            )
        total = total.compose(part)
    return float(total.get_epsilon_for_delta(delta))


def epsilon_curve(
    *,
    noise_multiplier: float,
    sample_rate: float,
    steps: int,
    delta: float,
    label_noise_multiplier: float | None = None,
    points: int = 9,
) -> list[tuple[int, float]]:
    """ε (PLD, at ``delta``) of the model had training ended after k of ``steps`` steps.

    For ``points`` values of k from 0 to ``steps``. A model released with a DP label
    distribution (``label_noise_multiplier``) carries that release at every k, composed at δ
    less the threshold's share as the job's ε is, so the curve starts at the release's own ε
    and ends at the card's ε; without one it starts at 0. Evaluations are cached, so a card's
    curve costs its PLD compositions once per process.
    """
    if steps <= 0 or sample_rate <= 0 or noise_multiplier <= 0 or not 0 < delta < 1:
        return []
    ks = sorted({round(steps * i / (points - 1)) for i in range(points)} | {steps})
    release: tuple[tuple[float, float, int, float, float], ...] = ()
    if label_noise_multiplier:
        release = ((label_noise_multiplier, 1.0, 1, -1.0, -1.0),)
        delta *= 1 - LABEL_THRESHOLD_DELTA_SHARE
    curve = []
    for k in ks:
        events = ((noise_multiplier, sample_rate, k, -1.0, -1.0), *release) if k else release
        curve.append((k, _pld_epsilon(tuple(sorted(events)), delta) if events else 0.0))
    return curve
