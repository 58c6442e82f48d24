"""PublishRecords and FetchRecords: plain records in and out, against the codec (the batches the broker
builds are read back with Fetch and `logstore.records`), the partitioner, and the bad-input errors."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st
from logstore.broker.embedded import EmbeddedBroker
from logstore.broker.errors import ERROR_CODE_KEY
from logstore.broker.service.fetch_records import plain_records
from logstore.broker.service.publish import KeylessRoundRobin, build_batches, key_partition, place
from logstore.client.producer.partitioner import key_partition as client_key_partition
from logstore.wire.logstore.v1 import common_pb2, fetch_pb2, produce_pb2

from logstore.records import Record, build_batch, iter_headers, iter_records
from tests.conftest import StartBroker, Stubs
from tests.waiting import broker_waiters, wait_until

NOW_MS = 1_700_000_000_000


def record(
    value: bytes | None = b"v",
    key: bytes | None = None,
    headers: tuple[tuple[str, bytes | None], ...] = (),
    timestamp_ms: int | None = None,
) -> common_pb2.Record:
    message = common_pb2.Record(
        headers=[
            common_pb2.RecordHeader(key=k) if v is None else common_pb2.RecordHeader(key=k, value=v)
            for k, v in headers
        ]
    )
    if value is not None:
        message.value = value
    if key is not None:
        message.key = key
    if timestamp_ms is not None:
        message.timestamp_ms = timestamp_ms
    return message


def publish(stubs: Stubs, topic: str, records: list[common_pb2.Record], **fields: object):
    request = produce_pb2.PublishRecordsRequest(topic=topic, records=records, **fields)  # type: ignore[arg-type]
    return stubs.produce.PublishRecords(request)


def fetch_records(stubs: Stubs, topic: str, partition: int = 0, offset: int = 0, **fields: int):
    request = fetch_pb2.FetchRecordsRequest(topic=topic, partition=partition, offset=offset, **fields)
    return stubs.fetch.FetchRecords(request)


def decoded(stubs: Stubs, topic: str, partition: int) -> list[Record]:
    """Every record of a partition read the raw way: Fetch, then the codec."""
    return list(iter_records(stubs.fetch_one(topic, partition, 0).records))


def error_code(error: grpc.RpcError) -> int:
    metadata: Any = error.trailing_metadata()  # (key, value) tuples
    return int(dict(metadata)[ERROR_CODE_KEY])


# --- the pure parts ------------------------------------------------------------------------------------


@given(st.binary(max_size=64), st.integers(min_value=1, max_value=1000))
def test_the_broker_places_keys_as_the_client_partitioner_does(key: bytes, partitions: int) -> None:
    assert key_partition(key, partitions) == client_key_partition(key, partitions)


def test_place_keeps_request_order_per_partition_and_sends_keyless_records_to_one() -> None:
    records = [record(b"a", b"k1"), record(b"b"), record(b"c", b"k2"), record(b"d"), record(b"e", b"k1")]
    asked: list[int] = []

    def keyless() -> int:
        asked.append(5)
        return 5

    placed = place(records, 100, keyless)
    assert asked == [5]  # one partition for every keyless record of the call
    place([record(b"a", b"k1")], 100, keyless)
    assert asked == [5]  # only keyed records: not asked
    k1, k2 = key_partition(b"k1", 100), key_partition(b"k2", 100)
    assert len({5, k1, k2}) == 3  # the keys chosen land apart, so each list below is one key's
    assert {number: [r.value for r in found] for number, found in placed.items()} == {
        5: [b"b", b"d"],
        k1: [b"a", b"e"],
        k2: [b"c"],
    }


def test_keyless_calls_go_round_robin_per_topic() -> None:
    keyless = KeylessRoundRobin()
    assert [keyless.partition("t", 3) for _ in range(4)] == [0, 1, 2, 0]
    assert keyless.partition("other", 3) == 0
    assert keyless.partition("t", 2) == 1  # fewer partitions now: still in range


def test_built_batches_decode_to_the_records_and_match_the_reference_builder() -> None:
    records = [
        record(b"v1", b"k", (("h", b"x"), ("n", None)), NOW_MS - 5),
        record(None, b"tombstone"),
        record(b"", None, (), -1),
    ]
    batches = build_batches(records, NOW_MS, 1_000_000)
    expected = build_batch(
        [
            Record(0, NOW_MS - 5, key=b"k", value=b"v1", headers=[("h", b"x"), ("n", None)]),
            Record(0, NOW_MS, key=b"tombstone", value=None),
            Record(0, -1, key=None, value=b""),
        ]
    )
    assert batches == expected  # one codec: the same bytes as logstore.records' own builder


def test_batches_are_split_at_the_limit() -> None:
    records = [record(bytes(100)) for _ in range(50)]
    batches = build_batches(records, NOW_MS, 1000)
    headers = [header for _, header in iter_headers(batches)]
    assert len(headers) > 1
    assert all(header.size <= 1000 for header in headers)
    assert sum(header.record_count for header in headers) == 50
    assert [r.value for r in iter_records(batches)] == [bytes(100)] * 50


def test_plain_records_skip_offsets_before_the_one_asked_for_and_stop_at_max() -> None:
    batch = bytearray(build_batch([Record(0, NOW_MS, value=bytes([i])) for i in range(10)]))
    batch[0:8] = (100).to_bytes(8, "big")  # base offset 100 (not covered by the CRC)
    records, after = plain_records(bytes(batch), 103, 4)
    assert [(r.offset, r.value) for r in records] == [
        (103, b"\x03"),
        (104, b"\x04"),
        (105, b"\x05"),
        (106, b"\x06"),
    ]
    assert after == 107
    assert plain_records(bytes(batch), 110, 4) == ([], 110)


# --- against a real broker -----------------------------------------------------------------------------


def test_published_records_come_back_identical_via_fetch_and_fetch_records(stubs: Stubs) -> None:
    stubs.create_topic("plain", partitions=1)
    sent = [
        record(b"v0", b"k0", (("trace", b"abc"), ("empty", b""), ("null", None)), NOW_MS),
        record(b"v1", None, (), NOW_MS + 7),
        record(None, b"deleted", (), NOW_MS + 9),
        record(b"", b"", (), -1),
    ]
    response = publish(stubs, "plain", sent, partition=0, acks=produce_pb2.ACKS_ALL)
    (result,) = response.results
    assert (result.partition, result.error_code, result.base_offset) == (0, 0, 0)

    raw = decoded(stubs, "plain", 0)
    assert [(r.offset, r.key, r.value, r.headers, r.timestamp) for r in raw] == [
        (0, b"k0", b"v0", [("trace", b"abc"), ("empty", b""), ("null", None)], NOW_MS),
        (1, None, b"v1", [], NOW_MS + 7),
        (2, b"deleted", None, [], NOW_MS + 9),
        (3, b"", b"", [], -1),
    ]

    fetched = fetch_records(stubs, "plain")
    assert fetched.error_code == 0 and fetched.high_watermark == 4 and fetched.next_offset == 4
    assert [r.offset for r in fetched.records] == [0, 1, 2, 3]
    for got, want in zip(fetched.records, sent, strict=True):
        assert got.HasField("key") == want.HasField("key") and got.key == want.key
        assert got.HasField("value") == want.HasField("value") and got.value == want.value
        assert list(got.headers) == list(want.headers)
        assert got.timestamp_ms == want.timestamp_ms


def test_records_without_a_timestamp_get_the_brokers_clock(stubs: Stubs) -> None:
    publish(stubs, "stamped", [record(b"x")], partition=0)
    (got,) = fetch_records(stubs, "stamped").records
    (raw,) = decoded(stubs, "stamped", 0)
    assert got.timestamp_ms == raw.timestamp > NOW_MS


def test_keys_land_where_the_partitioner_says(stubs: Stubs) -> None:
    stubs.create_topic("keyed", partitions=7)
    keys = [f"key-{i}".encode() for i in range(60)]
    response = publish(stubs, "keyed", [record(b"v-" + key, key) for key in keys])
    assert [r.partition for r in response.results] == sorted({key_partition(k, 7) for k in keys})
    assert all(r.error_code == 0 for r in response.results)
    for partition in range(7):
        expected = [k for k in keys if key_partition(k, 7) == partition]
        assert [r.key for r in decoded(stubs, "keyed", partition)] == expected
        assert [r.value for r in fetch_records(stubs, "keyed", partition).records] == [
            b"v-" + k for k in expected
        ]


def test_keyless_records_of_a_call_stay_together_and_calls_rotate(stubs: Stubs) -> None:
    stubs.create_topic("spread", partitions=3)
    used = []
    for call in range(3):
        (result,) = publish(stubs, "spread", [record(bytes([call, i])) for i in range(5)]).results
        used.append(result.partition)
    assert sorted(used) == [0, 1, 2]
    for call, partition in enumerate(used):
        assert [r.value for r in decoded(stubs, "spread", partition)] == [bytes([call, i]) for i in range(5)]


def test_base_offsets_continue_a_partition_and_acks_none_answers_nothing(stubs: Stubs) -> None:
    first = publish(stubs, "offsets", [record(b"a"), record(b"b")], partition=0, acks=produce_pb2.ACKS_LEADER)
    assert first.results[0].base_offset == 0
    assert publish(stubs, "offsets", [record(b"c")], partition=0, acks=produce_pb2.ACKS_NONE).results == []
    third = publish(stubs, "offsets", [record(b"d")], partition=0)
    assert third.results[0].base_offset == 3
    assert [r.value for r in fetch_records(stubs, "offsets").records] == [b"a", b"b", b"c", b"d"]


def test_fetch_records_pages_by_max_records_and_next_offset(stubs: Stubs) -> None:
    publish(stubs, "pages", [record(bytes([i])) for i in range(10)], partition=0)
    seen = []
    offset = 0
    while True:
        page = fetch_records(stubs, "pages", offset=offset, max_records=3)
        if not page.records:
            break
        assert len(page.records) <= 3
        seen += [r.value for r in page.records]
        offset = page.next_offset
    assert seen == [bytes([i]) for i in range(10)]
    assert offset == 10


def test_fetch_records_long_poll_wakes_on_append(broker: EmbeddedBroker, stubs: Stubs) -> None:
    publish(stubs, "poll", [record(b"old")], partition=0)
    request = fetch_pb2.FetchRecordsRequest(topic="poll", partition=0, offset=1, max_wait_ms=120_000)
    waiting = stubs.fetch.FetchRecords.future(request)
    wait_until(lambda: broker_waiters(broker) == 1, "the fetch waits")
    assert not waiting.done()
    publish(stubs, "poll", [record(b"new", b"key", (("h", b"1"),))], partition=0)
    answer = waiting.result(timeout=30)
    assert [(r.offset, r.key, r.value, list(r.headers)) for r in answer.records] == [
        (1, b"key", b"new", [common_pb2.RecordHeader(key="h", value=b"1")])
    ]
    assert answer.high_watermark == 2 and answer.next_offset == 2


def test_fetch_records_with_no_wait_answers_empty_at_the_end(stubs: Stubs) -> None:
    publish(stubs, "end", [record(b"x")], partition=0)
    answer = fetch_records(stubs, "end", offset=1)
    assert answer.error_code == 0 and list(answer.records) == [] and answer.next_offset == 1
    assert answer.high_watermark == 1


# --- bad input: the same codes as Produce and Fetch ----------------------------------------------------


def test_no_records_is_invalid_argument(stubs: Stubs) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        publish(stubs, "t", [])
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_code(caught.value) == common_pb2.ERROR_CODE_INVALID_REQUEST
    assert "no records" in str(caught.value.details())


def test_a_timestamp_beyond_the_year_9999_refuses_the_call_as_invalid_timestamp(stubs: Stubs) -> None:
    for wild in (-(2**63), 2**63 - 1, 253_402_300_800_000):
        with pytest.raises(grpc.RpcError) as caught:
            publish(stubs, "t", [record(timestamp_ms=NOW_MS), record(timestamp_ms=wild)])
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_code(caught.value) == common_pb2.ERROR_CODE_INVALID_TIMESTAMP
        assert f"timestamp_ms {wild} is beyond the year 9999" in str(caught.value.details())
    publish(stubs, "t", [record(timestamp_ms=0), record(timestamp_ms=253_402_300_799_999)], partition=0)


def test_bad_acks_and_timeout_are_invalid_argument(stubs: Stubs) -> None:
    for fields in ({"acks": 9}, {"timeout_ms": -1}):
        with pytest.raises(grpc.RpcError) as caught:
            publish(stubs, "t", [record()], **fields)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_bad_topic_name_is_invalid_topic(stubs: Stubs) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        publish(stubs, "a/b", [record()])
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_code(caught.value) == common_pb2.ERROR_CODE_INVALID_TOPIC
    assert fetch_records(stubs, "a/b").error_code == common_pb2.ERROR_CODE_INVALID_TOPIC


def test_unknown_topic_without_auto_create(start_broker: StartBroker, connect) -> None:
    stubs = connect(start_broker(auto_create_topics=False))
    with pytest.raises(grpc.RpcError) as caught:
        publish(stubs, "missing", [record()])
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_code(caught.value) == common_pb2.ERROR_CODE_UNKNOWN_TOPIC
    produced = stubs.produce_one("missing", 0, build_batch([b"x"]))
    assert produced.error_code == common_pb2.ERROR_CODE_UNKNOWN_TOPIC
    assert caught.value.details() == produced.error_message
    fetched = fetch_records(stubs, "missing")
    assert fetched.error_code == common_pb2.ERROR_CODE_UNKNOWN_TOPIC


def test_auto_created_on_publish(stubs: Stubs) -> None:
    response = publish(stubs, "fresh", [record(b"x")])
    assert response.results[0].error_code == 0
    assert [r.value for r in fetch_records(stubs, "fresh", response.results[0].partition).records] == [b"x"]


def test_partition_out_of_range_answers_as_produce_and_fetch_do(stubs: Stubs) -> None:
    stubs.create_topic("three", partitions=3)
    (result,) = publish(stubs, "three", [record()], partition=3).results
    produced = stubs.produce_one("three", 3, build_batch([b"x"]))
    assert result.error_code == produced.error_code == common_pb2.ERROR_CODE_UNKNOWN_PARTITION
    assert result.error_message == produced.error_message
    assert result.base_offset == -1
    fetched = fetch_records(stubs, "three", partition=3)
    assert (
        fetched.error_code
        == stubs.fetch_one("three", 3, 0).error_code
        == common_pb2.ERROR_CODE_UNKNOWN_PARTITION
    )


def test_a_record_too_large_for_the_topic_is_record_too_large(stubs: Stubs) -> None:
    stubs.create_topic("small", partitions=1, **{"max.message.bytes": "1000"})
    (result,) = publish(stubs, "small", [record(bytes(2000))], partition=0).results
    assert result.error_code == common_pb2.ERROR_CODE_RECORD_TOO_LARGE
    assert "max.message.bytes" in result.error_message
    (fine,) = publish(stubs, "small", [record(bytes(300)) for _ in range(10)], partition=0).results
    assert fine.error_code == 0  # split into batches that each fit
    assert len(fetch_records(stubs, "small").records) == 10


def test_a_request_over_the_brokers_limit_is_resource_exhausted(start_broker: StartBroker, connect) -> None:
    limit = 1024 * 1024
    stubs = connect(start_broker(max_request_bytes=limit, topic_defaults={"max.message.bytes": "65536"}))
    with pytest.raises(grpc.RpcError) as caught:
        publish(stubs, "big", [record(bytes(1000)) for _ in range(limit // 1000 + 1)])
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert publish(stubs, "big", [record(b"fine")]).results[0].base_offset == 0


def test_a_bad_timestamp_is_invalid_timestamp(stubs: Stubs) -> None:
    (result,) = publish(stubs, "stamps", [record(timestamp_ms=-5)], partition=0).results
    assert result.error_code == common_pb2.ERROR_CODE_INVALID_TIMESTAMP


def test_fetch_records_refuses_negative_fields_and_offsets_outside_the_log(stubs: Stubs) -> None:
    publish(stubs, "range", [record()], partition=0)
    for fields in ({"max_records": -1}, {"max_wait_ms": -1}):
        with pytest.raises(grpc.RpcError) as caught:
            fetch_records(stubs, "range", **fields)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert fetch_records(stubs, "range", offset=5).error_code == common_pb2.ERROR_CODE_OFFSET_OUT_OF_RANGE
