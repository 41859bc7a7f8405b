"""The plain DP baseline a generator must beat: a per-label bag-of-words sampler at the same ε.

DESIGN.md asks every quality figure to stand beside the plain baseline. For synthetic text
under DP the plainest is this: count, per label, how many records use each word of a *public*
vocabulary (each record's distinct words bounded to ``words_per_record``, so one record changes
at most that many counts by one: L2 sensitivity √m), add Gaussian noise calibrated to (ε, δ)
with the analytic Gaussian mechanism, keep the counts that clear three noise standard deviations,
and draw each synthetic record's words independently
from its label's noisy word distribution. It knows nothing of word order, so a generator that
cannot beat it on a bag-of-words classifier has learned nothing a histogram would not.

The vocabulary is public: the uncased English WordPiece vocabulary shipped with the sentence
embedding model (whole words only), or, without that package, the words of the public-domain
prose corpus the small preset pretrains on. Labels are taken as given (the model's label mix
is released separately). This baseline is computed inside the evaluation and only its scores
leave it; it is never released.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from privsynth.server.evaluation.embeddings import MINILM_PACKAGE
from privsynth.server.evaluation.text import Record, words
from privsynth.server.privacy.accounting import gaussian_sigma

__all__ = ["BagOfWordsSampler", "PublicVocabulary", "dp_bag_of_words", "public_vocabulary"]

WORDS_PER_RECORD = 16
THRESHOLD_SIGMAS = 3.0


@dataclass(frozen=True)
class PublicVocabulary:
    """Words known without looking at any private data, and where they come from."""

    words: tuple[str, ...]
    source: str


def public_vocabulary(max_words: int = 30_000) -> PublicVocabulary:
    """The embedding model's whole-word vocabulary, or the public pretraining corpus' words."""
    if importlib.util.find_spec(MINILM_PACKAGE) is not None:
        package = importlib.import_module(MINILM_PACKAGE)
        lines = (package.get_model_path() / "vocab.txt").read_text(encoding="utf-8").splitlines()
        vocab = [w for w in lines if w.isalpha() and w.islower()]
        return PublicVocabulary(tuple(vocab[:max_words]), "all-MiniLM-L6-v2 WordPiece vocabulary")
    from privsynth.models.pretrain import read_public_corpus

    texts, _, _ = read_public_corpus()
    counts = Counter(w for t in texts for w in words(t))
    vocab = [w for w, _ in counts.most_common(max_words)]
    return PublicVocabulary(tuple(vocab), "public-domain prose corpus (Jane Austen)")


class BagOfWordsSampler:
    """Per-label noisy word distributions, and records drawn from them."""

    def __init__(self, distributions: dict[str, tuple[list[str], list[float]]]) -> None:
        self._distributions = distributions

    def sample(self, label: str, length: int, rng: random.Random) -> str:
        """``length`` words drawn independently from ``label``'s distribution."""
        vocab, weights = self._distributions[label]
        return " ".join(rng.choices(vocab, weights=weights, k=max(1, length)))


def dp_bag_of_words(
    records: Sequence[Record],
    labels: Sequence[str],
    vocabulary: Sequence[str],
    *,
    epsilon: float,
    delta: float,
    words_per_record: int = WORDS_PER_RECORD,
    threshold_sigmas: float = THRESHOLD_SIGMAS,
    rng: random.Random | None = None,
) -> BagOfWordsSampler:
    """Fit the (ε, δ)-DP sampler on labelled records (one Gaussian release of all counts).

    Args:
        records: The training records (unlabelled ones are skipped).
        labels: The public label set; a label with no records still gets a (pure noise)
            distribution, so the release does not reveal which labels occur.
        vocabulary: Public words; words outside it are ignored.
        epsilon: ε of the release (the model's, to compare at equal privacy).
        delta: δ of the release.
        words_per_record: m, the distinct words one record may contribute.
        threshold_sigmas: Noisy counts below this many noise standard deviations are set to
            zero (post-processing): without it the noise spread over a large vocabulary
            outweighs the words the records use.
        rng: Coin flips and noise; by default the OS's CSPRNG.
    """
    noise = rng if rng is not None else random.SystemRandom()
    vocab = sorted(set(vocabulary))
    known = set(vocab)
    counts: dict[str, Counter[str]] = {label: Counter() for label in labels}
    for record in records:
        if not record.label or record.label not in counts:
            continue
        distinct = sorted({w for w in words(record.text) if w in known})
        if len(distinct) > words_per_record:
            distinct = noise.sample(distinct, words_per_record)
        counts[record.label].update(distinct)
    std = gaussian_sigma(epsilon=epsilon, delta=delta) * math.sqrt(words_per_record)
    distributions: dict[str, tuple[list[str], list[float]]] = {}
    for label in sorted(counts):
        row = counts[label]
        noisy = [row.get(w, 0) + noise.gauss(0.0, std) for w in vocab]
        noisy = [v if v >= threshold_sigmas * std else 0.0 for v in noisy]
        if not any(noisy):
            noisy = [1.0] * len(vocab)
        distributions[label] = (vocab, noisy)
    return BagOfWordsSampler(distributions)
