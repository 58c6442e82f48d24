"""The idempotent producer's core against a real partition log, with answers held back or lost.

The transport between them is the only fake: each drained batch is appended to a real `logstore` Log (whose
producer state decides duplicates and sequence errors as the broker does), and the answer goes back through
the broker's error table and the client's, or is held back or lost as the test says. The promise checked:
a record acknowledged is in the log once, a record failed with anything but `UnknownDeliveryError` is not
in the log at all (issue 9 item 6).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from logstore.broker.embedded import EmbeddedBroker
from logstore.broker.errors import partition_error
from logstore.client import Admin, Producer
from logstore.client.producer.accumulator import DEDUP_WINDOW, Accumulator, ProducerBatch
from logstore.client.producer.config import ProducerConfig
from logstore.client.producer.futures import RecordFuture
from logstore.client.shared.backoff import Backoff
from logstore.client.shared.errors import (
    BrokerUnavailableError,
    ClientError,
    DuplicateSequenceNumberError,
    OutOfOrderSequenceError,
    UnknownDeliveryError,
    error_from_code,
)

from logstore.config import TopicConfig
from logstore.errors import LogStoreError
from logstore.log import Log
from logstore.producer_state import BATCHES_REMEMBERED
from logstore.records import Record, build_batch, iter_records
from tests.test_client_support import FailedCall, read_partition

PRODUCER_ID = 7
BATCH_BYTES = 250
"""Eight of the test's records fill a batch (and a request)."""
PER_BATCH = 8


class Partition:
    """One real partition log behind a transport the test controls."""

    def __init__(self, path: Path, acc: Accumulator) -> None:
        self.log = Log(path / "t-0", "t", 0, TopicConfig(segment_bytes=64 * 1024))
        self.acc = acc
        self.now = 0.0

    def write(self, batch: ProducerBatch) -> tuple[int, ClientError | None]:
        """What the broker does with the batch: (base offset, None) or (-1, the error the client reads)."""
        try:
            result = self.log.append(batch.encode(PRODUCER_ID))
        except LogStoreError as exc:
            code, message = partition_error(exc)
            return -1, error_from_code(code, message, where="t-0")
        return result.base_offset, None

    def answer(self, batch: ProducerBatch, base_offset: int, error: ClientError | None) -> None:
        """Hand the broker's answer to the producer, and resolve or fail what it finished."""
        if error is None:
            finished = self.acc.acknowledge(batch, self.now)
            batch.outcome.resolve(base_offset)
        else:
            finished = self.acc.fail(batch, error, self.now, uncertain=False)
        for done, failure in finished:
            done.outcome.fail(failure)

    def lose_answer(self, batch: ProducerBatch) -> None:
        """The call broke after the broker got it: the producer cannot know whether it was written."""
        finished = self.acc.fail(batch, BrokerUnavailableError("connection reset"), self.now, uncertain=True)
        for done, failure in finished:
            done.outcome.fail(failure)

    def drain(self) -> list[ProducerBatch]:
        batches, _ = self.acc.drain(self.now)
        return batches

    def run_until_done(self) -> None:
        """Send and answer everything still buffered, one request at a time, time moving on as needed."""
        while self.acc.has_unfinished():
            batches = self.drain()
            if not batches:
                self.now += 10.0  # past any backoff
                continue
            for batch in batches:
                self.answer(batch, *self.write(batch))

    def values(self) -> list[bytes | None]:
        return [r.value for r in iter_records(self.log.read(0, 10**9).data)]


def producer(*, ordered: bool = False, **overrides: object) -> Accumulator:
    settings: dict[str, object] = {
        "batch_size": BATCH_BYTES,  # each batch closes after a few records
        "linger_ms": 0,
        "buffer_memory": 1_000_000,
        "delivery_timeout_ms": 600_000,
        "max_request_size": BATCH_BYTES,  # one batch per request
        "enable_idempotence": True,
        "request_timeout_ms": 100,  # lets a test choose a short delivery_timeout_ms
        "max_in_flight_requests_per_connection": 5,
    }
    settings.update(overrides)
    acc = Accumulator(
        ProducerConfig(**settings),  # type: ignore[arg-type]
        Backoff(100, 1000, jitter=0, rng=random.Random(0)),
        ordered=ordered,
    )
    acc.set_producer_id(PRODUCER_ID, 0)
    return acc


def send(acc: Accumulator, count: int) -> list[tuple[bytes, RecordFuture]]:
    sent = []
    for n in range(count):
        value = f"record-{n:04d}".encode()
        future = acc.append("t", 0, value, None, (), 1_000, 0.0)
        assert future is not None
        sent.append((value, future))
    return sent


def check_promises(sent: list[tuple[bytes, RecordFuture]], log_values: list[bytes | None]) -> None:
    """Acknowledged: in the log exactly once. Failed for sure: not in the log. Unknown: either."""
    for value, future in sent:
        assert future.is_done
        error = future.exception_value
        if error is None:
            assert log_values.count(value) == 1, (
                f"{value!r} acknowledged but in the log {log_values.count(value)}x"
            )
        elif not isinstance(error, UnknownDeliveryError):
            assert value not in log_values, f"{value!r} is in the log, but was reported failed: {error}"


def test_the_window_matches_the_brokers_memory() -> None:
    assert DEDUP_WINDOW == BATCHES_REMEMBERED


def test_a_slow_answer_keeps_later_batches_within_the_brokers_dedup_window(tmp_path: Path) -> None:
    """The first batch is written but its answer is slow. The producer used to keep sending (only five in
    flight were counted), so when the slow answer was then lost, the resend was five batches or more
    behind: the broker no longer knew it and refused it as out of order, and the producer failed for
    good records that were in the log. Now a partition sends nothing while its request is unanswered,
    and a request holds at most ``DEDUP_WINDOW`` of its batches."""
    acc = producer(max_request_size=16 * BATCH_BYTES)
    part = Partition(tmp_path, acc)
    sent = send(acc, 15 * PER_BATCH)
    first = part.drain()
    assert len(first) == DEDUP_WINDOW  # every ready batch, up to the broker's memory
    written = [part.write(batch) for batch in first]  # written; the answers are on their way
    assert all(error is None for _, error in written)
    assert part.drain() == []  # nothing more of the partition until they are answered
    for batch in first:
        part.lose_answer(batch)
    part.run_until_done()
    check_promises(sent, part.values())
    for batch, (offset, _) in zip(first, written, strict=True):
        assert batch.outcome.done and batch.outcome.error is None
        assert batch.outcome.base_offset == offset  # each resend was answered as the duplicate it is
    assert part.values() == [value for value, _ in sent]  # all there, once each, in order
    part.log.close()


def test_a_refused_resend_of_a_batch_that_may_be_written_is_reported_unknown(tmp_path: Path) -> None:
    """A batch whose answer was lost, resent and refused as out of order (here the broker forgot the
    producer, as when retention removed all of its batches): it may well be in the log, so its failure
    must say so, and the partition goes on with a new epoch."""
    acc = producer()
    part = Partition(tmp_path, acc)
    sent = send(acc, 3 * PER_BATCH)
    [first] = part.drain()
    part.answer(first, *part.write(first))
    [lost] = part.drain()
    assert part.write(lost)[1] is None  # written
    part.lose_answer(lost)
    part.log.producer_state.clear()  # the broker forgets every batch of this producer
    part.run_until_done()
    error = lost.outcome.error
    assert isinstance(error, UnknownDeliveryError), error
    assert isinstance(error.__cause__, OutOfOrderSequenceError)
    assert "may or may not have been written" in str(error)
    check_promises(sent, part.values())
    assert part.values() == [value for value, _ in sent]  # the third batch went on, on a new epoch
    part.log.close()


def test_a_stranger_holding_the_producers_sequence_fails_the_batch_and_restarts_the_epoch(
    tmp_path: Path,
) -> None:
    """Issue 9 item 14 as the client sees it: the broker refuses the producer's batch because another
    batch holds its id and sequence. That batch was not written: it fails for sure, and the partition
    moves to a new epoch, so the batches after it are written instead of colliding again."""
    acc = producer()
    part = Partition(tmp_path, acc)
    sent = send(acc, 3 * PER_BATCH)
    [first] = part.drain()
    count = first.record_count
    stranger = [Record(0, 1, value=b"stranger")] * count  # the same sequences, other records
    part.log.append(build_batch(stranger, producer_id=PRODUCER_ID, producer_epoch=0, base_sequence=0))
    part.answer(first, *part.write(first))
    part.run_until_done()
    assert isinstance(first.outcome.error, DuplicateSequenceNumberError)
    assert [future.exception_value is None for _, future in sent] == [False] * count + [True] * (
        len(sent) - count
    )
    check_promises(sent, part.values())
    assert part.values() == [b"stranger"] * count + [value for value, _ in sent[count:]]
    part.log.close()


@pytest.mark.parametrize("seed", range(20))
def test_lost_and_slow_answers_in_any_order_keep_the_promises(tmp_path: Path, seed: int) -> None:
    """Random schedules of written-but-unanswered, lost and reordered answers, five calls in flight."""
    rng = random.Random(seed)
    acc = producer()
    part = Partition(tmp_path, acc)
    sent = send(acc, 40 * PER_BATCH)
    pending: list[tuple[ProducerBatch, int, ClientError | None]] = []  # written, answer not yet given
    while acc.has_unfinished():
        drained = [batch for _ in range(rng.randint(1, 5)) for batch in part.drain()]  # requests sent
        for batch in drained:
            pending.append((batch, *part.write(batch)))
        if pending:
            batch, offset, error = pending.pop(rng.randrange(len(pending)))  # answers come in any order
            if rng.random() < 0.2:
                part.lose_answer(batch)  # written or refused: the producer never learns which
            else:
                part.answer(batch, offset, error)
        elif not drained:
            part.now += 10.0  # only backoff is left to wait for
    check_promises(sent, part.values())
    assert sum(1 for _, future in sent if future.exception_value is None) > len(sent) // 2
    part.log.close()


@pytest.mark.parametrize("seed", range(20))
def test_a_stream_that_breaks_anywhere_keeps_the_promises_and_the_order(tmp_path: Path, seed: int) -> None:
    """ProduceStream's schedules: requests reach the broker in drain order (several of the partition in
    flight), answers come back in that order, and the stream breaks at random, after the broker took any
    prefix of the requests on it; then every request without an answer fails as uncertain, as
    `RequestStream` fails them, and is resent."""
    rng = random.Random(seed)
    acc = producer(ordered=True)
    part = Partition(tmp_path, acc)
    sent = send(acc, 40 * PER_BATCH)
    on_the_way: list[ProducerBatch] = []  # sent on the stream, not yet at the broker
    answers: list[tuple[ProducerBatch, int, ClientError | None]] = []  # handled, answer on its way back
    most_in_flight = 0
    while acc.has_unfinished():
        for _ in range(rng.randint(0, 3)):
            on_the_way += part.drain()
        most_in_flight = max(most_in_flight, len(on_the_way) + len(answers))
        for _ in range(rng.randint(0, len(on_the_way))):  # the broker takes requests in stream order
            batch = on_the_way.pop(0)
            answers.append((batch, *part.write(batch)))
        if (on_the_way or answers) and rng.random() < 0.15:  # the stream breaks
            for batch in [batch for batch, _, _ in answers] + on_the_way:
                part.lose_answer(batch)
            on_the_way, answers = [], []
        elif answers:
            for _ in range(rng.randint(1, len(answers))):  # answers in order
                part.answer(*answers.pop(0))
        elif not on_the_way:
            part.now += 10.0  # only backoff is left to wait for
    check_promises(sent, part.values())
    # Every resend is within the broker's memory, so every break is survived: each record is acknowledged,
    # and the log holds each once, in send order.
    assert [future.exception_value for _, future in sent] == [None] * len(sent)
    assert part.values() == [value for value, _ in sent]
    assert most_in_flight > 1  # the partition had several requests in flight
    part.log.close()


# --- the same through the real producer, sender and broker --------------------------------------------------


class HeldCall(FailedCall):
    """An answer held back until ``lose()``, which then fails it as a lost connection would."""

    def __init__(self) -> None:
        super().__init__(grpc.StatusCode.UNAVAILABLE, "injected: connection lost before the answer")
        self._released = False
        self._callbacks: list[Callable[[Any], None]] = []

    def add_done_callback(self, fn: Callable[[Any], None]) -> None:
        self._callbacks.append(fn)

    def done(self) -> bool:
        return self._released

    def lose(self) -> None:
        self._released = True
        for fn in self._callbacks:
            fn(self)


class HoldFirstAnswer(grpc.UnaryUnaryClientInterceptor):
    """The first Produce call reaches the broker, which appends; its answer is held back until
    ``release()`` and then lost. Later calls go through; the interceptor counts them."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self.calls = 0
        self.answered_after_first = 0
        self.held: HeldCall | None = None
        self.partitions: list[set[int]] = []
        """The partitions each Produce call carried, in call order."""

    def intercept_unary_unary(self, continuation, client_call_details, request):
        if not client_call_details.method.endswith("/Produce"):
            return continuation(client_call_details, request)
        with self._changed:
            self.calls += 1
            first = self.calls == 1
            self.partitions.append({entry.partition for entry in request.partitions})
        outcome = continuation(client_call_details, request)
        if first:
            outcome.result()  # the broker has appended the batch
            with self._changed:
                self.held = HeldCall()
                self._changed.notify_all()
            return self.held
        outcome.add_done_callback(lambda _: self._answered())
        return outcome

    def _answered(self) -> None:
        with self._changed:
            self.answered_after_first += 1
            self._changed.notify_all()

    def wait_held(self) -> HeldCall:
        with self._changed:
            assert self._changed.wait_for(lambda: self.held is not None, timeout=60)
            assert self.held is not None
            return self.held

    def wait_answered(self, count: int) -> None:
        with self._changed:
            assert self._changed.wait_for(lambda: self.answered_after_first >= count, timeout=60)


def test_the_producer_waits_for_a_slow_answer_then_its_resend_is_a_duplicate(broker: EmbeddedBroker) -> None:
    """The first call's answer is held back while the broker appends it; the producer sends nothing more
    of that partition (another partition still goes) and waits. The answer is then lost: each resend is
    within the broker's memory, so it is answered with its original offset (the old producer kept
    sending, and the resend was refused)."""
    with Admin(broker.address) as admin:
        admin.create_topic("slow", 2)
    faults = HoldFirstAnswer()
    values = [b"%03d" % n + b"x" * 50 for n in range(20)]
    with Producer(
        broker.address,
        linger_ms=0,
        batch_size=100,
        max_in_flight=5,
        retry_backoff_ms=1,
        interceptors=[faults],
        produce_transport="unary",  # the answer is held back in a unary call (one per partition in flight)
    ) as producer:
        futures = [producer.send("slow", values[0], partition=0)]
        held = faults.wait_held()  # the first call is appended, its answer held back
        futures += [producer.send("slow", value, partition=0) for value in values[1:]]  # a batch each
        # Answered only after a drain that found every batch of partition 0 ready.
        producer.send("slow", b"other", partition=1).get(60)
        assert [0 in partitions for partitions in faults.partitions] == [True] + [False] * (faults.calls - 1)
        held.lose()
        producer.flush(timeout=60)
    assert [future.get(0).offset for future in futures] == list(range(len(values)))
    assert [r.value for r in read_partition(broker.address, "slow", 0)] == values
