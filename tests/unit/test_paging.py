"""Keyset page tokens: stable under inserts, tied to the listing's filter, opaque and checked."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from privsynth.server.api.services.paging import paginate
from privsynth.server.db import Database, DatasetRow, new_id, utcnow
from privsynth.server.errors import InvalidArgument
from sqlalchemy import select

ORDER = [(DatasetRow.created_at, True), (DatasetRow.id, False)]


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'p.db'}")
    database.migrate()
    yield database
    database.close()


def _add(db: Database, n: int, *, tenant: str = "t", minutes: int = 0) -> list[str]:
    ids = []
    base = utcnow() + timedelta(minutes=minutes)
    with db.session() as s:
        for i in range(n):
            row = DatasetRow(
                id=new_id(),
                display_name="d",
                created_at=base + timedelta(seconds=i % 3),  # ties: the id breaks them
                record_count=1,
                labelled_count=0,
                user_count=0,
                privacy_unit="record",
                epsilon_cap=1.0,
                delta=1e-6,
                shard_path="x",
                content_sha256="y",
                scrub_report={},
                tenant=tenant,
            )
            s.add(row)
            ids.append(row.id)
    return ids


def _page(db: Database, token: str, *, size: int = 4, tenant: str = "t") -> tuple[list[str], str]:
    with db.session() as s:
        rows, nxt = paginate(
            s,
            select(DatasetRow).where(DatasetRow.tenant == tenant),
            order=ORDER,
            page_size=size,
            page_token=token,
            scope=f"ListDatasets|{tenant}",
        )
        return [r.id for r in rows], nxt


def test_pages_cover_every_row_once_even_with_inserts_between_them(db: Database) -> None:
    _add(db, 10)
    seen, token = _page(db, "")
    _add(db, 3, minutes=5)  # newer rows appear at the front of a newest-first listing
    while token:
        ids, token = _page(db, token)
        seen += ids
    assert len(seen) == len(set(seen)) == 10  # no repeat, no row skipped
    assert token == ""


def test_the_last_page_has_no_token(db: Database) -> None:
    _add(db, 4)
    ids, token = _page(db, "", size=4)
    assert len(ids) == 4 and token == ""


def test_a_token_of_another_filter_or_a_forged_one_is_refused(db: Database) -> None:
    _add(db, 6)
    _, token = _page(db, "")
    assert token and not token.isdigit()  # an opaque key, not an offset
    with pytest.raises(InvalidArgument) as exc:
        _page(db, token, tenant="other")
    assert exc.value.field == "page_token"
    for bad in ["50", "9" * 20, token[:-3], "\u0663", "x" * 600, "eyJ2IjoxfQ"]:
        with pytest.raises(InvalidArgument):
            _page(db, bad)
