"""ProduceStream: Produce over one long-lived bidirectional stream, appended and answered in order.

Each request is carried out by the same domain call as a unary Produce (`BrokerCore.produce`). A reader
task takes requests off the stream in order and starts each one's produce as a task at once, so their
appends run in stream order (asyncio starts tasks in the order they were created, and the domain appends
before its first await) while an acks=all request's fsync overlaps the next requests. The handler
awaits the tasks in the same order and yields the answers. The reader stops reading while the requests
it holds unanswered total `MAX_UNANSWERED_BYTES`: gRPC then reads no more from the connection, and
HTTP/2 flow control slows the client down. That is the stream's backpressure, and its memory bound.
When the broker begins to shut down, the stream stops reading, answers what it has read, and ends with
UNAVAILABLE, so an idle stream does not hold the shutdown up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from logstore.broker.domain.errors import ShuttingDownError
from logstore.broker.errors import is_expected, partition_error
from logstore.broker.service.calls import MalformedRequest, limited_log
from logstore.wire.logstore.v1 import produce_pb2 as pb

MAX_UNANSWERED_BYTES = 16 * 1024 * 1024
"""Record bytes of the requests one stream may hold unanswered (a larger request is read alone)."""

_END = None

ProduceCall = Callable[[pb.ProduceRequest], Awaitable[pb.ProduceResponse]]
"""What a unary Produce does with its request (`ProduceService.produce`)."""


class Window:
    """The bytes one stream holds unanswered, and the wait for room. Not thread-safe: the event loop's only."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._held = 0
        self._room = asyncio.Event()

    async def take(self, size: int) -> None:
        """Wait until `size` more bytes fit (at once when nothing is held), then hold them."""
        while self._held and self._held + size > self._limit:
            self._room.clear()
            await self._room.wait()
        self._held += size

    def give_back(self, size: int) -> None:
        self._held -= size
        self._room.set()


class ProduceStreamCall:
    """Serves one ProduceStream call: reads, appends and answers its requests in order."""

    def __init__(
        self,
        produce: ProduceCall,
        when_shutting_down: Callable[[Callable[[], None]], Callable[[], None]],
        limit: int = MAX_UNANSWERED_BYTES,
    ) -> None:
        """`when_shutting_down`: `BrokerCore.when_shutting_down`, so that a stream waiting for its client's
        next request ends (UNAVAILABLE) when the broker stops instead of holding the stop up."""
        self._produce = produce
        self._when_shutting_down = when_shutting_down
        self._stopping = False
        self._window = Window(limit)
        self._answers: asyncio.Queue[tuple[int, asyncio.Task[pb.ProduceStreamResponse]] | None] = (
            asyncio.Queue()
        )

    async def run(
        self, requests: AsyncIterator[pb.ProduceStreamRequest]
    ) -> AsyncIterator[pb.ProduceStreamResponse]:
        reader = asyncio.ensure_future(self._read(requests))

        def stop_reading() -> None:
            self._stopping = True
            reader.cancel()

        unregister = self._when_shutting_down(stop_reading)
        try:
            while True:
                item = await self._answers.get()
                if item is _END:
                    break
                size, task = item
                answer = await task
                self._window.give_back(size)
                yield answer
            if self._stopping:  # the requests read so far are answered; the rest go to a new stream
                raise ShuttingDownError("the broker is shutting down; open a new stream once it is back")
            await reader  # raises what ended the reading (a malformed message)
        finally:
            unregister()
            reader.cancel()
            while not self._answers.empty():
                left = self._answers.get_nowait()
                if left is not None:
                    left[1].cancel()

    async def _read(self, requests: AsyncIterator[pb.ProduceStreamRequest]) -> None:
        try:
            async for request in requests:
                if isinstance(request, MalformedRequest):
                    raise request.error()
                size = sum(len(p.records) for p in request.request.partitions)
                await self._window.take(size)
                task = asyncio.ensure_future(self._answer(request))
                self._answers.put_nowait((size, task))
        finally:
            self._answers.put_nowait(_END)

    async def _answer(self, request: pb.ProduceStreamRequest) -> pb.ProduceStreamResponse:
        try:
            response = await self._produce(request.request)
        except ShuttingDownError:
            raise  # ends the stream with UNAVAILABLE: the client opens a new one once the broker is back
        except Exception as exc:
            error = exc
            if not is_expected(error):
                limited_log.log(
                    logging.ERROR,
                    ("ProduceStream", type(error)),
                    lambda: f"ProduceStream failed unexpectedly: {error!r}",
                    exc_info=error,
                )
            code, message = partition_error(error)
            return pb.ProduceStreamResponse(
                request_id=request.request_id, error_code=code, error_message=message
            )
        return pb.ProduceStreamResponse(request_id=request.request_id, response=response)
