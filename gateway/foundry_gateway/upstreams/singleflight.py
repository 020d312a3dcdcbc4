"""One in-flight call shared by every concurrent caller (the model list's refresh, the
follower's scan): the first caller starts it, the others await the same result, and a
caller that is cancelled (its client went away) leaves it running for the rest."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    def __init__(self) -> None:
        self._task: asyncio.Future[T] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None

    async def run(self, start: Callable[[], Awaitable[T]]) -> T:
        if self._task is None:
            self._task = asyncio.ensure_future(start())
        task = self._task
        try:
            return await asyncio.shield(task)
        finally:
            if task.done() and self._task is task:
                self._task = None
