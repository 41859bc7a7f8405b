"""The assembled quality report on public fortunes: a copying "generator" and a fair one.

A generator that hands back its training records is the known worst case: membership inference
finds every member, every sample overlaps a training record verbatim and sits on top of one,
and utility equals real data's. One that writes records from the holdout (real text it never
saw) is the known good case for leakage. The report must say both, and print no record.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence

import pytest
from corpus import fortunes
from privsynth.server.evaluation import (
    EvaluationInputs,
    EvaluationStopped,
    Limits,
    Record,
    Tools,
    auditor_view,
    build_report,
)
from privsynth.server.evaluation.dp_bow import PublicVocabulary
from privsynth.server.evaluation.embeddings import TfidfEmbedder
from privsynth.server.evaluation.text import words


def _split(n: int = 450) -> tuple[list[Record], list[Record], list[Record]]:
    records = [Record(str(r.text), r.label) for r in fortunes(n)]
    random.Random(0).shuffle(records)
    cut = n // 3
    # training, holdout, and a second unseen set the "fair" generator writes from
    return (
        records[2 * cut :] + records[:cut],
        records[cut : cut + cut // 2],
        records[cut + cut // 2 : 2 * cut],
    )


def _tools(training: Sequence[Record], *, copying: bool = True) -> Tools:
    members = {r.text for r in training}

    def loss(rows: Sequence[Record], _stop: object) -> list[float]:
        # Copying: a model that memorised its training set, near-zero loss on members only.
        # Otherwise one whose loss depends on the text's length alone, never on membership.
        return [0.01 if copying and r.text in members else 4.0 + len(r.text) % 7 / 10 for r in rows]

    def emails(texts: Sequence[str]) -> list[list[str]]:
        return [["EMAIL_ADDRESS"] if "@" in t else [] for t in texts]

    vocab = sorted({w for r in training for w in words(r.text)})  # (test: any fixed list)
    return Tools(
        embedder=TfidfEmbedder(dimensions=32),
        vocabulary=PublicVocabulary(tuple(vocab), "test vocabulary"),
        record_loss=loss,
        detect_pii=emails,
    )


def _inputs(
    training: list[Record], holdout: list[Record], synthetic: list[Record]
) -> EvaluationInputs:
    return EvaluationInputs(
        model="models/test",
        epsilon=8.0,
        delta=1e-5,
        privacy_unit="record",
        holdout_fraction=0.1,
        training=training,
        holdout=holdout,
        synthetic=synthetic,
    )


LIMITS = Limits(compared_records=100, membership_records=100, neighbour_records=400)


def test_a_copying_generator_is_caught_and_no_record_is_printed() -> None:
    training, holdout, _ = _split()
    synthetic = random.Random(1).sample(training, 150)
    stages: list[str] = []
    report = build_report(
        _inputs(training, holdout, synthetic),
        _tools(training),
        limits=LIMITS,
        rng=random.Random(0),
        on_progress=lambda stage, _i, _n: stages.append(stage),
    )
    assert stages == ["utility", "fidelity", "diversity", "leakage", "bias"]
    leak = report["leakage"]
    assert leak["membership_inference"]["auc"] == pytest.approx(1.0)
    assert leak["ngram_overlap"]["with_training"] >= 0.9  # every sample long enough matches
    assert leak["ngram_overlap"]["with_holdout"] < 0.2
    assert leak["nearest_neighbour"]["copies"] == 1.0
    assert leak["nearest_neighbour"]["median_ratio"] == 0.0
    # The PII analyzer's rate on real unseen records stands beside the synthetic records' rate.
    assert 0.0 <= leak["residual_pii"]["holdout_rate"] <= 1.0
    util = report["utility"]
    assert [r["kind"] for r in util["rows"]][:2] == ["synthetic", "real"]
    assert any(r["name"].startswith("DP bag-of-words") for r in util["rows"])
    assert "label names only" in {r["name"] for r in util["rows"]}
    assert "verdict" in util and util["labels"] >= 2
    # Honesty: the leakage and utility measurements are marked as reading private data.
    marks = {m["measurement"]: m for m in report["honesty"]["measurements"]}
    assert not marks["membership inference (generator's loss on both)"]["covered_by_dp"]
    assert marks["diversity of the synthetic records"]["covered_by_dp"]
    assert "not covered" in report["honesty"]["statement"]
    # No record's text anywhere in the report (training and synthetic alike).
    dumped = json.dumps(report, ensure_ascii=False)
    for record in training + holdout:
        if len(record.text) >= 20:
            assert record.text not in dumped


def test_a_generator_of_unseen_real_text_looks_like_the_holdout() -> None:
    training, holdout, unseen = _split()
    report = build_report(
        _inputs(training, holdout, unseen),
        _tools(training, copying=False),
        limits=LIMITS,
        rng=random.Random(0),
    )
    leak = report["leakage"]
    assert leak["membership_inference"]["auc"] == pytest.approx(0.5, abs=0.1)
    assert leak["nearest_neighbour"]["copies"] < 0.05  # (the corpus repeats a few fortunes)
    assert leak["nearest_neighbour"]["median_ratio"] == pytest.approx(1.0, abs=0.3)
    synthetic_row, floor = report["fidelity"]["rows"]
    assert synthetic_row["unigram_js"] == pytest.approx(floor["unigram_js"], abs=0.05)
    assert 0.0 <= synthetic_row["mauve"] <= 1.0
    assert report["diversity"]["synthetic"]["exact_duplicate_rate"] == 0.0
    # Real unseen text teaches the classifier about as much as the training records do.
    assert report["utility"]["rows"][0]["accuracy"] > report["utility"]["rows"][-1]["accuracy"]


def test_auditor_view_keeps_scores_and_drops_label_names_and_terms() -> None:
    training, holdout, unseen = _split(300)
    report = build_report(
        _inputs(training, holdout, unseen), _tools(training), limits=LIMITS, rng=random.Random(0)
    )
    view = auditor_view(report)
    labels = {r.label for r in training if r.label}
    assert any(label in json.dumps(report) for label in labels)
    dumped = json.dumps(view)
    assert not any(f'"{label}"' in dumped for label in labels)
    assert "largest_term_shifts" not in view["bias"]
    assert view["leakage"] == report["leakage"]
    assert view["fidelity"]["label_mix"]["labels"] == len(labels)


def test_a_stop_request_ends_the_evaluation() -> None:
    training, holdout, unseen = _split(300)
    calls = iter(range(100))
    with pytest.raises(EvaluationStopped):
        build_report(
            _inputs(training, holdout, unseen),
            _tools(training),
            limits=LIMITS,
            should_stop=lambda: next(calls) >= 3,
        )


def test_user_level_reports_say_membership_inference_understates() -> None:
    training, holdout, unseen = _split(300)
    inputs = _inputs(training, holdout, unseen)
    user_level = EvaluationInputs(**{**inputs.__dict__, "privacy_unit": "user"})
    report = build_report(user_level, _tools(training), limits=LIMITS, rng=random.Random(0))
    assert "understates" in report["leakage"]["note"]
    from privsynth.server.evaluation.page import render

    assert "understates" in render(report)
