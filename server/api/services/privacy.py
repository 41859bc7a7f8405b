"""Privacy servicer: budgets, ledger, audit log, cap changes and the canary privacy audit.

The audit's request checks and runner live in :mod:`privsynth.server.privacy.empirical_audit`.

Who may call what is decided by :mod:`privsynth.server.api.auth` before these methods run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import grpc
from privsynth.client.pb import privacy_pb2, privacy_pb2_grpc
from privsynth.models.dp_train import Example, TrainingConfigError
from privsynth.models.privacy_audit import AuditResult
from privsynth.server.api.auth import Role, identity_of
from privsynth.server.api.services.convert import budget_pb, ledger_pb
from privsynth.server.api.services.datasets import get_live_dataset
from privsynth.server.api.services.paging import paginate
from privsynth.server.db import DatasetRow, LedgerRow
from privsynth.server.errors import InvalidArgument, PermissionDenied, Reason
from privsynth.server.privacy import audit, ledger
from privsynth.server.privacy.empirical_audit import (
    AuditCharge,
    AuditRequest,
    PrivacyAuditor,
    audit_config,
)
from privsynth.server.runtime import Runtime
from privsynth.server.shards import read_examples
from sqlalchemy import select

__all__ = ["PrivacyServicer"]


class PrivacyServicer(privacy_pb2_grpc.PrivacyServicer):
    """privsynth.v1.Privacy."""

    def __init__(self, runtime: Runtime, auditor: PrivacyAuditor | None = None) -> None:
        self.runtime = runtime
        self.auditor = auditor or PrivacyAuditor(torch_threads=runtime.settings.torch_threads)

    def GetBudget(  # noqa: N802
        self, request: privacy_pb2.GetBudgetRequest, context: grpc.ServicerContext
    ) -> privacy_pb2.Budget:
        """Cap, spent, reserved and remaining ε of a dataset."""
        dataset = get_live_dataset(
            self.runtime,
            request.dataset,
            identity=identity_of(context),
            field="dataset",
            deleted_too=True,  # a deleted dataset's accounting stays readable
        )
        with self.runtime.db.session() as s:
            return budget_pb(ledger.get_budget(s, dataset))

    def ListLedgerEntries(  # noqa: N802
        self, request: privacy_pb2.ListLedgerEntriesRequest, context: grpc.ServicerContext
    ) -> privacy_pb2.ListLedgerEntriesResponse:
        """Ledger entries of a dataset in the order they were written."""
        dataset = get_live_dataset(
            self.runtime,
            request.dataset,
            identity=identity_of(context),
            field="dataset",
            deleted_too=True,
        )
        with self.runtime.db.session() as s:
            rows, token = paginate(
                s,
                select(LedgerRow).where(LedgerRow.dataset_id == dataset.id),
                order=[(LedgerRow.id, False)],
                page_size=request.page_size,
                page_token=request.page_token,
                scope=f"ListLedgerEntries|{dataset.id}",
            )
        return privacy_pb2.ListLedgerEntriesResponse(
            entries=[ledger_pb(r) for r in rows], next_page_token=token
        )

    def ExportAuditLog(  # noqa: N802
        self, request: privacy_pb2.ExportAuditLogRequest, context: grpc.ServicerContext
    ) -> Iterator[privacy_pb2.AuditEntry]:
        """Stream the audit chain in order; stops early when the caller goes away."""
        for e in audit.entries(self.runtime.db, start_seq=max(1, request.start_seq)):
            if not context.is_active():
                return
            yield privacy_pb2.AuditEntry(
                seq=e.seq,
                time=e.time,
                actor=e.actor,
                action=e.action,
                dataset=e.dataset,
                job=e.job,
                details=e.details,
                prev_hash=e.prev_hash,
                hash=e.hash,
            )

    def UpdateBudgetCap(  # noqa: N802
        self, request: privacy_pb2.UpdateBudgetCapRequest, context: grpc.ServicerContext
    ) -> privacy_pb2.Budget:
        """Change a dataset's cap (admin only), recorded in the ledger and the audit log."""
        actor = identity_of(context).name  # the interceptor admitted admins only
        dataset = get_live_dataset(
            self.runtime, request.dataset, identity=identity_of(context), field="dataset"
        )
        with self.runtime.db.session() as s:
            view = ledger.change_cap(
                s,
                dataset.id,
                epsilon_cap=request.epsilon_cap,
                delta_cap=request.delta if request.HasField("delta") else None,
                actor=actor,
            )
        return budget_pb(view)

    def AuditPrivacy(  # noqa: N802
        self, request: privacy_pb2.AuditPrivacyRequest, context: grpc.ServicerContext
    ) -> Iterator[privacy_pb2.AuditPrivacyEvent]:
        """Canary audit: progress events, then the claim beside the bound.

        On the public corpus by default (no dataset read, the ledger untouched). With
        ``dataset`` the audit trains on that dataset's records and is charged like a training
        job: only members of its tenant may ask (it spends the tenant's budget), its ε is
        reserved before any record is read and what the run spent is committed when it ends.
        """
        delta = request.delta if request.HasField("delta") else None
        dataset: DatasetRow | None = None
        if request.dataset:
            identity = identity_of(context)
            if identity.role is not Role.MEMBER:
                raise PermissionDenied(
                    "an audit on a dataset trains on it and spends its budget: only members of "
                    "its tenant may run one",
                    reason=Reason.NOT_TENANT_MEMBER,
                )
            dataset = get_live_dataset(
                self.runtime, request.dataset, identity=identity, field="dataset"
            )
            if delta is None:
                delta = dataset.delta / 10.0  # what a training job takes by default
        config = audit_config(
            AuditRequest(
                preset=request.preset,
                target_epsilon=request.target_epsilon,
                delta=delta,
                epochs=request.epochs if request.HasField("epochs") else None,
                canaries=request.canaries if request.HasField("canaries") else None,
                public_records=(
                    request.public_records if request.HasField("public_records") else None
                ),
                dataset=request.dataset,
            ),
            dataset_records=None if dataset is None else dataset.record_count,
        )
        self.runtime.require_ready()
        load_records: Callable[[], list[Example]] | None = None
        charge = None
        if dataset is not None:
            shard_of = dataset
            load_records = lambda: read_examples(self.runtime.store, shard_of)  # noqa: E731
            charge = AuditCharge(
                self.runtime,
                dataset.id,
                epsilon=config.target_epsilon,
                delta=config.delta(),
                actor=identity_of(context).name,
            )
        try:
            for event in self.auditor.stream(
                config, is_active=context.is_active, load_records=load_records, charge=charge
            ):
                if isinstance(event, AuditResult):
                    yield privacy_pb2.AuditPrivacyEvent(result=audit_result_pb(event))
                else:
                    yield privacy_pb2.AuditPrivacyEvent(
                        progress=privacy_pb2.AuditPrivacyProgress(
                            phase=event.phase,
                            step=event.step,
                            total_steps=event.total_steps,
                            elapsed_seconds=event.elapsed_s,
                        )
                    )
        except TrainingConfigError as exc:
            raise InvalidArgument(str(exc), field=exc.field) from None


def audit_result_pb(result: AuditResult) -> privacy_pb2.PrivacyAuditResult:
    """The wire form of an audit result (numbers and names; no canary text)."""
    return privacy_pb2.PrivacyAuditResult(
        preset=result.preset,
        target_epsilon=result.target_epsilon,
        epsilon_claimed=result.epsilon_claimed,
        delta=result.delta,
        epsilon_lower_bound=result.epsilon_lower_bound,
        confidence=1.0 - result.significance,
        refuted=result.refuted,
        canaries=result.canaries,
        canaries_included=result.canaries_included,
        guesses=result.guesses,
        correct=result.correct,
        public_records=result.public_records,
        epochs=result.epochs,
        noise_multiplier=result.noise_multiplier,
        sample_rate=result.sample_rate,
        steps=result.steps,
        wall_seconds=result.wall_seconds,
        method=result.method,
        score=result.score,
        json=json.dumps(result.to_dict(), sort_keys=True),
    )
