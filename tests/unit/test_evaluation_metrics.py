"""Each quality-report metric on small hand-made inputs whose answer is known."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from privsynth.server.evaluation import bias, distances, diversity, fidelity, leakage
from privsynth.server.evaluation.dp_bow import dp_bag_of_words
from privsynth.server.evaluation.dp_centroid_bow import dp_centroid_bag_of_words
from privsynth.server.evaluation.embeddings import TfidfEmbedder
from privsynth.server.evaluation.text import Record, ngrams, normalise, words
from privsynth.server.evaluation.utility import fit_predict, retained, utility

CORPUS = [
    "The early bird catches the worm before the sun is up.",
    "A rolling stone gathers no moss on the hill.",
    "Never put off until tomorrow what you can do today.",
    "Fortune favours the bold and the patient alike.",
    "You will meet a tall stranger near the old bridge.",
    "Beware of programmers who carry screwdrivers.",
]


# -- text ------------------------------------------------------------------------------------


def test_words_are_lowercase_without_punctuation() -> None:
    assert words("Don't PANIC, it's 42!") == ["don't", "panic", "it's", "42"]
    assert normalise("  Hello,   World. ") == "hello world"
    assert ngrams(["a", "b", "c"], 2) == [("a", "b"), ("b", "c")]
    assert ngrams(["a"], 2) == []


# -- fidelity --------------------------------------------------------------------------------


def test_js_divergence_is_zero_for_identical_and_one_for_disjoint() -> None:
    assert fidelity.js_divergence({"a": 1, "b": 3}, {"a": 2, "b": 6}) == pytest.approx(0.0)
    assert fidelity.js_divergence({"a": 1}, {"b": 1}) == pytest.approx(1.0)
    # Half the mass shared: JS = 0.5 bit exactly (each side puts 1/2 on a private word).
    assert fidelity.js_divergence({"a": 1, "b": 1}, {"a": 1, "c": 1}) == pytest.approx(0.5)


def test_ngram_js_of_identical_corpora_is_zero() -> None:
    assert fidelity.ngram_js(CORPUS, list(CORPUS), 1) == pytest.approx(0.0)
    assert fidelity.ngram_js(CORPUS, list(reversed(CORPUS)), 2) == pytest.approx(0.0)
    assert fidelity.ngram_js(["red green"], ["blue yellow"], 1) == pytest.approx(1.0)


def test_ks_statistic_known_values() -> None:
    assert fidelity.ks_statistic([1, 2, 3], [1, 2, 3]) == 0.0
    assert fidelity.ks_statistic([1, 2], [5, 6]) == 1.0
    assert fidelity.ks_statistic([1, 2, 3, 4], [3, 4, 5, 6]) == pytest.approx(0.5)


def test_length_summary_and_histogram() -> None:
    summary = fidelity.length_summary([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])
    assert summary.median == 6 and summary.mean == 6 and summary.count == 11
    assert summary.p10 == pytest.approx(2.0) and summary.p90 == pytest.approx(10.0)
    shares = fidelity.histogram([0, 4, 5, 99, 1000], [0, 5, 10, 100])
    assert shares == [0.4, 0.2, 0.4]  # 99 in [10, 100], 1000 beyond the last edge
    assert fidelity.lengths(["one two", ""]) == [2, 0]


def test_label_mix_total_variation() -> None:
    same = fidelity.label_mix(["a", "b"], ["b", "a", "a", "b"])
    assert same.total_variation == pytest.approx(0.0)
    shifted = fidelity.label_mix(["a", "a", "b", "b"], ["a", "a", "a", "a"])
    assert shifted.total_variation == pytest.approx(0.5)
    assert shifted.synthetic == {"a": 1.0}


# -- distances -------------------------------------------------------------------------------


def test_mauve_of_identical_histograms_is_one_and_of_disjoint_near_zero() -> None:
    p = np.array([3.0, 1.0, 2.0])
    assert distances.mauve_from_histograms(p, p.copy()) == pytest.approx(1.0)
    disjoint = distances.mauve_from_histograms(np.array([1.0, 0.0]), np.array([0.0, 1.0]))
    # Analytically 5·B(5, 6) ≈ 0.004 for scaling 5; the 25-point curve approximates it.
    assert disjoint < 0.02
    # A partial overlap lies strictly between.
    mid = distances.mauve_from_histograms(np.array([1.0, 1.0]), np.array([1.0, 3.0]))
    assert 0.02 < mid < 1.0


def test_mauve_on_embeddings() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 8))
    assert distances.mauve(a, a.copy()) == pytest.approx(1.0)
    far = rng.normal(size=(200, 8)) + 50.0
    assert distances.mauve(a, far) < 0.02


def test_frechet_distance_known_values() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(size=(500, 3))
    assert distances.frechet_distance(a, a.copy()) == pytest.approx(0.0, abs=1e-6)
    # Same covariance, mean moved by (3, 4, 0): the distance is the squared shift, 25.
    assert distances.frechet_distance(a, a + np.array([3.0, 4.0, 0.0])) == pytest.approx(25.0)


def test_tfidf_embedder_returns_unit_rows_per_corpus() -> None:
    out = TfidfEmbedder(dimensions=4).embed([CORPUS[:4], CORPUS[4:]])
    assert [len(v) for v in out] == [4, 2]
    assert np.allclose(np.linalg.norm(np.vstack(out), axis=1), 1.0)
    # No words at all: every text at the origin rather than an error.
    empty = TfidfEmbedder().embed([["!!", "?"], ["..."]])
    assert [v.shape[0] for v in empty] == [2, 1]


# -- diversity -------------------------------------------------------------------------------


def test_distinct_n_known_values() -> None:
    assert diversity.distinct_n(["a b c", "a b c"], 1) == pytest.approx(0.5)
    assert diversity.distinct_n(["a b c", "d e f"], 2) == pytest.approx(1.0)
    assert diversity.distinct_n([""], 1) == 0.0


def test_self_bleu_is_one_for_repeats_and_zero_without_shared_words() -> None:
    repeated = ["the cat sat on the mat today"] * 5
    assert diversity.self_bleu(repeated) == pytest.approx(1.0)
    disjoint = ["alpha beta gamma delta", "one two three four", "red green blue cyan"]
    assert diversity.self_bleu(disjoint) == 0.0
    assert 0.0 < diversity.self_bleu(CORPUS) < 0.5


def test_duplicate_rates() -> None:
    texts = ["Hello there, friend.", "hello there friend", "Something else entirely here."]
    exact, near = diversity.duplicate_rates(texts)
    assert exact == pytest.approx(1 / 3)  # the second repeats the first
    assert near == pytest.approx(2 / 3)  # both members of the pair
    one_word_changed = [
        "the quick brown fox jumps over the lazy dog by the river bank today",
        "the quick brown fox jumps over the lazy dog by the river bank tonight",
    ]
    assert diversity.duplicate_rates(one_word_changed) == (0.0, 1.0)
    assert diversity.duplicate_rates(CORPUS) == (0.0, 0.0)


# -- leakage ---------------------------------------------------------------------------------


def test_membership_inference_on_a_copying_model_and_on_a_fair_one() -> None:
    copying = leakage.membership_inference([0.0] * 50, [3.0 + i / 100 for i in range(50)])
    assert copying.auc == pytest.approx(1.0)
    assert copying.tpr_at_1pct_fpr == pytest.approx(1.0)
    rng = random.Random(0)
    same = [rng.random() for _ in range(2000)]
    fair = leakage.membership_inference(same[:1000], same[1000:])
    assert fair.auc == pytest.approx(0.5, abs=0.04)
    assert fair.tpr_at_1pct_fpr < 0.05
    ties = leakage.membership_inference([1.0, 1.0], [1.0, 1.0])
    assert ties.auc == pytest.approx(0.5)
    with pytest.raises(ValueError):
        leakage.membership_inference([], [1.0])


def test_roc_points_run_from_origin_to_one() -> None:
    roc = leakage.roc_points([0.0, 0.1], [1.0, 1.1])
    assert roc[0] == (0.0, 0.0) and roc[-1] == (1.0, 1.0)
    assert (0.0, 1.0) in roc  # a perfect attack reaches the top-left corner


LONG = [
    "one two three four five six seven eight nine ten eleven twelve",
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu",
    "red orange yellow green blue indigo violet black white grey brown pink",
    "north south east west up down left right forward back inside outside",
]


def test_ngram_overlap_of_copies_is_full_and_of_holdout_phrases_separate() -> None:
    training, holdout = LONG[:2], LONG[2:]
    copies = leakage.ngram_overlap(training, training, holdout)
    assert copies.with_training == 1.0 and copies.with_holdout == 0.0
    assert copies.longest_training_run == 12
    fresh = leakage.ngram_overlap(["one two three four five six seven"], training, holdout)
    assert fresh.with_training == 0.0  # 7 words: no 8-gram to share
    mixed = leakage.ngram_overlap(
        ["one two three four five six seven eight and then red orange"], training, holdout
    )
    assert mixed.with_training == 1.0 and mixed.longest_training_run == 8


def test_nearest_neighbour_ratio_of_copies_is_zero() -> None:
    rng = np.random.default_rng(2)

    def unit(n: int) -> np.ndarray:
        v = rng.normal(size=(n, 16))
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    training, holdout = unit(300), unit(100)
    copies = leakage.nearest_neighbour_ratio(training[:100], training, holdout)
    assert copies.median_ratio == 0.0 and copies.copies == 1.0
    assert copies.closer_than_holdout_p5 == 1.0
    fresh = leakage.nearest_neighbour_ratio(unit(100), training, holdout)
    assert fresh.median_ratio == pytest.approx(1.0, abs=0.1)
    assert fresh.copies == 0.0 and fresh.closer_than_holdout_p5 < 0.15


def test_residual_pii_counts_types_and_records() -> None:
    def emails(texts: list[str]) -> list[list[str]]:
        return [["EMAIL_ADDRESS"] * t.count("@") for t in texts]

    found = leakage.residual_pii(["mail a@b.org or c@d.org", "nothing", "x@y.org"], emails)
    assert found.rate == pytest.approx(2 / 3)
    assert found.by_type == {"EMAIL_ADDRESS": 3}
    assert leakage.residual_pii([], emails).rate == 0.0


# -- bias ------------------------------------------------------------------------------------


def test_label_shift_lists_the_largest_first() -> None:
    rows = bias.label_shift(["a", "a", "b", "c"], ["a", "b", "b", "b"], top=2)
    assert [r.label for r in rows] == ["b", "a"]
    assert rows[0].shift == pytest.approx(0.5)
    assert rows[1].shift == pytest.approx(-0.25)


def test_term_shifts_per_group_and_term() -> None:
    training = ["she said her piece", "he nodded"]  # 6 words: 2 female, 1 male
    synthetic = ["he said he knew", "he nodded"]  # 6 words: 0 female, 3 male
    groups, terms = bias.term_shifts(
        training, synthetic, {"female": ["she", "her"], "male": ["he", "his"]}
    )
    by = {g.group: g for g in groups}
    assert by["female"].training_per_1k == pytest.approx(1000 * 2 / 6)
    assert by["female"].synthetic_per_1k == 0.0
    assert by["female"].training_share == pytest.approx(2 / 3)
    assert by["male"].synthetic_share == 1.0
    assert terms[0].term == "he" and terms[0].shift == pytest.approx(1000 * 2 / 6)
    # The configured lists decide: a word outside them is never counted.
    assert {t.term for t in terms} == {"she", "her", "he"}  # "his" occurs in neither


def test_default_term_groups_cover_pronouns() -> None:
    assert "she" in bias.DEFAULT_TERM_GROUPS["female"]
    assert "he" in bias.DEFAULT_TERM_GROUPS["male"]


# -- utility ---------------------------------------------------------------------------------

TOPICS = {
    "food": ["bread cheese soup", "apple pie dinner", "cheese bread lunch", "soup dinner apple"],
    "sea": ["boat wave sailor", "ocean wave ship", "sailor ship harbour", "harbour boat ocean"],
    "sky": ["cloud rain star", "star moon cloud", "moon sun rain", "sun star cloud"],
}


def _records(k: int) -> list[Record]:
    return [Record(t, label) for label, texts in TOPICS.items() for t in texts[:k]]


def test_retained_known_values() -> None:
    assert retained(0.5, real=0.9, majority=0.1) == pytest.approx(0.5)
    assert retained(0.1, real=0.9, majority=0.1) == 0.0
    assert retained(0.3, real=0.2, majority=0.2) is None


def test_fit_predict_learns_separable_topics_and_survives_one_label() -> None:
    train = _records(3)
    predicted = fit_predict([r.text for r in train], [str(r.label) for r in train], ["wave boat"])
    assert predicted == ["sea"]
    assert fit_predict(["x y", "y z"], ["a", "a"], ["q"]) == ["a"]
    assert fit_predict(["!!", "??"], ["a", "b"], ["q"]) in (["a"], ["b"])


def test_utility_of_a_copy_of_the_training_data_is_fully_retained() -> None:
    train, holdout = _records(3), [Record(TOPICS[k][3], k) for k in TOPICS]
    result = utility(
        train,
        holdout,
        train,  # a "generator" that reproduces its training records
        epsilon=1.0,
        delta=1e-5,
        vocabulary=sorted({w for texts in TOPICS.values() for t in texts for w in t.split()}),
        rng=random.Random(0),
    )
    assert result is not None
    assert result.synthetic.accuracy == pytest.approx(1.0)
    assert result.synthetic.retained == pytest.approx(1.0)
    kinds = [r.kind for r in result.rows]
    assert kinds.count("reference") >= 2 and kinds[-1] == "majority"
    assert "majority class" in result.beats
    assert result.verdict.startswith("Synthetic records keep 1.00")


def test_utility_needs_two_labels() -> None:
    one = [Record("a b", "x"), Record("c d", "x")]
    assert utility(one, one, one, epsilon=1, delta=1e-5, vocabulary=["a"]) is None


def test_dp_bag_of_words_without_noise_budget_issues_follows_its_counts() -> None:
    records = [Record("cheese bread", "food")] * 200 + [Record("wave boat", "sea")] * 200
    sampler = dp_bag_of_words(
        records, ["food", "sea", "empty"], ["cheese", "bread", "wave", "boat", "moon"],
        epsilon=8.0, delta=1e-5, rng=random.Random(0),
    )  # fmt: skip
    rng = random.Random(1)
    food = " ".join(sampler.sample("food", 50, rng) for _ in range(4)).split()
    assert set(food) <= {"cheese", "bread"}  # 200 counts ≫ 3σ; zero counts stay below it
    # A label without records releases noise only: below the threshold, a uniform draw.
    assert len(sampler.sample("empty", 7, rng).split()) == 7
    assert math.isfinite(len(food))


FOOD = {"cheese", "bread", "soup", "apple", "pie", "dinner", "lunch"}
SEA = {"boat", "wave", "sailor", "ocean", "ship", "harbour"}


def test_dp_centroid_bag_of_words_draws_each_label_s_own_words() -> None:
    records = [Record(t, "food") for t in TOPICS["food"]] * 50
    records += [Record(t, "sea") for t in TOPICS["sea"]] * 50
    vocabulary = sorted(FOOD | SEA | {"moon", "cloud", "stone", "paper"})
    sampler = dp_centroid_bag_of_words(
        records, ["food", "sea"], vocabulary, TfidfEmbedder(dimensions=8),
        epsilon=8.0, delta=1e-5, rng=random.Random(0),
    )  # fmt: skip
    rng = random.Random(1)
    food = sampler.sample("food", 400, rng).split()
    sea = sampler.sample("sea", 400, rng).split()
    assert len(food) == 400 and set(food) <= set(vocabulary)
    # Each label's released direction points at its own words, away from the other label's.
    assert sum(w in FOOD for w in food) > 0.8 * len(food)
    assert sum(w in SEA for w in sea) > 0.8 * len(sea)


def test_dp_centroid_bag_of_words_with_minilm_finds_words_no_record_used() -> None:
    from privsynth.server.evaluation.embeddings import MiniLMEmbedder

    records = [Record("The senate voted on the new election law.", "politics")] * 30
    records += [Record("The striker scored twice in the cup final.", "sport")] * 30
    # None of these words occurs in a record: only the embedding can tie them to a label.
    politics = {"parliament", "minister", "democracy", "government"}
    sport = {"football", "goalkeeper", "tournament", "athlete"}
    sampler = dp_centroid_bag_of_words(
        records, ["politics", "sport"], sorted(politics | sport), MiniLMEmbedder(),
        epsilon=8.0, delta=1e-5, rng=random.Random(0),
    )  # fmt: skip
    rng = random.Random(2)
    drawn = sampler.sample("politics", 400, rng).split()
    assert sum(w in politics for w in drawn) > 0.8 * len(drawn)
    drawn = sampler.sample("sport", 400, rng).split()
    assert sum(w in sport for w in drawn) > 0.8 * len(drawn)


def test_utility_adds_the_centroid_reference_only_with_an_embedder() -> None:
    train, holdout = _records(4), [Record(TOPICS[k][3], k) for k in TOPICS]
    vocabulary = sorted({w for texts in TOPICS.values() for t in texts for w in t.split()})
    common = {"epsilon": 8.0, "delta": 1e-5, "vocabulary": vocabulary}
    plain = utility(train, holdout, train, rng=random.Random(0), **common)  # type: ignore[arg-type]
    richer = utility(
        train, holdout, train, embedder=TfidfEmbedder(dimensions=4), rng=random.Random(0),
        **common,  # type: ignore[arg-type]
    )  # fmt: skip
    assert plain is not None and richer is not None
    centroid = [r for r in richer.rows if r.name.startswith("DP centroid bag-of-words")]
    assert not any(r.name.startswith("DP centroid") for r in plain.rows)
    assert len(centroid) == 1 and centroid[0].kind == "reference"
    assert centroid[0].records == len(train)


def test_minilm_embeds_offline_and_puts_paraphrases_close(monkeypatch: pytest.MonkeyPatch) -> None:
    from privsynth.server.evaluation.embeddings import MiniLMEmbedder, default_embedder

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the setup installs the package: no download
    assert MiniLMEmbedder.available()
    assert isinstance(default_embedder(), MiniLMEmbedder)
    (a, b) = MiniLMEmbedder(batch_size=2).embed(
        [
            ["The cat sat on the mat.", "Stock markets fell sharply today."],
            ["A cat was sitting on a rug."],
        ]
    )
    assert a.shape == (2, 384) and b.shape == (1, 384)
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert float(a[0] @ b[0]) > float(a[1] @ b[0]) + 0.3


def test_label_counts_split_exactly_by_largest_remainder() -> None:
    from privsynth.server.evaluation.gather import label_counts

    assert label_counts({"a": 0.5, "b": 0.5}, 9) in ({"a": 5, "b": 4}, {"a": 4, "b": 5})
    counts = label_counts({"a": 0.2, "b": 0.3, "c": 0.5, "zero": 0.0}, 7)
    assert sum(counts.values()) == 7 and "zero" not in counts
    assert counts == {"a": 1, "b": 2, "c": 4}  # 1.4, 2.1, 3.5: the largest remainder wins
    assert label_counts({}, 5) == {}
