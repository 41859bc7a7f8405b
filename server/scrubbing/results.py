"""One way to build a Presidio result, for every recognizer and refinement step here.

Presidio's de-duplication, context enhancement and the quality benchmark read the recognizer's
name and id from a result's metadata; a result built without them is silently mis-attributed.
"""

from __future__ import annotations

from typing import Any

from presidio_analyzer import AnalysisExplanation, RecognizerResult

__all__ = ["make_result"]


def make_result(
    name: str, identifier: str, entity: str, start: int, end: int, *, score: float
) -> Any:
    """A ``RecognizerResult`` for ``entity`` at ``[start, end)``, attributed to ``name``."""
    return RecognizerResult(
        entity_type=entity,
        start=start,
        end=end,
        score=score,
        analysis_explanation=AnalysisExplanation(
            recognizer=name, original_score=score, textual_explanation=""
        ),
        recognition_metadata={
            RecognizerResult.RECOGNIZER_NAME_KEY: name,
            RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: identifier,
        },
    )
