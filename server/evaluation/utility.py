"""Utility, the headline: does a classifier trained on synthetic records work on real ones?

Train on synthetic, test on the real holdout (TSTR): a TF-IDF (word uni- and bigrams) plus
logistic regression classifier predicts each record's label; its accuracy and macro-F1 on the
holdout are set against the same classifier trained on the real training records, and against
the majority class (the training records' most frequent label). The utility retained,
(acc_syn − acc_maj) / (acc_real − acc_maj), does not flatter a generator that only learned the
label mix: that scores 0.

Reference rows computed in the same run bracket what the synthetic set can show:

* real records subsampled to the synthetic set's size (a synthetic set cannot be expected to
  beat real data of its own size);
* a DP per-label bag-of-words sampler at the model's ε (:mod:`.dp_bow`): the plain DP baseline;
* given an embedder, a bag of public words drawn from DP label centroids at the same ε
  (:mod:`.dp_centroid_bow`): a stronger DP baseline, which beats every text generator
  measured so far on fortunes;
* each record replaced by its label's name alone: what a generator that only echoes its prompt
  would retain.

The verdict line says which references the synthetic data beats. The classifier is the one the
fortunes utility benchmark has used since its first run (``benchmarks/utility.py``), so numbers
stay comparable.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from privsynth.server.evaluation.control import StopFn, check
from privsynth.server.evaluation.dp_bow import BagOfWordsSampler, dp_bag_of_words
from privsynth.server.evaluation.dp_centroid_bow import dp_centroid_bag_of_words
from privsynth.server.evaluation.embeddings import Embedder
from privsynth.server.evaluation.text import Record, words

__all__ = [
    "ClassifierScore",
    "Utility",
    "fit_predict",
    "retained",
    "utility",
]

MIN_LABELS = 2


def fit_predict(
    train_texts: Sequence[str], train_labels: Sequence[str], test_texts: Sequence[str]
) -> list[str]:
    """Train TF-IDF + logistic regression and predict ``test_texts``.

    With a single training label, or texts without a single word, the classifier can only
    predict the most frequent training label, which it then does.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    most = Counter(train_labels).most_common(1)[0][0]
    if len(set(train_labels)) < MIN_LABELS:
        return [most] * len(test_texts)
    clf = make_pipeline(
        TfidfVectorizer(sublinear_tf=True, min_df=1, ngram_range=(1, 2)),
        LogisticRegression(max_iter=2000, C=5.0),
    )
    try:
        clf.fit(list(train_texts), list(train_labels))
    except ValueError:  # empty vocabulary: no text had a word
        return [most] * len(test_texts)
    return [str(p) for p in clf.predict(list(test_texts))]


def _macro_f1(truth: Sequence[str], predicted: Sequence[str]) -> float:
    """Macro-F1 over the labels present in ``truth`` (a label never predicted scores 0)."""
    labels = sorted(set(truth))
    scores = []
    for label in labels:
        tp = sum(t == label and p == label for t, p in zip(truth, predicted, strict=True))
        fp = sum(t != label and p == label for t, p in zip(truth, predicted, strict=True))
        fn = sum(t == label and p != label for t, p in zip(truth, predicted, strict=True))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / len(scores) if scores else 0.0


def retained(acc: float, *, real: float, majority: float) -> float | None:
    """(acc − majority) / (real − majority); None when real data does not beat the majority."""
    if real - majority <= 1e-12:
        return None
    return (acc - majority) / (real - majority)


@dataclass(frozen=True)
class ClassifierScore:
    """One training set's classifier, scored on the holdout."""

    name: str
    kind: str
    """``synthetic``, ``real``, ``reference`` or ``majority``."""
    records: int
    accuracy: float
    macro_f1: float
    retained: float | None


@dataclass(frozen=True)
class Utility:
    """The utility section."""

    rows: list[ClassifierScore]
    holdout_records: int
    labels: int
    beats: list[str]
    """Names of the reference rows the synthetic data's accuracy exceeds."""
    verdict: str

    @property
    def synthetic(self) -> ClassifierScore:
        """The synthetic data's row."""
        return next(r for r in self.rows if r.kind == "synthetic")


def utility(
    training: Sequence[Record],
    holdout: Sequence[Record],
    synthetic: Sequence[Record],
    *,
    epsilon: float,
    delta: float,
    vocabulary: Sequence[str],
    embedder: Embedder | None = None,
    rng: random.Random | None = None,
    should_stop: StopFn | None = None,
) -> Utility | None:
    """Train-on-synthetic, test-on-real, with its reference rows.

    Returns None when there is nothing to classify: fewer than two labels in the training
    records or in the holdout, or no labelled synthetic record.

    Args:
        training: The real records the model trained on.
        holdout: Real records it never saw (the test set).
        synthetic: Records sampled from the model, each with the label it was asked for.
        epsilon: The model's ε (the DP bag-of-words reference spends the same).
        delta: The model's δ.
        vocabulary: The public vocabulary of the DP bag-of-words references.
        embedder: Embeds records and words for the DP centroid bag-of-words reference;
            None leaves that row out.
        rng: Subsampling and the reference's noise; the OS's CSPRNG by default.
        should_stop: Checked between classifiers.

    Raises:
        EvaluationStopped: ``should_stop`` returned True.
    """
    rng = rng if rng is not None else random.SystemRandom()
    train = [r for r in training if r.label]
    test = [r for r in holdout if r.label]
    syn = [r for r in synthetic if r.label]
    if len({r.label for r in train}) < MIN_LABELS or len({r.label for r in test}) < MIN_LABELS:
        return None
    if not syn:
        return None
    truth = [str(r.label) for r in test]
    test_texts = [r.text for r in test]

    def score(name: str, kind: str, rows: Sequence[Record]) -> tuple[str, str, int, float, float]:
        check(should_stop)
        predicted = fit_predict([r.text for r in rows], [str(r.label) for r in rows], test_texts)
        acc = sum(p == t for p, t in zip(predicted, truth, strict=True)) / len(truth)
        return name, kind, len(rows), acc, _macro_f1(truth, predicted)

    raw = [score("synthetic records", "synthetic", syn)]
    raw.append(score("real training records", "real", train))
    if len(syn) < len(train):
        sub = rng.sample(train, len(syn))
        raw.append(score(f"real records at the synthetic size ({len(syn)})", "reference", sub))
    labels = sorted({str(r.label) for r in train})

    def drawn(sampler: BagOfWordsSampler) -> list[Record]:
        # As many words as each synthetic record has, for its label.
        return [
            Record(sampler.sample(str(r.label), len(words(r.text)), rng), r.label)
            for r in syn
            if r.label in labels
        ]

    bow = dp_bag_of_words(train, labels, vocabulary, epsilon=epsilon, delta=delta, rng=rng)
    bow_rows = drawn(bow)
    if bow_rows:
        raw.append(score(f"DP bag-of-words at ε = {epsilon:.3g}", "reference", bow_rows))
    if embedder is not None and bow_rows and vocabulary:
        centroid_bow = dp_centroid_bag_of_words(
            train,
            labels,
            vocabulary,
            embedder,
            epsilon=epsilon,
            delta=delta,
            rng=rng,
            should_stop=should_stop,
        )
        name = f"DP centroid bag-of-words at ε = {epsilon:.3g}"
        raw.append(score(name, "reference", drawn(centroid_bow)))
    raw.append(score("label names only", "reference", [Record(lb, lb) for lb in labels]))
    majority_label = Counter(str(r.label) for r in train).most_common(1)[0][0]
    maj_pred = [majority_label] * len(truth)
    maj_acc = sum(p == t for p, t in zip(maj_pred, truth, strict=True)) / len(truth)
    raw.append(("majority class", "majority", len(train), maj_acc, _macro_f1(truth, maj_pred)))
    real_acc = raw[1][3]
    rows = [
        ClassifierScore(n, k, c, a, f, retained(a, real=real_acc, majority=maj_acc))
        for n, k, c, a, f in raw
    ]
    syn_acc = rows[0].accuracy
    references = [r for r in rows if r.kind in ("reference", "majority")]
    beats = [r.name for r in references if syn_acc > r.accuracy]
    misses = [r.name for r in references if syn_acc <= r.accuracy]
    kept = rows[0].retained
    verdict = (
        f"Synthetic records keep {kept:.2f} of the real data's accuracy above the majority class. "
        if kept is not None
        else "Real training records do not beat the majority class: utility retained is undefined. "
    )
    verdict += ("Beats: " + "; ".join(beats) + ". ") if beats else "Beats no reference. "
    verdict += ("Does not beat: " + "; ".join(misses) + ".") if misses else "Beats every reference."
    return Utility(
        rows=rows,
        holdout_records=len(test),
        labels=len(labels),
        beats=beats,
        verdict=verdict,
    )
