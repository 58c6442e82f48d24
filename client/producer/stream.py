"""The producer's ProduceStream: one long-lived stream to the broker, requests in order, answers in order.

``RequestStream`` opens the stream on the first request and again on the first request after it broke.
Each request gets the next ``request_id`` of its stream and waits in ``pending`` until the answer with
that id comes back; answers come in request order, so an answer with another id means the stream lost
its place and is treated as broken. A broken stream (the connection failed, the broker stopped, an
answer went missing, or the oldest request waited longer than ``request_timeout_ms``) is cancelled, and
every request still pending is handed back as failed with the error that ended the stream; the sender
counts each as uncertain, since the broker may have appended it. The accumulator then resends those batches, in order, on the next stream, and the broker's
idempotence answers the ones it had appended as duplicates. Backpressure is the sender's bound on
requests in flight plus HTTP/2 flow control: gRPC takes the next request from ``requests`` only as the
connection accepts it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

import grpc
from logstore.client.shared.errors import LocalUnavailable
from logstore.wire.logstore.v1 import produce_pb2

log = logging.getLogger(__name__)

Item = TypeVar("Item")

Outcome = produce_pb2.ProduceStreamResponse | grpc.RpcError
"""What becomes of one request: its answer, or the error that broke its stream before the answer."""


class StreamBroken(LocalUnavailable):
    """The stream was given up by the client (a missing answer, or no answer in time): gRPC's own error
    would only say CANCELLED, so this one says why. Its status is UNAVAILABLE: the request may have been
    carried out, and may be retried."""


class _Call(Generic[Item]):
    """One ProduceStream call: its request queue, its unanswered requests and its answer iterator."""

    def __init__(self) -> None:
        self.requests: queue.SimpleQueue[produce_pb2.ProduceStreamRequest | None] = queue.SimpleQueue()
        self.pending: deque[tuple[int, Item, float]] = deque()
        """(request id, the caller's item, when it was sent), oldest first."""
        self.next_id = 1
        self.responses: Iterator[produce_pb2.ProduceStreamResponse] | None = None
        self.given_up: StreamBroken | None = None

    def request_iterator(self) -> Iterator[produce_pb2.ProduceStreamRequest]:
        while (request := self.requests.get()) is not None:
            yield request


class RequestStream(Generic[Item]):
    """Produce requests over one stream at a time; ``on_outcome(item, outcome)`` gets each one's fate.

    Thread-safe: ``send``, ``check`` and ``close`` run on the sender thread, each stream's answers are
    read on a thread of its own, and ``_lock`` guards the current call and its pending requests.
    ``on_outcome`` is called on the reading thread, outside the lock, once per request, in send order.
    """

    def __init__(
        self,
        open_stream: Callable[
            [Iterator[produce_pb2.ProduceStreamRequest]], Iterator[produce_pb2.ProduceStreamResponse]
        ],
        on_outcome: Callable[[Item, Outcome], None],
        *,
        request_timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
        address: str = "",
    ) -> None:
        self.address = address
        """The broker address the stream goes to (the sender makes one per broker)."""
        self._open_stream = open_stream
        self._on_outcome = on_outcome
        self._request_timeout_s = request_timeout_s
        self._clock = clock
        self._lock = threading.Lock()
        self._call: _Call[Item] | None = None

    def send(self, item: Item, request: produce_pb2.ProduceRequest) -> None:
        """Queue ``request`` on the current stream (opened now if there is none)."""
        with self._lock:
            call = self._call
            if call is None:
                call = self._call = _Call()
                call.responses = self._open_stream(call.request_iterator())
                threading.Thread(
                    target=self._read, args=(call,), name="logstore-producer-stream", daemon=True
                ).start()
            request_id = call.next_id
            call.next_id += 1
            call.pending.append((request_id, item, self._clock()))
            call.requests.put(produce_pb2.ProduceStreamRequest(request_id=request_id, request=request))

    def check(self, now: float) -> float | None:
        """Give up the stream if its oldest request has waited ``request_timeout_s``; returns when to
        check again (None while nothing is pending)."""
        with self._lock:
            call = self._call
            if call is None or not call.pending:
                return None
            due = call.pending[0][2] + self._request_timeout_s
            if now < due:
                return due
            self._call = None
        self._give_up(
            call, StreamBroken(f"no answer on the produce stream within {self._request_timeout_s:g} s")
        )
        return None

    def close(self) -> None:
        """End the current stream once its queued requests are sent (their answers still arrive)."""
        with self._lock:
            call, self._call = self._call, None
        if call is not None:
            call.requests.put(None)

    # --- the reading thread ---------------------------------------------------------------------------------

    def _read(self, call: _Call[Item]) -> None:
        assert call.responses is not None
        error: grpc.RpcError = StreamBroken("the broker ended the produce stream")
        try:
            for answer in call.responses:
                with self._lock:
                    head = call.pending[0] if call.pending else None
                    if head is not None and head[0] == answer.request_id:
                        call.pending.popleft()
                if head is None or head[0] != answer.request_id:
                    expected = "none" if head is None else head[0]
                    error = StreamBroken(
                        f"the produce stream answered request {answer.request_id} while waiting for {expected}"
                    )
                    self._give_up(call, error)
                    break
                self._on_outcome(head[1], answer)
        except grpc.RpcError as exc:
            error = call.given_up or exc
        with self._lock:
            if self._call is call:
                self._call = None
            left = list(call.pending)
            call.pending.clear()
        call.requests.put(None)
        if left:
            log.debug("produce stream broke with %d requests unanswered: %s", len(left), error)
        for _, item, _ in left:
            self._on_outcome(item, error)

    def _give_up(self, call: _Call[Item], why: StreamBroken) -> None:
        """Cancel ``call``; its reading thread then fails what is pending with ``why``."""
        with self._lock:
            if self._call is call:
                self._call = None
            call.given_up = why
        log.debug("giving up the produce stream: %s", why)
        call.requests.put(None)
        cancel = getattr(call.responses, "cancel", None)
        if cancel is not None:
            cancel()
