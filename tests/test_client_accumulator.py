"""The producer's pure core: batching, memory, draining, sequencing and retries, with an injected clock."""

from __future__ import annotations

import random

import pytest
from logstore.client.producer.accumulator import (
    DEDUP_WINDOW,
    RECORD_OVERHEAD,
    Accumulator,
    BufferFull,
    ProducerBatch,
    stamp_producer,
)
from logstore.client.producer.config import ProducerConfig
from logstore.client.shared.backoff import Backoff
from logstore.client.shared.errors import (
    BrokerUnavailableError,
    CorruptRecordError,
    DeliveryTimeoutError,
    NotAvailableError,
    OutOfOrderSequenceError,
    RecordTooLargeError,
    UnknownDeliveryError,
)

from logstore.records import check_batch, decode_batch, parse_header

VALUE = b"v" * 50
RECORD = RECORD_OVERHEAD + len(VALUE)  # what the accumulator reserves room for, per record
ENCODED = len(VALUE) + 7  # bytes a record of VALUE takes in a batch
PER_BATCH = (1000 - 61 - RECORD) // ENCODED + 1  # records in a full batch of batch_size 1000


def make(*, ordered: bool = False, **overrides: object) -> Accumulator:
    settings: dict[str, object] = {
        "batch_size": 1000,
        "linger_ms": 10,
        "buffer_memory": 100_000,
        "delivery_timeout_ms": 60_000,
        "max_request_size": 5000,
        "enable_idempotence": True,
        "request_timeout_ms": 100,  # lets a test choose a short delivery_timeout_ms
    }
    settings.update(overrides)
    accumulator = Accumulator(
        ProducerConfig(**settings),  # type: ignore[arg-type]
        Backoff(100, 1000, jitter=0, rng=random.Random(0)),
        ordered=ordered,
    )
    accumulator.set_producer_id(7, 0)
    return accumulator


def send(acc: Accumulator, partition: int = 0, now: float = 0.0, topic: str = "t", value: bytes = VALUE):
    future = acc.append(topic, partition, value, None, (), 1_000, now)
    assert future is not None
    return future


def fill(acc: Accumulator, records: int, partition: int = 0, now: float = 0.0) -> list:
    return [send(acc, partition, now) for _ in range(records)]


def drain_all(acc: Accumulator, now: float) -> list[ProducerBatch]:
    batches, _ = acc.drain(now)
    return batches


# --- batching -----------------------------------------------------------------------------------------------


def test_records_share_a_batch_until_the_next_might_not_fit() -> None:
    acc = make()
    futures = fill(acc, 20)
    batches = {id(f._outcome) for f in futures}
    assert len(batches) == 2
    first = futures[0]._outcome
    in_first = sum(1 for f in futures if f._outcome is first)
    assert in_first == PER_BATCH
    builder_size = 61 + in_first * ENCODED
    assert builder_size + RECORD > 1000 >= builder_size
    assert [f._delta for f in futures[:in_first]] == list(range(in_first))


def test_a_lone_record_goes_at_once_when_nothing_is_in_flight() -> None:
    acc = make()
    fill(acc, 1)
    batches, wake = acc.drain(0.0)  # no linger: the broker is idle
    assert len(batches) == 1 and wake is None


def test_records_linger_and_grow_while_a_request_is_in_flight() -> None:
    acc = make()
    fill(acc, 1)
    [sent] = drain_all(acc, 0.0)
    fill(acc, 1, partition=1, now=0.001)
    assert acc.drain(0.001) == ([], pytest.approx(0.011))  # waits for linger_ms while busy
    fill(acc, PER_BATCH, partition=1, now=0.002)  # fills that batch and opens another
    batches, wake = acc.drain(0.002)
    assert [b.record_count for b in batches] == [PER_BATCH]  # the full one goes; the open one lingers
    assert wake is None  # and then waits for that request's answer, not for time
    assert acc.drain(0.012) == ([], None)  # partition 1 now waits for the answer of its request
    acc.acknowledge(sent, 0.013)
    for batch in acc._topics["t"][1].in_flight[:]:
        acc.acknowledge(batch, 0.013)
    [batch] = drain_all(acc, 0.013)  # idle again: at once, linger or not
    assert (batch.partition, batch.record_count) == (1, 1)


def test_flush_and_close_make_open_batches_ready_at_once() -> None:
    acc = make()
    fill(acc, 1, partition=9)
    assert len(drain_all(acc, 0.0)) == 1  # in flight from now on: the others linger
    fill(acc, 1)
    assert drain_all(acc, 0.0) == []
    acc.begin_flush()
    assert len(drain_all(acc, 0.0)) == 1
    acc.end_flush()
    fill(acc, 1, partition=1)
    acc.close()
    assert len(drain_all(acc, 0.0)) == 1


def test_abort_on_new_batch_appends_nothing() -> None:
    acc = make()
    assert acc.append("t", 0, VALUE, None, (), 1, 0.0, abort_on_new_batch=True) is None
    fill(acc, 1)
    assert acc.append("t", 0, VALUE, None, (), 1, 0.0, abort_on_new_batch=True) is not None
    fill(acc, 20)  # fills and closes batches
    assert acc.append("t", 0, b"x" * 900, None, (), 1, 0.0, abort_on_new_batch=True) is None


def test_new_batch_hook_runs_once_per_batch() -> None:
    acc = make()
    calls = []
    acc.new_batch_hook = lambda: calls.append(1)
    fill(acc, 5)
    fill(acc, 1, partition=1)
    assert len(calls) == 2


def test_bad_record_appends_nothing_and_leaves_no_empty_batch() -> None:
    acc = make()
    with pytest.raises(TypeError):
        acc.append("t", 0, VALUE, "not bytes", (), 1, 0.0)  # type: ignore[arg-type]
    assert acc.reserved == 0
    assert not acc.has_unfinished()


def test_record_larger_than_a_batch_gets_its_own_batch() -> None:
    acc = make()
    fill(acc, 2)
    big = acc.append("t", 0, b"b" * 2000, None, (), 1, 0.0)
    assert big is not None and not big.done()
    assert big._outcome is not fill(acc, 1)[0]._outcome
    assert acc.reserved == 1000 + (2000 + RECORD_OVERHEAD + 61) + 1000


def test_record_larger_than_max_request_size_fails_its_own_future() -> None:
    acc = make()
    future = acc.append("t", 0, b"b" * 6000, None, (), 1, 0.0)
    assert future is not None and future.failed()
    with pytest.raises(RecordTooLargeError, match="max_request_size=5000"):
        future.get(0)
    assert acc.reserved == 0 and not acc.has_unfinished()


def test_headers_and_keys_count_towards_the_size() -> None:
    acc = make()
    first = acc.append("t", 0, VALUE, b"k" * 400, [("h", b"x" * 400)], 1, 0.0)
    second = acc.append("t", 0, VALUE, b"k" * 400, [("h", b"x" * 400)], 1, 0.0)
    assert first is not None and second is not None
    assert first._outcome is not second._outcome


# --- memory --------------------------------------------------------------------------------------------------


def test_buffer_full_raises_and_acknowledge_releases() -> None:
    acc = make(buffer_memory=2000)
    fill(acc, 1, partition=0)
    fill(acc, 1, partition=1)
    with pytest.raises(BufferFull) as raised:
        fill(acc, 1, partition=2)
    assert raised.value.needed == 1000
    acc.begin_flush()
    batches = drain_all(acc, 0.0)
    acc.acknowledge(batches[0], 0.0)
    assert acc.reserved == 1000
    fill(acc, 1, partition=2)


def test_record_larger_than_buffer_memory_fails_at_once() -> None:
    acc = make(buffer_memory=1500, max_request_size=5000)
    future = acc.append("t", 0, b"b" * 1600, None, (), 1, 0.0)
    assert future is not None and future.failed()
    with pytest.raises(RecordTooLargeError, match="buffer_memory"):
        future.get(0)


# --- draining ---------------------------------------------------------------------------------------------------


def test_every_ready_batch_of_every_partition_in_one_request_within_max_request_size() -> None:
    acc = make(max_request_size=4500, linger_ms=0)
    for partition in range(4):
        fill(acc, 2 * PER_BATCH, partition=partition)  # a full batch and a full open one each
    first, wake = acc.drain(0.0)
    assert wake == 0.0  # more is ready right away
    assert sum(b.size() for b in first) <= 4500
    assert [(b.partition, b.order) for b in first] == [(0, 0), (0, 1), (1, 0), (1, 1)]  # in order, together
    second, _ = acc.drain(0.0)
    assert [(b.partition, b.order) for b in second] == [(2, 0), (2, 1), (3, 0), (3, 1)]


def test_a_request_holds_at_most_the_dedup_window_of_a_partition() -> None:
    acc = make(max_request_size=100_000, linger_ms=0)
    fill(acc, 8 * PER_BATCH)
    batches = drain_all(acc, 0.0)
    assert [b.sequence for b in batches] == [n * PER_BATCH for n in range(DEDUP_WINDOW)]
    without = make(max_request_size=100_000, linger_ms=0, enable_idempotence=False)
    fill(without, 8 * PER_BATCH)
    assert len(drain_all(without, 0.0)) == 8  # no sequences to keep: no window


def test_drain_starts_from_a_different_partition_each_time() -> None:
    acc = make(linger_ms=0)
    starts = []
    for _ in range(3):
        for partition in range(3):
            fill(acc, 1, partition=partition)
        batches = drain_all(acc, 0.0)
        starts.append(batches[0].partition)
        for batch in batches:
            acc.acknowledge(batch, 0.0)
    assert len(set(starts)) == 3


def test_one_request_in_flight_per_partition() -> None:
    """Unary calls may reach the broker in any order: a partition in one request at a time cannot be
    reordered, and its sequence numbers arrive in order."""
    acc = make(linger_ms=0)
    fill(acc, 3 * PER_BATCH)
    first = drain_all(acc, 0.0)
    assert len(first) == 3
    fill(acc, 1)
    fill(acc, 1, partition=1)
    assert [b.partition for b in drain_all(acc, 0.0)] == [1]  # partition 0 waits for its answer
    for batch in first:
        acc.acknowledge(batch, 0.0)
    [batch] = drain_all(acc, 0.0)
    assert (batch.partition, batch.sequence) == (0, 3 * PER_BATCH)


def test_ordered_requests_keep_a_partition_sending_up_to_the_dedup_window() -> None:
    """On one ProduceStream requests arrive in order: an idempotent partition need not wait for its answer,
    but at most the last DEDUP_WINDOW batches may be unanswered (the broker deduplicates no further back)."""
    acc = make(ordered=True, linger_ms=0, max_request_size=2 * 1000)
    fill(acc, 8 * PER_BATCH)
    requests = [drain_all(acc, 0.0) for _ in range(4)]
    assert [len(r) for r in requests] == [2, 2, 1, 0]  # 5 in flight, then nothing until an answer
    sent = [batch for request in requests for batch in request]
    assert [b.sequence for b in sent] == [n * PER_BATCH for n in range(DEDUP_WINDOW)]  # in order
    acc.acknowledge(sent[0], 0.0)
    [next_batch] = drain_all(acc, 0.0)  # one answered: one more may go
    assert next_batch.sequence == DEDUP_WINDOW * PER_BATCH


def test_ordered_requests_without_idempotence_still_hold_one_request_per_partition() -> None:
    """Without sequence numbers the broker cannot refuse a batch whose predecessor failed, so a retry
    could land after its successor: no pipelining."""
    acc = make(ordered=True, linger_ms=0, enable_idempotence=False, max_request_size=1000)
    fill(acc, 3 * PER_BATCH)
    assert len(drain_all(acc, 0.0)) == 1
    assert drain_all(acc, 0.0) == []


def test_ordered_requests_linger_the_open_batch_behind_requests_in_flight() -> None:
    acc = make(ordered=True, linger_ms=10)
    fill(acc, 1)
    [first] = drain_all(acc, 0.0)  # nothing in flight: at once
    fill(acc, 1, now=0.001)
    batches, wake = acc.drain(0.002)
    assert batches == [] and wake == pytest.approx(0.011)  # lingers, and says until when
    [second] = drain_all(acc, 0.011)  # sent behind the first, which is still unanswered
    assert second.sequence == first.record_count


def test_ordered_resends_go_alone_after_everything_in_flight_has_answered() -> None:
    """A broken stream fails every request on it: the partition resumes once all have failed, resending
    one batch at a time in the original order (each may have been written), then pipelines again."""
    acc = make(ordered=True, linger_ms=0, max_request_size=1000)
    fill(acc, 4 * PER_BATCH)
    sent = [drain_all(acc, 0.0)[0] for _ in range(3)]
    broken = BrokerUnavailableError("stream broke")
    assert acc.fail(sent[0], broken, 0.0, uncertain=True) == []
    assert drain_all(acc, 0.0) == []  # held until the other two have failed too
    for batch in sent[1:]:
        assert acc.fail(batch, broken, 0.0, uncertain=True) == []
    resent = []
    for _ in range(3):
        [batch] = drain_all(acc, 1.0)
        assert drain_all(acc, 1.0) == []  # alone, although the fourth batch is ready
        resent.append(batch)
        acc.acknowledge(batch, 1.0)
    assert resent == sent
    assert [b.sequence for b in resent] == [0, PER_BATCH, 2 * PER_BATCH]  # the same numbers
    [fourth] = drain_all(acc, 1.0)
    assert fourth.sequence == 3 * PER_BATCH


# --- sequencing -------------------------------------------------------------------------------------------------


def test_sequences_are_consecutive_per_partition_and_stamped_with_a_valid_crc() -> None:
    acc = make(linger_ms=0)
    acc.set_producer_id(7, 3)
    fill(acc, 30)
    fill(acc, 4, partition=1)
    batches = drain_all(acc, 0.0) + drain_all(acc, 0.0)
    zero = [b for b in batches if b.partition == 0]
    assert zero[0].sequence == 0 and zero[1].sequence == zero[0].record_count
    one = next(b for b in batches if b.partition == 1)
    assert one.sequence == 0
    assert zero[1].built_as == (7, 3, zero[0].record_count)  # numbers built in: no stamping copy
    data = zero[1].encode(acc.producer_id)
    assert data is not None and type(data) is bytes
    header = check_batch(data)
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (7, 3, zero[0].record_count)
    assert [r.value for r in decode_batch(data)] == [VALUE] * zero[1].record_count


def test_stamp_producer_keeps_the_records_and_fixes_the_crc() -> None:
    acc = make(enable_idempotence=False, linger_ms=0)
    fill(acc, 3)
    batch = drain_all(acc, 0.0)[0]
    plain = batch.encode(-1)
    assert parse_header(plain).producer_id == -1
    stamped = stamp_producer(plain, 99, 2, 1234)
    header = check_batch(stamped)
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (99, 2, 1234)
    assert decode_batch(stamped) == decode_batch(plain)


def test_without_idempotence_batches_carry_no_sequence() -> None:
    acc = make(enable_idempotence=False, linger_ms=0)
    fill(acc, 2)
    batch = drain_all(acc, 0.0)[0]
    assert batch.sequence == -1
    assert parse_header(batch.encode(7)).base_sequence == -1


# --- retries --------------------------------------------------------------------------------------------------------


def three_in_flight(acc: Accumulator) -> list[ProducerBatch]:
    """Three batches of partition 0 in flight in one request, in sequence order."""
    fill(acc, 3 * PER_BATCH)  # two full batches and a third, open: nothing in flight, so all go at once
    batches = drain_all(acc, 0.0)
    fill(acc, PER_BATCH + 1)  # more behind them: a full batch and an open one, waiting for the answer
    assert [b.order for b in batches] == [0, 1, 2]
    for batch in batches:
        batch.encode(acc.producer_id)
    return batches


def test_retriable_failure_holds_the_partition_then_resends_in_order_after_backoff() -> None:
    acc = make()
    a, b, c = three_in_flight(acc)
    assert acc.fail(a, NotAvailableError("closing"), 1.0, uncertain=False) == []
    assert drain_all(acc, 1.0) == []  # held while b and c are unanswered
    assert acc.fail(b, OutOfOrderSequenceError("gap"), 1.0, uncertain=False) == []  # echo of a's failure
    assert acc.fail(c, OutOfOrderSequenceError("gap"), 1.0, uncertain=False) == []
    batches, wake = acc.drain(1.0)
    assert batches == [] and wake == pytest.approx(1.1)  # backoff of the first retry
    resent = []
    for _ in range(3):
        [batch] = drain_all(acc, 1.1)
        assert drain_all(acc, 1.1) == []  # a resend goes alone
        resent.append(batch)
        acc.acknowledge(batch, 1.1)
    assert resent == [a, b, c]
    assert [x.sequence for x in resent] == [0, a.record_count, a.record_count + b.record_count]
    assert all(x.data is not None for x in resent)  # same numbers: the encoded bytes are reused


def test_out_of_order_answer_overtaking_the_earlier_batch_is_retried_not_failed() -> None:
    acc = make()
    a, b, _ = three_in_flight(acc)
    # b's call reached the broker first; a is still unanswered
    assert acc.fail(b, OutOfOrderSequenceError("gap"), 1.0, uncertain=False) == []
    acc.acknowledge(a, 1.0)
    assert drain_all(acc, 1.0) == []  # c is still in flight
    [c] = [x for x in acc._topics["t"][0].in_flight]
    acc.acknowledge(c, 1.0)
    assert drain_all(acc, 1.0)[0] is b


def test_fatal_failure_fails_that_batch_and_renumbers_the_rest() -> None:
    acc = make()
    a, b, c = three_in_flight(acc)
    acc.acknowledge(a, 1.0)
    finished = acc.fail(b, CorruptRecordError("bad"), 1.0, uncertain=False)
    assert [(batch, type(error)) for batch, error in finished] == [(b, CorruptRecordError)]
    acc.fail(c, OutOfOrderSequenceError("gap"), 1.0, uncertain=False)
    resent = drain_all(acc, 1.0)[0]
    assert resent is c and c.sequence == a.record_count  # takes b's place in the sequence
    assert c.data is None and parse_header(c.encode(7)).base_sequence == a.record_count
    assert drain_all(acc, 1.0) == []
    acc.acknowledge(c, 1.0)
    d = drain_all(acc, 1.0)[0]
    assert d.sequence == c.sequence + c.record_count


def test_unexpected_out_of_order_is_fatal_and_restarts_the_sequence_on_a_new_epoch() -> None:
    acc = make()
    fill(acc, PER_BATCH)
    [a] = drain_all(acc, 0.0)
    finished = acc.fail(a, OutOfOrderSequenceError("expected 40"), 1.0, uncertain=False)
    assert [batch for batch, _ in finished] == [a]
    fill(acc, 1)
    acc.begin_flush()
    nxt = drain_all(acc, 1.0)[0]
    assert (nxt.epoch, nxt.sequence) == (1, 0)


def test_giving_up_a_batch_that_may_be_written_moves_the_partition_to_a_new_epoch() -> None:
    acc = make(delivery_timeout_ms=5_000)
    a, b, c = three_in_flight(acc)
    acc.acknowledge(a, 1.0)
    # the call with b broke: the broker may have appended it; c's broke too
    assert acc.fail(b, BrokerUnavailableError("gone"), 1.0, uncertain=True) == []
    assert acc.fail(c, BrokerUnavailableError("gone"), 1.0, uncertain=True) == []
    retried = drain_all(acc, 2.0)[0]
    assert retried is b and b.sequence == a.record_count  # retried with the same numbers: dedup works
    finished = acc.fail(b, BrokerUnavailableError("gone"), 6.0, uncertain=True)  # past its deadline
    errors = {batch.order: error for batch, error in finished}
    assert set(errors) == {1, 2}  # b gave up, and c (maybe written, after b) abandoned
    assert all(isinstance(e, UnknownDeliveryError) for e in errors.values())  # both may be written
    assert isinstance(errors[1], DeliveryTimeoutError) and not isinstance(errors[2], DeliveryTimeoutError)
    assert "may or may not have been written" in str(errors[1])
    nxt = drain_all(acc, 6.0)[0]
    assert (nxt.epoch, nxt.sequence) == (1, 0)


def test_certain_failures_past_the_deadline_renumber_without_a_new_epoch() -> None:
    acc = make(delivery_timeout_ms=5_000)
    a, b, c = three_in_flight(acc)
    acc.acknowledge(a, 1.0)
    finished = acc.fail(b, NotAvailableError("closing"), 6.0, uncertain=False)
    assert [batch for batch, _ in finished] == [b]
    finished = acc.fail(c, OutOfOrderSequenceError("gap"), 6.0, uncertain=False)
    assert [batch for batch, _ in finished] == [c]  # past its deadline too, and certainly not written
    d = drain_all(acc, 6.0)[0]
    assert d.order == 3 and (d.epoch, d.sequence) == (0, a.record_count)


def test_retries_limit() -> None:
    acc = make(retries=1)
    fill(acc, PER_BATCH)
    [a] = drain_all(acc, 0.0)
    assert acc.fail(a, NotAvailableError("x"), 0.0, uncertain=False) == []
    assert drain_all(acc, 10.0) == [a]
    [(batch, error)] = acc.fail(a, NotAvailableError("x"), 10.0, uncertain=False)
    assert batch is a and "retries=1" in str(error)


def test_lost_answer_before_an_acknowledged_batch_is_resent_with_its_own_numbers() -> None:
    """a's answer was lost but b (after it) was acknowledged, so the broker has a: resending a with its
    original sequence gets a duplicate answer; renumbering it would write it twice."""
    acc = make()
    a, b, c = three_in_flight(acc)
    assert acc.fail(a, BrokerUnavailableError("lost"), 1.0, uncertain=True) == []
    acc.acknowledge(c, 1.0)  # answers may be handled in any order
    acc.acknowledge(b, 1.0)
    resent = drain_all(acc, 2.0)[0]
    assert resent is a and (a.sequence, a.epoch) == (0, 0) and a.data is not None
    acc.acknowledge(a, 2.0)
    d = drain_all(acc, 2.0)[0]
    assert d.sequence == c.sequence + c.record_count


def test_backoff_grows_with_attempts() -> None:
    acc = make(delivery_timeout_ms=600_000)
    fill(acc, PER_BATCH)
    [a] = drain_all(acc, 0.0)
    now = 0.0
    delays = []
    for _ in range(5):
        acc.fail(a, NotAvailableError("x"), now, uncertain=False)
        _, wake = acc.drain(now)
        assert wake is not None
        delays.append(round(wake - now, 3))
        now = wake
        assert drain_all(acc, now) == [a]
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.0]


# --- expiry and abort ------------------------------------------------------------------------------------------------


def test_batches_waiting_past_the_delivery_timeout_expire() -> None:
    acc = make(delivery_timeout_ms=1_000, max_in_flight_requests_per_connection=1)
    fill(acc, PER_BATCH)
    in_flight = drain_all(acc, 0.0)
    futures = fill(acc, PER_BATCH + 1)  # behind it: a full batch and an open one
    assert acc.expire(0.5) == []
    finished = acc.expire(1.0)
    assert (
        len(finished) == 2
    )  # the queued full batch and the open one; the one in flight waits for its answer
    assert all(isinstance(e, DeliveryTimeoutError) for _, e in finished)
    assert acc.reserved == 1000
    acc.acknowledge(in_flight[0], 1.0)
    assert acc.reserved == 0 and not acc.has_unfinished()
    assert futures[-1]._outcome in {b.outcome for b, _ in finished}


def test_abort_fails_everything_and_releases_memory() -> None:
    acc = make()
    fill(acc, 10)
    [sent] = drain_all(acc, 0.0)
    fill(acc, 20)
    outcomes = acc.outcomes()
    closed = RuntimeError("closed")
    finished = acc.abort(closed)
    assert {b.outcome for b, _ in finished} == set(outcomes)
    assert acc.reserved == 0 and not acc.has_unfinished()
    errors = {batch: error for batch, error in finished}
    # the batch in flight may have been written: its fate is unknown; the others were never sent
    assert isinstance(errors.pop(sent), UnknownDeliveryError)
    assert all(error is closed for error in errors.values())


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        make(batch_size=0)
    with pytest.raises(ValueError, match="max_request_size"):
        make(max_request_size=10)
