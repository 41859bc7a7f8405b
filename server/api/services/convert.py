"""Database rows to protobuf messages (one function per resource)."""

from __future__ import annotations

from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp
from privsynth.client.pb import datasets_pb2, models_pb2, privacy_pb2, training_pb2
from privsynth.server.db import DatasetRow, JobRow, LedgerRow, ModelRow
from privsynth.server.privacy.accounting import epsilon_curve
from privsynth.server.privacy.ledger import BudgetView

__all__ = ["budget_pb", "dataset_pb", "job_pb", "ledger_pb", "model_pb", "timestamp"]


def timestamp(value: datetime | None) -> Timestamp | None:
    """Protobuf timestamp of an aware datetime (None stays None)."""
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def dataset_pb(row: DatasetRow) -> datasets_pb2.Dataset:
    """The public view of a dataset: counts and budget, never text."""
    rep = row.scrub_report
    return datasets_pb2.Dataset(
        name=f"datasets/{row.id}",
        display_name=row.display_name,
        create_time=timestamp(row.created_at),
        record_count=row.record_count,
        labelled_count=row.labelled_count,
        user_count=row.user_count,
        privacy_unit=row.privacy_unit,
        epsilon_cap=row.epsilon_cap,
        delta=row.delta,
        content_sha256=row.content_sha256,
        size_bytes=row.size_bytes or 0,
        scrub_report=datasets_pb2.ScrubReport(
            records_scrubbed=int(rep.get("records_scrubbed", 0)),
            records_with_pii=int(rep.get("records_with_pii", 0)),
            entity_counts={str(k): int(v) for k, v in rep.get("entity_counts", {}).items()},
            analyzer=str(rep.get("analyzer", "")),
            strategy=str(rep.get("strategy", "")),
            strategy_counts={str(k): int(v) for k, v in rep.get("strategy_counts", {}).items()},
            residual_count=int(rep.get("residual_count", 0)),
            residual_counts={str(k): int(v) for k, v in rep.get("residual_counts", {}).items()},
        ),
    )


_JOB_STATES = {
    "QUEUED": training_pb2.JOB_STATE_QUEUED,
    "RUNNING": training_pb2.JOB_STATE_RUNNING,
    "SUCCEEDED": training_pb2.JOB_STATE_SUCCEEDED,
    "FAILED": training_pb2.JOB_STATE_FAILED,
    "CANCELLED": training_pb2.JOB_STATE_CANCELLED,
}


def job_pb(row: JobRow, *, show_loss: bool = True) -> training_pb2.TrainingJob:
    """A training job with its latest progress and a simple ETA.

    The training loss is computed on private batches without noise, so it is outside the DP
    guarantee: only the data owner's tenant sees it (``show_loss``); auditors and admins,
    who read every tenant but never text, get 0.
    """
    eta = 0.0
    if row.state == "RUNNING" and 0 < row.step < row.total_steps:
        eta = row.elapsed_seconds / row.step * (row.total_steps - row.step)
    return training_pb2.TrainingJob(
        name=f"jobs/{row.id}",
        dataset=f"datasets/{row.dataset_id}",
        state=_JOB_STATES.get(row.state, training_pb2.JOB_STATE_UNSPECIFIED),
        target_epsilon=row.target_epsilon,
        delta=row.delta,
        epochs=row.epochs,
        preset=row.preset,
        model=f"models/{row.model_id}",
        progress=training_pb2.TrainingProgress(
            step=row.step,
            total_steps=row.total_steps,
            loss=row.loss if show_loss else 0.0,
            epsilon_spent=row.epsilon_spent,
            elapsed_seconds=row.elapsed_seconds,
            eta_seconds=eta,
        ),
        create_time=timestamp(row.created_at),
        start_time=timestamp(row.started_at),
        end_time=timestamp(row.ended_at),
        error_message=row.error_message,
        distributed=row.runner == "torchrun",
        holdout_fraction=row.holdout_fraction or 0.0,
        label_distribution=_LABEL_MODES.get(
            str((row.label_release or {}).get("mode", "none")),
            training_pb2.LABEL_DISTRIBUTION_UNSPECIFIED,
        ),
    )


_LABEL_MODES = {
    "dp": training_pb2.LABEL_DISTRIBUTION_DP,
    "public": training_pb2.LABEL_DISTRIBUTION_PUBLIC,
}


_MODEL_STATES = {
    "TRAINING": models_pb2.MODEL_STATE_TRAINING,
    "READY": models_pb2.MODEL_STATE_READY,
    "FAILED": models_pb2.MODEL_STATE_FAILED,
    "DELETED": models_pb2.MODEL_STATE_DELETED,
}


def model_pb(row: ModelRow, *, with_curve: bool = False) -> models_pb2.Model:
    """A model with its card (empty until training succeeds) and, if asked, its ε curve."""
    c = row.card
    labels = c.get("label_distribution") or {}
    holdout = c.get("holdout") or {}
    card = models_pb2.ModelCard(
        epsilon=float(c.get("epsilon", 0.0)),
        delta=float(c.get("delta", 0.0)),
        accountant=str(c.get("accountant", "")),
        noise_multiplier=float(c.get("noise_multiplier", 0.0)),
        sample_rate=float(c.get("sample_rate", 0.0)),
        max_grad_norm=float(c.get("max_grad_norm", 0.0)),
        steps=int(c.get("steps", 0)),
        epochs=int(c.get("epochs", 0)),
        dataset=str(c.get("dataset", f"datasets/{row.dataset_id}")),
        privacy_unit=str(c.get("privacy_unit", "")),
        preset=str(c.get("preset", "")),
        parameters=int(c.get("parameters", 0)),
        tokenizer_provenance={str(k): str(v) for k, v in c.get("tokenizer", {}).items()},
        label_conditioning=bool(c.get("label_conditioning", False)),
        grad_sample_mode=str(c.get("grad_sample_mode", "")),
        target_epsilon=float(c.get("target_epsilon", 0.0)),
        expected_batch_size=int(c.get("expected_batch_size", 0)),
        secure_rng=bool(c.get("secure_rng", False)),
        base_model={str(k): str(v) for k, v in (c.get("base_model") or {}).items()},
        label_distribution_source=str(labels.get("source", "")),
        label_distribution={
            str(k): float(v) for k, v in (labels.get("distribution") or {}).items()
        },
        label_distribution_note=str(labels.get("note", "")),
        epsilon_dp_sgd=float(c.get("epsilon_dp_sgd", c.get("epsilon", 0.0))),
        label_noise_multiplier=float(labels.get("noise_multiplier") or 0.0),
        label_threshold=float(labels.get("threshold") or 0.0),
        label_distribution_declared_by=str(labels.get("declared_by", "")),
        holdout_fraction=float(holdout.get("fraction") or 0.0),
        holdout_records=int(holdout.get("records") or 0),
        holdout_note=str(holdout.get("note", "")),
        label_prompt=str(c.get("label_prompt") or ""),
    )
    model = models_pb2.Model(
        name=f"models/{row.id}",
        dataset=f"datasets/{row.dataset_id}",
        job=f"jobs/{row.job_id}",
        state=_MODEL_STATES.get(row.state, models_pb2.MODEL_STATE_UNSPECIFIED),
        card=card,
        create_time=timestamp(row.created_at),
    )
    if with_curve:
        curve = epsilon_curve(
            noise_multiplier=card.noise_multiplier,
            sample_rate=card.sample_rate,
            steps=card.steps,
            delta=card.delta,
            label_noise_multiplier=card.label_noise_multiplier or None,
        )
        model.epsilon_curve.extend(models_pb2.EpsilonAtStep(step=k, epsilon=e) for k, e in curve)
        model.epsilon_curve_accountant = "pld" if curve else ""
    return model


def budget_pb(view: BudgetView) -> privacy_pb2.Budget:
    """A dataset's budget, naming the composition method."""
    return privacy_pb2.Budget(
        dataset=f"datasets/{view.dataset_id}",
        epsilon_cap=view.epsilon_cap,
        delta=view.delta_cap,
        epsilon_spent=view.epsilon_spent,
        epsilon_reserved=view.epsilon_reserved,
        epsilon_remaining=view.epsilon_remaining,
        composition=view.composition,
        epsilon_spent_sum=view.epsilon_spent_sum,
        epsilon_reserved_sum=view.epsilon_reserved_sum,
        delta_used=view.delta_used,
    )


def ledger_pb(row: LedgerRow) -> privacy_pb2.LedgerEntry:
    """One ledger entry."""
    return privacy_pb2.LedgerEntry(
        id=row.id,
        dataset=f"datasets/{row.dataset_id}",
        job=f"jobs/{row.job_id}" if row.job_id else "",
        kind=row.kind,
        epsilon=row.epsilon,
        delta=row.delta,
        create_time=timestamp(row.created_at),
        actor=row.actor,
        note=row.note,
        noise_multiplier=row.noise_multiplier or 0.0,
        sample_rate=row.sample_rate or 0.0,
        steps=row.steps or 0,
    )
