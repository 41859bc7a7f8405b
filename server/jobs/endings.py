"""Ending a job: the model stored, the label mix released, the ledger charged once."""

from __future__ import annotations

import logging
import math
from typing import Any

from privsynth.models.dp_train import (
    Checkpointing,
    Example,
    TrainingInterrupted,
    TrainResult,
)
from privsynth.models.family import tokenizer_for_preset
from privsynth.models.guided import release_for_model
from privsynth.models.token_stats import GuidedDecoding, bundle_weights
from privsynth.server.db import DatasetRow, JobRow, ModelRow, utcnow
from privsynth.server.jobs.base import RunnerState
from privsynth.server.logs import log_event
from privsynth.server.privacy import holdout, labels, ledger
from privsynth.server.privacy.accounting import (
    job_epsilon,
)
from privsynth.server.shards import read_examples
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)


def _card_epsilon(
    job: JobRow,
    card: dict[str, Any],
    *,
    label_noise: float | None,
    stats_noise: float | None = None,
) -> float:
    """The job's ε: the DP-SGD event its card records composed with the releases it made."""
    return job_epsilon(
        noise_multiplier=float(card.get("noise_multiplier", 0.0)),
        sample_rate=float(card.get("sample_rate", 0.0)),
        steps=int(card.get("steps", 0)),
        delta=job.delta,
        accountant=str(card.get("accountant", "prv")),
        label_noise_multiplier=label_noise,
        stats_noise_multiplier=stats_noise,
    )


class JobEndings(RunnerState):
    """Ending a job: the model stored, the label mix released, the ledger charged once."""

    def _charge_full_reservation(self, session: Session, job: JobRow, *, error: str) -> None:
        """Fail a job whose progress after its last report is unknown, at the safe upper bound.

        Its noisy steps may have run to the end, so it is charged the whole reservation.
        """
        self._finish(
            session,
            job,
            state="FAILED",
            epsilon=job.target_epsilon,
            steps=job.planned_steps,
            note=f"{error}; charged the full reservation",
            error=error,
            label_released=True,
        )

    def end_interrupted(
        self, job_id: str, exc: TrainingInterrupted, checkpoint: Checkpointing | None
    ) -> None:
        """Charge a stopped or failed run the accountant's ε (or suspend it for shutdown).

        A run stopped for passing ``max_job_seconds`` ends FAILED (nobody cancelled it, and it
        did not finish what was asked) with an error saying so; like a cancelled run it is
        charged the ε its steps consumed and keeps no model.
        """
        with self._lock:
            timed_out = job_id in self._timed_out
        if exc.cancelled and not timed_out and self._suspend(job_id, exc, checkpoint):
            return
        state = "CANCELLED" if exc.cancelled and not timed_out else "FAILED"
        error = "" if exc.cancelled else f"training failed: {type(exc.__cause__).__name__}"
        if timed_out:
            limit = self.runtime.settings.max_job_seconds
            error = f"stopped: exceeded the maximum job duration of {limit:g} s"
        if exc.__cause__ is not None:
            log.error("job %s failed: %s", job_id, type(exc.__cause__).__name__)
        with self.runtime.db.session() as s:
            row = self._locked(s, job_id)
            if row is None or not self._owns(row):
                return
            row.step, row.epsilon_spent = exc.steps, exc.epsilon_spent
            self._finish(
                s,
                row,
                state=state,
                epsilon=exc.epsilon_spent,
                steps=exc.steps,
                note=f"{state.lower()} after {exc.steps} steps; charged the accountant's ε",
                error=error,
                # Private Evolution releases the label mix before its first step.
                label_released=bool(getattr(exc, "labels_released", False)),
            )
        self._drop_checkpoint(job_id)

    def end_unstarted(self, job_id: str, exc: Exception, *, resume: bool) -> None:
        """End a run that failed before its first noisy step."""
        log.error("job %s failed before training: %s", job_id, type(exc).__name__)
        with self.runtime.db.session() as s:
            row = self._locked(s, job_id)
            if row is None or not self._owns(row):
                return
            if resume:
                # The checkpoint could not be resumed (e.g. unreadable): what the dead run
                # took after it is unknown, so charge the safe upper bound.
                self._charge_full_reservation(
                    s, row, error=f"could not resume training: {type(exc).__name__}"
                )
            else:
                self._finish(
                    s,
                    row,
                    state="FAILED",
                    epsilon=0.0,
                    steps=0,
                    note="failed before any training step; nothing consumed",
                    error=f"training could not start: {type(exc).__name__}",
                )
        self._drop_checkpoint(job_id)

    def end_succeeded(self, job: JobRow, dataset: DatasetRow, result: TrainResult) -> None:
        """Store the model, release its label distribution and charge the ledger once."""
        runtime = self.runtime
        job_id = job.id
        card = dict(result.card)
        card["dataset"] = f"datasets/{dataset.id}"
        card["privacy_unit"] = dataset.privacy_unit
        card["holdout"] = self._holdout_card(job, dataset)
        epsilon_total = self._release_labels(job, result.examples, card, result.epsilon_spent)
        weights = result.weights
        if job.stats_noise_multiplier is not None:
            weights, epsilon_total = self._release_token_stats(job, result, card)
        path, digest = runtime.store.put("models", weights, suffix=".pt")
        with runtime.db.session() as s:
            row = self._locked(s, job_id)
            model = s.get(ModelRow, job.model_id)
            assert model is not None
            if row is None or not self._owns(row):
                return  # (the stored weights stay unreferenced)
            model.state, model.card, model.model_config = "READY", card, result.model_config
            model.weights_path, model.weights_sha256 = path, digest
            row.epsilon_spent = epsilon_total
            row.step = row.total_steps = int(card["steps"])
            self._check_event(row, card)
            self._finish(
                s,
                row,
                state="SUCCEEDED",
                epsilon=epsilon_total,
                steps=int(card["steps"]),
                note=(
                    f"evolved {card['steps']} iterations (vote histograms)"
                    if card.get("recipe") == "private-evolution"
                    else f"trained {card['steps']} steps"
                )
                + f"; accountant {card['accountant']}"
                + ("; label distribution released with DP" if row.label_noise_multiplier else "")
                + ("; token statistics released with DP" if row.stats_noise_multiplier else ""),
                label_released=True,
            )
        self._drop_checkpoint(job_id)

    def _holdout_card(self, job: JobRow, dataset: DatasetRow) -> dict[str, Any]:
        """What the card says about the job's holdout (counts and a fingerprint only)."""
        if not job.holdout_fraction:
            why = (
                "the job was created before holdouts existed"
                if job.holdout_fraction is None
                else "holdout_fraction 0, or the dataset was below the minimum for the default"
            )
            return {"fraction": 0.0, "records": 0, "note": f"no holdout: {why}"}
        split = self.holdout_split(job, read_examples(self.runtime.store, dataset))
        return holdout.card_entry(split, job.holdout_fraction)

    @staticmethod
    def _release_token_stats(
        job: JobRow, result: TrainResult, card: dict[str, Any]
    ) -> tuple[bytes, float]:
        """Release the per-label token statistics the job planned; bundle them with the weights.

        Rows for the labels just released (the DP mix, or the declared public one) only, over
        the preset's base tokenizer, from the records training used. Returns the weights to
        store and the job's ε with every release composed.
        """
        assert job.stats_noise_multiplier is not None
        info = card.get("label_distribution") or {}
        labels = sorted((info.get("distribution") or {}).keys())
        decoding = GuidedDecoding.from_dict(result.model_config.get("decoding") or {})
        stats = release_for_model(
            result.examples,
            tokenizer=tokenizer_for_preset(job.preset),
            labels=labels,
            noise_multiplier=job.stats_noise_multiplier,
            decoding=decoding,
        )
        dp_labels = info.get("source") == "dp" and job.label_noise_multiplier is not None
        epsilon = _card_epsilon(
            job,
            card,
            label_noise=job.label_noise_multiplier if dp_labels else None,
            stats_noise=job.stats_noise_multiplier,
        )
        card["token_stats"] = {
            "noise_multiplier": job.stats_noise_multiplier,
            "sensitivity": 1.0,
            "statistic": decoding.statistic,
            "max_tokens_per_record": stats.max_tokens,
            "vocabulary": f"the base tokenizer's {stats.vocab_size} token ids (public)",
            "labels": len(stats.labels),
            "note": (
                "per-label token counts released with DP (Gaussian, every cell of a public "
                "vocabulary); decoding adds their log-ratio to the base's logits: "
                "post-processing, charged to this model's epsilon"
                if stats.kind == "counts"
                else "per-label sums of unit sentence embeddings (all-MiniLM-L6-v2) released "
                "with DP (Gaussian, every cell); each label's word distribution is the public "
                "base vocabulary scored against the noisy label directions, and decoding adds "
                "its log-ratio to the base's logits and plants keywords drawn from it: "
                "post-processing, charged to this model's epsilon"
            ),
        }
        card["epsilon"] = epsilon
        return bundle_weights(result.weights, stats), epsilon

    @staticmethod
    def _release_labels(
        job: JobRow, examples: list[Example], card: dict[str, Any], epsilon_sgd: float
    ) -> float:
        """Release the label distribution as the job planned; put it on ``card``.

        ``examples`` are the records training used (after its secret choice of one record per
        user, so the counts have the per-user sensitivity the card states); the shard is not
        read again.
        Runs once training succeeded (a failed job releases no labels and is not charged for
        them), unless the recipe released the mix before it ran (Private Evolution needs the
        labels first; its card then carries ``label_distribution`` already). Returns the job's
        ε: DP-SGD (or the vote histograms) and, for a DP release, the Gaussian release composed.
        """
        info = card.get("label_distribution")
        if info is None:
            per_user = int(card.get("records_per_user_cap") or 1)
            info = JobEndings.label_mix(job, examples, per_user=per_user)
            card["label_distribution"] = info
        epsilon = epsilon_sgd
        if info.get("source") == "dp" and job.label_noise_multiplier is not None:
            epsilon = _card_epsilon(job, card, label_noise=job.label_noise_multiplier)
        card.setdefault("epsilon_dp_sgd", epsilon_sgd)
        card["epsilon"] = epsilon
        return epsilon

    @staticmethod
    def label_mix(job: JobRow, examples: list[Example], *, per_user: int) -> dict[str, Any]:
        """Release ``examples``' label distribution as ``job`` planned (the card's entry).

        With user ids, the per-user bound training applied (``per_user``, on the card) is the
        L2 sensitivity of the count vector; else one record. Only the DP release costs ε
        (charged with the job's other events when the job ends).
        """
        release = job.label_release or {"mode": "none"}
        mode = str(release.get("mode", "none"))
        info: dict[str, Any] = {"source": mode, "distribution": {}}
        if mode == "none":
            return info
        names = [e.label for e in examples]
        if mode == "dp" and job.label_noise_multiplier is not None:
            sensitivity = float(per_user)
            released = labels.release_dp(
                names,
                noise_multiplier=job.label_noise_multiplier,
                sensitivity=sensitivity,
                delta=job.delta,
            )
            info.update(
                released,
                epsilon_share=release.get("epsilon_share"),
                noise_multiplier=job.label_noise_multiplier,
                sensitivity=sensitivity,
                note=(
                    "released with DP: Gaussian noise on per-label counts (std "
                    f"{released['noise_std']:.3g}), only labels with noisy count >= "
                    f"{released['threshold']:.1f} released, clipped at 0 and normalised; "
                    "charged to this model's epsilon"
                ),
            )
        elif mode == "public":
            declared = release.get("declared_weights") or None
            info["distribution"] = labels.public_distribution(names, declared=declared)
            info["declared_by"] = release.get("declared_by", "")
            info["note"] = (
                f"declared public by {release.get('declared_by', '')}"
                + (" (weights given)" if declared else " (the dataset's label frequencies)")
                + "; no epsilon spent on it"
            )
        return info

    @staticmethod
    def _check_event(job: JobRow, card: dict[str, Any]) -> None:
        """Make the ledger record the event that actually ran.

        With the σ override the trained σ and q equal the reserved ones; if they ever differ
        (a model-code change), the commit records what ran, and the discrepancy is logged.
        """
        sigma, q = float(card.get("noise_multiplier", 0.0)), float(card.get("sample_rate", 0.0))
        if job.noise_multiplier is None or job.sample_rate is None:
            job.noise_multiplier, job.sample_rate = sigma, q
            return
        if not (
            math.isclose(sigma, job.noise_multiplier, rel_tol=1e-9)
            and math.isclose(q, job.sample_rate, rel_tol=1e-9)
        ):
            log.warning(
                "job %s trained with sigma=%.6g q=%.6g, reserved sigma=%.6g q=%.6g; "
                "charging what ran",
                job.id,
                sigma,
                q,
                job.noise_multiplier,
                job.sample_rate,
            )
            job.noise_multiplier, job.sample_rate = sigma, q

    def _finish(
        self,
        session: Session,
        job: JobRow,
        *,
        state: str,
        epsilon: float,
        steps: int | None,
        note: str,
        error: str = "",
        label_released: bool = False,
    ) -> None:
        job.state = state
        job.ended_at = utcnow()
        job.error_message = error
        job.steps_taken = steps
        if state != "SUCCEEDED":
            model = session.get(ModelRow, job.model_id)
            if model is not None:
                model.state = "FAILED"
        ledger.commit(
            session,
            job.dataset_id,
            job_id=job.id,
            epsilon_spent=epsilon,
            delta=job.delta,
            reserved_epsilon=job.target_epsilon,
            reserved_delta=job.delta,
            note=note,
            steps=steps,
            noise_multiplier=job.noise_multiplier,
            sample_rate=job.sample_rate,
            outcome=state,
            label_noise_multiplier=job.label_noise_multiplier if label_released else None,
            stats_noise_multiplier=job.stats_noise_multiplier if label_released else None,
        )
        self.runtime.metrics.training_jobs.labels(state=state.lower()).inc()
        self.runtime.metrics.epsilon_committed.inc(epsilon)
        self.runtime.metrics.observe_job("training", state, job.started_at, job.ended_at)

        def committed(_session: Session) -> None:
            """Log the ending once it is durable (not for a transaction that rolls back)."""
            log_event(
                log,
                f"job.{state.lower()}",
                job_id=job.id,
                dataset_id=job.dataset_id,
                model_id=job.model_id,
                steps=steps,
                epsilon=epsilon,
            )
            if state == "SUCCEEDED":
                log_event(log, "model.stored", model_id=job.model_id, job_id=job.id)

        sa_event.listen(session, "after_commit", committed, once=True)
