"""Group commit: calls that arrive while a batch is being written go together in the next one.

A burst of N claims (200 streams starting at once) or N ends of runs then costs a few
statements on one pooled connection, not N connections taken from the pool in turn, each
waiting its turn on a busy event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from chat_shell import StorageError

__all__ = ["Batches"]

T = TypeVar("T")
R = TypeVar("R")

MAX_BATCH = 500


class Batches(Generic[T, R]):
    """``await submit(item)`` returns ``write``'s answer for ``item``.

    ``write`` takes a list of items and returns one answer per item, in order: a value, or an
    exception for that item alone. If ``write`` raises for a batch of several items, each item
    is written again alone, so one bad item does not fail the others; a ``StorageError`` (the
    database unreachable) is every item's answer at once.

    A caller cancelled while its item waits takes the item out of the queue; one cancelled while
    its item is being written leaves it written, and ``abandon`` (if given) is called with
    those answers to undo them.
    """

    def __init__(
        self,
        write: Callable[[list[T]], Awaitable[Sequence[R | Exception]]],
        abandon: Callable[[list[R]], Awaitable[None]] | None = None,
    ) -> None:
        self._write = write
        self._abandon = abandon
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._task: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._task is None:
            self._task = asyncio.create_task(self._drain(), name="chat-shell postgres batches")
        # a caller that gives up cancels its own future only, never the batch others wait for
        return await future

    async def _drain(self) -> None:
        batch: list[tuple[T, asyncio.Future[R]]] = []
        try:
            while self._queue:
                waiting = [(item, future) for item, future in self._queue if not future.done()]
                batch, self._queue = waiting[:MAX_BATCH], waiting[MAX_BATCH:]
                if not batch:
                    break
                answers = await self._answers([item for item, _ in batch])
                abandoned: list[R] = []
                for (_, future), answer in zip(batch, answers, strict=True):
                    if isinstance(answer, Exception):
                        if not future.done():
                            future.set_exception(answer)
                    elif future.done():
                        abandoned.append(answer)  # written for a caller that is gone
                    else:
                        future.set_result(answer)
                if abandoned and self._abandon is not None:
                    await self._abandon(abandoned)
        finally:
            self._task = None
            # cancelled (the store is closing): nobody waits forever, for this batch or the next
            left, self._queue = [*batch, *self._queue], []
            for _, future in left:
                if not future.done():
                    future.cancel()

    async def _answers(self, items: list[T]) -> Sequence[R | Exception]:
        try:
            return await self._write(items)
        except StorageError as exc:
            return [exc] * len(items)
        except Exception as exc:
            if len(items) == 1:
                return [exc]
        answers: list[R | Exception] = []
        for item in items:
            try:
                answers += await self._write([item])
            except Exception as exc:
                answers.append(exc)
        return answers
