"""The live tail's Subscribe streams: one per partition leader, merged into one sequence of messages.

Each stream is read by a thread of its own into one ``Handoff``; the tail's iterating thread takes
the messages in the order they came, decodes them and alone moves the positions. A partition is in at
most one stream at a time, and is subscribed again (to its leader as the cluster map says then) only
once the iterating thread has taken everything its previous stream delivered, each time from its next
offset: nothing is lost or delivered twice when leadership moves. A broker alone leads everything: one
stream, to the broker reached, as before clusters.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
from logstore.client.shared.backoff import Backoff
from logstore.client.shared.connection import BrokerChannel, Connection
from logstore.client.shared.errors import ClientError, NotAvailableError, error_from_rpc
from logstore.client.shared.metadata import note_failure, route
from logstore.client.shared.types import TopicPartition
from logstore.wire.logstore.v1 import fetch_pb2

log = logging.getLogger(__name__)

_RECONNECT = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN})
"""Whole-call failures that mean "the broker had a moment": subscribe again (as before clusters)."""
PER_STREAM = 2
"""Messages a stream may have waiting in the handoff: beyond that its thread stops reading the call,
so a slow application holds the broker back through gRPC's flow control, as a single stream did."""


@dataclass
class Stream:
    """One Subscribe call to one broker, and the partitions it still carries."""

    number: int
    broker_id: int
    address: str
    partitions: set[TopicPartition]
    call: grpc.Call
    cancelled: bool = False
    """Cancelled by the tail (to subscribe its partitions again with others, or at close)."""


@dataclass
class Ended:
    """A stream's last item: None when the broker ended the call, else the call's failure."""

    error: BaseException | None


@dataclass
class Handoff:
    """Messages and ends of the streams, in the order they came (thread-safe)."""

    per_stream: int = PER_STREAM
    closed: bool = False
    _items: deque[tuple[int, fetch_pb2.SubscribeResponse | Ended]] = field(default_factory=deque)
    _waiting: dict[int, int] = field(default_factory=dict)
    _ready: threading.Condition = field(default_factory=threading.Condition)

    def put(self, number: int, message: fetch_pb2.SubscribeResponse) -> bool:
        """Hand a stream's message over, waiting while that stream has ``per_stream`` waiting; False once
        closed (the reader should stop)."""
        with self._ready:
            while self._waiting.get(number, 0) >= self.per_stream and not self.closed:
                self._ready.wait()
            if self.closed:
                return False
            self._waiting[number] = self._waiting.get(number, 0) + 1
            self._items.append((number, message))
            self._ready.notify_all()
            return True

    def end(self, number: int, error: BaseException | None) -> None:
        with self._ready:
            self._items.append((number, Ended(error)))
            self._ready.notify_all()

    def take(self, timeout_s: float | None) -> tuple[int, fetch_pb2.SubscribeResponse | Ended] | None:
        """The next item, None after ``timeout_s`` or once closed."""
        with self._ready:
            if not self._items and not self.closed:
                self._ready.wait(timeout_s)
            if self.closed or not self._items:
                return None
            number, item = self._items.popleft()
            if not isinstance(item, Ended):
                self._waiting[number] -= 1
                self._ready.notify_all()
            return number, item

    def close(self) -> None:
        with self._ready:
            self.closed = True
            self._items.clear()
            self._ready.notify_all()


def _pump(call: grpc.Call, number: int, handoff: Handoff) -> None:
    """A stream's thread: every message of the call into the handoff, then how the call ended."""
    try:
        for message in call:  # type: ignore[attr-defined]
            if not handoff.put(number, message):
                call.cancel()
                return
        handoff.end(number, None)
    except Exception as exc:  # an RpcError; anything else the iterating thread raises again
        handoff.end(number, exc)


class Streams:
    """The streams of one iteration of a tail. Not thread-safe but for ``close``: only the iterating
    thread calls ``next``, ``reroute`` and ``arrived``; ``close`` may come from any thread (the lock
    guards the stream table they share)."""

    def __init__(
        self,
        connection: Connection,
        positions: dict[TopicPartition, int],
        *,
        max_bytes: int,
        timeout_s: float,
        backoff: Backoff,
        closing: Callable[[], bool],
    ) -> None:
        self._connection = connection
        self._positions = positions
        self._max_bytes = max_bytes
        self._timeout_s = timeout_s
        self._backoff = backoff
        self._closing = closing
        self._handoff = Handoff()
        self._lock = threading.Lock()
        self._streams: dict[int, Stream] = {}
        self._numbers = itertools.count()
        self._due: dict[TopicPartition, float] = dict.fromkeys(positions, 0.0)
        """Partitions in no stream, and when to subscribe them (again)."""
        self._failures: dict[TopicPartition, int] = {}
        self._merging: dict[int, set[TopicPartition]] = {}
        """Partitions waiting for the broker's stream to end, to be subscribed together with its own."""

    def next(self) -> tuple[Stream, fetch_pb2.SubscribeResponse] | None:
        """The next message of any stream, starting and restarting streams as they are due; None when
        closed or no partition is left. Raises a failure that subscribing again would not mend."""
        while True:
            if self._closing():
                return None
            self._subscribe_due()
            if not self._streams and not self._due:
                return None
            pending = [at for at in self._due.values() if at != float("inf")]
            wait = max(0.0, min(pending) - time.monotonic()) if pending else None
            taken = self._handoff.take(wait)
            if taken is None:
                continue
            number, item = taken
            stream = self._streams[number]
            if isinstance(item, Ended):
                self._ended(stream, item.error)
                continue
            return stream, item

    def arrived(self, tp: TopicPartition) -> None:
        """A partition's records came: its next failure backs off from the start again."""
        self._failures.pop(tp, None)

    def reroute(self, stream: Stream, tp: TopicPartition, error: ClientError) -> bool:
        """A partition's stream reported ``error`` for it (and carries it no more): True when it is to be
        subscribed again (a retriable error: leadership moved, the broker had a moment)."""
        stream.partitions.discard(tp)
        if not error.retriable:
            self._due.pop(tp, None)
            return False
        note_failure(self._connection, stream.broker_id, [tp], error)
        self._retry_later([tp], f"broker {stream.broker_id} stopped sending {tp}: {error}")
        return True

    def close(self) -> None:
        """Cancel every stream; their threads end (a thread waiting in the handoff at once)."""
        with self._lock:
            self._handoff.close()
            streams = list(self._streams.values())
        for stream in streams:
            stream.cancelled = True
            stream.call.cancel()

    # --- starting and ending streams -------------------------------------------------------------------

    def _subscribe_due(self) -> None:
        now = time.monotonic()
        due = [tp for tp, at in self._due.items() if at <= now and tp in self._positions]
        for tp in [tp for tp in self._due if tp not in self._positions]:
            del self._due[tp]  # the application gave the partition up (an error ended it)
        if not due:
            return
        lookup_errors: list[ClientError] = []
        groups, leaderless = route(self._connection, due, self._timeout_s, on_error=lookup_errors.append)
        if leaderless:
            why = f"no leader known for {', '.join(map(str, leaderless))}"
            if lookup_errors:
                why += f" ({lookup_errors[-1]})"
            self._retry_later(leaderless, why)
        for broker_id, (channel, tps) in groups.items():
            current = next((s for s in self._streams.values() if s.broker_id == broker_id), None)
            if current is None:
                self._start(broker_id, channel, tps)
                continue
            # One stream per broker: end its stream (if not ending already), and subscribe all of them
            # together once it has ended.
            log.debug("subscribing %s at broker %d together with its stream's partitions", tps, broker_id)
            self._merging.setdefault(broker_id, set()).update(tps)
            for tp in tps:
                self._due[tp] = float("inf")
            if not current.cancelled:
                current.cancelled = True
                current.call.cancel()

    def _start(self, broker_id: int, channel: BrokerChannel, tps: list[TopicPartition]) -> None:
        request = fetch_pb2.SubscribeRequest(
            partitions=[
                fetch_pb2.SubscribePartition(
                    topic=tp.topic,
                    partition=tp.partition,
                    start_from=fetch_pb2.START_FROM_OFFSET,
                    offset=self._positions[tp],
                )
                for tp in tps
            ],
            max_bytes=self._max_bytes,
        )
        with self._lock:
            if self._handoff.closed:
                return
            call = channel.fetch.Subscribe(request)
            stream = Stream(next(self._numbers), broker_id, channel.address, set(tps), call)
            self._streams[stream.number] = stream
        for tp in tps:
            del self._due[tp]
        thread = threading.Thread(
            target=_pump, args=(call, stream.number, self._handoff), name="logstore-tail", daemon=True
        )
        thread.start()

    def _ended(self, stream: Stream, failure: BaseException | None) -> None:
        """Everything the stream delivered has been taken: its partitions are free to subscribe again."""
        with self._lock:
            del self._streams[stream.number]
        tps = sorted(stream.partitions) + sorted(self._merging.pop(stream.broker_id, set()))
        if not tps:
            return  # it carried nothing any more (each partition was reported and dropped)
        if stream.cancelled:
            for tp in tps:
                self._due[tp] = 0.0
            return
        if failure is None:  # the broker ended the call while it still carried partitions: ask again
            self._retry_later(tps, f"broker {stream.broker_id} ended the stream")
            return
        if not isinstance(failure, grpc.RpcError):
            raise failure
        error = error_from_rpc(failure, "Subscribe")
        if not error.retriable and failure.code() not in _RECONNECT:
            raise error from None
        note_failure(self._connection, stream.broker_id, tps, error)
        if isinstance(error, NotAvailableError):  # stopping: its partitions are moving elsewhere
            self._connection.cluster.forget_broker(stream.broker_id)
        self._retry_later(
            tps,
            f"live tail lost broker {stream.broker_id} at {stream.address} ({failure.code().name}): {error}",
        )

    def _retry_later(self, tps: list[TopicPartition], why: str) -> None:
        now = time.monotonic()
        delay = 0.0
        for tp in tps:
            failures = self._failures[tp] = self._failures.get(tp, 0) + 1
            pause = self._backoff.delay_s(failures)
            self._due[tp] = now + pause
            delay = max(delay, pause)
        log.warning("%s; subscribing again in %.0f ms", why, delay * 1000)
