"""Pagers: the items of a List call, fetched a page at a time as the caller iterates.

A caller writes ``for ds in client.list_datasets(): ...`` and never sees a page token; the next
page is requested only when iteration reaches it, each request with the call's deadline.
``pages()`` yields the raw responses for callers that want them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any, Generic, Protocol, TypeVar

__all__ = ["AsyncPager", "Page", "Pager"]

T = TypeVar("T")


class Page(Protocol):
    """What every List response has: the token of the next page (empty on the last)."""

    @property
    def next_page_token(self) -> str:
        """The token to ask for the next page with; empty when this page is the last."""


R = TypeVar("R", bound=Page)


class Pager(Generic[T]):
    """Iterates every item of a List call (blocking client).

    Args:
        fetch: Requests the page at ``page_token`` ("" for the first).
        items: The items of a page (e.g. ``lambda page: page.datasets``).
    """

    def __init__(self, fetch: Callable[[str], R], items: Callable[[R], Sequence[T]]) -> None:
        self._fetch: Callable[[str], Page] = fetch
        self._items: Callable[[Any], Sequence[T]] = items

    def pages(self) -> Iterator[Page]:
        """The responses, first to last."""
        token = ""
        while True:
            page = self._fetch(token)
            yield page
            token = page.next_page_token
            if not token:
                return

    def __iter__(self) -> Iterator[T]:
        for page in self.pages():
            yield from self._items(page)


class AsyncPager(Generic[T]):
    """Iterates every item of a List call with ``async for`` (asyncio client)."""

    def __init__(
        self, fetch: Callable[[str], Awaitable[R]], items: Callable[[R], Sequence[T]]
    ) -> None:
        self._fetch: Callable[[str], Awaitable[Page]] = fetch
        self._items: Callable[[Any], Sequence[T]] = items

    async def pages(self) -> AsyncIterator[Page]:
        """The responses, first to last."""
        token = ""
        while True:
            page = await self._fetch(token)
            yield page
            token = page.next_page_token
            if not token:
                return

    async def __aiter__(self) -> AsyncIterator[T]:
        async for page in self.pages():
            for item in self._items(page):
                yield item

    async def all(self) -> list[T]:
        """Every item in a list (``list()`` does not take an async iterable)."""
        return [item async for item in self]
