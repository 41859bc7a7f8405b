"""Keyset pagination shared by the List RPCs, with opaque tokens tied to the request's filter.

An offset token ("skip the first 50") breaks as soon as a row is inserted between two pages: the
newest-first listing shifts and the same dataset comes back on both pages. A keyset token holds
the sort key of the last row returned instead ("after created_at = t, id = x"), so the next page
starts exactly after it whatever was inserted or deleted meanwhile (AIP-158).

Tokens are opaque to callers (URL-safe base64 of a small JSON document) and carry a digest of
the request's filter (method, tenant scope, dataset...): a token used with another filter is
INVALID_ARGUMENT, never a silently wrong page. A token carries no corpus text, only ids and
timestamps the caller has already seen.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from privsynth.server.errors import InvalidArgument, Reason
from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import InstrumentedAttribute, Session

__all__ = ["DEFAULT_PAGE", "MAX_PAGE", "Order", "paginate"]

DEFAULT_PAGE = 50
MAX_PAGE = 500
_MAX_TOKEN_CHARS = 512
_VERSION = 1

Order = Sequence[tuple[InstrumentedAttribute[Any], bool]]
"""The listing's sort key: (column, descending) pairs, ending with a unique column."""


def _bad_token() -> InvalidArgument:
    return InvalidArgument(
        "page_token is not one this server issued",
        field="page_token",
        reason=Reason.PAGE_TOKEN_INVALID,
    )


def _scope_digest(scope: str) -> str:
    return hashlib.sha256(scope.encode()).hexdigest()[:16]


def _encode_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"t": value.isoformat()}
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return value
    raise TypeError(f"unsupported sort key type {type(value).__name__}")


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"t"} and isinstance(value["t"], str):
        try:
            return datetime.fromisoformat(value["t"])
        except ValueError:
            raise _bad_token() from None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _bad_token()
    if isinstance(value, int) and not (-(2**63) <= value < 2**63):
        raise _bad_token()
    return value


def _encode(after: Sequence[Any], scope: str) -> str:
    doc = {"v": _VERSION, "f": _scope_digest(scope), "k": [_encode_value(v) for v in after]}
    raw = json.dumps(doc, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(token: str, scope: str, width: int) -> list[Any]:
    """The sort key a token resumes after.

    Raises:
        InvalidArgument: Malformed, forged or issued for another filter.
    """
    if len(token) > _MAX_TOKEN_CHARS or not token.isascii():
        raise _bad_token()
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        doc = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise _bad_token() from None
    if not isinstance(doc, dict) or doc.get("v") != _VERSION:
        raise _bad_token()
    if doc.get("f") != _scope_digest(scope):
        raise InvalidArgument(
            "page_token belongs to a listing with another filter; start again without it",
            field="page_token",
            reason=Reason.PAGE_TOKEN_INVALID,
        )
    keys = doc.get("k")
    if not isinstance(keys, list) or len(keys) != width:
        raise _bad_token()
    return [_decode_value(v) for v in keys]


def _after(order: Order, values: Sequence[Any]) -> Any:
    """Rows strictly after ``values`` in ``order``: an OR over the key's prefixes."""
    clauses = []
    for i, (column, descending) in enumerate(order):
        equal = [order[j][0] == values[j] for j in range(i)]
        beyond = column < values[i] if descending else column > values[i]
        clauses.append(and_(*equal, beyond))
    return or_(*clauses)


def paginate(
    session: Session,
    query: Select[Any],
    *,
    order: Order,
    page_size: int,
    page_token: str,
    scope: str,
) -> tuple[list[Any], str]:
    """One page of ``query`` in ``order`` and the token of the next (empty after the last).

    Args:
        session: Open database session.
        query: The listing's filtered query, without order or limit.
        order: The sort key; its last column must be unique (the id), so the key is total.
        page_size: Requested size (0: the default; at most :data:`MAX_PAGE`).
        page_token: Empty for the first page, else a token this function issued.
        scope: Everything the listing is filtered by (method, tenant, dataset...); a token only
            continues a listing with the same scope.

    Raises:
        InvalidArgument: Negative page size; a malformed token or one of another listing.
    """
    if page_size < 0:
        raise InvalidArgument("page_size must be >= 0", field="page_size")
    limit = min(page_size or DEFAULT_PAGE, MAX_PAGE)
    if page_token:
        query = query.where(_after(order, _decode(page_token, scope, len(order))))
    ordered = query.order_by(*(c.desc() if d else c.asc() for c, d in order)).limit(limit + 1)
    rows = list(session.execute(ordered).scalars().all())
    if len(rows) <= limit:
        return rows, ""
    rows = rows[:limit]
    last = rows[-1]
    return rows, _encode([getattr(last, c.key) for c, _ in order], scope)
