"""A small quality report on public fortunes, for the tests of the report's sections and page.

360 fortunes split 240 / 60 / 60 into training records, holdout and "synthetic" records (real
unseen text), TF-IDF embeddings, a generator loss that knows its members, an e-mail "analyzer",
and the canary audit the test gives; :func:`audit_result` makes a canary audit's result from
hand-made scores with the real bound.
"""

from __future__ import annotations

import random
from typing import Any

from corpus import fortunes
from privsynth.models.privacy_audit import AuditResult, audit_bound
from privsynth.server.evaluation import EvaluationInputs, Limits, Record, Tools, build_report
from privsynth.server.evaluation.canary import CanaryAudit
from privsynth.server.evaluation.control import ProgressFn
from privsynth.server.evaluation.dp_bow import PublicVocabulary
from privsynth.server.evaluation.embeddings import TfidfEmbedder


def small_report(
    *,
    model: str,
    canary_audit: CanaryAudit | None = None,
    on_progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """The report of ``model`` (a name only) on the fixed split, subsampled with seed 0."""
    records = [Record(str(r.text), r.label) for r in fortunes(360)]
    random.Random(0).shuffle(records)
    training, holdout, synthetic = records[:240], records[240:300], records[300:]
    members = {r.text for r in training}
    vocab = sorted({w for r in training for w in r.text.lower().split()})
    return build_report(
        EvaluationInputs(
            model=model,
            epsilon=4.0,
            delta=1e-6,
            privacy_unit="record",
            holdout_fraction=0.2,
            training=training,
            holdout=holdout,
            synthetic=synthetic,
        ),
        Tools(
            embedder=TfidfEmbedder(dimensions=32),
            vocabulary=PublicVocabulary(tuple(vocab), "test vocabulary"),
            record_loss=lambda rows, _stop: [0.5 if r.text in members else 2.0 for r in rows],
            detect_pii=lambda texts: [["EMAIL_ADDRESS"] if "@" in t else [] for t in texts],
            canary_audit=canary_audit or CanaryAudit(),
        ),
        limits=Limits(compared_records=60, membership_records=60, neighbour_records=240),
        rng=random.Random(0),
        on_progress=on_progress,
    )


def audit_result(
    scores: list[float], included: list[bool], *, claimed: float, delta: float = 0.0
) -> AuditResult:
    """A canary audit's result for these scores and coins (the bound computed for real)."""
    best, grid = audit_bound(scores, included, delta=delta)
    return AuditResult(
        preset="tiny",
        target_epsilon=claimed,
        epsilon_claimed=claimed,
        delta=delta,
        epsilon_lower_bound=best.epsilon_lower_bound,
        significance=0.05,
        canaries=len(scores),
        canaries_included=sum(included),
        guesses=best.guesses,
        correct=best.correct,
        public_records=100,
        epochs=1,
        noise_multiplier=1.2,
        sample_rate=0.05,
        steps=20,
        train_seconds=3.0,
        wall_seconds=4.0,
        score="test scores",
        grid=grid,
    )
