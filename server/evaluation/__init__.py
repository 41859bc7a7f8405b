"""The quality report of a trained model: utility, fidelity, diversity, leakage and bias.

Pure functions over plain texts, labels, embeddings and losses, each in its own module; the
report (:mod:`.report`) assembles them and :mod:`.page` renders it as one self-contained page
with inline SVG plots (:mod:`.svg`).
Nothing here reads the database or speaks gRPC: the evaluation job (:mod:`.job`) gathers the
corpora and the model and hands them over.

Several measurements read private data again (the training records, the holdout): they are not
covered by the model's DP guarantee, and the report says which (its ``honesty`` section).
"""

from privsynth.server.evaluation.control import EvaluationStopped
from privsynth.server.evaluation.report import (
    EvaluationInputs,
    Limits,
    Tools,
    auditor_view,
    build_report,
)
from privsynth.server.evaluation.text import Record

__all__ = [
    "EvaluationInputs",
    "EvaluationStopped",
    "Limits",
    "Record",
    "Tools",
    "auditor_view",
    "build_report",
]
