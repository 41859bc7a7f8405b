"""Page-token pagination shared by the List RPCs (offset tokens, opaque to callers)."""

from __future__ import annotations

from privsynth.server.errors import InvalidArgument

__all__ = ["next_token", "page_bounds"]

DEFAULT_PAGE = 50
MAX_PAGE = 500
MAX_OFFSET = 2**62
"""Largest offset a token may carry (SQLite and PostgreSQL take 64-bit signed offsets)."""
_MAX_TOKEN_CHARS = 19


def page_bounds(page_size: int, page_token: str) -> tuple[int, int]:
    """Offset and limit for a request.

    Raises:
        InvalidArgument: Negative page size or a malformed token.
    """
    if page_size < 0:
        raise InvalidArgument("page_size must be >= 0", field="page_size")
    limit = min(page_size or DEFAULT_PAGE, MAX_PAGE)
    if not page_token:
        return 0, limit
    # ASCII digits only: str.isdigit() also accepts "²" and "٣", which int() refuses or reads.
    if (
        len(page_token) > _MAX_TOKEN_CHARS
        or not page_token.isascii()
        or not page_token.isdigit()
        or int(page_token) > MAX_OFFSET
    ):
        raise InvalidArgument("page_token is not one this server issued", field="page_token")
    return int(page_token), limit


def next_token(offset: int, limit: int, returned: int) -> str:
    """Token of the next page, or empty when this page was the last."""
    return str(offset + limit) if returned == limit else ""
