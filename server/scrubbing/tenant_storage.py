"""A tenant's share of storage: how many datasets, and how many bytes of them, it may keep.

Each upload is bounded on its own (``max_records``, ``max_dataset_bytes``) but nothing bounded
their sum: one member uploading 1 GiB datasets in a loop filled the data volume (or the
object-store bucket) that every tenant shares, and from then on every tenant's uploads,
checkpoints and models failed with ``STORAGE_FULL``. A tenant now keeps at most
``max_datasets_per_tenant`` live datasets and ``max_stored_bytes_per_tenant`` bytes of
scrubbed shards; a deleted dataset stops counting at once.

An upload is checked three times, so a full share costs no scrubbing and concurrent uploads of
one tenant cannot overshoot it together:

1. before its first record is scrubbed (:func:`check_room` with ``adding=0``, against the
   :func:`usage` read then);
2. as its shard grows (:func:`check_bytes`, against that same usage), so an upload that
   cannot fit is refused as soon as it passes the share, not after its last record;
3. when its row is stored, against the usage read again under the tenant's lock
   (:func:`~privsynth.server.db.lock_until_commit`) in the same transaction, counting the
   uploads that committed meanwhile.

Shards are content-addressed, so two datasets of the same text share one file; each dataset
still counts its whole size. That is conservative (the share may count a file twice) and keeps
the rule one a tenant can check from its own listing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from privsynth.server.db import DatasetRow
from privsynth.server.errors import QuotaExceeded
from privsynth.server.storage import ArtifactStore, ArtifactStoreUnavailable
from sqlalchemy import func, select
from sqlalchemy.orm import Session

__all__ = ["BYTES_SUBJECT", "DATASETS_SUBJECT", "Usage", "check_bytes", "check_room", "usage"]

log = logging.getLogger(__name__)

BYTES_SUBJECT = "storage/bytes_per_tenant"
DATASETS_SUBJECT = "storage/datasets_per_tenant"


@dataclass(frozen=True)
class Usage:
    """What a tenant keeps now: live datasets and the bytes of their shards."""

    datasets: int
    bytes: int


def usage(session: Session, store: ArtifactStore, tenant: str) -> Usage:
    """The tenant's live datasets and their bytes.

    Datasets stored before their size was recorded (revision 0012) are measured in the store
    and their size written back in ``session`` (commit it before a check that may refuse, or
    the next check measures again); a shard the store no longer has counts 0.

    Raises:
        ArtifactStoreUnavailable: The store could not say a shard's size.
    """
    live = (DatasetRow.tenant == tenant, DatasetRow.deleted_at.is_(None))
    count, known = session.execute(
        select(func.count(), func.sum(DatasetRow.size_bytes)).where(*live)
    ).one()
    total = int(known or 0)
    for row in session.scalars(select(DatasetRow).where(*live, DatasetRow.size_bytes.is_(None))):
        try:
            size = store.size(row.shard_path)
        except FileNotFoundError:
            log.warning("dataset %s has no shard in the store; it counts 0 bytes", row.id)
            size = 0
        except OSError as exc:  # the store is unreachable: the upload fails, nothing is kept
            raise ArtifactStoreUnavailable(
                f"cannot measure dataset {row.id} in the artifact store ({type(exc).__name__})"
            ) from exc
        row.size_bytes = size
        total += size
    return Usage(datasets=int(count), bytes=total)


def check_room(kept: Usage, *, adding: int, max_datasets: int, max_bytes: int) -> None:
    """Refuse a new dataset of ``adding`` bytes that the tenant's share cannot hold.

    Args:
        kept: What the tenant keeps without it (:func:`usage`; read it under the tenant's
            lock, :func:`~privsynth.server.db.lock_until_commit`, in the transaction that adds
            the row, to count concurrent uploads).
        adding: Bytes of the new dataset's shard (so far).
        max_datasets: Live datasets the tenant may keep; 0 means no limit.
        max_bytes: Bytes of shards the tenant may keep; 0 means no limit.

    Raises:
        QuotaExceeded: One more dataset, or ``adding`` more bytes, would pass the share.
    """
    if max_datasets > 0 and kept.datasets >= max_datasets:
        raise QuotaExceeded(
            f"this tenant keeps {kept.datasets} datasets, the most the server allows it "
            f"({max_datasets}, PRIVSYNTH_MAX_DATASETS_PER_TENANT); delete datasets it no "
            "longer needs, or ask the operator for a larger share",
            subject=DATASETS_SUBJECT,
            limit=max_datasets,
            used=kept.datasets,
        )
    check_bytes(kept, adding=adding, max_bytes=max_bytes)


def check_bytes(kept: Usage, *, adding: int, max_bytes: int) -> None:
    """Refuse an upload whose ``adding`` bytes no longer fit beside what the tenant ``kept``.

    Raises:
        QuotaExceeded: ``kept.bytes + adding`` passes ``max_bytes`` (0: no limit).
    """
    if max_bytes <= 0 or kept.bytes + adding <= max_bytes:
        return
    held = f"this tenant keeps {kept.bytes} bytes of datasets"
    if adding:
        held += f" and this upload has reached {adding} bytes"
    raise QuotaExceeded(
        f"{held}: more than the {max_bytes} bytes the server allows it "
        "(PRIVSYNTH_MAX_STORED_BYTES_PER_TENANT); nothing was stored. Delete datasets it no "
        "longer needs, or ask the operator for a larger share",
        subject=BYTES_SUBJECT,
        limit=max_bytes,
        used=kept.bytes,
    )
