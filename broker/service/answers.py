"""A bound on the memory held for answers that clients have not taken yet.

gRPC keeps an answer's bytes until the client has read them: a client that never reads holds a whole
fetch answer (up to fetch_max_bytes) per call, for as long as its connection lives. Kafka bounds what it
holds for requests (`queued.max.request.bytes`) and serves one answer at a time per connection; here the
same habit is applied to answers: bytes of batches handed to gRPC count against a broker-wide budget and
against their connection's budget until the call ends (the client took the answer, or the call was
cancelled or its connection closed). A read takes at most the room left, and waits while there is none,
so a slow reader is throttled instead of being served at everyone's cost. The first batch of a read is
always whole, so a budget can be passed by at most one batch per read that found room.

Everything here runs on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import grpc

log = logging.getLogger("logstore.broker.answers")

TRIM_AFTER_BYTES = 16 * 1024 * 1024
"""Once this much was held since the last trim and nearly all of it is released, give free memory back."""
TRIM_DELAY_S = 1.0
"""... but only after this long without a new answer, so a busy broker keeps reusing its buffers."""


class AnswerBudget:
    """Bytes in answers not yet taken by their client, per connection (gRPC's peer string) and in all."""

    def __init__(
        self,
        max_bytes: int,
        max_bytes_per_connection: int,
        release_memory: Callable[[], object] | None = None,
    ) -> None:
        self.max_bytes = max_bytes
        self.max_bytes_per_connection = max_bytes_per_connection
        self.in_use = 0
        self.closed = False
        """Set at shutdown: nobody waits for room any more (the calls then end as the broker stops)."""
        self._per_connection: dict[str, int] = {}
        self._waiting: set[asyncio.Future[None]] = set()
        self._release_memory = release_memory
        self._held_since_trim = 0
        self._last_charge = 0.0
        self._trim: asyncio.TimerHandle | None = None

    def room(self, connection: str) -> int:
        """How many bytes a read for `connection` may take now (0 or less: none)."""
        return min(
            self.max_bytes - self.in_use,
            self.max_bytes_per_connection - self._per_connection.get(connection, 0),
        )

    def held_by(self, connection: str) -> int:
        return self._per_connection.get(connection, 0)

    async def wait_for_room(self, connection: str) -> None:
        """Return once `connection` may read again; at once if it may already."""
        if self.room(connection) <= 0:
            log.debug(
                "a read for %s waits for room: %d bytes of answers unread on its connection, %d in all",
                connection,
                self.held_by(connection),
                self.in_use,
            )
        while self.room(connection) <= 0 and not self.closed:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiting.add(future)
            try:
                await future
            finally:
                self._waiting.discard(future)

    def close(self) -> None:
        """At shutdown: wake every read waiting for room, and let no new one wait."""
        self.closed = True
        self._wake()

    def charge(self, connection: str, size: int) -> None:
        if size <= 0:
            return
        self.in_use += size
        self._per_connection[connection] = self._per_connection.get(connection, 0) + size
        self._held_since_trim = max(self._held_since_trim, self.in_use)
        self._last_charge = time.monotonic()

    def release(self, connection: str, size: int) -> None:
        if size <= 0:
            return
        self.in_use -= size
        left = self._per_connection[connection] - size
        if left:
            self._per_connection[connection] = left
        else:
            del self._per_connection[connection]
        self._wake()
        if self._release_memory is not None and self._should_trim():
            self._schedule_trim()

    def _wake(self) -> None:
        for future in self._waiting:
            if not future.done():
                future.set_result(None)
        self._waiting.clear()

    def _should_trim(self) -> bool:
        return self._held_since_trim >= TRIM_AFTER_BYTES and self.in_use <= self._held_since_trim // 8

    def _schedule_trim(self) -> None:
        if self._trim is None:
            self._trim = asyncio.get_running_loop().call_later(TRIM_DELAY_S, self._trim_now)

    def _trim_now(self) -> None:
        self._trim = None
        if not self._should_trim():
            return
        quiet = time.monotonic() - self._last_charge
        if quiet < TRIM_DELAY_S:
            self._trim = asyncio.get_running_loop().call_later(TRIM_DELAY_S - quiet, self._trim_now)
            return
        held, self._held_since_trim = self._held_since_trim, self.in_use
        log.debug("answers holding %d bytes drained to %d; returning free memory", held, self.in_use)
        assert self._release_memory is not None
        # malloc_trim walks every arena: run it off the event loop.
        asyncio.get_running_loop().run_in_executor(None, self._release_memory)

    def lease(self, connection: str) -> Lease:
        return Lease(self, connection)


class Lease:
    """What one call holds of the budget; `release_all()` when the call ends (safe to call twice)."""

    def __init__(self, budget: AnswerBudget, connection: str) -> None:
        self.budget = budget
        self.connection = connection
        self.held = 0

    def room(self) -> int:
        return self.budget.room(self.connection)

    async def wait_for_room(self) -> int:
        """Wait until the call's connection may read, then return how many bytes it may take (0 or less
        only once the broker is stopping)."""
        await self.budget.wait_for_room(self.connection)
        return self.room()

    def charge(self, size: int) -> None:
        self.budget.charge(self.connection, size)
        self.held += size

    def release_all(self) -> None:
        held, self.held = self.held, 0
        self.budget.release(self.connection, held)


def call_lease(budget: AnswerBudget, context: grpc.aio.ServicerContext) -> Lease:
    """A share of the answer budget for this call, given back when the call ends for any reason."""
    lease = budget.lease(context.peer())
    # types-grpcio asks for its own _DoneCallback class here; gRPC takes any callable of the context.
    context.add_done_callback(lambda _: lease.release_all())  # type: ignore[arg-type]
    return lease
