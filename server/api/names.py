"""Resource names (``datasets/{id}``, ``jobs/{id}``, ``models/{id}``) and their parsing."""

from __future__ import annotations

import re

from privsynth.server.errors import InvalidArgument

__all__ = ["format_name", "parse_name"]

_ID = re.compile(r"^[0-9a-f]{1,32}$")


def format_name(collection: str, resource_id: str) -> str:
    """``collection/id``."""
    return f"{collection}/{resource_id}"


def parse_name(collection: str, name: str, *, field: str) -> str:
    """The id in ``collection/{id}``.

    Raises:
        InvalidArgument: ``name`` is not of that form (the message does not echo it).
    """
    prefix = f"{collection}/"
    if not name.startswith(prefix) or not _ID.match(name[len(prefix) :]):
        raise InvalidArgument(f"{field} must look like '{collection}/<id>'", field=field)
    return name[len(prefix) :]
