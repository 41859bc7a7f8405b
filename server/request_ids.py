"""Safe retries (AIP-155): a ``request_id`` makes a create or a spend happen at most once.

A client that retries CreateTrainingJob or UploadDataset after a network error cannot know
whether the first attempt reached the server. With the same ``request_id`` (a UUID the client
library draws once per logical call), the server returns the resource the first attempt
created instead of creating a second one, so nothing is reserved or stored twice. The id is
scoped to the tenant and remembered with the resource (``request_id`` and a digest of the
request's parameters, unique per tenant); reusing an id for a different request is
INVALID_ARGUMENT, since answering it with the first request's resource would mislead.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, TypeVar

from privsynth.server.db import Database, DatasetRow, JobRow
from privsynth.server.errors import InvalidArgument, Reason
from sqlalchemy import select

__all__ = [
    "MAX_REQUEST_ID",
    "check_request_id",
    "earlier_resource",
    "request_digest",
    "same_request",
]

RowT = TypeVar("RowT", DatasetRow, JobRow)

MAX_REQUEST_ID = 128
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def check_request_id(request_id: str) -> str | None:
    """The request id to remember, or None when the caller gave none.

    Raises:
        InvalidArgument: Longer than 128 characters or outside ``[A-Za-z0-9._:-]`` (a UUID
            fits).
    """
    if not request_id:
        return None
    if not _REQUEST_ID.fullmatch(request_id):
        raise InvalidArgument(
            f"request_id must be 1..{MAX_REQUEST_ID} characters of A-Z a-z 0-9 . _ : - "
            "(e.g. a UUID)",
            field="request_id",
        )
    return request_id


def request_digest(params: dict[str, Any]) -> str:
    """A digest of a request's parameters, to tell a retry from a reused id."""
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def same_request(stored_digest: str | None, digest: str) -> None:
    """Check that a request with a known id is a retry of the first.

    Raises:
        InvalidArgument: The id was used for a request with other parameters.
    """
    if stored_digest is not None and stored_digest != digest:
        raise InvalidArgument(
            "request_id was already used for a request with other parameters; use a new id",
            field="request_id",
            reason=Reason.REQUEST_ID_REUSED,
        )


def earlier_resource(
    db: Database, row_type: type[RowT], *, tenant: str, request_id: str, digest: str
) -> RowT | None:
    """The row an earlier request with this id created in ``tenant``, if any.

    Raises:
        InvalidArgument: The id was used for a request with other parameters.
    """
    with db.session() as s:
        row = s.execute(
            select(row_type).where(row_type.tenant == tenant, row_type.request_id == request_id)
        ).scalar_one_or_none()
    if row is not None:
        same_request(row.request_hash, digest)
    return row
