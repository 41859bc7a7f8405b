"""Privacy servicer: budgets and ledger entries (read-only)."""

from __future__ import annotations

import grpc
from privsynth.client.pb import privacy_pb2, privacy_pb2_grpc
from privsynth.server import ledger
from privsynth.server.db import LedgerRow
from privsynth.server.runtime import Runtime
from privsynth.server.services.convert import budget_pb, ledger_pb
from privsynth.server.services.datasets import get_live_dataset
from privsynth.server.services.paging import next_token, page_bounds
from sqlalchemy import select

__all__ = ["PrivacyServicer"]


class PrivacyServicer(privacy_pb2_grpc.PrivacyServicer):
    """privsynth.v1.Privacy."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def GetBudget(  # noqa: N802
        self, request: privacy_pb2.GetBudgetRequest, context: grpc.ServicerContext
    ) -> privacy_pb2.Budget:
        """Cap, spent, reserved and remaining ε of a dataset."""
        dataset = get_live_dataset(self.runtime, request.dataset, field="dataset")
        with self.runtime.db.session() as s:
            return budget_pb(ledger.get_budget(s, dataset))

    def ListLedgerEntries(  # noqa: N802
        self, request: privacy_pb2.ListLedgerEntriesRequest, context: grpc.ServicerContext
    ) -> privacy_pb2.ListLedgerEntriesResponse:
        """Ledger entries of a dataset in the order they were written."""
        dataset = get_live_dataset(self.runtime, request.dataset, field="dataset")
        offset, limit = page_bounds(request.page_size, request.page_token)
        with self.runtime.db.session() as s:
            rows = (
                s.execute(
                    select(LedgerRow)
                    .where(LedgerRow.dataset_id == dataset.id)
                    .order_by(LedgerRow.id)
                    .offset(offset)
                    .limit(limit)
                )
                .scalars()
                .all()
            )
        return privacy_pb2.ListLedgerEntriesResponse(
            entries=[ledger_pb(r) for r in rows],
            next_page_token=next_token(offset, limit, len(rows)),
        )
