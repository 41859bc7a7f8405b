"""privsynth models: public tokenizer, small transformer, DP-SGD training, sampling.

Knows nothing about gRPC or the server; the server calls these plain functions.
"""

from privsynth.models.dp_train import (
    DPConfig,
    Example,
    Progress,
    TrainingConfigError,
    TrainingInterrupted,
    TrainResult,
    train_dp,
)
from privsynth.models.sampling import Sample, SamplingParams, load_model, sample
from privsynth.models.tokenizer import PublicTokenizer, load_tokenizer

__all__ = [
    "DPConfig",
    "Example",
    "Progress",
    "PublicTokenizer",
    "Sample",
    "SamplingParams",
    "TrainResult",
    "TrainingConfigError",
    "TrainingInterrupted",
    "load_model",
    "load_tokenizer",
    "sample",
    "train_dp",
]
