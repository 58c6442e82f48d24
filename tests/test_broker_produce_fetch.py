"""Produce, fetch and list offsets through the real gRPC stack, over several partitions."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from logstore.wire.logstore.v1 import admin_pb2, fetch_pb2, produce_pb2
from logstore.wire.logstore.v1 import common_pb2 as common

from logstore.records import Record, build_batch, iter_records
from tests.waiting import broker_waiters, wait_until


def _entry(topic: str, partition: int, records: bytes) -> produce_pb2.ProducePartitionData:
    return produce_pb2.ProducePartitionData(topic=topic, partition=partition, records=records)


def test_produce_to_many_partitions_in_one_call_and_fetch_them_back(stubs) -> None:
    stubs.create_topic("a", 2)
    stubs.create_topic("b", 1)
    request = produce_pb2.ProduceRequest(
        acks=produce_pb2.ACKS_ALL,
        partitions=[
            _entry("a", 0, build_batch([b"a0-1", b"a0-2"]) + build_batch([b"a0-3"])),
            _entry("a", 1, build_batch([b"a1-1"])),
            _entry("b", 0, build_batch([b"b0-1"])),
            _entry("a", 0, build_batch([b"a0-4"])),
        ],
    )
    results = stubs.produce.Produce(request).results
    assert [(r.topic, r.partition, r.error_code, r.base_offset) for r in results] == [
        ("a", 0, 0, 0),
        ("a", 1, 0, 0),
        ("b", 0, 0, 0),
        ("a", 0, 0, 3),
    ]
    assert all(r.log_append_time_ms == -1 and r.log_start_offset == 0 for r in results)

    fetched = stubs.fetch.Fetch(
        fetch_pb2.FetchRequest(
            partitions=[
                fetch_pb2.FetchPartition(topic="a", partition=0, offset=1),
                fetch_pb2.FetchPartition(topic="a", partition=1, offset=0),
                fetch_pb2.FetchPartition(topic="b", partition=0, offset=1),
            ]
        )
    ).results
    assert [(r.topic, r.partition, r.error_code, r.high_watermark) for r in fetched] == [
        ("a", 0, 0, 4),
        ("a", 1, 0, 1),
        ("b", 0, 0, 1),
    ]
    first = list(iter_records(fetched[0].records))
    assert [(r.offset, r.value) for r in first] == [(0, b"a0-1"), (1, b"a0-2"), (2, b"a0-3"), (3, b"a0-4")]
    assert [r.value for r in iter_records(fetched[1].records)] == [b"a1-1"]
    assert fetched[2].records == b""


def test_log_append_time_topics_answer_with_the_broker_time(stubs) -> None:
    stubs.create_topic("stamped", 1, **{"message.timestamp.type": "LogAppendTime"})
    before = time.time_ns() // 1_000_000
    result = stubs.produce_one("stamped", 0, build_batch([Record(0, 5, 0, None, b"v", [])]))
    assert result.log_append_time_ms >= before
    (record,) = iter_records(stubs.fetch_one("stamped", 0, 0).records)
    assert record.timestamp == result.log_append_time_ms


@pytest.mark.parametrize(
    "acks", [produce_pb2.ACKS_LEADER, produce_pb2.ACKS_ALL, produce_pb2.ACKS_UNSPECIFIED]
)
def test_acknowledged_produce_answers_with_offsets(stubs, acks) -> None:
    stubs.create_topic("t")
    assert stubs.produce_one("t", 0, build_batch([b"x"]), acks=acks).base_offset == 0
    assert stubs.produce_one("t", 0, build_batch([b"y"]), acks=acks).base_offset == 1
    assert stubs.values("t", 0) == [b"x", b"y"]


def test_acks_all_data_is_durable_when_answered(broker, stubs) -> None:
    stubs.create_topic("t")
    stubs.produce_one("t", 0, build_batch([b"x"] * 10), acks=produce_pb2.ACKS_ALL)
    partition_log = broker.run(lambda: broker.server.core.manager.log("t", 0))
    assert partition_log.flushed_offset >= 10


def test_concurrent_acks_all_producers_share_fsyncs_and_all_get_answers(stubs) -> None:
    stubs.create_topic("t", 2)

    def produce(thread: int) -> list[int]:
        return [
            stubs.produce_one(
                "t", i % 2, build_batch([f"{thread}-{i}".encode()]), acks=produce_pb2.ACKS_ALL
            ).base_offset
            for i in range(20)
        ]

    with ThreadPoolExecutor(max_workers=4) as pool:
        offsets = list(pool.map(produce, range(4)))
    assert sorted(o for per_thread in offsets for o in per_thread) == sorted(list(range(40)) * 2)


def test_acks_none_answers_without_results_and_appends_in_order(stubs) -> None:
    stubs.create_topic("t")
    for value in (b"1", b"2", b"3"):
        response = stubs.produce.Produce(
            produce_pb2.ProduceRequest(
                acks=produce_pb2.ACKS_NONE, partitions=[_entry("t", 0, build_batch([value]))]
            )
        )
        assert list(response.results) == []
    # A later acknowledged produce is appended after every earlier acks=0 one on the same connection.
    assert stubs.produce_one("t", 0, build_batch([b"4"]), acks=produce_pb2.ACKS_LEADER).base_offset == 3
    assert stubs.values("t", 0) == [b"1", b"2", b"3", b"4"]


def test_fetch_long_poll_wakes_up_on_append(broker, stubs) -> None:
    stubs.create_topic("t", 2)
    waiting = stubs.fetch.Fetch.future(
        fetch_pb2.FetchRequest(
            partitions=[
                fetch_pb2.FetchPartition(topic="t", partition=0, offset=0),
                fetch_pb2.FetchPartition(topic="t", partition=1, offset=0),
            ],
            min_bytes=1,
            max_wait_ms=120_000,
        )
    )
    wait_until(lambda: broker_waiters(broker) == 2, "the fetch waits")
    assert not waiting.done()
    stubs.produce_one("t", 1, build_batch([b"wake up"]), acks=produce_pb2.ACKS_LEADER)
    results = waiting.result(timeout=30).results
    assert results[0].records == b""
    assert [r.value for r in iter_records(results[1].records)] == [b"wake up"]


def test_fetch_answers_at_once_with_min_bytes_zero_and_after_max_wait_without_data(stubs) -> None:
    stubs.create_topic("t")
    assert stubs.fetch_one("t", 0, 0, min_bytes=0, max_wait_ms=600_000).records == b""
    empty = stubs.fetch_one("t", 0, 0, min_bytes=1, max_wait_ms=1)
    assert (empty.error_code, empty.records, empty.high_watermark) == (0, b"", 0)


def test_fetch_max_bytes_limits_the_answer_but_always_returns_one_batch(stubs) -> None:
    stubs.create_topic("t", 3)
    big = build_batch([b"x" * 5000])
    for partition in range(3):
        stubs.produce_one("t", partition, big + big)
    request = fetch_pb2.FetchRequest(
        partitions=[
            fetch_pb2.FetchPartition(topic="t", partition=p, offset=0, max_bytes=100) for p in range(3)
        ],
        max_bytes=len(big) + 10,
    )
    results = stubs.fetch.Fetch(request).results
    assert [len(r.records) for r in results] == [len(big), 0, 0]
    assert [r.high_watermark for r in results] == [2, 2, 2]


def test_list_offsets_earliest_latest_and_by_time(stubs) -> None:
    stubs.create_topic("t")
    for offset, timestamp in enumerate((1_000, 2_000, 3_000)):
        record = Record(0, timestamp, 0, None, f"at {timestamp}".encode(), [])
        assert stubs.produce_one("t", 0, build_batch([record])).base_offset == offset

    def lookup(spec: fetch_pb2.OffsetSpec, timestamp_ms: int = 0) -> fetch_pb2.ListOffsetsPartitionResult:
        query = fetch_pb2.ListOffsetsPartition(topic="t", partition=0, spec=spec, timestamp_ms=timestamp_ms)
        return stubs.fetch.ListOffsets(fetch_pb2.ListOffsetsRequest(partitions=[query])).results[0]

    assert lookup(fetch_pb2.OFFSET_SPEC_EARLIEST).offset == 0
    assert lookup(fetch_pb2.OFFSET_SPEC_LATEST).offset == 3
    found = lookup(fetch_pb2.OFFSET_SPEC_TIMESTAMP, 1_500)
    assert (found.offset, found.timestamp_ms) == (1, 2_000)
    assert lookup(fetch_pb2.OFFSET_SPEC_TIMESTAMP, 3_000).offset == 2
    assert lookup(fetch_pb2.OFFSET_SPEC_TIMESTAMP, 9_999).offset == -1
    assert lookup(fetch_pb2.OFFSET_SPEC_TIMESTAMP, -5).error_code == common.ERROR_CODE_INVALID_TIMESTAMP
    assert lookup(fetch_pb2.OFFSET_SPEC_UNSPECIFIED).error_code == common.ERROR_CODE_INVALID_REQUEST


def test_auto_creation_on_produce_uses_the_default_partition_count(start_broker, connect) -> None:
    stubs = connect(start_broker(default_partitions=3))
    assert stubs.produce_one("fresh", 2, build_batch([b"v"])).error_code == 0
    assert stubs.values("fresh", 2) == [b"v"]
    assert (
        stubs.produce_one("fresh2", 3, build_batch([b"v"])).error_code == common.ERROR_CODE_UNKNOWN_PARTITION
    )
    unknown_for_fetch = stubs.fetch_one("never-produced", 0, 0)
    assert unknown_for_fetch.error_code == common.ERROR_CODE_UNKNOWN_TOPIC


def test_auto_creation_can_be_switched_off(start_broker, connect) -> None:
    stubs = connect(start_broker(auto_create_topics=False))
    refused = stubs.produce_one("fresh", 0, build_batch([b"v"]))
    assert refused.error_code == common.ERROR_CODE_UNKNOWN_TOPIC
    assert "create it first" in refused.error_message
    stubs.create_topic("fresh")
    assert stubs.produce_one("fresh", 0, build_batch([b"v"])).error_code == 0


def test_describe_with_allow_auto_create_follows_the_broker_setting(start_broker, connect, tmp_path) -> None:
    on = connect(start_broker(default_partitions=3))
    described = on.admin.DescribeTopic(
        admin_pb2.DescribeTopicRequest(name="meta-first", allow_auto_create=True)
    )
    assert len(described.topic.partitions) == 3
    with pytest.raises(grpc.RpcError) as plain:  # without the flag, describe never creates
        on.admin.DescribeTopic(admin_pb2.DescribeTopicRequest(name="other"))
    assert plain.value.code() == grpc.StatusCode.NOT_FOUND
    off = connect(start_broker(auto_create_topics=False, data_dir=tmp_path / "off"))
    with pytest.raises(grpc.RpcError) as refused:
        off.admin.DescribeTopic(admin_pb2.DescribeTopicRequest(name="meta-first", allow_auto_create=True))
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    assert "does not create topics automatically" in str(refused.value.details())
    with pytest.raises(grpc.RpcError) as internal:
        on.admin.DescribeTopic(admin_pb2.DescribeTopicRequest(name="__nope", allow_auto_create=False))
    assert internal.value.code() == grpc.StatusCode.NOT_FOUND


def _idempotent(producer_id: int, sequence: int, *values: bytes) -> bytes:
    return build_batch(list(values), producer_id=producer_id, producer_epoch=0, base_sequence=sequence)


def test_producer_ids_are_unique_across_restarts(start_broker, connect) -> None:
    broker = start_broker()
    stubs = connect(broker)
    first = [stubs.produce.InitProducerId(produce_pb2.InitProducerIdRequest()).producer_id for _ in range(3)]
    broker.stop()
    stubs = connect(start_broker())
    after = stubs.produce.InitProducerId(produce_pb2.InitProducerIdRequest())
    assert len(set(first)) == 3
    assert after.producer_id > max(first)
    assert after.producer_epoch == 0


def test_idempotent_retry_is_answered_with_its_first_offset_also_after_a_restart(
    start_broker, connect
) -> None:
    broker = start_broker()
    stubs = connect(broker)
    stubs.create_topic("t")
    pid = stubs.produce.InitProducerId(produce_pb2.InitProducerIdRequest()).producer_id
    first = _idempotent(pid, 0, b"a", b"b")
    second = _idempotent(pid, 2, b"c")
    assert stubs.produce_one("t", 0, first).base_offset == 0
    assert stubs.produce_one("t", 0, second).base_offset == 2
    retry = stubs.produce_one("t", 0, second)
    assert (retry.error_code, retry.base_offset) == (0, 2)

    broker.stop()
    stubs = connect(start_broker())
    after_restart = stubs.produce_one("t", 0, second)
    assert (after_restart.error_code, after_restart.base_offset) == (0, 2)
    assert stubs.produce_one("t", 0, _idempotent(pid, 3, b"d")).base_offset == 3
    assert stubs.values("t", 0) == [b"a", b"b", b"c", b"d"]


def test_a_batch_claiming_a_producers_id_and_sequence_is_refused_not_acknowledged(stubs) -> None:
    """Issue 9 item 14: a batch under the same producer id, epoch and sequence as one written before used
    to be answered as its retry, with its offset, though not a byte of it was written."""
    stubs.create_topic("t")
    pid = stubs.produce.InitProducerId(produce_pb2.InitProducerIdRequest()).producer_id
    mine = _idempotent(pid, 0, b"mine")
    assert stubs.produce_one("t", 0, mine).base_offset == 0
    # A stranger takes the producer's next sequence; the producer's own batch with it is then refused.
    assert stubs.produce_one("t", 0, _idempotent(pid, 1, b"stranger")).base_offset == 1
    own = stubs.produce_one("t", 0, _idempotent(pid, 1, b"mine too"))
    assert own.error_code == common.ERROR_CODE_DUPLICATE_SEQUENCE_NUMBER
    assert own.base_offset == -1
    assert "already wrote sequences 1..1 at offsets 1..1" in own.error_message
    retry = stubs.produce_one("t", 0, mine)  # a real retry is still answered as the duplicate it is
    assert (retry.error_code, retry.base_offset) == (0, 0)
    assert stubs.values("t", 0) == [b"mine", b"stranger"]


def test_a_sequence_gap_is_rejected_with_its_own_code(stubs) -> None:
    stubs.create_topic("t")
    pid = stubs.produce.InitProducerId(produce_pb2.InitProducerIdRequest()).producer_id
    assert stubs.produce_one("t", 0, _idempotent(pid, 0, b"a")).error_code == 0
    gap = stubs.produce_one("t", 0, _idempotent(pid, 5, b"f"))
    assert gap.error_code == common.ERROR_CODE_OUT_OF_ORDER_SEQUENCE
    assert gap.base_offset == -1
    assert stubs.produce_one("t", 0, _idempotent(pid, 1, b"b")).base_offset == 1
    assert stubs.values("t", 0) == [b"a", b"b"]


def test_an_older_producer_epoch_is_fenced(stubs) -> None:
    stubs.create_topic("t")
    pid = stubs.produce.InitProducerId(produce_pb2.InitProducerIdRequest()).producer_id
    newer = build_batch([b"new"], producer_id=pid, producer_epoch=3, base_sequence=0)
    older = build_batch([b"old"], producer_id=pid, producer_epoch=2, base_sequence=1)
    assert stubs.produce_one("t", 0, newer).error_code == 0
    assert stubs.produce_one("t", 0, older).error_code == common.ERROR_CODE_INVALID_PRODUCER_EPOCH
    assert stubs.values("t", 0) == [b"new"]


@pytest.mark.parametrize(
    ("request_", "fragment"),
    [
        (produce_pb2.ProduceRequest(), "names no partitions"),
        (produce_pb2.ProduceRequest(acks=9, partitions=[_entry("t", 0, b"")]), "acks must be"),  # type: ignore[arg-type]
        (produce_pb2.ProduceRequest(timeout_ms=-1, partitions=[_entry("t", 0, b"")]), "timeout_ms"),
        (produce_pb2.ProduceRequest(partitions=[_entry("t", 0, b"")] * 10_001), "the limit is 10000"),
    ],
)
def test_malformed_produce_requests_are_invalid_arguments(stubs, request_, fragment) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        stubs.produce.Produce(request_)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert fragment in str(raised.value.details())
    assert stubs.produce_one("t", 0, build_batch([b"fine"])).base_offset == 0


@pytest.mark.parametrize(
    ("request_", "fragment"),
    [
        (fetch_pb2.FetchRequest(), "names no partitions"),
        (fetch_pb2.FetchRequest(min_bytes=-1, partitions=[fetch_pb2.FetchPartition(topic="t")]), "min_bytes"),
        (
            fetch_pb2.FetchRequest(max_wait_ms=-1, partitions=[fetch_pb2.FetchPartition(topic="t")]),
            "max_wait_ms",
        ),
        (fetch_pb2.FetchRequest(max_bytes=-1, partitions=[fetch_pb2.FetchPartition(topic="t")]), "max_bytes"),
        (fetch_pb2.ListOffsetsRequest(), "names no partitions"),
    ],
)
def test_malformed_fetch_requests_are_invalid_arguments(stubs, request_, fragment) -> None:
    call = (
        stubs.fetch.ListOffsets if isinstance(request_, fetch_pb2.ListOffsetsRequest) else stubs.fetch.Fetch
    )
    with pytest.raises(grpc.RpcError) as raised:
        call(request_)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert fragment in str(raised.value.details())
