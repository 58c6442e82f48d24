"""Wake-ups for long-polling fetches and subscriptions when a partition they watch gets new data.

Everything here runs on the event loop: appends happen on it too, so registering a waiter right after a
read that found nothing cannot miss an append in between.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

PartitionKey = tuple[str, int]


class AppendWaiters:
    """Futures per partition, resolved by `notify` when that partition changes. Not thread-safe: one loop."""

    def __init__(self) -> None:
        self._waiting: dict[PartitionKey, set[asyncio.Future[None]]] = {}

    def notify(self, key: PartitionKey) -> None:
        """Wake everyone watching `key` (an append, or the partition went away)."""
        futures = self._waiting.pop(key, None)
        if futures:
            for future in futures:
                if not future.done():
                    future.set_result(None)

    def notify_all(self) -> None:
        """Wake every waiter, for example because the broker is shutting down."""
        for key in list(self._waiting):
            self.notify(key)

    async def wait(self, keys: Iterable[PartitionKey], timeout_s: float | None) -> bool:
        """Wait until one of `keys` is notified (True) or `timeout_s` passes (False)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        keys = list(keys)
        for key in keys:
            self._waiting.setdefault(key, set()).add(future)
        try:
            await asyncio.wait_for(future, timeout_s)
            return True
        except TimeoutError:
            return False
        finally:
            for key in keys:
                futures = self._waiting.get(key)
                if futures is not None:
                    futures.discard(future)
                    if not futures:
                        del self._waiting[key]

    def __len__(self) -> int:
        """How many (partition, waiter) pairs are registered (for tests and diagnostics)."""
        return sum(len(futures) for futures in self._waiting.values())
