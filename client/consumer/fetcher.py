"""The consumer's fetcher thread: reads ahead while the application handles what it already has.

The thread keeps one Fetch call open per partition leader for the partitions that have less than
``max_partition_fetch_bytes`` buffered, stores each answer as raw bytes, and goes straight on to the next
call to that leader (a broker alone leads everything: one call at a time, as before clusters). A
partition refused with NOT_LEADER_OR_FOLLOWER, or whose leader could not be reached, backs off and has
its leader looked up again before the next fetch. Decoding happens in the
application's thread when records are taken (``take``), batch by batch, so the thread here only waits on
the network. A seek, pause or reassignment cancels the call in flight, so it takes effect at once rather
than after a long-poll; data fetched for an older generation of a partition is dropped.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import cast

import grpc
from logstore.client.consumer.offsets import SPECS, list_offsets
from logstore.client.consumer.records import ConsumerRecord, decode_chunks_as, record_class
from logstore.client.consumer.subscription import SubscriptionState
from logstore.client.shared.backoff import Backoff
from logstore.client.shared.connection import Connection
from logstore.client.shared.errors import (
    ClientError,
    CorruptRecordError,
    NoOffsetForPartitionError,
    OffsetOutOfRangeError,
    UnknownTopicError,
    error_from_code,
    error_from_rpc,
)
from logstore.client.shared.metadata import describe_topic, note_failure, route
from logstore.client.shared.metrics import consumer_meter
from logstore.client.shared.types import TopicPartition
from logstore.wire.logstore.v1 import common_pb2, fetch_pb2

from logstore.errors import LogStoreError
from logstore.records import HEADER_SIZE, BatchHeader, check_batch, iter_headers, parse_header

log = logging.getLogger(__name__)

MAX_PENDING_ERRORS = 100
"""Errors kept for the application to see (the oldest go first if it does not poll)."""
SUBSCRIPTION_REFRESH_S = 1.0
"""How often partitions of subscribed topics are looked up again (new topics and partitions)."""


class CompletedFetch:
    """One partition's answer to one Fetch, consumed a chunk of records at a time.

    A batch that fails its checks (framing, magic, CRC, records that do not decode) ends it: ``take``
    raises a CorruptRecordError naming the partition, the offset reached and the batch, and raises the
    same error (a copy) on every later call. Records of the batches before it are handed out first.
    """

    __slots__ = (
        "batch_end",
        "batches",
        "check_crcs",
        "chunks",
        "cls",
        "counted",
        "data",
        "error",
        "generation",
        "header",
        "next_batch",
        "next_offset",
        "records",
        "size",
        "tail",
        "tp",
    )

    def __init__(
        self, tp: TopicPartition, generation: int, data: bytes, start_offset: int, *, check_crcs: bool = True
    ) -> None:
        self.tp = tp
        self.generation = generation
        self.data = data
        self.size = len(data)
        self.counted = True
        """Whether ``size`` still counts as read ahead (it stops when the application starts on it)."""
        self.check_crcs = check_crcs
        """Also check the batches that hold no application records (control batches) before skipping
        them; data batches are always checked (framing, magic, CRC) before their records are decoded."""
        self.batches: list[tuple[int, BatchHeader]] = []
        """Whole batches holding offsets >= ``start_offset``, control batches included."""
        self.next_offset = start_offset
        """The offset after the last whole batch: where the next fetch starts."""
        end = 0
        for pos, header in iter_headers(data):
            end = pos + header.size
            last = header.base_offset + header.last_offset_delta
            if last >= start_offset:
                self.batches.append((pos, header))
                self.next_offset = last + 1
        self.tail = len(data) - end
        """Bytes after the last whole batch. The broker sends whole batches only: these are a batch whose
        length field is broken, and reading cannot go on past them."""
        self.next_batch = 0
        self.chunks: Iterator[list[ConsumerRecord]] | None = None
        """The batch being decoded, chunk by chunk (see ``decode_chunks_as``)."""
        self.header: BatchHeader | None = None
        """The header of that batch."""
        self.batch_end = -1
        """The last offset of that batch, by its header."""
        self.records: list[ConsumerRecord] = []
        self.cls = record_class(tp.topic, tp.partition)
        self.error: CorruptRecordError | None = None

    @classmethod
    def refused(cls, tp: TopicPartition, generation: int, error: CorruptRecordError) -> CompletedFetch:
        """The broker answered CORRUPT_RECORD: nothing to hand out, only ``error`` to raise."""
        completed = cls(tp, generation, b"", error.offset)
        completed.error = error
        return completed

    @property
    def has_data(self) -> bool:
        """Whether there is anything to hand out or raise (an answer of only a broken batch has no batches)."""
        return bool(self.batches) or self.tail > 0 or self.error is not None

    def take(self, max_records: int, position: int) -> list[ConsumerRecord]:
        """Up to ``max_records`` records from ``position`` on (decoding the next chunk if need be)."""
        if self.error is not None:
            raise self.error.copy()
        records = self.records
        try:
            while not records:
                if self.chunks is not None:
                    records = next(self.chunks, None)  # type: ignore[arg-type]
                    if records is None:
                        self.chunks = None
                        records = []
                    elif records[-1].offset >= self.batch_end:
                        # the batch's last chunk (its end checks are done): exhausted at once
                        self.chunks = None
                elif self.next_batch < len(self.batches):
                    pos, header = self.batches[self.next_batch]
                    self.header = header
                    self.next_batch += 1
                    self.batch_end = header.base_offset + header.last_offset_delta
                    if header.is_control:  # no application records: skipped, but checked
                        if self.check_crcs:
                            check_batch(self.data, pos)
                        continue
                    self.chunks = decode_chunks_as(self.cls, self.data, pos, position)
                elif self.tail:
                    self.header = None
                    raise LogStoreError(_broken_tail(self.data, len(self.data) - self.tail))
                else:
                    break
        except LogStoreError as exc:
            self.chunks = None
            self.error = corrupt_batch_error(self.tp, position, self.header, self.next_offset, exc)
            raise self.error.copy() from None
        if len(records) <= max_records:
            self.records = []
            return records
        self.records = records[max_records:]
        return records[:max_records]

    @property
    def exhausted(self) -> bool:
        return (
            not self.records
            and self.chunks is None
            and self.next_batch >= len(self.batches)
            and not self.tail
            and self.error is None
        )


def corrupt_batch_error(
    tp: TopicPartition, position: int, header: BatchHeader | None, next_offset: int, cause: Exception
) -> CorruptRecordError:
    """The error a consumer raises for a batch that fails its checks (``header`` None: bytes that are not a
    whole batch, after the batches that end before ``next_offset``)."""
    reason = _BYTE_POSITION.sub("", str(cause))  # positions in a fetch answer mean nothing to the reader
    if header is None:
        offset = max(position, next_offset)
        return CorruptRecordError(
            f"{tp}: the data after offset {offset - 1} is not a whole record batch ({reason}); the position "
            f"stays at offset {offset}, which cannot be read: seek past it to skip the broken data",
            topic=tp.topic,
            partition=tp.partition,
            offset=offset,
        )
    offset = max(position, header.base_offset)
    last = header.base_offset + header.last_offset_delta
    return CorruptRecordError(
        f"{tp}: the record batch at offsets {header.base_offset}-{last} is corrupt ({reason}); the position "
        f"stays at offset {offset}: seek to offset {last + 1} to skip the batch",
        topic=tp.topic,
        partition=tp.partition,
        offset=offset,
        next_offset=last + 1,
    )


_BYTE_POSITION = re.compile(r"^batch at byte \d+: ")


def _broken_tail(data: bytes, pos: int) -> str:
    left = len(data) - pos
    if left < HEADER_SIZE:
        return f"{left} bytes, less than a batch header"
    header = parse_header(data, pos)
    return (
        f"a batch header claiming base offset {header.base_offset} and length {header.length}, "
        f"but {left} bytes follow"
    )


class Fetcher(threading.Thread):
    """Fetches ahead into a buffer that ``take`` empties; errors found are raised by ``take``.

    Thread-safe with its one Consumer: this thread and the consumer's share the consumer's lock.
    """

    def __init__(
        self,
        connection: Connection,
        state: SubscriptionState,
        lock: threading.Lock,
        *,
        fetch_min_bytes: int,
        fetch_max_wait_ms: int,
        max_partition_fetch_bytes: int,
        fetch_max_bytes: int,
        request_timeout_ms: float,
        retry_backoff: Backoff,
        check_crcs: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(name="logstore-consumer-fetcher", daemon=True)
        self._check_crcs = check_crcs
        self._connection = connection
        self._state = state
        self._min_bytes = fetch_min_bytes
        self._max_wait_ms = fetch_max_wait_ms
        self._partition_bytes = max_partition_fetch_bytes
        self._max_bytes = fetch_max_bytes
        self._timeout_s = request_timeout_ms / 1000.0 + fetch_max_wait_ms / 1000.0
        self._backoff = retry_backoff
        self._clock = clock
        self.lock = lock
        self.work = threading.Condition(lock)
        """The fetcher waits on it for something to fetch."""
        self.data_ready = threading.Condition(lock)
        """Applications wait on it for records (or errors)."""
        self._buffer: deque[CompletedFetch] = deque()
        self._buffered: dict[TopicPartition, int] = {}
        self._errors: deque[ClientError] = deque(maxlen=MAX_PENDING_ERRORS)
        self._calls: dict[int, tuple[grpc.Future, list[tuple[TopicPartition, int, int]]]] = {}
        """The Fetch call in flight to each leader, with its targets."""
        self._done: list[int] = []
        """Leaders whose call has ended, for the thread to read (under the lock)."""
        self._closed = False
        self._call_failures = 0
        self._request_timeout_s = request_timeout_ms / 1000.0
        self._away_since: float | None = None
        """When the calls failing in a row began (None: the last call was answered)."""
        self._next_refresh = 0.0
        self.metrics = consumer_meter()
        """The consumer's counters (``Consumer.metrics()``), per Fetch call and per take."""
        self._planned_at = 0.0

    # --- the application's side (called with the lock held) ------------------------------------------------

    def take(self, max_records: int) -> dict[TopicPartition, list[ConsumerRecord]]:
        """Hand out up to ``max_records`` buffered records, advancing positions. Raises a pending error.

        A corrupt batch stops its partition at the batch: the records taken before it are returned, and
        this call (if it has none) and every later one raises its CorruptRecordError until the
        application seeks (``Consumer.seek``, which bumps the generation and so drops the failed data)."""
        if self._errors:
            raise self._errors.popleft()
        taken: dict[TopicPartition, list[ConsumerRecord]] = {}
        if not self._buffer:
            return taken
        state = self._state
        room = max_records
        kept: list[CompletedFetch] = []
        buffer = self._buffer
        try:
            while buffer and room > 0:
                completed = buffer[0]
                tp = completed.tp
                partition = state.partitions.get(tp)
                if partition is None or partition.generation != completed.generation:
                    self._drop(buffer.popleft())
                    continue
                if partition.paused:
                    kept.append(buffer.popleft())  # kept for after resume()
                    continue
                if completed.counted:
                    self._uncount(completed)  # being consumed: the fetcher may read the next one meanwhile
                assert partition.position is not None  # this generation's data was fetched from it
                try:
                    records = completed.take(room, partition.position)
                except CorruptRecordError as error:
                    self._stall(completed, error)
                    if taken:
                        break  # the records before the bad batch first; the next take raises
                    raise
                if records:
                    got = taken.get(tp)
                    if got is None:
                        taken[tp] = records
                    else:
                        got.extend(records)
                    room -= len(records)
                    partition.position = records[-1].offset + 1
                if completed.exhausted:
                    partition.position = max(partition.position, completed.next_offset)
                    self._drop(buffer.popleft())
        finally:
            if kept:
                buffer.extendleft(reversed(kept))
            if room < max_records:
                self.metrics.count("records-consumed", max_records - room)
        return taken

    def _stall(self, failed: CompletedFetch, error: CorruptRecordError) -> None:
        """Stop ``failed``'s partition at the bad batch: its position moves up to the batch (past offsets
        that compaction removed, never past a record not handed out), nothing more is fetched, and data
        fetched after the batch is dropped."""
        tp = failed.tp
        partition = self._state.partitions[tp]
        if partition.position is not None and error.offset > partition.position:
            partition.position = error.offset
        self._state.stall(tp)
        for completed in list(self._buffer):
            if completed.tp == tp and completed is not failed:
                self._buffer.remove(completed)
                self._drop(completed)

    def has_data(self) -> bool:
        return bool(self._buffer) or bool(self._errors)

    def interrupt(self) -> None:
        """Positions or the assignment changed: abandon the calls in flight and plan again."""
        for call, _ in list(self._calls.values()):
            call.cancel()
        self.work.notify()

    def clear(self, tps: set[TopicPartition] | None = None) -> None:
        """Drop buffered data (of ``tps``, or all)."""
        for completed in list(self._buffer):
            if tps is None or completed.tp in tps:
                self._buffer.remove(completed)
                self._drop(completed)

    def close(self) -> None:
        with self.lock:
            self._closed = True
            self.interrupt()
            self.data_ready.notify_all()

    def _drop(self, completed: CompletedFetch) -> None:
        if completed.counted:
            self._uncount(completed)

    def _uncount(self, completed: CompletedFetch) -> None:
        completed.counted = False
        left = self._buffered.get(completed.tp, 0) - completed.size
        if left > 0:
            self._buffered[completed.tp] = left
        else:
            self._buffered.pop(completed.tp, None)
            self.work.notify()

    # --- the thread --------------------------------------------------------------------------------------------

    def run(self) -> None:
        try:
            while True:
                with self.lock:
                    if self._closed:
                        return
                self._refresh_subscription()
                self._reset_positions()
                self._fetch_once()
        except Exception as exc:  # a bug: tell the application rather than stop silently
            log.exception("the consumer's fetcher thread failed")
            with self.lock:
                self._errors.append(ClientError(f"the consumer's fetcher thread failed: {exc!r}"))
                self.data_ready.notify_all()

    def _refresh_subscription(self) -> None:
        """Without a group, a subscription to topics reads every partition they have (and gain)."""
        topics = self._state.subscribed_topics
        now = self._clock()
        if not topics or now < self._next_refresh:
            return
        self._next_refresh = now + SUBSCRIPTION_REFRESH_S
        found: list[TopicPartition] = []
        for topic in topics:
            try:
                count = len(describe_topic(self._connection, topic, self._timeout_s).partitions)
            except UnknownTopicError as exc:  # not created yet: read it once it is
                log.debug("cannot describe subscribed topic %s yet: %s", topic, exc)
                count = 0
            except ClientError as exc:  # the broker unreachable (a TLS handshake refused, ...): say so
                self._failed_call(exc, f"describing subscribed topic {topic!r}")
                self._next_refresh = now  # and look again at the next turn, after the back-off
                return
            found.extend(TopicPartition(topic, p) for p in range(count))
        with self.lock:
            if self._state.subscribed_topics == topics and set(found) != self._state.assignment():
                self._state.assign(found)

    def _reset_positions(self) -> None:
        with self.lock:
            resets = self._state.resets_needed()
            missing = self._state.without_position()
            now = self._clock()
            for tp in missing:
                state = self._state.partitions[tp]
                if state.backoff_until <= now:
                    state.backoff_until = now + 1.0
                    self._fail_partition(
                        NoOffsetForPartitionError(
                            f"{tp} has no position and auto_offset_reset is 'none': seek() to an offset first"
                        )
                    )
        if not resets:
            return
        try:
            found = list_offsets(
                self._connection, [(tp, SPECS[strategy], 0) for tp, strategy, _ in resets], self._timeout_s
            )
        except ClientError as exc:
            self._failed_call(exc, "looking up start offsets")
            return
        self._away_since = None
        with self.lock:
            for tp, _, generation in resets:
                answer = found.get(tp)
                if answer is not None:
                    self._state.complete_reset(tp, answer.offset, generation)

    def plan(
        self, now: float, busy: frozenset[TopicPartition] | set[TopicPartition] = frozenset()
    ) -> tuple[list[tuple[TopicPartition, int, int]], fetch_pb2.FetchRequest]:
        """The next Fetch call: its targets (partition, generation, offset) and request; no targets when
        nothing needs fetching (``busy`` partitions have a call in flight). Called with the lock held, by
        this thread or an asyncio driver (``logstore.client.aio``), which then hands the answer to
        ``store``."""
        targets = [
            (tp, partition.generation, cast(int, partition.fetch_offset))  # fetchable: it has one
            for tp, partition in self._state.fetchable(now)
            if self._buffered.get(tp, 0) < self._partition_bytes and tp not in busy
        ]
        self._planned_at = now
        return targets, self.request_for(targets)

    def request_for(self, targets: list[tuple[TopicPartition, int, int]]) -> fetch_pb2.FetchRequest:
        return fetch_pb2.FetchRequest(
            partitions=[
                fetch_pb2.FetchPartition(
                    topic=tp.topic, partition=tp.partition, offset=offset, max_bytes=self._partition_bytes
                )
                for tp, _, offset in targets
            ],
            min_bytes=self._min_bytes,
            max_wait_ms=self._max_wait_ms,
            max_bytes=self._max_bytes,
        )

    def _fetch_once(self) -> None:
        """Start a call to each leader that has none in flight and partitions to read, then wait for a
        call to end (or for anything else that changes the plan) and store its answer."""
        state = self._state
        with self.lock:
            now = self._clock()
            busy = {tp for _, targets in self._calls.values() for tp, _, _ in targets}
            targets, _ = self.plan(now, busy)
        started: list[tuple[int, grpc.Future]] = []
        if targets:
            groups, leaderless = route(
                self._connection, (tp for tp, _, _ in targets), self._request_timeout_s
            )
            with self.lock:
                for tp in leaderless:  # looked up again at its next turn
                    partition = state.partitions.get(tp)
                    if partition is not None:
                        partition.backoff_until = now + self._backoff.delay_s(1)
                for broker_id, (channel, tps) in groups.items():
                    if broker_id in self._calls or self._closed:
                        continue  # its call in flight comes first
                    chosen = set(tps)
                    mine = [target for target in targets if target[0] in chosen]
                    call = channel.fetch.Fetch.future(self.request_for(mine), timeout=self._timeout_s)
                    self._calls[broker_id] = (call, mine)
                    started.append((broker_id, call))
        for broker_id, call in started:  # outside the lock: a call already ended runs its callback here
            call.add_done_callback(functools.partial(self._call_ended, broker_id))
        with self.lock:
            if not self._calls:
                if not targets and not self._closed and not state.resets_needed():
                    self.work.wait(self._idle_wait(now))
                return
            if not self._done and not self._closed:
                self.work.wait(self._idle_wait(now))
            done, self._done = self._done, []
            ended = [
                (broker_id, *self._calls.pop(broker_id)) for broker_id in done if broker_id in self._calls
            ]
        for broker_id, call, mine in ended:
            self._read_answer(broker_id, call, mine)

    def _call_ended(self, broker_id: int, _call: object = None) -> None:
        """Runs on a grpc thread: wake the fetcher to read the call's answer."""
        with self.lock:
            self._done.append(broker_id)
            self.work.notify()

    def _read_answer(
        self, broker_id: int, call: grpc.Future, mine: list[tuple[TopicPartition, int, int]]
    ) -> None:
        try:
            response = call.result()
        except grpc.FutureCancelledError:
            return  # interrupted on purpose
        except grpc.RpcError as exc:
            if call.cancelled() or exc.code() is grpc.StatusCode.CANCELLED:
                return  # interrupted on purpose
            error = error_from_rpc(exc, "Fetch")
            note_failure(self._connection, broker_id, [tp for tp, _, _ in mine], error)
            if self._connection.cluster.clustered and error.retriable:
                # one broker away: its partitions back off (and find their new leader); the others go on
                self._call_failures += 1
                self.metrics.count("fetch-error")
                with self.lock:
                    until = self._clock() + self._backoff.delay_s(self._call_failures)
                    self._state.back_off((tp for tp, _, _ in mine), until)
                log.warning("fetching from broker %d failed (retrying): %s", broker_id, error)
                return
            self._failed_call(error, "fetching")
            return
        self._call_failures = 0
        self._away_since = None
        with self.lock:
            self.store(mine, response.results)

    def _idle_wait(self, now: float) -> float | None:
        """How long to sleep with nothing to fetch: until a backoff ends or the subscription refresh."""
        waits = [p.backoff_until - now for p in self._state.partitions.values() if p.backoff_until > now]
        if self._state.subscribed_topics:
            waits.append(self._next_refresh - now)
        return max(0.0, min(waits)) if waits else None

    def store(self, targets: list[tuple[TopicPartition, int, int]], results: list) -> None:
        """Buffer a Fetch answer for ``plan``'s targets (lock held); wakes ``data_ready`` if it stored any."""
        state = self._state
        now = self._clock()
        stored = False
        metrics = self.metrics
        metrics.count("fetch")
        metrics.observe("fetch-latency", (now - self._planned_at) * 1000)
        fetched = 0
        for (tp, generation, offset), result in zip(targets, results, strict=False):
            if not state.is_current(tp, generation):
                continue
            state.update_offsets(tp, result.high_watermark, result.log_start_offset)
            code = result.error_code
            if code == common_pb2.ERROR_CODE_NONE:
                data = result.records  # each read of a bytes field copies it: read once
                fetched += len(data)
                if data:
                    completed = CompletedFetch(tp, generation, data, offset, check_crcs=self._check_crcs)
                    if completed.has_data:
                        state.fetched(tp, generation, completed.next_offset)
                        if completed.tail:
                            state.stall(tp)  # nothing can be read past bytes that are not a batch
                        self._buffer.append(completed)
                        self._buffered[tp] = self._buffered.get(tp, 0) + completed.size
                        stored = True
                continue
            if code == common_pb2.ERROR_CODE_CORRUPT_RECORD:
                # The broker refuses to serve a batch it found corrupt: the partition stops there, after
                # what is buffered before it, exactly as for a bad batch found here.
                refusal = CorruptRecordError(
                    f"{tp}: the broker cannot serve offset {offset}: "
                    f"{result.error_message or 'its record batch is corrupt'}; the position stays at offset "
                    f"{offset}: seek past it to skip the corrupt batch",
                    topic=tp.topic,
                    partition=tp.partition,
                    offset=offset,
                )
                state.stall(tp)
                self._buffer.append(CompletedFetch.refused(tp, generation, refusal))
                stored = True
                continue
            error = error_from_code(
                code,
                result.error_message,
                where=str(tp),
                log_start_offset=result.log_start_offset,
                high_watermark=result.high_watermark,
            )
            partition = state.partitions[tp]
            if isinstance(error, OffsetOutOfRangeError) and state.out_of_range(
                tp, generation, result.log_start_offset, result.high_watermark
            ):
                reset = state.default_reset
                log.warning(
                    "%s: fetch offset %d is out of range (log start offset %d, log end offset %d); resetting "
                    "to the %s offset %d (auto_offset_reset=%r)",
                    tp,
                    offset,
                    result.log_start_offset,
                    result.high_watermark,
                    reset,
                    result.log_start_offset if reset == "earliest" else result.high_watermark,
                    reset,
                )
                continue
            partition.backoff_until = now + self._backoff.delay_s(10 if not error.retriable else 1)
            note_failure(self._connection, -1, [tp], error)
            if error.retriable:
                log.debug("fetching %s failed, will retry: %s", tp, error)
            else:
                self._fail_partition(error)
        metrics.count("bytes-fetched", fetched)
        metrics.observe("fetch-size", fetched)
        if stored:
            self.data_ready.notify_all()

    def _fail_partition(self, error: ClientError) -> None:
        self._errors.append(error)
        self.data_ready.notify_all()

    def _failed_call(self, error: ClientError, doing: str) -> None:
        """A whole call failed: back off (growing while it keeps failing) and tell the application if it
        is not just the broker being away."""
        self._call_failures += 1
        if doing == "fetching":
            self.metrics.count("fetch-error")
        delay = self._backoff.delay_s(self._call_failures)
        with self.lock:
            if self._closed:
                return
            if error.retriable:
                log.warning("%s failed (retrying in %.0f ms): %s", doing, delay * 1000, error)
                now = self._clock()
                if self._away_since is None:
                    self._away_since = now
                elif now - self._away_since >= self._request_timeout_s:
                    # Tell the application (poll raises it), once per request_timeout_ms; keep retrying.
                    self._fail_partition(
                        type(error)(
                            f"no answer from the broker for {(now - self._away_since) * 1000:.0f} ms "
                            f"(request_timeout_ms is {self._request_timeout_s * 1000:.0f}); still retrying: "
                            f"{error}"
                        )
                    )
                    self._away_since = now
            else:
                self._fail_partition(error)
            self.work.wait(delay)
