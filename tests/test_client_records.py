"""Fetched bytes into ConsumerRecords, and the consumer's subscription state. No sockets, no sleeps."""

from __future__ import annotations

import pickle

import pytest
from logstore.client.consumer.fetcher import CompletedFetch
from logstore.client.consumer.records import (
    DECODE_CHUNK,
    ConsumerRecord,
    batch_positions,
    decode_all,
    record_class,
    with_deserializers,
)
from logstore.client.consumer.subscription import SubscriptionState
from logstore.client.shared.serde import json_deserializer, string_deserializer
from logstore.client.shared.types import TopicPartition

from logstore.records import LOG_APPEND_TIME, Record, build_batch, set_base_offset, set_log_append_time


def batches(*groups: list[Record], base: int = 0, append_time: int | None = None) -> bytes:
    """Batches back to back, with offsets assigned from ``base`` as a broker would."""
    out = bytearray()
    offset = base
    for records in groups:
        data = bytearray(build_batch(records))
        set_base_offset(data, 0, offset)
        if append_time is not None:
            set_log_append_time(data, 0, append_time)
        out += data
        offset += len(records)
    return bytes(out)


def values(n: int, start: int = 0) -> list[Record]:
    return [Record(0, 1000 + i, key=b"k%d" % i, value=b"v%d" % i) for i in range(start, start + n)]


def test_records_carry_topic_and_partition_and_every_field() -> None:
    data = batches([Record(0, 5, key=b"k", value=b"v", headers=[("h", b"1"), ("n", None)])], base=40)
    [record] = decode_all("orders", 3, data)
    assert isinstance(record, ConsumerRecord)
    assert (record.topic, record.partition, record.offset, record.timestamp) == ("orders", 3, 40, 5)
    assert (record.key, record.value, record.headers, record.timestamp_type) == (
        b"k",
        b"v",
        [("h", b"1"), ("n", None)],
        0,
    )
    assert record.topic_partition == TopicPartition("orders", 3)
    assert record == ConsumerRecord("orders", 3, 40, 5, 0, b"k", b"v", [("h", b"1"), ("n", None)])
    assert record != ConsumerRecord("orders", 4, 40, 5, 0, b"k", b"v", [("h", b"1"), ("n", None)])
    assert "topic='orders'" in repr(record)
    assert pickle.loads(pickle.dumps(record)) == record


def test_log_append_time_is_reported() -> None:
    [record] = decode_all("t", 0, batches(values(1), append_time=77))
    assert (record.timestamp, record.timestamp_type) == (77, LOG_APPEND_TIME)


def test_one_class_per_partition() -> None:
    assert record_class("a", 1) is record_class("a", 1)
    assert record_class("a", 1) is not record_class("a", 2)
    assert ConsumerRecord("a", 1, 0, 0).partition == 1


def test_records_before_the_start_offset_are_skipped_whole_batches_too() -> None:
    data = batches(values(5), values(5, 5), values(5, 10))
    assert len(batch_positions(data, 7)) == 2
    records = decode_all("t", 0, data, start_offset=7)
    assert [r.offset for r in records] == list(range(7, 15))
    assert [r.value for r in records][:2] == [b"v7", b"v8"]


def test_partial_tail_is_ignored() -> None:
    data = batches(values(3), values(3, 3))
    assert [r.offset for r in decode_all("t", 0, data[:-5])] == [0, 1, 2]


def test_deserializers_replace_in_place() -> None:
    records = decode_all("t", 0, batches([Record(0, 1, key=b"k", value=b'{"a": 1}')]))
    with_deserializers(records, string_deserializer, json_deserializer)
    assert (records[0].key, records[0].value) == ("k", {"a": 1})


def test_completed_fetch_hands_out_records_in_chunks_batch_by_batch() -> None:
    tp = TopicPartition("t", 0)
    completed = CompletedFetch(tp, 0, batches(values(4), values(4, 4), base=10), start_offset=11)
    assert completed.next_offset == 18
    first = completed.take(2, 11)
    assert [r.offset for r in first] == [11, 12]
    assert [r.offset for r in completed.take(5, 13)] == [13]  # the rest of the decoded batch first
    assert not completed.exhausted
    assert [r.offset for r in completed.take(10, 14)] == [14, 15, 16, 17]
    assert completed.exhausted and completed.take(10, 18) == []


# --- subscription state ----------------------------------------------------------------------------------------


TP0, TP1 = TopicPartition("t", 0), TopicPartition("t", 1)


def test_assigned_partitions_need_a_reset_until_seeked() -> None:
    state = SubscriptionState("earliest")
    state.assign([TP0, TP1])
    assert sorted(tp for tp, _, _ in state.resets_needed()) == [TP0, TP1]
    assert state.fetchable(0.0) == []
    state.seek(TP0, 5)
    assert [tp for tp, _ in state.fetchable(0.0)] == [TP0]
    assert state.state(TP0).position == 5 and state.state(TP0).fetch_offset == 5


def test_reassigning_keeps_positions_of_partitions_kept() -> None:
    state = SubscriptionState()
    state.assign([TP0, TP1])
    state.seek(TP0, 9)
    state.assign([TP0])
    assert state.assignment() == {TP0} and state.state(TP0).position == 9
    with pytest.raises(ValueError, match="not a topic partition"):
        state.assign([("t", -1)])  # type: ignore[list-item]


def test_a_reset_answer_after_a_seek_is_ignored() -> None:
    state = SubscriptionState("latest")
    state.assign([TP0])
    [(_, strategy, generation)] = state.resets_needed()
    assert strategy == "latest"
    state.seek(TP0, 3)
    assert not state.complete_reset(TP0, 100, generation)
    assert state.state(TP0).position == 3
    state.request_reset(TP0, "earliest")
    [(_, _, generation)] = state.resets_needed()
    assert state.complete_reset(TP0, 0, generation) and state.state(TP0).position == 0


def test_stale_fetches_are_refused_and_fetch_offsets_advance() -> None:
    state = SubscriptionState()
    state.assign([TP0])
    state.seek(TP0, 0)
    generation = state.state(TP0).generation
    assert state.fetched(TP0, generation, 10) and state.state(TP0).fetch_offset == 10
    state.seek(TP0, 4)
    assert not state.fetched(TP0, generation, 20)
    assert not state.is_current(TP0, generation)


def test_out_of_range_follows_auto_offset_reset() -> None:
    for strategy, expected in (("earliest", 3), ("latest", 50)):
        state = SubscriptionState(strategy)
        state.assign([TP0])
        state.seek(TP0, 1000)
        assert state.out_of_range(TP0, state.state(TP0).generation, 3, 50)
        assert state.state(TP0).position == expected
    state = SubscriptionState("none")
    state.assign([TP0])
    assert state.without_position() == [TP0] and state.resets_needed() == []
    state.seek(TP0, 1000)
    assert not state.out_of_range(TP0, state.state(TP0).generation, 3, 50)
    assert state.state(TP0).position == 1000


def test_pause_and_backoff_stop_fetching() -> None:
    state = SubscriptionState()
    state.assign([TP0, TP1])
    state.seek(TP0, 0)
    state.seek(TP1, 0)
    state.pause(TP0)
    assert state.paused() == {TP0} and [tp for tp, _ in state.fetchable(0.0)] == [TP1]
    state.resume(TP0)
    state.state(TP1).backoff_until = 5.0
    assert [tp for tp, _ in state.fetchable(1.0)] == [TP0]
    assert len(state.fetchable(5.0)) == 2


def test_bad_settings() -> None:
    with pytest.raises(ValueError, match="auto_offset_reset"):
        SubscriptionState("smallest")
    state = SubscriptionState()
    state.assign([TP0])
    with pytest.raises(ValueError, match="non-negative"):
        state.seek(TP0, -1)


def test_completed_fetch_decodes_a_large_batch_a_chunk_at_a_time() -> None:
    tp = TopicPartition("t", 0)
    count = 3 * DECODE_CHUNK + 5
    completed = CompletedFetch(tp, 0, batches([Record(0, 1000, value=b"%06d" % i) for i in range(count)]), 0)
    sizes: list[int] = []
    offsets: list[int] = []
    while not completed.exhausted:
        records = completed.take(10 * count, len(offsets))
        sizes.append(len(records))
        offsets += [r.offset for r in records]
    assert sizes == [DECODE_CHUNK] * 3 + [5]  # exhausted with the batch's last record, no empty take
    assert offsets == list(range(count))
