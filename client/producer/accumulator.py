"""The producer's pure core: records into per-partition batches, batches into requests, answers into
retries. No I/O and no clock: every call that needs the time takes ``now`` (monotonic seconds).

Not thread-safe: the producer calls it under one lock, from ``send()`` and from its sender thread.

What it decides:
- Which batch a record joins. A batch is closed when the next record might not fit in ``batch_size``
  (a record larger than that gets a batch of its own); buffer memory is reserved per batch, and a new
  batch that does not fit in ``buffer_memory`` raises ``BufferFull`` so the caller can wait.
- Which batches go in the next request: every ready batch of every partition, several of one partition
  in order, up to ``max_request_size`` bytes, starting from a different partition each time so none
  starves. A partition's closed batches are ready at once; its open batch is ready at once when nothing
  at all is in flight (adaptive batching: a lone record is not delayed), and otherwise once it is
  ``linger_ms`` old, or a flush, close or memory shortage is under way, so a busy producer sends big
  batches. A partition with a request in flight sends nothing more until it is answered: unary calls
  may reach the broker in any order, and one request per partition cannot be overtaken. Requests on
  one ProduceStream arrive in order (``ordered``), so there an idempotent producer's partition keeps
  sending while answers are due, up to ``DEDUP_WINDOW`` batches in flight in all. With
  idempotence a request carries at most ``DEDUP_WINDOW`` batches of a partition: the broker remembers
  only the last five batches per producer and partition, so a retry further back would be refused as
  out of order although it was written.
- Idempotence: sequence numbers are given per partition when a batch is first drained. When a batch
  fails, its partition is held (nothing new is sent) until every request in flight for it has answered;
  then the batches to retry go back to the front of the queue in their original order, renumbered past
  any batch that failed for good. A batch whose outcome is unknown (the call broke, so the broker may
  have appended it) is never renumbered: if it must be given up, the partition moves to a new producer
  epoch and restarts its sequence at 0, which the broker accepts as a fresh start. This keeps per-key
  order under retries with several batches in flight, and never writes a record twice.
- What a failure says. A batch that may have been written (an attempt got no answer) and is then given
  up fails with ``UnknownDeliveryError`` (its fate is unknown), whatever the last answer was; any other
  error means none of its records is in the log.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence

from logstore.client.producer.config import ProducerConfig
from logstore.client.producer.futures import BatchOutcome, RecordFuture, failed_future, new_future
from logstore.client.shared.backoff import Backoff
from logstore.client.shared.errors import (
    ClientError,
    DeliveryTimeoutError,
    DuplicateSequenceNumberError,
    OutOfOrderSequenceError,
    RecordTooLargeError,
    UnknownDeliveryError,
    UnknownDeliveryTimeoutError,
)
from logstore.client.shared.metrics import producer_meter

from logstore.records import HEADER_SIZE, BatchBuilder, set_producer

RECORD_OVERHEAD = 36
"""Upper bound of a record's framing bytes: length, attributes, two deltas, key and value lengths, header count
(every varint at its int32 maximum of 5 bytes except the timestamp delta's 10)."""

_SEQUENCE_MODULUS = 1 << 31  # sequences wrap after the int32 maximum, as the broker's do
_EPOCH_MODULUS = 1 << 15

DEDUP_WINDOW = 5
"""Batches per producer and partition the broker remembers to recognise a retry (Kafka's five,
``logstore.producer_state.BATCHES_REMEMBERED``): while a batch is unanswered, at most this many batches
from it on may have been sent."""


def stamp_producer(batch: bytes, producer_id: int, epoch: int, base_sequence: int) -> bytearray:
    """A copy of an encoded batch with its producer id, epoch and base sequence set and its CRC redone."""
    data = bytearray(batch)
    set_producer(data, 0, producer_id, epoch, base_sequence)
    return data


def estimated_size(
    key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes | None]]
) -> int:
    """An upper bound of the bytes one record adds to a batch."""
    size = RECORD_OVERHEAD
    if key is not None:
        size += len(key)
    if value is not None:
        size += len(value)
    for header_key, header_value in headers:
        size += 10 + len(header_key) * 4  # utf-8 takes at most 4 bytes per character
        if header_value is not None:
            size += len(header_value)
    return size


class BufferFull(Exception):
    """Raised by ``append`` when a new batch would not fit in the buffer memory; nothing was appended."""

    def __init__(self, needed: int) -> None:
        super().__init__(needed)
        self.needed = needed


class ProducerBatch:
    """One batch for one partition, from its first record until it is acknowledged or given up."""

    __slots__ = (
        "attempts",
        "builder",
        "built_as",
        "closed",
        "created",
        "data",
        "deadline",
        "epoch",
        "maybe_appended",
        "order",
        "outcome",
        "partition",
        "pending",
        "resent",
        "reserved",
        "retry_at",
        "room",
        "sent_at",
        "sequence",
        "settled",
        "topic",
    )

    def __init__(
        self, topic: str, partition: int, builder: BatchBuilder, now: float, deadline: float, reserved: int
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.builder = builder
        self.pending: list[bytes | int | None] = []
        """Records from ``Producer.send``'s hot path not yet encoded, flat: value, key, timestamp_ms, ...
        Encoding them later, all at once (``settle``), costs a fraction of encoding each on its own."""
        self.settled = builder.record_count
        """Records encoded in the builder: a record's offset delta is this plus its place in ``pending``."""
        self.closed = False
        """Set when the batch stops taking records (full, drained, expired or aborted)."""
        self.room = 0
        """A lower bound of the bytes the batch can still take, for the fast path in ``Producer.send``."""
        self.outcome = BatchOutcome(topic, partition)
        self.created = now
        self.sent_at = now
        """When it last went out in a request (the producer's request-latency metric)."""
        self.deadline = deadline
        self.reserved = reserved
        self.attempts = 0
        self.retry_at = 0.0
        self.sequence = -1
        self.epoch = -1
        self.order = -1
        self.maybe_appended = False
        self.resent = False
        self.built_as: tuple[int, int, int] | None = None
        """The (producer id, epoch, base sequence) the builder writes into the header."""
        self.data: bytes | None = None

    @property
    def record_count(self) -> int:
        return self.settled + len(self.pending) // 3

    def settle(self) -> None:
        """Encode the pending records into the builder (under the producer's lock, or once closed)."""
        pending = self.pending
        if pending:
            self.builder.append_many(pending)
            self.settled = self.builder.record_count
            pending.clear()

    def append(
        self,
        value: bytes | None,
        key: bytes | None,
        headers: Sequence[tuple[str, bytes | None]],
        timestamp_ms: int,
    ) -> int:
        """Encode one record now, after the pending ones; returns its offset delta."""
        self.settle()
        offset_delta = self.builder.append(value, key, headers, timestamp_ms)
        self.settled = offset_delta + 1
        return offset_delta

    def size(self) -> int:
        """The exact encoded size (an upper estimate with compression): settles the pending records."""
        self.settle()
        return self.builder.size_in_bytes()

    def encode(self, producer_id: int) -> bytes:
        """The batch's bytes as sent, with its producer fields. They are usually built in (the builder was
        made with the numbers the batch was expected to get); otherwise they are stamped on a copy."""
        if self.data is None:
            self.settle()
            data = self.builder.build()
            if self.sequence >= 0 and self.built_as != (producer_id, self.epoch, self.sequence):
                data = bytes(stamp_producer(data, producer_id, self.epoch, self.sequence))
            self.data = data
        return self.data

    def __repr__(self) -> str:
        return (
            f"<ProducerBatch {self.topic}-{self.partition} records={self.record_count} seq={self.sequence} "
            f"epoch={self.epoch} attempts={self.attempts}>"
        )


class PartitionQueue:
    """The batches of one partition, and where its sequence numbers stand."""

    __slots__ = (
        "epoch",
        "gaps",
        "held",
        "in_flight",
        "next_order",
        "next_sequence",
        "open",
        "partition",
        "queue",
        "resending",
        "reset_needed",
        "retrying",
        "topic",
    )

    def __init__(self, topic: str, partition: int, epoch: int) -> None:
        self.topic = topic
        self.partition = partition
        self.open: ProducerBatch | None = None
        self.queue: deque[ProducerBatch] = deque()
        self.in_flight: list[ProducerBatch] = []
        self.retrying: list[ProducerBatch] = []
        self.held = False
        self.resending = 0
        """Resent batches in flight (at most one, alone)."""
        self.reset_needed = False
        self.epoch = epoch
        self.next_sequence = 0
        self.gaps: list[tuple[int, int]] = []
        """(order, record count) of numbered batches given up that were certainly not written: the
        batches numbered after each must move down by its count."""
        self.next_order = 0

    def batches(self) -> Iterator[ProducerBatch]:
        """Every batch not yet finished, in flight or not."""
        yield from self.in_flight
        yield from self.retrying
        yield from self.queue
        if self.open is not None:
            yield self.open


Finished = list[tuple[ProducerBatch, BaseException]]
"""Batches given up, each with the error to fail its records with."""


class Accumulator:
    """Per-partition batches, request draining and retry bookkeeping for one producer.

    Not thread-safe: every call holds the producer's lock (shared with its sender thread).
    """

    def __init__(
        self, config: ProducerConfig, backoff: Backoff | None = None, *, ordered: bool = False
    ) -> None:
        """``backoff``: the retry delays (default: from ``config``'s retry_backoff_ms and its maximum).
        ``ordered``: requests reach the broker in the order they are drained (one ProduceStream), so an
        idempotent producer may keep several of a partition's requests in flight (see ``drain``)."""
        self.config = config
        # Read on every append and drain: kept as plain attributes.
        self.batch_size = config.batch_size
        self.linger_s = config.linger_s
        self.buffer_memory = config.buffer_memory
        self.delivery_timeout_s = config.delivery_timeout_s
        self.max_request_size = config.max_request_size
        self.backoff = backoff or Backoff(config.retry_backoff_ms, config.retry_backoff_max_ms)
        self.compression = config.compression
        self.idempotent = config.idempotent
        self.retries = config.retries
        self.pipelined = ordered and config.idempotent
        """Whether a partition may have several requests in flight: only when they arrive in order and
        the broker's sequence check refuses a batch whose predecessor failed, so a retry cannot reorder."""
        self.max_in_flight_per_partition = config.max_in_flight_requests_per_connection
        """The options' bound on requests in flight holding one partition; the drain keeps it at one."""
        self._producer_id = -1
        self._producer_epoch = 0
        self.reserved = 0
        """Bytes of buffer memory held by unfinished batches."""
        self._flushing = 0
        """How many flushes are under way: while any is, every batch is ready at once."""
        self._closing = False
        self._memory_waiters = 0
        """Senders blocked on buffer memory: their wait ends sooner if batches go out at once."""
        self.open_batches: dict[tuple[str, int], ProducerBatch] = {}
        """The open batch of each partition that has one. ``Producer.send`` appends to these directly
        while ``room`` lasts (a lower bound of the bytes still free), and calls ``append`` otherwise."""
        self.new_batch_hook: Callable[[], None] | None = None
        """Called (under the caller's lock) when a batch is started, so the sender can plan its linger."""
        self._topics: dict[str, dict[int, PartitionQueue]] = {}
        self._queues: list[PartitionQueue] = []
        self._drain_start = 0
        self._batches_in_flight = 0
        """Batches sent and not yet answered, over every partition: none means the broker is idle."""
        self.metrics = producer_meter()
        """The producer's counters (``Producer.metrics()``), counted here per batch, in both producers."""

    # --- the producer's state (each call under the producer's lock) ------------------------------------

    @property
    def producer_id(self) -> int:
        """The idempotent producer id the broker gave (-1 until then, or without idempotence)."""
        return self._producer_id

    def set_producer_id(self, producer_id: int, epoch: int) -> None:
        """The broker's answer to InitProducerId: new batches are built with these numbers."""
        self._producer_id = producer_id
        self._producer_epoch = epoch

    def begin_flush(self) -> list[BatchOutcome]:
        """A flush starts: every batch is ready at once until ``end_flush``. Returns what it waits for."""
        self._flushing += 1
        return self.outcomes()

    def end_flush(self) -> None:
        self._flushing -= 1

    def close(self) -> None:
        """The producer is closing: every batch is ready at once from now on."""
        self._closing = True

    def add_memory_waiter(self) -> None:
        """A ``send()`` waits for buffer memory: batches go out at once until ``remove_memory_waiter``."""
        self._memory_waiters += 1

    def remove_memory_waiter(self) -> None:
        self._memory_waiters -= 1

    # --- appending (the send() hot path) ----------------------------------------------------------------

    def append(
        self,
        topic: str,
        partition: int,
        value: bytes | None,
        key: bytes | None,
        headers: Sequence[tuple[str, bytes | None]],
        timestamp_ms: int,
        now: float,
        abort_on_new_batch: bool = False,
    ) -> RecordFuture | None:
        """Add a record to its partition's open batch and return its future.

        Returns None instead, appending nothing, when ``abort_on_new_batch`` is set and the record would
        start a new batch (the sticky partitioner then moves on). Raises ``BufferFull`` when a new batch
        does not fit in the buffer memory. A record that could never be sent (larger than
        ``max_request_size`` or ``buffer_memory``) gets a failed future.
        """
        size = RECORD_OVERHEAD + (len(value) if value is not None else 0)
        if key is not None:
            size += len(key)
        if headers:
            size = estimated_size(key, value, headers)
        batch = self.open_batches.get((topic, partition))
        if batch is not None:
            used = batch.size()
            if used + size <= self.batch_size:
                offset_delta = batch.append(value, key, headers, timestamp_ms)
                batch.room = self.batch_size - used - size  # a lower bound again, from the exact size
                return new_future(batch.outcome, offset_delta, timestamp_ms)
        if abort_on_new_batch:
            return None
        return self._append_to_new_batch(topic, partition, value, key, headers, timestamp_ms, size, now)

    def _append_to_new_batch(
        self,
        topic: str,
        partition: int,
        value: bytes | None,
        key: bytes | None,
        headers: Sequence[tuple[str, bytes | None]],
        timestamp_ms: int,
        size: int,
        now: float,
    ) -> RecordFuture:
        needed = size + HEADER_SIZE
        limit = min(self.max_request_size, self.buffer_memory)
        if needed > limit:
            which = "max_request_size" if limit == self.max_request_size else "buffer_memory"
            error = RecordTooLargeError(
                f"a record of up to {size} bytes (key, value, headers and framing) does not fit in a batch "
                f"limited by {which}={limit} bytes; send a smaller record or raise {which}"
            )
            return failed_future(topic, partition, error, timestamp_ms)
        reserve = max(self.batch_size, needed)
        if self.reserved + reserve > self.buffer_memory:
            raise BufferFull(reserve)
        partitions = self._topics.get(topic)
        queue = partitions.get(partition) if partitions is not None else None
        if queue is None:
            queue = self._queue(topic, partition)
        built_as = self._expected_numbers(queue)
        if built_as is None:
            builder = BatchBuilder(compression=self.compression)
        else:
            producer_id, epoch, sequence = built_as
            builder = BatchBuilder(
                compression=self.compression,
                producer_id=producer_id,
                producer_epoch=epoch,
                base_sequence=sequence,
            )
        offset_delta = builder.append(
            value, key, headers, timestamp_ms
        )  # raises (appending nothing) on bad input
        if queue.open is not None:
            queue.queue.append(self._close_open(queue))
        batch = queue.open = ProducerBatch(
            topic, partition, builder, now, now + self.delivery_timeout_s, reserve
        )
        batch.room = self.batch_size - builder.size_in_bytes()
        batch.built_as = built_as
        self.open_batches[(topic, partition)] = batch
        self.reserved += reserve
        if self.new_batch_hook is not None:
            self.new_batch_hook()
        return new_future(batch.outcome, offset_delta, timestamp_ms)

    def _expected_numbers(self, queue: PartitionQueue) -> tuple[int, int, int] | None:
        """The producer fields a new batch of ``queue`` will most likely be sent with, so its builder can
        write them and ``encode`` need not copy the batch to stamp them. (Every batch before it is closed,
        so their record counts are final; retries may still change the numbers, then it is stamped.)"""
        if not self.idempotent or self._producer_id < 0 or queue.held or queue.retrying:
            return None
        sequence = queue.next_sequence
        for batch in queue.queue:
            if batch.sequence < 0:
                sequence += batch.record_count
            else:
                return None  # retries waiting: renumbering may follow
        if queue.open is not None:
            sequence += queue.open.record_count
        return self._producer_id, queue.epoch, sequence % _SEQUENCE_MODULUS

    def open_batch(self, topic: str, partition: int) -> ProducerBatch | None:
        """The batch records of this partition join now (None if none is open)."""
        return self.open_batches.get((topic, partition))

    def _close_open(self, queue: PartitionQueue) -> ProducerBatch:
        """Close the partition's open batch: no record joins it any more."""
        batch = queue.open
        assert batch is not None
        batch.closed = True
        queue.open = None
        del self.open_batches[(queue.topic, queue.partition)]
        return batch

    def _queue(self, topic: str, partition: int) -> PartitionQueue:
        queue = PartitionQueue(topic, partition, self._producer_epoch)
        self._topics.setdefault(topic, {})[partition] = queue
        self._queues.append(queue)
        return queue

    # --- draining -----------------------------------------------------------------------------------------

    def drain(self, now: float) -> tuple[list[ProducerBatch], float | None]:
        """Take the batches for one request. Returns them and the time at which another batch will be ready
        by waiting alone (None if nothing is waiting for time: only for an answer or a new record).

        Batches of one partition come out together and in order (the sender sends them as one entry,
        which the broker appends all or nothing). A partition with a request in flight sends nothing
        until it is answered: unary calls may reach the broker in any order, and one request per
        partition cannot overtake another. With ``ordered`` requests and idempotence, it may add batches
        while earlier ones are in flight, up to ``DEDUP_WINDOW`` in flight, but never beside a resend. With nothing in flight at all an open batch goes at once;
        while requests are in flight it lingers, growing, until it is full or ``linger_ms`` old.
        """
        batches: list[ProducerBatch] = []
        wake: float | None = None
        queues = self._queues
        count = len(queues)
        if not count:
            return batches, None
        total = 0
        hurry = (
            self._flushing > 0 or self._closing or self._memory_waiters > 0 or self._batches_in_flight == 0
        )
        start = self._drain_start
        window = DEDUP_WINDOW if self.idempotent else None
        pipelined = self.pipelined
        max_request_size = self.max_request_size
        for step in range(count):
            queue = queues[(start + step) % count]
            if queue.held or (queue.in_flight and (not pipelined or queue.resending)):
                continue  # waiting for the answer of its request in flight (or for its retries)
            taken = len(queue.in_flight)  # pipelined: counted against the window with this request's
            first = taken
            while window is None or taken < window:
                if queue.queue:
                    batch = queue.queue[0]
                    if batch.order >= 0 and taken:
                        break  # a resend goes alone (see _number)
                    if batch.retry_at > now:
                        wake = batch.retry_at if wake is None else min(wake, batch.retry_at)
                        break
                elif queue.open is not None:
                    batch = queue.open
                    ready_at = batch.created + self.linger_s
                    if ready_at > now and not hurry:
                        if taken == first:  # else it waits for the answer to this request, not for time
                            wake = ready_at if wake is None else min(wake, ready_at)
                        break
                else:
                    break
                size = batch.size()
                if batches and total + size > max_request_size:
                    # The request is full. The next one starts with this partition unless it is in this one.
                    self._drain_start = (start + step + (1 if taken > first else 0)) % count
                    return batches, now
                if batch is queue.open:
                    self._close_open(queue)
                else:
                    queue.queue.popleft()
                self._number(queue, batch)
                queue.in_flight.append(batch)
                self._batches_in_flight += 1
                batch.sent_at = now
                self.metrics.observe("batch-size", size)
                self.metrics.observe("records-per-batch", batch.record_count)
                batches.append(batch)
                total += size
                taken += 1
                if batch.resent:
                    break
        self._drain_start = (start + 1) % count
        return batches, wake

    def _number(self, queue: PartitionQueue, batch: ProducerBatch) -> None:
        """Give a batch its place in the partition's sequence the first time it is drained.

        A batch drained again is a resend, and goes alone: nothing else of its partition is in flight until
        it is answered. Its first attempt may have been written, and the broker recognises a duplicate only
        among the last five batches of the partition, so no more batches may be written after it meanwhile.
        """
        if batch.order >= 0:
            batch.resent = True
            queue.resending += 1
            return
        batch.order = queue.next_order
        queue.next_order += 1
        if self.idempotent:
            batch.epoch = queue.epoch
            batch.sequence = queue.next_sequence
            queue.next_sequence = (queue.next_sequence + batch.record_count) % _SEQUENCE_MODULUS

    # --- answers --------------------------------------------------------------------------------------------

    def acknowledge(self, batch: ProducerBatch, now: float) -> Finished:
        """The broker appended ``batch`` (or had appended it before); the caller resolves its outcome.

        Returns batches given up as a consequence (only when the partition had to restart its sequence).
        """
        queue = self._topics[batch.topic][batch.partition]
        self._landed(queue, batch)
        self.reserved -= batch.reserved
        self.metrics.count("record-send", batch.record_count)
        if not queue.held:
            return []
        finished = self._resume(queue, now)
        self._release(finished)
        return finished

    def fail(self, batch: ProducerBatch, error: ClientError, now: float, *, uncertain: bool) -> Finished:
        """An attempt to send ``batch`` failed. ``uncertain``: the broker may have appended it anyway.

        Returns the batches given up for good (this one, or others whose fate it decided).
        """
        queue = self._topics[batch.topic][batch.partition]
        self._landed(queue, batch)
        if uncertain:
            batch.maybe_appended = True
        finished: Finished = []
        # An out-of-order answer while an earlier batch of the partition failed or is still unanswered only
        # echoes that batch (concurrent calls may reach the broker in any order): retry it after that one.
        follows_failure = (
            isinstance(error, OutOfOrderSequenceError)
            and batch.sequence >= 0
            and (queue.held or any(other.order < batch.order for other in queue.in_flight))
        )
        if error.retriable or follows_failure:
            if not follows_failure:
                batch.attempts += 1  # an echo is not the batch's own failure: no backoff, no retry spent
            if now >= batch.deadline or (self.retries is not None and batch.attempts > self.retries):
                finished.append((batch, self._gave_up(batch, error)))
                self._left_sequence(queue, batch)
            else:
                queue.retrying.append(batch)
                self.metrics.count("record-retry", batch.record_count)
                queue.held = True
        else:
            finished.append((batch, self._unknown(batch, error) if batch.maybe_appended else error))
            self._left_sequence(queue, batch)
            if isinstance(error, OutOfOrderSequenceError | DuplicateSequenceNumberError):
                queue.reset_needed = True  # the broker expects other numbers than ours: start afresh
        finished += self._resume(queue, now)
        self._release(finished)
        return finished

    def _landed(self, queue: PartitionQueue, batch: ProducerBatch) -> None:
        """An answer (or a failure) for ``batch`` came back: it is no longer in flight."""
        queue.in_flight.remove(batch)
        self._batches_in_flight -= 1
        if batch.resent:
            batch.resent = False
            queue.resending -= 1

    def _gave_up(self, batch: ProducerBatch, error: BaseException) -> DeliveryTimeoutError:
        why = (
            f"not acknowledged within delivery_timeout_ms={self.delivery_timeout_s * 1000:.0f}"
            if self.retries is None or batch.attempts <= self.retries
            else f"still failing after retries={self.retries}"
        )
        text = (
            f"batch of {batch.record_count} records to {batch.topic}-{batch.partition} {why} "
            f"({batch.attempts} attempts; last error: {error})."
        )
        if batch.maybe_appended:
            return UnknownDeliveryTimeoutError(f"{text} {_MAYBE_WRITTEN}")
        return DeliveryTimeoutError(f"{text} It was not written.")

    @staticmethod
    def _unknown(batch: ProducerBatch, error: ClientError) -> UnknownDeliveryError:
        """The error for a batch that may have been written and is now refused for good: a refusal says
        nothing about an earlier attempt, whose answer was lost (the broker may have forgotten it)."""
        unknown = UnknownDeliveryError(
            f"batch of {batch.record_count} records to {batch.topic}-{batch.partition} given up: an earlier "
            f"attempt got no answer, and the broker now refuses it ({error}). {_MAYBE_WRITTEN}"
        )
        unknown.__cause__ = error
        return unknown

    def _left_sequence(self, queue: PartitionQueue, batch: ProducerBatch) -> None:
        """A numbered batch left its partition's sequence for good: the batches after it need new numbers.

        If it was certainly not written, they move down to close the gap. If it may have been written,
        no numbering is safe (the broker might take a renumbered batch for a duplicate of it), so the
        partition restarts its sequence on a new epoch.
        """
        if batch.sequence >= 0:
            queue.held = True
            if batch.maybe_appended:
                queue.reset_needed = True
            else:
                queue.gaps.append((batch.order, batch.record_count))

    def _resume(self, queue: PartitionQueue, now: float) -> Finished:
        """Once a held partition has nothing in flight, put its retries back in order and carry on."""
        if not queue.held or queue.in_flight:
            return []
        finished: Finished = []
        retry = queue.retrying
        queue.retrying = []
        while queue.queue and queue.queue[0].order >= 0:  # numbered batches waiting for a resend
            retry.append(queue.queue.popleft())
        retry.sort(key=_by_order)
        if self.idempotent:
            if queue.reset_needed:
                kept = []
                for batch in retry:
                    if batch.maybe_appended:
                        finished.append((batch, self._abandoned(batch)))
                    else:
                        kept.append(batch)
                retry = kept
                queue.epoch = (queue.epoch + 1) % _EPOCH_MODULUS
                sequence = 0
                for batch in retry:
                    self._renumber(batch, sequence, queue.epoch)
                    sequence = (sequence + batch.record_count) % _SEQUENCE_MODULUS
                queue.next_sequence = sequence
            elif queue.gaps:
                # Batches before the first gap keep their numbers (they may be written: a resend is then
                # answered as a duplicate); each later one moves down by the gaps before it.
                for batch in retry:
                    shift = sum(count for order, count in queue.gaps if order < batch.order)
                    self._renumber(batch, (batch.sequence - shift) % _SEQUENCE_MODULUS, batch.epoch)
                total = sum(count for _, count in queue.gaps)
                queue.next_sequence = (queue.next_sequence - total) % _SEQUENCE_MODULUS
            queue.gaps.clear()
        if retry:
            head = retry[0]
            head.retry_at = now + self.backoff.delay_s(head.attempts) if head.attempts else now
            queue.queue.extendleft(reversed(retry))
        queue.held = False
        queue.reset_needed = False
        return finished

    @staticmethod
    def _renumber(batch: ProducerBatch, sequence: int, epoch: int) -> None:
        if batch.sequence != sequence or batch.epoch != epoch:
            batch.sequence = sequence
            batch.epoch = epoch
            batch.data = None  # encode again with the new numbers

    @staticmethod
    def _abandoned(batch: ProducerBatch) -> UnknownDeliveryError:
        return UnknownDeliveryError(
            f"batch of {batch.record_count} records to {batch.topic}-{batch.partition} abandoned: an earlier "
            "batch of this partition was given up, and this one may already have been written, so resending "
            f"it could write it twice. {_MAYBE_WRITTEN}"
        )

    def _release(self, finished: Finished) -> None:
        """Give back the memory of batches given up for good (every such path ends here)."""
        for batch, _ in finished:
            self.reserved -= batch.reserved
            self.metrics.count("record-error", batch.record_count)

    # --- time and shutdown ------------------------------------------------------------------------------------

    def expire(self, now: float) -> Finished:
        """Give up batches waiting (not in flight) past their delivery deadline."""
        finished: Finished = []
        for queue in self._queues:
            while queue.queue and queue.queue[0].deadline <= now:
                batch = queue.queue.popleft()
                finished.append((batch, self._gave_up(batch, _StillWaiting())))
                self._left_sequence(queue, batch)
            if not queue.queue and queue.open is not None and queue.open.deadline <= now:
                batch = self._close_open(queue)
                finished.append((batch, self._gave_up(batch, _StillWaiting())))
            if queue.held:
                finished += self._resume(queue, now)
        self._release(finished)
        return finished

    def abort(self, error: BaseException) -> Finished:
        """Give up every unfinished batch, in flight or not (the producer is closing without waiting).

        Each fails with ``error``, except those in flight or that may have been written before: their
        fate is unknown, so they fail with ``UnknownDeliveryError`` (``error`` as its cause).
        """
        finished: Finished = []
        for queue in self._queues:
            in_flight = set(map(id, queue.in_flight))
            for batch in queue.batches():
                if batch.maybe_appended or id(batch) in in_flight:
                    how = (
                        "sent, no answer yet"
                        if id(batch) in in_flight
                        else "an earlier attempt got no answer"
                    )
                    unknown = UnknownDeliveryError(
                        f"{error} (batch of {batch.record_count} records to {batch.topic}-{batch.partition}: "
                        f"{how}). {_MAYBE_WRITTEN}"
                    )
                    unknown.__cause__ = error
                    finished.append((batch, unknown))
                else:
                    finished.append((batch, error))
            if queue.open is not None:
                self._close_open(queue)
            queue.queue.clear()
            queue.in_flight.clear()
            queue.resending = 0
            queue.retrying.clear()
        self._batches_in_flight = 0
        self._release(finished)
        return finished

    def outcomes(self) -> list[BatchOutcome]:
        """The outcomes of every unfinished batch, for flush() to wait on."""
        return [batch.outcome for queue in self._queues for batch in queue.batches()]

    def has_unfinished(self) -> bool:
        return any(queue.open or queue.queue or queue.in_flight or queue.retrying for queue in self._queues)


_MAYBE_WRITTEN = "It may or may not have been written; sending it again may write it twice."


class _StillWaiting(Exception):
    def __str__(self) -> str:
        return "no answer yet: the batch was still waiting to be sent"


def _by_order(batch: ProducerBatch) -> int:
    return batch.order
