"""The quality report: every section computed, assembled as one JSON-ready document.

:func:`build_report` takes the three corpora (synthetic records, the training records, the
holdout training never saw) and the tools that touch models (an embedder, the generator's
per-record loss, the PII analyzer) and returns a plain dict: numbers, the names of our own
reference rows and term lists, and label names — never the text of any record. Sections:

``utility``     train on synthetic, test on the holdout, with reference rows (:mod:`.utility`)
``fidelity``    lengths, n-gram JS divergence, label mix, MAUVE and Fréchet on embeddings
``diversity``   distinct-n, self-BLEU, duplicates (:mod:`.diversity`)
``leakage``     membership inference, verbatim overlap, nearest neighbours, residual PII
``bias``        label shift and demographic terms (:mod:`.bias`)
``canary_audit`` when requested, the empirical canary audit of the model's training mechanism
                (:mod:`.canary`; public text only); otherwise whether it could run
``honesty``     which measurements read private data, and so are outside the DP guarantee

Every distance is also computed for the holdout against the training records: two real
samples of the same data differ too, and that floor is what the synthetic data is read
against. Comparisons are made at equal sizes (the smallest of the holdout, the synthetic set
and :attr:`Limits.compared_records`), because n-gram divergences and MAUVE depend on sample
size.

:func:`auditor_view` is the same report with label names and per-term rows removed: what an
auditor, who may see counts and scores but not the owner's data, is shown.
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from privsynth.server.evaluation import bias, canary, distances, diversity, fidelity, leakage
from privsynth.server.evaluation.control import ProgressFn, StopFn, check
from privsynth.server.evaluation.dp_bow import PublicVocabulary
from privsynth.server.evaluation.embeddings import Embedder
from privsynth.server.evaluation.text import Record
from privsynth.server.evaluation.utility import utility

__all__ = [
    "SCHEMA",
    "STAGES",
    "EvaluationInputs",
    "Limits",
    "Tools",
    "auditor_view",
    "build_report",
]

SCHEMA = "privsynth.evaluation/1"

STAGES = ("utility", "fidelity", "diversity", "leakage", "bias")

TRAINING = "training records"
HOLDOUT = "holdout records"
PUBLIC = "public text and random canaries"
PRIVATE = frozenset({TRAINING, HOLDOUT})

LENGTH_EDGES = (0, 5, 10, 15, 20, 30, 40, 60, 80, 120, 10_000)
"""Word-count bins of the length histograms (the last is open-ended)."""


@dataclass(frozen=True, kw_only=True)
class EvaluationInputs:
    """What is evaluated: a model's identity and privacy, and the three corpora."""

    model: str
    epsilon: float
    delta: float
    privacy_unit: str
    holdout_fraction: float
    training: Sequence[Record]
    holdout: Sequence[Record]
    synthetic: Sequence[Record]


LossFn = Callable[[Sequence[Record], StopFn | None], list[float]]
"""Each record's loss under the evaluated generator (the training objective)."""

DetectFn = Callable[[Sequence[str]], list[list[str]]]
"""PII entity types found in each text."""


@dataclass(frozen=True, kw_only=True)
class Tools:
    """The parts that touch models or configuration, injected so each can be swapped."""

    embedder: Embedder
    vocabulary: PublicVocabulary
    record_loss: LossFn | None = None
    """None: the membership-inference measurement is skipped (and the report says so)."""
    detect_pii: DetectFn | None = None
    """None: the residual-PII measurement is skipped (and the report says so)."""
    term_groups: Mapping[str, Sequence[str]] = field(
        default_factory=lambda: dict(bias.DEFAULT_TERM_GROUPS)
    )
    canary_audit: canary.CanaryAudit = field(default_factory=canary.CanaryAudit)
    """The canary audit of the model's mechanism (default: not requested, no auditor)."""


@dataclass(frozen=True, kw_only=True)
class Limits:
    """Caps that bound an evaluation's time (each a number of records)."""

    compared_records: int = 1000
    """Records per corpus in the distance comparisons (embedded: the costliest step)."""
    membership_records: int = 1000
    """Records per side scored by the generator for membership inference."""
    neighbour_records: int = 5000
    """Training records embedded as the nearest-neighbour reference (all, up to this)."""


def _round(value: Any) -> Any:
    """Floats to 4 significant digits, recursively: reports are read, not recomputed."""
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_round(v) for v in value]
    return value


@dataclass(frozen=True)
class _Compared:
    """Equal-sized subsets of the three corpora and their embeddings (rows in order)."""

    training: list[Record]
    synthetic: list[Record]
    holdout: list[Record]
    vectors: list[np.ndarray[Any, Any]]
    """Embeddings of ``training``, ``synthetic`` and ``holdout``, in that order."""
    training_pool: np.ndarray[Any, Any]
    """Embeddings of all training records (up to :attr:`Limits.neighbour_records`)."""


def _sample(records: Sequence[Record], k: int, rng: random.Random) -> list[Record]:
    return list(records) if len(records) <= k else rng.sample(list(records), k)


def _utility_section(
    inputs: EvaluationInputs, tools: Tools, rng: random.Random, should_stop: StopFn | None
) -> dict[str, Any]:
    result = utility(
        inputs.training,
        inputs.holdout,
        inputs.synthetic,
        epsilon=inputs.epsilon,
        delta=inputs.delta,
        vocabulary=tools.vocabulary.words,
        embedder=tools.embedder,
        rng=rng,
        should_stop=should_stop,
    )
    if result is None:
        return {
            "skipped": "needs at least two labels in the training records and the holdout, "
            "and labelled synthetic records",
        }
    return {
        "task": "predict each record's label: TF-IDF (word 1-2-grams) + logistic regression, "
        "tested on the holdout",
        "rows": [asdict(r) for r in result.rows],
        "holdout_records": result.holdout_records,
        "labels": result.labels,
        "beats": result.beats,
        "verdict": result.verdict,
        "dp_bag_of_words_vocabulary": tools.vocabulary.source,
        "dp_centroid_embedding": tools.embedder.name,
    }


def _distance_row(
    name: str,
    reference: Sequence[Record],
    other: Sequence[Record],
    ref_vectors: np.ndarray[Any, Any],
    other_vectors: np.ndarray[Any, Any],
) -> dict[str, Any]:
    ref_texts, other_texts = [r.text for r in reference], [r.text for r in other]
    hist_p, hist_q = distances.quantise(ref_vectors, other_vectors)
    return {
        "name": name,
        "records": len(other),
        "unigram_js": fidelity.ngram_js(ref_texts, other_texts, 1),
        "bigram_js": fidelity.ngram_js(ref_texts, other_texts, 2),
        "length_ks": fidelity.ks_statistic(
            [float(x) for x in fidelity.lengths(ref_texts)],
            [float(x) for x in fidelity.lengths(other_texts)],
        ),
        "mauve": distances.mauve_from_histograms(hist_p, hist_q),
        "frechet": distances.frechet_distance(ref_vectors, other_vectors),
        "divergence_curve": distances.divergence_curve(
            hist_p / hist_p.sum(), hist_q / hist_q.sum()
        ),
    }


def _fidelity_section(
    inputs: EvaluationInputs, tools: Tools, compared: _Compared
) -> dict[str, Any]:
    train, syn, hold = compared.training, compared.synthetic, compared.holdout
    v_train, v_syn, v_hold = compared.vectors
    length_rows = {
        name: {
            **asdict(fidelity.length_summary(fidelity.lengths([r.text for r in rows]))),
            "histogram": fidelity.histogram(
                [float(x) for x in fidelity.lengths([r.text for r in rows])],
                [float(e) for e in LENGTH_EDGES],
            ),
        }
        for name, rows in (
            (TRAINING, inputs.training),
            ("synthetic records", inputs.synthetic),
            (HOLDOUT, inputs.holdout),
        )
    }
    mix = fidelity.label_mix(
        [r.label for r in inputs.training], [r.label for r in inputs.synthetic]
    )
    holdout_mix = fidelity.label_mix(
        [r.label for r in inputs.training], [r.label for r in inputs.holdout]
    )
    return {
        "compared_records": len(syn),
        "embedding": tools.embedder.name,
        "rows": [
            _distance_row("synthetic vs training", train, syn, v_train, v_syn),
            _distance_row("holdout vs training (real floor)", train, hold, v_train, v_hold),
        ],
        "lengths": {"edges": list(LENGTH_EDGES), "corpora": length_rows},
        "label_mix": {
            "training": mix.reference,
            "synthetic": mix.synthetic,
            "total_variation": mix.total_variation,
            "holdout_total_variation": holdout_mix.total_variation,
        },
    }


def _diversity_section(inputs: EvaluationInputs, compared: _Compared) -> dict[str, Any]:
    train, syn = compared.training, compared.synthetic
    return {
        "synthetic": asdict(diversity.diversity([r.text for r in inputs.synthetic])),
        "training_reference": asdict(diversity.diversity([r.text for r in train])),
        "reference_records": len(train),
        "near_duplicate_jaccard": diversity.NEAR_DUPLICATE_JACCARD,
        "synthetic_records": len(inputs.synthetic),
        "compared_records": len(syn),
    }


def _leakage_section(
    inputs: EvaluationInputs,
    tools: Tools,
    compared: _Compared,
    *,
    limits: Limits,
    rng: random.Random,
    should_stop: StopFn | None,
) -> dict[str, Any]:
    section: dict[str, Any] = {}
    if inputs.privacy_unit == "user":
        section["note"] = (
            "user-level model: training kept one secretly chosen record of each user, while the "
            "members here are every record of the training users, so membership inference "
            "understates what an attack on the records actually trained on could find"
        )
    if tools.record_loss is not None and inputs.training and inputs.holdout:
        members = _sample(inputs.training, limits.membership_records, rng)
        others = _sample(inputs.holdout, limits.membership_records, rng)
        member_losses = tools.record_loss(members, should_stop)
        other_losses = tools.record_loss(others, should_stop)
        mia = leakage.membership_inference(member_losses, other_losses)
        pooled = member_losses + other_losses
        edges = np.linspace(min(pooled), max(pooled) + 1e-9, 21).tolist()
        section["membership_inference"] = {
            **asdict(mia),
            "attack": "loss threshold: lower loss under the model means member",
            "roc": leakage.roc_points(member_losses, other_losses),
            "loss_edges": edges,
            "member_loss_histogram": fidelity.histogram(member_losses, edges),
            "non_member_loss_histogram": fidelity.histogram(other_losses, edges),
        }
    else:
        section["membership_inference"] = {"skipped": "no generator scores (or no holdout)"}
    check(should_stop)
    section["ngram_overlap"] = asdict(
        leakage.ngram_overlap(
            [r.text for r in inputs.synthetic],
            [r.text for r in inputs.training],
            [r.text for r in inputs.holdout],
            seed=rng.randrange(2**31),
        )
    )
    _, v_syn, v_hold = compared.vectors
    nearest = leakage.nearest_neighbour_ratio(v_syn, compared.training_pool, v_hold)
    section["nearest_neighbour"] = {
        **asdict(nearest),
        "embedding": tools.embedder.name,
        "synthetic_records": len(compared.synthetic),
        "holdout_records": len(compared.holdout),
    }
    check(should_stop)
    if tools.detect_pii is not None:
        section["residual_pii"] = {
            **asdict(leakage.residual_pii([r.text for r in inputs.synthetic], tools.detect_pii)),
            # The analyzer's rate on real records the model never saw (scrubbed like the
            # training records): what it flags in this domain's text by nature.
            "holdout_rate": leakage.residual_pii(
                [r.text for r in compared.holdout], tools.detect_pii
            ).rate,
        }
    else:
        section["residual_pii"] = {"skipped": "no PII analyzer given"}
    return section


def _bias_section(inputs: EvaluationInputs, tools: Tools) -> dict[str, Any]:
    shifts = bias.label_shift(
        [r.label for r in inputs.training], [r.label for r in inputs.synthetic]
    )
    groups, terms = bias.term_shifts(
        [r.text for r in inputs.training],
        [r.text for r in inputs.synthetic],
        tools.term_groups,
    )
    return {
        "label_shift": [{**asdict(s), "shift": s.shift} for s in shifts],
        "groups": [asdict(g) for g in groups],
        "largest_term_shifts": [{**asdict(t), "shift": t.shift} for t in terms],
        "term_groups": {g: len(ts) for g, ts in tools.term_groups.items()},
    }


MEASUREMENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("utility: real-data classifiers; every classifier tested on the holdout", (TRAINING, HOLDOUT)),
    ("utility: DP bag-of-words reference (fitted on training records)", (TRAINING,)),
    ("fidelity: distances to training records and the holdout floor", (TRAINING, HOLDOUT)),
    ("diversity of the synthetic records", ()),
    ("diversity of real records (reference row)", (TRAINING,)),
    ("membership inference (generator's loss on both)", (TRAINING, HOLDOUT)),
    ("verbatim n-gram overlap", (TRAINING, HOLDOUT)),
    ("nearest-neighbour distance ratio", (TRAINING, HOLDOUT)),
    ("residual PII in synthetic records", ()),
    ("residual PII rate of holdout records (the analyzer's reference)", (HOLDOUT,)),
    ("bias: label shift and term rates against training records", (TRAINING,)),
)  # fmt: skip


CANARY_MEASUREMENT = (
    "canary audit: the model's recipe retrained on public text with random canaries",
    (PUBLIC,),
)


def _honesty(inputs: EvaluationInputs, *, canary_audit: bool) -> dict[str, Any]:
    measurements = [*MEASUREMENTS, CANARY_MEASUREMENT] if canary_audit else list(MEASUREMENTS)
    statement = (
        f"The model's (ε = {inputs.epsilon:.3g}, δ = {inputs.delta:.2g}) guarantee covers "
        "its training only. Measurements that read the training records or the holdout "
        "again are not covered by it: they are marked below, computed for this report "
        "only, and shown to the dataset's owner (and to auditors as counts and scores). "
        "No record's text, training or synthetic, appears in this report."
    )
    if canary_audit:
        statement += (
            " The canary audit reads no private data and spends no budget: it trains the "
            "model's recipe once more on public text."
        )
    return {
        "statement": statement,
        "measurements": [
            {"measurement": name, "reads": list(reads), "covered_by_dp": not PRIVATE & set(reads)}
            for name, reads in measurements
        ],
        "holdout": {
            "fraction": inputs.holdout_fraction,
            "records": len(inputs.holdout),
            "split": "chosen with secret randomness when the training job started; "
            "never trained on",
        },
    }


def build_report(
    inputs: EvaluationInputs,
    tools: Tools,
    *,
    limits: Limits | None = None,
    rng: random.Random | None = None,
    should_stop: StopFn | None = None,
    on_progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Compute every section and return the report (JSON-serialisable, floats rounded).

    Args:
        inputs: The model and the three corpora.
        tools: Embedder, vocabulary, the generator's loss, the PII analyzer, term lists.
        limits: Size caps (defaults: :class:`Limits`).
        rng: Subsampling; the OS's CSPRNG by default (tests pass a seeded one).
        should_stop: Checked between steps; True raises :class:`EvaluationStopped`.
        on_progress: Told each stage as it starts (the canary audit last, when requested).

    Raises:
        EvaluationStopped: ``should_stop`` returned True.
    """
    limits = limits or Limits()
    rng = rng if rng is not None else random.SystemRandom()
    audit = tools.canary_audit
    stages: tuple[str, ...] = (*STAGES, canary.STAGE) if audit.requested else STAGES
    timings: dict[str, float] = {}
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "model": inputs.model,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "privacy": {
            "epsilon": inputs.epsilon,
            "delta": inputs.delta,
            "privacy_unit": inputs.privacy_unit,
        },
        "records": {
            "synthetic": len(inputs.synthetic),
            "training": len(inputs.training),
            "holdout": len(inputs.holdout),
        },
    }

    def stage(i: int) -> float:
        check(should_stop)
        if on_progress is not None:
            on_progress(stages[i], i, len(stages))
        return time.monotonic()

    t = stage(0)
    report["utility"] = _utility_section(inputs, tools, rng, should_stop)
    timings["utility"] = time.monotonic() - t

    t = stage(1)
    m = max(2, min(len(inputs.holdout), len(inputs.synthetic), limits.compared_records))
    pool = _sample(inputs.training, max(m, limits.neighbour_records), rng)
    picked = sorted(rng.sample(range(len(pool)), min(m, len(pool))))
    synthetic, holdout = _sample(inputs.synthetic, m, rng), _sample(inputs.holdout, m, rng)
    pool_vectors, v_syn, v_hold = tools.embedder.embed(
        [[r.text for r in rows] for rows in (pool, synthetic, holdout)], should_stop=should_stop
    )
    compared = _Compared(
        training=[pool[i] for i in picked],
        synthetic=synthetic,
        holdout=holdout,
        vectors=[pool_vectors[picked], v_syn, v_hold],
        training_pool=pool_vectors,
    )
    report["fidelity"] = _fidelity_section(inputs, tools, compared)
    timings["fidelity"] = time.monotonic() - t

    t = stage(2)
    report["diversity"] = _diversity_section(inputs, compared)
    timings["diversity"] = time.monotonic() - t

    t = stage(3)
    report["leakage"] = _leakage_section(
        inputs, tools, compared, limits=limits, rng=rng, should_stop=should_stop
    )
    timings["leakage"] = time.monotonic() - t

    t = stage(4)
    report["bias"] = _bias_section(inputs, tools)
    timings["bias"] = time.monotonic() - t

    if audit.requested:
        t = stage(5)
    report["canary_audit"] = canary.section(audit, should_stop=should_stop)
    if audit.requested:
        timings["canary_audit"] = time.monotonic() - t

    report["honesty"] = _honesty(inputs, canary_audit=audit.requested)
    report["seconds"] = timings
    result: dict[str, Any] = _round(report)
    return result


def auditor_view(report: Mapping[str, Any]) -> dict[str, Any]:
    """The report with label names and per-term rows removed: counts and scores only."""
    view = copy.deepcopy(dict(report))
    mix = view.get("fidelity", {}).get("label_mix")
    if isinstance(mix, dict):
        view["fidelity"]["label_mix"] = {
            "labels": len(mix.get("training", {})),
            "total_variation": mix.get("total_variation"),
            "holdout_total_variation": mix.get("holdout_total_variation"),
        }
    section = view.get("bias")
    if isinstance(section, dict):
        section["label_shift"] = [
            {k: v for k, v in row.items() if k != "label"} for row in section.get("label_shift", [])
        ]
        section.pop("largest_term_shifts", None)
    view["view"] = "auditor: counts and scores only (label names and terms removed)"
    return view
