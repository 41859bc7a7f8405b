"""What a training job asks for: the validated request (:class:`JobSpec`) and the job constants."""

from __future__ import annotations

import logging
import math

from privsynth.models.label_prompt import LabelPromptError, check_label_prompt
from privsynth.models.presets import PRESETS, base_available
from privsynth.models.sentence_embeddings import minilm_available
from privsynth.server.db import DatasetRow
from privsynth.server.errors import FailedPrecondition, InvalidArgument, NotFound, Reason
from privsynth.server.privacy import holdout, labels
from privsynth.server.privacy.caps import check_job_delta, check_target_epsilon
from privsynth.server.request_ids import check_request_id, request_digest
from privsynth.server.runtime import Runtime

__all__ = [
    "DEFAULT_EPOCHS",
    "DEFAULT_LABELLED_PRESET",
    "DEFAULT_PRESET",
    "MAX_EPOCHS",
    "TERMINAL_STATES",
    "TORCHRUN",
    "WORKER",
    "JobSpec",
]


log = logging.getLogger(__name__)


TERMINAL_STATES = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})


DEFAULT_EPOCHS = 3


DEFAULT_PRESET = "smollm2"
"""The preset of a request that names none, unless :data:`DEFAULT_LABELLED_PRESET` applies."""


DEFAULT_LABELLED_PRESET = "smollm2-guided"
"""The preset of a request that names none, on a dataset whose every record has a label.

Measured in benchmarks/README.md (issue 14): at ε = 8 and a synthetic set as large as the
training split, the guided recipe keeps 0.55 of the real data's utility on fortunes where
DP-LoRA ``smollm2`` keeps about 0.25, and 0.72–0.77 on BBC news and 0.57 on short reviews, at
every ε from 1 up. It trains nothing, so a request that sets ``epochs`` or ``distributed``
keeps :data:`DEFAULT_PRESET` (DP-SGD), as does a dataset with unlabelled records (the guided
recipe conditions on labels only) or a server without the embedding model."""


MAX_EPOCHS = 1000


WORKER = "worker"


"""Runner of a job trained by a server replica's worker thread."""


TORCHRUN = "torchrun"


"""Runner of a job trained by ``torchrun -m privsynth.server.jobs.distributed`` (never taken up
by a replica's workers; it claims, trains and commits under the same ledger)."""


PLANNING_TIME_LIMIT_S = 30.0


"""Longest a CreateTrainingJob may spend calibrating σ (measured: 1-8 s for ε ≤ 100 on small
corpora on 2 busy cores; tens of seconds for ε = 100 with thousands of steps, where each PRV
evaluation takes ~10 s). Past it the request is refused as FAILED_PRECONDITION, and a request
whose client has gone stops calibrating at the next accountant evaluation."""


MAX_CONCURRENT_CALIBRATIONS = 2


"""CreateTrainingJob calls that calibrate σ at once in one process, one per tenant; more wait
for a turn (within :data:`PLANNING_TIME_LIMIT_S`, then RESOURCE_EXHAUSTED with a RetryInfo).
At the extremes (ε near 100, 1,000 epochs) one calibration took 45 s of CPU and 2-3 GB until
its time limit, and nothing bounded how many ran at once."""


QUEUED_LIMIT_RETRY_S = 30.0


"""RetryInfo of a refusal at the queued-job limit: a queued job waits minutes, not seconds."""


class JobSpec:
    """A validated training request (keyword-only privacy parameters)."""

    def __init__(
        self,
        *,
        dataset_id: str,
        target_epsilon: float,
        delta: float | None = None,
        epochs: int | None = None,
        preset: str = "",
        label_distribution: str = "",
        label_epsilon_share: float | None = None,
        public_label_weights: dict[str, float] | None = None,
        distributed: bool = False,
        request_id: str = "",
        holdout_fraction: float | None = None,
        label_prompt: str | None = None,
    ) -> None:
        check_target_epsilon(target_epsilon)
        if holdout_fraction is not None:
            holdout.check_fraction(holdout_fraction)
        if delta is not None:
            check_job_delta(delta)
        self.epochs_named = epochs is not None
        """Whether the request set ``epochs`` (a request for DP-SGD training)."""
        epochs = DEFAULT_EPOCHS if epochs is None else epochs
        if not (0 < epochs <= MAX_EPOCHS):
            raise InvalidArgument(f"epochs must lie in 1..{MAX_EPOCHS}", field="epochs")
        self.preset_named = bool(preset)
        """Whether the request named its preset (else :meth:`resolve_default_preset` may)."""
        preset = preset or DEFAULT_PRESET
        if preset not in PRESETS:
            raise InvalidArgument(
                f"unknown preset; choose one of {', '.join(sorted(PRESETS))}",
                field="preset",
                reason=Reason.UNKNOWN_PRESET,
            )
        if label_prompt is not None:
            _check_label_prompt(label_prompt, preset)
        base = PRESETS[preset].base
        if base is not None and not base_available(base):
            how = (
                "install its package (make setup does) or ask the operator for it"
                if PRESETS[preset].architecture == "hf-lora"
                else "run `privsynth pretrain`"
            )
            raise FailedPrecondition(
                f"preset {preset!r} needs the base model {base!r}, which is not installed; "
                f"{how}, or choose another preset",
                reason=Reason.BASE_MODEL_MISSING,
            )
        _check_label_request(label_distribution, label_epsilon_share, public_label_weights)
        self.distributed = distributed
        self.request_id = check_request_id(request_id)
        self.label_distribution = label_distribution
        self.label_epsilon_share = label_epsilon_share
        self.public_label_weights = dict(public_label_weights or {})
        self.dataset_id = dataset_id
        self.target_epsilon = target_epsilon
        self.delta = delta
        self.epochs = epochs
        self.preset = preset
        self.holdout_fraction = holdout_fraction
        """Share of privacy units held out for evaluation; None: the server's default."""
        self.label_prompt = label_prompt
        """The request template a label is written into; None: the model family's default."""

    def resolve_default_preset(self, dataset: DatasetRow) -> None:
        """Pick the preset of a request that named none, now that its dataset is known.

        A fully labelled dataset gets :data:`DEFAULT_LABELLED_PRESET` when its base and the
        embedding model are installed, unless the request asked for training (``epochs`` or
        ``distributed``); anything else keeps :data:`DEFAULT_PRESET`.
        """
        if self.preset_named or self.epochs_named or self.distributed:
            return
        labelled = 0 < dataset.record_count == dataset.labelled_count
        guided = PRESETS[DEFAULT_LABELLED_PRESET]
        installed = guided.base is not None and base_available(guided.base) and minilm_available()
        if labelled and installed:
            self.preset = DEFAULT_LABELLED_PRESET

    def digest(self) -> str:
        """A digest of the parameters, to tell a retry (same id) from a reused id."""
        params: dict[str, object] = {
            "dataset": self.dataset_id,
            "target_epsilon": self.target_epsilon,
            "delta": self.delta,
            "epochs": self.epochs,
            "preset": self.preset,
            "label_distribution": self.label_distribution,
            "label_epsilon_share": self.label_epsilon_share,
            "public_label_weights": sorted(self.public_label_weights.items()),
            "distributed": self.distributed,
        }
        if self.holdout_fraction is not None:  # (digests of earlier requests stay the same)
            params["holdout_fraction"] = self.holdout_fraction
        if self.label_prompt is not None:
            params["label_prompt"] = self.label_prompt
        return request_digest(params)


def _check_label_prompt(template: str, preset: str) -> None:
    """Refuse a label prompt the preset cannot use or that is not a template.

    Only models that prompt in words take one (the Hugging Face family: DP-LoRA, guided,
    Private Evolution); privsynth's own transformer (``tiny``, ``small``) lays a label out as
    a control code. Messages name the rule, never the template.

    Raises:
        InvalidArgument: Field ``label_prompt``; reason LABEL_PROMPT_UNSUPPORTED or
            LABEL_PROMPT_INVALID.
    """
    if PRESETS[preset].architecture != "hf-lora":
        raise InvalidArgument(
            f"label_prompt does not fit the chosen base: preset {preset!r} lays a label out "
            "as a control code, not a request in words; leave label_prompt unset or choose a "
            "Hugging Face preset (smollm2, smollm2-guided, smollm2-pe, hf:...)",
            field="label_prompt",
            reason=Reason.LABEL_PROMPT_UNSUPPORTED,
        )
    try:
        check_label_prompt(template)
    except LabelPromptError as exc:
        raise InvalidArgument(
            str(exc), field="label_prompt", reason=Reason.LABEL_PROMPT_INVALID
        ) from None


def _check_label_request(mode: str, share: float | None, weights: dict[str, float] | None) -> None:
    """Validate how the label distribution is to be released (see :mod:`.labels`).

    Raises:
        InvalidArgument: Naming the field.
    """
    if mode not in {"", "dp", "public"}:
        raise InvalidArgument("label_distribution must be dp or public", field="label_distribution")
    if share is not None:
        if mode == "public":
            raise InvalidArgument(
                "label_epsilon_share applies to a DP label distribution only",
                field="label_epsilon_share",
            )
        if not (math.isfinite(share) and 0 < share <= 0.5):
            raise InvalidArgument(
                "label_epsilon_share must lie in (0, 0.5]", field="label_epsilon_share"
            )
    if weights:
        if mode != "public":
            raise InvalidArgument(
                "public_label_weights need label_distribution public",
                field="public_label_weights",
            )
        if len(weights) > labels.MAX_LABELS or any(not k.strip() or len(k) > 100 for k in weights):
            raise InvalidArgument(
                f"public_label_weights: at most {labels.MAX_LABELS} labels of 1..100 characters",
                field="public_label_weights",
            )
        if not all(math.isfinite(v) and v >= 0 for v in weights.values()) or not any(
            v > 0 for v in weights.values()
        ):
            raise InvalidArgument(
                "public_label_weights must be finite, >= 0 and not all zero",
                field="public_label_weights",
            )


def _live_dataset(runtime: Runtime, dataset_id: str) -> DatasetRow:
    with runtime.db.session() as s:
        row = s.get(DatasetRow, dataset_id)
        if row is None or row.deleted_at is not None:
            raise NotFound(
                f"dataset 'datasets/{dataset_id}' not found", reason=Reason.DATASET_NOT_FOUND
            )
        return row
