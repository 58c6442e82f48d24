"""Bad input gets its documented code, harms nothing, and the next good request still works."""

from __future__ import annotations

import socket

import grpc
import pytest
from logstore.wire.logstore.v1 import admin_pb2, fetch_pb2, produce_pb2, produce_pb2_grpc
from logstore.wire.logstore.v1 import common_pb2 as common

from logstore.records import build_batch
from tests.test_records_validate import BAD_BATCHES

GOOD = [b"first", b"second"]


@pytest.fixture
def seeded(stubs):
    """A topic holding two good records, so every test can check they are untouched afterwards."""
    stubs.create_topic("t", 2)
    assert stubs.produce_one("t", 0, build_batch(GOOD)).error_code == 0
    yield stubs
    assert stubs.values("t", 0) == GOOD
    assert stubs.produce_one("t", 0, build_batch([b"still works"])).base_offset == len(GOOD)


_BAD_CONTENTS = [
    "garbage-records",
    "gzip-header-over-garbage",
    "snappy-garbage",
    "lz4-garbage",
    "lz4-dependent-blocks",
    "1000-offsets-for-one-record",
    "bytes-left-after-records",
]


def _corrupt_crc(batch: bytes) -> bytes:
    broken = bytearray(batch)
    broken[-1] ^= 0xFF  # a record byte: covered by the CRC
    return bytes(broken)


@pytest.mark.parametrize(
    ("records", "code"),
    [
        (b"\x00garbage bytes that are no record batch at all" * 3, common.ERROR_CODE_CORRUPT_RECORD),
        (_corrupt_crc(build_batch([b"v"])), common.ERROR_CODE_CORRUPT_RECORD),
        (build_batch([b"v" * 100])[:-7], common.ERROR_CODE_CORRUPT_RECORD),
        (build_batch([b"v"]) + build_batch([b"w"])[:30], common.ERROR_CODE_CORRUPT_RECORD),
        (b"", common.ERROR_CODE_CORRUPT_RECORD),
        # CRC-valid batches with bad contents (Kafka's LogValidator refuses them too)
        *((BAD_BATCHES[name][0], common.ERROR_CODE_CORRUPT_RECORD) for name in _BAD_CONTENTS),
        (BAD_BATCHES["negative-timestamp"][0], common.ERROR_CODE_INVALID_TIMESTAMP),
        (BAD_BATCHES["max-timestamp-too-small"][0], common.ERROR_CODE_INVALID_TIMESTAMP),
    ],
    ids=[
        "garbage",
        "wrong-crc",
        "truncated",
        "good-then-partial",
        "empty",
        *_BAD_CONTENTS,
        "negative-timestamp",
        "max-timestamp-too-small",
    ],
)
def test_bad_batches_are_refused_per_partition_and_the_others_are_appended(seeded, records, code) -> None:
    request = produce_pb2.ProduceRequest(
        acks=produce_pb2.ACKS_ALL,
        partitions=[
            produce_pb2.ProducePartitionData(topic="t", partition=1, records=build_batch([b"ok"])),
            produce_pb2.ProducePartitionData(topic="t", partition=0, records=records),
        ],
    )
    ok, bad = seeded.produce.Produce(request).results
    assert (ok.error_code, ok.base_offset) == (0, 0)
    assert bad.error_code == code
    assert bad.error_message
    assert bad.base_offset == -1
    assert seeded.values("t", 1) == [b"ok"]


def test_a_batch_over_the_topic_limit_is_too_large(seeded) -> None:
    seeded.create_topic("small", 1, **{"max.message.bytes": "1000"})
    result = seeded.produce_one("small", 0, build_batch([b"x" * 2000]))
    assert result.error_code == common.ERROR_CODE_RECORD_TOO_LARGE
    assert "1000" in result.error_message
    assert seeded.produce_one("small", 0, build_batch([b"x" * 100])).error_code == 0


@pytest.mark.parametrize(
    ("topic", "partition", "code"),
    [
        ("../x", 0, common.ERROR_CODE_INVALID_TOPIC),
        ("x" * 300, 0, common.ERROR_CODE_INVALID_TOPIC),
        ("", 0, common.ERROR_CODE_INVALID_TOPIC),
        ("t", 7, common.ERROR_CODE_UNKNOWN_PARTITION),
        ("t", -1, common.ERROR_CODE_UNKNOWN_PARTITION),
    ],
)
def test_bad_names_and_partitions_in_produce_fetch_and_list_offsets(seeded, topic, partition, code) -> None:
    assert seeded.produce_one(topic, partition, build_batch([b"v"])).error_code == code
    assert seeded.fetch_one(topic, partition, 0).error_code == code
    query = fetch_pb2.ListOffsetsPartition(
        topic=topic, partition=partition, spec=fetch_pb2.OFFSET_SPEC_LATEST
    )
    assert (
        seeded.fetch.ListOffsets(fetch_pb2.ListOffsetsRequest(partitions=[query])).results[0].error_code
        == code
    )


def test_unknown_topic_without_auto_creation(start_broker, connect) -> None:
    stubs = connect(start_broker(auto_create_topics=False))
    assert stubs.produce_one("ghost", 0, build_batch([b"v"])).error_code == common.ERROR_CODE_UNKNOWN_TOPIC
    assert stubs.fetch_one("ghost", 0, 0).error_code == common.ERROR_CODE_UNKNOWN_TOPIC


@pytest.mark.parametrize("offset", [-1, -(2**63), 3, 2**63 - 1])
def test_offsets_outside_the_log_are_out_of_range_with_the_valid_range(seeded, offset) -> None:
    result = seeded.fetch_one("t", 0, offset)
    assert result.error_code == common.ERROR_CODE_OFFSET_OUT_OF_RANGE
    assert (result.log_start_offset, result.high_watermark) == (0, len(GOOD))
    assert "0 to 2" in result.error_message


def test_a_negative_partition_max_bytes_is_an_invalid_request(seeded) -> None:
    request = fetch_pb2.FetchRequest(
        partitions=[fetch_pb2.FetchPartition(topic="t", partition=0, max_bytes=-5)]
    )
    result = seeded.fetch.Fetch(request).results[0]
    assert result.error_code == common.ERROR_CODE_INVALID_REQUEST


def test_a_request_over_the_size_limit_is_resource_exhausted(start_broker, connect) -> None:
    limit = 1024 * 1024
    stubs = connect(start_broker(max_request_bytes=limit, topic_defaults={"max.message.bytes": "65536"}))
    stubs.create_topic("t")
    huge = produce_pb2.ProducePartitionData(topic="t", partition=0, records=b"\0" * (limit + 1))
    with pytest.raises(grpc.RpcError) as raised:
        stubs.produce.Produce(produce_pb2.ProduceRequest(partitions=[huge]))
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert stubs.produce_one("t", 0, build_batch([b"fine"])).base_offset == 0

    too_big_for_requests = admin_pb2.CreateTopicRequest(name="big", config={"max.message.bytes": str(limit)})
    with pytest.raises(grpc.RpcError) as raised:
        stubs.admin.CreateTopic(too_big_for_requests)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "max_request_bytes" in str(raised.value.details())


def test_garbage_on_the_socket_does_not_disturb_other_clients(broker, seeded) -> None:
    host, port = broker.address.rsplit(":", 1)
    for garbage in (
        b"\x16\x03\x01 not http/2 at all" * 50,
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\xff" * 500,
    ):
        with socket.create_connection((host, int(port)), timeout=5) as raw:
            raw.sendall(garbage)
            raw.shutdown(socket.SHUT_WR)
            while raw.recv(4096):
                pass


def test_the_client_names_max_request_bytes_when_grpc_refuses_a_request_as_too_large(start_broker) -> None:
    """gRPC's own size refusal (RESOURCE_EXHAUSTED, no error-code trailer) gets the hint naming the
    broker's max_request_bytes flag, so the user knows which limit to raise."""
    from logstore.client import Admin
    from logstore.client.shared.errors import error_from_rpc

    limit = 1024 * 1024
    broker = start_broker(max_request_bytes=limit, topic_defaults={"max.message.bytes": "65536"})
    with Admin(broker.address) as admin:
        admin.create_topic("t", 1)
    channel = grpc.insecure_channel(broker.address)
    try:
        stub = produce_pb2_grpc.ProduceServiceStub(channel)
        huge = produce_pb2.ProducePartitionData(topic="t", partition=0, records=b"\0" * (limit + 1))
        with pytest.raises(grpc.RpcError) as raised:
            stub.Produce(produce_pb2.ProduceRequest(partitions=[huge]))
    finally:
        channel.close()
    message = str(error_from_rpc(raised.value, "Produce"))
    assert "RESOURCE_EXHAUSTED" in message
    assert "--max-request-bytes" in message, message
