"""Datasets servicer: a thin translation between protobuf and ingest.

The work is in :mod:`privsynth.server.scrubbing.ingest`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import grpc
from privsynth.client.pb import datasets_pb2, datasets_pb2_grpc
from privsynth.server.api.auth import Identity, identity_of
from privsynth.server.api.names import parse_name
from privsynth.server.api.services.convert import dataset_pb
from privsynth.server.api.services.paging import paginate
from privsynth.server.db import DatasetRow, utcnow
from privsynth.server.errors import InvalidArgument, NotFound, Reason
from privsynth.server.logs import log_event
from privsynth.server.privacy import audit
from privsynth.server.request_ids import check_request_id
from privsynth.server.runtime import Runtime
from privsynth.server.scrubbing.ingest import (
    DatasetSpec,
    DuplicateUpload,
    IncomingRecord,
    earlier_upload,
    ingest,
    shard_in_use,
)
from privsynth.server.scrubbing.scrubber import ScrubCancelled
from sqlalchemy import select

__all__ = ["DatasetsServicer", "get_live_dataset"]

log = logging.getLogger(__name__)

MAX_RECORDS_PER_MESSAGE = 4096
"""Records one upload message may carry (the client sends 256). A 31 MB message of 6.5 M
one-byte records cost 520 MB to hold, and its 1,000,001st record was only refused after
eleven minutes of scrubbing the first million."""


def get_live_dataset(
    runtime: Runtime,
    name: str,
    *,
    identity: Identity,
    field: str = "name",
    deleted_too: bool = False,
) -> DatasetRow:
    """The dataset named ``name``, unless missing, deleted or another tenant's.

    Args:
        runtime: Server state.
        name: ``datasets/<id>`` as sent.
        identity: The caller; another tenant's dataset is as missing as an unknown one.
        field: The request field that named it (for the error's field violation).
        deleted_too: Return a deleted dataset as well. Deleting drops the text, not the
            accounting: its budget and ledger stay readable for auditors.

    Raises:
        InvalidArgument: Malformed name.
        NotFound: No such dataset visible to ``identity``.
    """
    dataset_id = parse_name("datasets", name, field=field)
    with runtime.db.session() as s:
        row = s.get(DatasetRow, dataset_id)
    gone = row is not None and row.deleted_at is not None and not deleted_too
    if row is None or gone or not identity.sees(row.tenant):
        raise NotFound(f"dataset '{name}' not found", reason=Reason.DATASET_NOT_FOUND)
    return row


class DatasetsServicer(datasets_pb2_grpc.DatasetsServicer):
    """privsynth.v1.Datasets."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def UploadDataset(  # noqa: N802 - gRPC method name
        self,
        request_iterator: Iterator[datasets_pb2.UploadDatasetRequest],
        context: grpc.ServicerContext,
    ) -> datasets_pb2.Dataset:
        """Scrub and store a streamed corpus (it belongs to the caller's tenant)."""
        identity = identity_of(context)
        first = next(request_iterator, None)
        if first is None or first.WhichOneof("payload") != "metadata":
            raise InvalidArgument("the first upload message must carry metadata", field="metadata")
        meta = first.metadata
        spec = DatasetSpec(
            display_name=meta.display_name,
            epsilon_cap=meta.epsilon_cap if meta.HasField("epsilon_cap") else None,
            delta=meta.delta if meta.HasField("delta") else None,
            tenant=identity.tenant,
            request_id=check_request_id(meta.request_id),
            record_format=meta.record_format,
        )
        earlier = earlier_upload(self.runtime, spec)
        if earlier is not None:
            # A retry of an upload that completed: answer with its dataset, read nothing more.
            return dataset_pb(earlier)

        max_records = self.runtime.settings.max_records

        def records() -> Iterator[IncomingRecord]:
            received = 0
            for msg in request_iterator:
                if msg.WhichOneof("payload") != "records":
                    raise InvalidArgument(
                        "metadata may only be sent in the first message", field="metadata"
                    )
                batch = msg.records.records
                if not batch:  # a keep-alive: it would hold the stream past its idle limit
                    raise InvalidArgument(
                        "an upload message carries at least one record", field="records"
                    )
                if len(batch) > MAX_RECORDS_PER_MESSAGE:
                    raise InvalidArgument(
                        f"an upload message carries at most {MAX_RECORDS_PER_MESSAGE} records "
                        f"(this one: {len(batch)}); send more messages",
                        field="records",
                    )
                received += len(batch)
                if received > max_records:  # refused before the batch is scrubbed
                    raise InvalidArgument(
                        f"dataset has more than {max_records} records",
                        field="records",
                        reason=Reason.DATASET_TOO_LARGE,
                    )
                for r in batch:
                    yield IncomingRecord(text=r.text, label=r.label, user_id=r.user_id)

        # Set when the call ends for any reason: a client that cancels or runs past its
        # deadline (or a server stopping after its grace) stops the scrubbing at once.
        gone = threading.Event()
        if not context.add_callback(gone.set):
            gone.set()
        try:
            row = ingest(self.runtime, spec, records(), cancel=gone)
        except DuplicateUpload as dup:
            return dataset_pb(dup.dataset)
        except ScrubCancelled:
            # The caller has gone; nothing was stored. (Aborting marks it as no server fault.)
            context.abort(grpc.StatusCode.CANCELLED, "the upload was cancelled")
        # ingest commits the dataset row; its two audit entries follow at once. They hold
        # counts and hashes only: no display name, no text.
        report = row.scrub_report
        with self.runtime.db.session() as s:
            audit.append(
                s,
                action="dataset.created",
                actor=identity.name,
                dataset_id=row.id,
                details={
                    "record_count": row.record_count,
                    "labelled_count": row.labelled_count,
                    "user_count": row.user_count,
                    "privacy_unit": row.privacy_unit,
                    "epsilon_cap": row.epsilon_cap,
                    "delta": row.delta,
                    "content_sha256": row.content_sha256,
                },
            )
            audit.append(
                s,
                action="dataset.scrubbed",
                actor="system",
                dataset_id=row.id,
                details={
                    "records_scrubbed": int(report.get("records_scrubbed", 0)),
                    "records_with_pii": int(report.get("records_with_pii", 0)),
                    "entity_counts": {
                        str(k): int(v) for k, v in report.get("entity_counts", {}).items()
                    },
                    "analyzer": str(report.get("analyzer", "")),
                    "strategy": str(report.get("strategy", "")),
                },
            )
        log_event(
            log,
            "dataset.uploaded",
            dataset_id=row.id,
            tenant=row.tenant,
            records=row.record_count,
            labelled=row.labelled_count,
            users=row.user_count,
            records_with_pii=int(report.get("records_with_pii", 0)),
            entities_replaced=sum(int(v) for v in report.get("entity_counts", {}).values()),
            privacy_unit=row.privacy_unit,
        )
        return dataset_pb(row)

    def GetDataset(  # noqa: N802
        self, request: datasets_pb2.GetDatasetRequest, context: grpc.ServicerContext
    ) -> datasets_pb2.Dataset:
        """One dataset."""
        return dataset_pb(
            get_live_dataset(self.runtime, request.name, identity=identity_of(context))
        )

    def ListDatasets(  # noqa: N802
        self, request: datasets_pb2.ListDatasetsRequest, context: grpc.ServicerContext
    ) -> datasets_pb2.ListDatasetsResponse:
        """Datasets (the caller's tenant's, or every tenant's for auditors), newest first."""
        scope = identity_of(context).tenant_scope
        query = select(DatasetRow).where(DatasetRow.deleted_at.is_(None))
        if scope is not None:
            query = query.where(DatasetRow.tenant == scope)
        with self.runtime.db.session() as s:
            rows, token = paginate(
                s,
                query,
                order=[(DatasetRow.created_at, True), (DatasetRow.id, False)],
                page_size=request.page_size,
                page_token=request.page_token,
                scope=f"ListDatasets|{scope}",
            )
        return datasets_pb2.ListDatasetsResponse(
            datasets=[dataset_pb(r) for r in rows], next_page_token=token
        )

    def DeleteDataset(  # noqa: N802
        self, request: datasets_pb2.DeleteDatasetRequest, context: grpc.ServicerContext
    ) -> datasets_pb2.DeleteDatasetResponse:
        """Delete the scrubbed text; the row and its ledger stay for the audit trail."""
        identity = identity_of(context)
        row = get_live_dataset(self.runtime, request.name, identity=identity)
        with self.runtime.db.session() as s:
            live = s.get(DatasetRow, row.id)
            assert live is not None
            live.deleted_at = utcnow()
            audit.append(
                s,
                action="dataset.deleted",
                actor=identity.name,
                dataset_id=row.id,
                details={"content_sha256": row.content_sha256},
            )
            shared = shard_in_use(s, row.shard_path, besides=row.id)
        if not shared:
            self.runtime.store.delete(row.shard_path)
        log_event(log, "dataset.deleted", dataset_id=row.id, tenant=row.tenant)
        return datasets_pb2.DeleteDatasetResponse()
