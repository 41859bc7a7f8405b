"""Private Evolution for text (Aug-PE; Xie et al., ICML 2024): DP synthetic text, no training.

DP-SGD on a small base spends its budget on noisy gradients and, on our benchmark, taught it
the corpus' style but little of what tells its labels apart (benchmarks/README.md). Private
Evolution spends the budget on *choosing* instead: a public base writes candidate texts per
label, every private record votes for the candidate of its own label nearest to it in a
sentence-embedding space, the vote histogram is released with Gaussian noise, and the
candidates the noisy votes favour survive and are varied (rewritten, filled in, continued)
into the next population. What the model finally holds is the last DP-selected population;
sampling draws from it. The reference is microsoft/DPSDA's ``pe`` package
(``NearestNeighbors`` histogram, ``PEPopulation``, ``LLMAugPE``); this module is the
algorithm only, with the base and the embedding model passed in as callbacks so it can be
tested with fakes.

**The privacy argument, one iteration.** The candidates are fixed before the private records
are read in that iteration: they come from the public base, from earlier *released* (noisy)
histograms and from public randomness, never from a private record. Each record (one privacy
unit: user-level datasets pass one record per user) casts exactly one vote, for its nearest
candidate among those of its own label; a record of a label that is not released votes for
nothing. Adding or removing a record therefore changes one cell of the histogram by one: the
concatenated histogram of *all* labels (labels partition the records) has L2 sensitivity 1,
and one Gaussian release ``N(0, σ²)`` on every cell is one Gaussian mechanism per iteration.
T iterations compose adaptively to T Gaussian mechanisms: the ledger's accountant composes
them (with the label mix's release, which decides which labels get candidates at all).
Everything after a release (thresholding, resampling, asking the base for variations, the
final population and sampling from it) is post-processing and costs nothing.

**Secret noise.** The histogram noise comes from
:func:`privsynth.models.secret_rng.secret_generator` (a fresh OS-seeded generator per run),
never from a seed a caller or a reader could know: with a known seed the noise could be
subtracted and each vote read off.
"""

from __future__ import annotations

import io
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np
import torch
from numpy.typing import NDArray
from privsynth.models.secret_rng import secret_generator, system_random

__all__ = [
    "VARIATIONS",
    "EvolutionConfig",
    "EvolutionStopped",
    "Population",
    "evolve",
    "nearest_votes",
    "noisy_histogram",
    "select",
]

Vectors = NDArray[np.float64]

VARIATIONS = ("rewrite", "blank", "continue")
"""How the base varies a surviving candidate (Aug-PE's variation prompts): rewrite it in other
words, fill in its blanked-out words, or continue its first part."""


class Generate(Protocol):
    """The base's random API: ``requests[label]`` fresh candidate texts per label.

    All labels in one call, so the base can batch across them.
    """

    def __call__(self, requests: Mapping[str, int], /) -> dict[str, list[str]]: ...


class Vary(Protocol):
    """The base's variation API: one variation of each text (per label, same order)."""

    def __call__(self, texts: Mapping[str, Sequence[str]], /) -> dict[str, list[str]]: ...


class Embed(Protocol):
    """Sentence embeddings, one row per text (the same model for private and synthetic)."""

    def __call__(self, texts: Sequence[str], /) -> Vectors: ...


@dataclass(frozen=True, kw_only=True)
class EvolutionConfig:
    """The recipe's knobs (stored on the model config and the card).

    Attributes:
        population: Candidates per label in every generation.
        iterations: T, noisy vote histograms released (each one Gaussian mechanism).
        threshold: Noisy votes below ``threshold`` noise standard deviations count as zero
            (DPSDA's ``histogram_threshold``, here in units of σ): without it, candidates no
            record voted for survive on noise alone.
        keep_fraction: At most this share of the next generation are surviving candidates
            kept verbatim (the most voted first); the rest are variations of survivors drawn
            in proportion to their votes (DPSDA's ``keep_selected`` with one variation fold).
        max_new_tokens: Longest text the base writes for one candidate.
        temperature: The base's sampling temperature for candidates and variations.
        variations: Variation kinds used, each chosen with equal probability per candidate
            (:data:`VARIATIONS`).
        blank_probability: Share of words blanked out for a ``blank`` variation.
    """

    population: int = 24
    iterations: int = 3
    threshold: float = 2.0
    keep_fraction: float = 0.5
    max_new_tokens: int = 40
    temperature: float = 1.0
    variations: tuple[str, ...] = VARIATIONS
    blank_probability: float = 0.3

    def validate(self) -> None:
        """Check ranges.

        Raises:
            ValueError: Naming the field (no data in the message).
        """
        if not 2 <= self.population <= 10_000:
            raise ValueError("population must lie in 2..10000")
        if not 1 <= self.iterations <= 100:
            raise ValueError("iterations must lie in 1..100")
        if not (math.isfinite(self.threshold) and self.threshold >= 0):
            raise ValueError("threshold must be a number >= 0")
        if not 0 <= self.keep_fraction < 1:
            raise ValueError("keep_fraction must lie in [0, 1)")
        if not 1 <= self.max_new_tokens <= 512:
            raise ValueError("max_new_tokens must lie in 1..512")
        if not (math.isfinite(self.temperature) and 0 < self.temperature <= 5):
            raise ValueError("temperature must lie in (0, 5]")
        if not self.variations or any(v not in VARIATIONS for v in self.variations):
            raise ValueError(f"variations must be a non-empty subset of {', '.join(VARIATIONS)}")
        if not 0 < self.blank_probability < 1:
            raise ValueError("blank_probability must lie in (0, 1)")

    def generations(self) -> int:
        """Candidate texts the base writes per label over a whole run (at most).

        The first population, then ``population - kept`` variations before each later vote.
        """
        kept = int(self.keep_fraction * self.population)
        return self.population + (self.iterations - 1) * (self.population - kept)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable, for the model config and the card."""
        out = asdict(self)
        out["variations"] = list(self.variations)
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> EvolutionConfig:
        """Inverse of :meth:`to_dict` (unknown keys are ignored)."""
        known = set(cls.__dataclass_fields__)
        values = {k: v for k, v in raw.items() if k in known}
        if "variations" in values:
            values["variations"] = tuple(str(v) for v in values["variations"])
        return cls(**values)


@dataclass(frozen=True)
class Population:
    """The final DP-selected candidates per label and their noisy, thresholded votes.

    Attributes:
        texts: Label → surviving candidate texts.
        weights: Label → each text's weight (> 0): its released vote count less the
            threshold, or 1 each when no candidate of the label passed the threshold.
    """

    texts: dict[str, list[str]]
    weights: dict[str, list[float]]

    @property
    def labels(self) -> list[str]:
        """Labels with candidates, sorted."""
        return sorted(self.texts)

    def size(self) -> int:
        """Candidate texts held, over all labels."""
        return sum(len(v) for v in self.texts.values())

    def draw(self, label: str, count: int, rng: random.Random) -> list[str]:
        """``count`` texts of ``label``, by weight, distinct until the population runs out.

        A weighted random order (Efraimidis & Spirakis: key ``u^(1/w)``), repeated when more
        records are asked for than the label holds. Post-processing: any ``rng`` will do.

        Raises:
            KeyError: ``label`` has no candidates.
        """
        texts, weights = self.texts[label], self.weights[label]
        out: list[str] = []
        while len(out) < count:
            keys = [rng.random() ** (1.0 / w) for w in weights]
            order = sorted(range(len(texts)), key=lambda i: keys[i], reverse=True)
            out += [texts[i] for i in order[: count - len(out)]]
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain containers (what ``torch.load(weights_only=True)`` reads)."""
        return {"texts": self.texts, "weights": self.weights}

    def to_bytes(self) -> bytes:
        """Serialised: the release's post-processing, safe to publish with the model."""
        buffer = io.BytesIO()
        torch.save(self.to_dict(), buffer)
        return buffer.getvalue()

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Population:
        """Inverse of :meth:`to_dict`."""
        texts = {str(k): [str(t) for t in v] for k, v in raw["texts"].items()}
        weights = {str(k): [float(w) for w in v] for k, v in raw["weights"].items()}
        return cls(texts=texts, weights=weights)

    @classmethod
    def from_bytes(cls, data: bytes) -> Population:
        """Inverse of :meth:`to_bytes`."""
        return cls.from_dict(torch.load(io.BytesIO(data), map_location="cpu", weights_only=True))


class EvolutionStopped(Exception):
    """The run stopped (``should_stop``) or failed between iterations.

    ``iterations`` histograms were released before it stopped: what the ledger charges.
    """

    def __init__(self, *, iterations: int) -> None:
        super().__init__(f"private evolution stopped after {iterations} iterations")
        self.iterations = iterations


def nearest_votes(private: Vectors, candidates: Vectors) -> NDArray[np.float64]:
    """Each private row's one vote for its nearest candidate row (L2 distance).

    Returns:
        Votes per candidate (sums to the number of private rows; zeros without any).
    """
    votes = np.zeros(len(candidates), dtype=np.float64)
    if len(private) == 0 or len(candidates) == 0:
        return votes
    # argmin ||p - c||² = argmin (||c||² - 2 p·c); chunked to bound memory.
    sq = np.einsum("ij,ij->i", candidates, candidates)
    for start in range(0, len(private), 4096):
        scores = sq[None, :] - 2.0 * private[start : start + 4096] @ candidates.T
        np.add.at(votes, scores.argmin(axis=1), 1.0)
    return votes


def noisy_histogram(
    votes: NDArray[np.float64],
    *,
    noise_multiplier: float,
    generator: torch.Generator | None = None,
) -> NDArray[np.float64]:
    """The Gaussian release of a vote histogram (sensitivity 1): ``votes + N(0, σ²)`` per cell.

    Args:
        votes: Exact votes per candidate.
        noise_multiplier: σ (> 0).
        generator: Noise source; a fresh secret one by default (tests may pass a seeded one,
            production never does).

    Raises:
        ValueError: σ not a number > 0.
    """
    if not (math.isfinite(noise_multiplier) and noise_multiplier > 0):
        raise ValueError("noise_multiplier must be > 0")
    noise = torch.randn(
        len(votes),
        generator=generator if generator is not None else secret_generator(),
        dtype=torch.float64,
    ).numpy()
    released: NDArray[np.float64] = votes + noise * noise_multiplier
    return released


def select(weights: NDArray[np.float64], *, count: int, rng: random.Random) -> list[int]:
    """``count`` indices drawn with replacement in proportion to ``weights`` (uniform if all 0).

    Post-processing of a release: ``rng`` need not be secret.
    """
    n = len(weights)
    if n == 0 or count <= 0:
        return []
    total = float(weights.sum())
    if not total > 0:
        return [rng.randrange(n) for _ in range(count)]
    return rng.choices(range(n), weights=weights.tolist(), k=count)


def _survivors(
    weights: NDArray[np.float64], *, config: EvolutionConfig, rng: random.Random
) -> tuple[list[int], list[int]]:
    """Who survives an iteration: kept verbatim (most voted first), parents to vary (drawn).

    Post-processing of the released, thresholded votes.
    """
    size = config.population
    positive = [i for i in np.argsort(-weights, kind="stable").tolist() if weights[i] > 0]
    kept = positive[: int(config.keep_fraction * size)]
    return kept, select(weights, count=size - len(kept), rng=rng)


def _next_generation(
    population: dict[str, list[str]],
    weights: dict[str, NDArray[np.float64]],
    *,
    config: EvolutionConfig,
    vary: Vary,
    rng: random.Random,
) -> dict[str, list[str]]:
    """Every label's survivors plus one variation of each drawn parent (one ``vary`` call)."""
    plan = {n: _survivors(weights[n], config=config, rng=rng) for n in population}
    asked = {n: [population[n][i] for i in parents] for n, (_, parents) in plan.items()}
    varied = vary(asked)
    out: dict[str, list[str]] = {}
    for name, (kept, parents) in plan.items():
        got = varied.get(name, [])
        if len(got) != len(parents):
            raise ValueError("the variation callback must return one text per input")
        fresh = [v if v.strip() else p for v, p in zip(got, asked[name], strict=True)]
        out[name] = [population[name][i] for i in kept] + fresh
    return out


def evolve(
    private: Sequence[tuple[str | None, str]],
    *,
    labels: Sequence[str],
    config: EvolutionConfig,
    noise_multiplier: float,
    generate: Generate,
    vary: Vary,
    embed: Embed,
    on_iteration: Callable[[int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    generator: torch.Generator | None = None,
    rng: random.Random | None = None,
) -> Population:
    """Run Private Evolution and return the final DP-selected population per label.

    Args:
        private: ``(label, text)`` per privacy unit (user-level datasets: one record per
            user). Records of labels outside ``labels`` (or without one) vote for nothing.
        labels: The labels already released (the DP label mix, or the declared public one);
            each gets ``config.population`` candidates.
        config: The recipe's knobs.
        noise_multiplier: σ of every iteration's histogram release (sensitivity 1), from the
            job's plan.
        generate: The base's random API.
        vary: The base's variation API.
        embed: Sentence embeddings (private and synthetic texts alike).
        on_iteration: Called with ``t`` right after the t-th histogram was released.
        should_stop: Asked before each iteration; True stops the run.
        generator: Histogram noise; a fresh secret one by default (tests only pass another).
        rng: Resampling and ties (post-processing); the OS's CSPRNG by default.

    Raises:
        EvolutionStopped: ``should_stop`` returned True before an iteration, or a callback
            failed after at least one release; ``iterations`` releases were made (the error,
            if any, is chained). A failure before the first release propagates as it is.
        ValueError: A bad config or σ (before any private record is read).
    """
    config.validate()
    if not (math.isfinite(noise_multiplier) and noise_multiplier > 0):
        raise ValueError("noise_multiplier must be > 0")
    names = sorted(set(labels))
    if not names:
        raise ValueError("private evolution needs at least one released label")
    noise = generator if generator is not None else secret_generator()
    chooser = rng if rng is not None else system_random()
    released = 0
    try:
        texts_of: dict[str, list[str]] = {n: [] for n in names}
        for label, text in private:
            if label is not None and label in texts_of:
                texts_of[label].append(text)
        population = _fresh(generate, names, config.population)
        flat_private = [t for n in names for t in texts_of[n]]
        private_vecs = _split(embed(flat_private), [len(texts_of[n]) for n in names], names)
        for t in range(1, config.iterations + 1):
            if should_stop is not None and should_stop():
                raise EvolutionStopped(iterations=released)
            flat = [c for n in names for c in population[n]]
            sizes = [len(population[n]) for n in names]
            vecs = _split(embed(flat), sizes, names)
            votes = np.concatenate([nearest_votes(private_vecs[n], vecs[n]) for n in names])
            # One Gaussian release over every label's cells: the labels partition the records,
            # so one record moves one cell by one (L2 sensitivity 1).
            noisy = noisy_histogram(votes, noise_multiplier=noise_multiplier, generator=noise)
            released = t
            if on_iteration is not None:
                on_iteration(t)
            cut = config.threshold * noise_multiplier
            clipped = np.clip(noisy - cut, 0.0, None)
            parts = _split(clipped, sizes, names)
            if t == config.iterations:
                return _final(population, parts)
            population = _next_generation(population, parts, config=config, vary=vary, rng=chooser)
    except EvolutionStopped:
        raise
    except Exception as exc:
        if released == 0:
            raise  # (nothing was released: nothing to charge)
        raise EvolutionStopped(iterations=released) from exc
    raise AssertionError("unreachable")  # (the loop returns at its last iteration)


def _fresh(generate: Generate, names: Sequence[str], count: int) -> dict[str, list[str]]:
    texts = generate(dict.fromkeys(names, count))
    if any(len(texts.get(n, [])) != count for n in names):
        raise ValueError("the generation callback must return the number of texts asked for")
    return {n: list(texts[n]) for n in names}


def _split(
    rows: NDArray[np.float64], sizes: Sequence[int], names: Sequence[str]
) -> dict[str, NDArray[np.float64]]:
    out: dict[str, NDArray[np.float64]] = {}
    start = 0
    for name, size in zip(names, sizes, strict=True):
        out[name] = rows[start : start + size]
        start += size
    return out


def _final(population: dict[str, list[str]], weights: dict[str, NDArray[np.float64]]) -> Population:
    """Candidates with weight > 0 (merged when equal); all of a label's, weight 1, if none."""
    texts: dict[str, list[str]] = {}
    kept: dict[str, list[float]] = {}
    for name, candidates in population.items():
        w = weights[name]
        merged: dict[str, float] = {}
        for text, weight in zip(candidates, w.tolist(), strict=True):
            if weight > 0:
                merged[text] = merged.get(text, 0.0) + weight
        if not merged:
            merged = dict.fromkeys(candidates, 1.0)
        texts[name] = list(merged)
        kept[name] = list(merged.values())
    return Population(texts=texts, weights=kept)
