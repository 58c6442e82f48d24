"""``AsyncRecordFuture``: the threaded client's cheap per-record future, awaitable on the event loop.

A record's future is the threaded ``RecordFuture``'s three slots (its batch's ``BatchOutcome``, its offset
delta and timestamp), made on ``send_nowait``'s hot path without an ``__init__`` frame. An
``asyncio.Future`` per record cost more than the rest of a send (creating it, then completing each one
when its batch is answered: about 60% of the asyncio producer's time at 1,000,000 x 100 B, profiled);
here a batch's answer completes its outcome once, and an ``asyncio`` future exists only for a record
someone awaits. The batch outcomes are completed on the loop (the sender task), so callbacks run there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator
from typing import Any

from logstore.client.producer.futures import _ON_DONE, RecordFuture
from logstore.client.shared.types import RecordMetadata


class AsyncRecordFuture(RecordFuture):
    """The future of one record sent by an ``AsyncProducer``: ``await`` it for its ``RecordMetadata``
    (or its error). ``done``, ``result``, ``exception`` and ``add_done_callback`` follow
    ``asyncio.Future``, without blocking; ``cancel()`` returns False, because a record in a batch cannot
    be taken back (cancelling a task that awaits one stops only that wait). Works with
    ``asyncio.gather`` and ``asyncio.wait_for`` as any awaitable does."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, RecordMetadata]:
        outcome = self._outcome
        if not outcome.done:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()

            def wake(_: RecordFuture) -> None:
                if not waiter.done():  # cancelled by a cancelled awaiter
                    waiter.set_result(None)

            outcome._add(self, wake, _ON_DONE)
            yield from waiter.__await__()
        return self.result()

    def result(self, timeout: float | None = None) -> RecordMetadata:
        """The metadata, or the record's error raised; ``asyncio.InvalidStateError`` while in flight."""
        outcome = self._outcome
        if not outcome.done:
            raise asyncio.InvalidStateError("the record is not acknowledged yet: await its future")
        if outcome.error is not None:
            raise outcome.error
        return self._metadata()

    get = result

    def exception(self, timeout: float | None = None) -> BaseException | None:
        outcome = self._outcome
        if not outcome.done:
            raise asyncio.InvalidStateError("the record is not acknowledged yet: await its future")
        return outcome.error

    def add_done_callback(self, fn: Callable[[RecordFuture], Any]) -> None:
        """Call ``fn(future)`` once the record is done either way (on the loop; at once if it is done)."""
        self._outcome._add(self, fn, _ON_DONE)


_new = object.__new__


def async_future(record: RecordFuture) -> AsyncRecordFuture:
    """The awaitable face of a record's future from the accumulator."""
    future = _new(AsyncRecordFuture)
    future._outcome = record._outcome
    future._delta = record._delta
    future._timestamp = record._timestamp
    return future
