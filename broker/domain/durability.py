"""acks=all without blocking the event loop: fsyncs run on worker threads, one per partition at a time.

The engine's `Log.flush` already shares one fsync among concurrent callers, but each caller would hold a
thread while it waits. Coalescing here instead means many producers waiting on one partition cost one
thread and one fsync between them; the others just await the running flush.
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import Executor

from logstore.log import Log


class Flusher:
    """Makes a partition durable up to an offset, sharing in-progress fsyncs.

    Not thread-safe: call it from one event loop; the fsyncs themselves run on the executor's threads.
    """

    def __init__(self, executor: Executor) -> None:
        self._executor = executor
        self._running: dict[Log, asyncio.Future[None]] = {}

    async def flush(self, log: Log, up_to_offset: int) -> None:
        """Return once every offset below `up_to_offset` is on stable storage."""
        loop = asyncio.get_running_loop()
        while log.flushed_offset < min(up_to_offset, log.log_end_offset):
            running = self._running.get(log)
            if running is None or running.done():  # a finished flush that did not cover us: start anew
                running = loop.run_in_executor(self._executor, log.flush)
                self._running[log] = running
                running.add_done_callback(functools.partial(self._forget, log))
            # A flush that started before our append may not cover it: loop and check again. (Awaiting a
            # finished future does not yield to the loop, hence the done() check above.)
            await asyncio.shield(running)

    def _forget(self, log: Log, done: asyncio.Future[None]) -> None:
        if self._running.get(log) is done:
            del self._running[log]

    async def wait_idle(self) -> None:
        """Wait for every fsync in progress (before the engine is closed)."""
        running = list(self._running.values())
        if running:
            await asyncio.gather(*running, return_exceptions=True)
