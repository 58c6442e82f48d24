"""Wake-ups for long-polling fetches and subscriptions when a partition they watch gets new data.

Everything here runs on the event loop: appends happen on it too, so registering a waiter right after a
read that found nothing cannot miss an append in between.

Two ways to wait: `wait` (a coroutine, for callers that are tasks anyway) and `watch` (a plain callback,
called inside the `notify` that the append makes). A callback lets a listener write a long-poll's answer
before the producer's own answer goes out, with no loop iteration in between: that is the end-to-end
latency a consumer sees.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

PartitionKey = tuple[str, int]
Waker = Callable[[], None]

log = logging.getLogger(__name__)


class AppendWaiters:
    """Callbacks per partition, called once by `notify` when that partition changes. Not thread-safe: one
    loop."""

    def __init__(self) -> None:
        self._waiting: dict[PartitionKey, set[Waker]] = {}

    def notify(self, key: PartitionKey) -> None:
        """Wake everyone watching `key` (an append, or the partition went away)."""
        wakers = self._waiting.pop(key, None)
        if wakers:
            for waker in wakers:
                try:
                    waker()
                except Exception:  # a watcher's failure must not fail the append that woke it
                    log.exception("a waiter woken for %s-%s failed", *key)

    def notify_all(self) -> None:
        """Wake every waiter, for example because the broker is shutting down."""
        for key in list(self._waiting):
            self.notify(key)

    def watch(self, keys: Iterable[PartitionKey], waker: Waker) -> Callable[[], None]:
        """Call `waker` (at most once per key it is still registered for) when one of `keys` is notified;
        returns the function that unregisters it from every key. `waker` runs inside the appender's call:
        it must be quick and must not append."""
        keys = list(keys)
        for key in keys:
            self._waiting.setdefault(key, set()).add(waker)

        def unwatch() -> None:
            for key in keys:
                wakers = self._waiting.get(key)
                if wakers is not None:
                    wakers.discard(waker)
                    if not wakers:
                        del self._waiting[key]

        return unwatch

    async def wait(self, keys: Iterable[PartitionKey], timeout_s: float | None) -> bool:
        """Wait until one of `keys` is notified (True) or `timeout_s` passes (False)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not future.done():
                future.set_result(None)

        unwatch = self.watch(keys, wake)
        try:
            await asyncio.wait_for(future, timeout_s)
            return True
        except TimeoutError:
            return False
        finally:
            unwatch()

    def __len__(self) -> int:
        """How many (partition, waiter) pairs are registered (for tests and diagnostics)."""
        return sum(len(wakers) for wakers in self._waiting.values())
