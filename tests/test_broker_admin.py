"""AdminService through the real gRPC stack: topics created, listed, described, grown, reconfigured, deleted."""

from __future__ import annotations

import grpc
import pytest
from logstore.wire.logstore.v1 import admin_pb2 as pb

from logstore.records import build_batch


def _status(call, *args) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as raised:
        call(*args)
    assert raised.value.details(), "every refusal says what was wrong"
    return raised.value.code()


def test_create_describe_list_and_delete(stubs) -> None:
    created = stubs.create_topic("orders", 3, **{"retention.ms": "3600000", "cleanup.policy": "delete"})
    assert created.name == "orders"
    assert [p.partition for p in created.partitions] == [0, 1, 2]
    assert created.config["retention.ms"] == "3600000"

    assert stubs.produce_one("orders", 1, build_batch([b"a", b"b"])).error_code == 0
    described = stubs.admin.DescribeTopic(pb.DescribeTopicRequest(name="orders")).topic
    offsets = [(p.partition, p.log_start_offset, p.log_end_offset) for p in described.partitions]
    assert offsets == [(0, 0, 0), (1, 0, 2), (2, 0, 0)]

    stubs.create_topic("audit")
    listed = stubs.admin.ListTopics(pb.ListTopicsRequest()).topics
    assert [(t.name, t.partitions) for t in listed] == [("audit", 1), ("orders", 3)]

    stubs.admin.DeleteTopic(pb.DeleteTopicRequest(name="orders"))
    assert [t.name for t in stubs.admin.ListTopics(pb.ListTopicsRequest()).topics] == ["audit"]
    assert (
        _status(stubs.admin.DescribeTopic, pb.DescribeTopicRequest(name="orders"))
        == grpc.StatusCode.NOT_FOUND
    )


def test_partitions_zero_means_the_broker_default(start_broker, connect) -> None:
    stubs = connect(start_broker(default_partitions=4))
    assert len(stubs.admin.CreateTopic(pb.CreateTopicRequest(name="t")).topic.partitions) == 4


def test_add_partitions_keeps_data_and_refuses_to_shrink(stubs) -> None:
    stubs.create_topic("t", 2)
    stubs.produce_one("t", 0, build_batch([b"kept"]))
    grown = stubs.admin.CreatePartitions(pb.CreatePartitionsRequest(name="t", total_partitions=5)).topic
    assert [(p.partition, p.log_end_offset) for p in grown.partitions] == [
        (0, 1),
        (1, 0),
        (2, 0),
        (3, 0),
        (4, 0),
    ]
    assert stubs.values("t", 0) == [b"kept"]
    assert stubs.produce_one("t", 4, build_batch([b"new"])).error_code == 0

    shrink = pb.CreatePartitionsRequest(name="t", total_partitions=2)
    assert _status(stubs.admin.CreatePartitions, shrink) == grpc.StatusCode.FAILED_PRECONDITION
    same = pb.CreatePartitionsRequest(name="t", total_partitions=5)
    assert _status(stubs.admin.CreatePartitions, same) == grpc.StatusCode.INVALID_ARGUMENT
    unknown = pb.CreatePartitionsRequest(name="nope", total_partitions=9)
    assert _status(stubs.admin.CreatePartitions, unknown) == grpc.StatusCode.NOT_FOUND


def test_alter_config_sets_and_resets(stubs) -> None:
    stubs.create_topic("t", 1, **{"retention.ms": "1000"})
    altered = stubs.admin.AlterTopicConfig(
        pb.AlterTopicConfigRequest(name="t", set={"segment.bytes": "1048576"}, reset=["retention.ms"])
    ).topic
    assert altered.config["segment.bytes"] == "1048576"
    assert altered.config["retention.ms"] == "604800000"
    described = stubs.admin.DescribeTopic(pb.DescribeTopicRequest(name="t")).topic
    assert described.config == altered.config

    both = pb.AlterTopicConfigRequest(name="t", set={"retention.ms": "5"}, reset=["retention.ms"])
    assert _status(stubs.admin.AlterTopicConfig, both) == grpc.StatusCode.INVALID_ARGUMENT
    unknown_key = pb.AlterTopicConfigRequest(name="t", set={"retention.weeks": "5"})
    assert _status(stubs.admin.AlterTopicConfig, unknown_key) == grpc.StatusCode.INVALID_ARGUMENT
    unknown_reset = pb.AlterTopicConfigRequest(name="t", reset=["colour"])
    assert _status(stubs.admin.AlterTopicConfig, unknown_reset) == grpc.StatusCode.INVALID_ARGUMENT
    missing = pb.AlterTopicConfigRequest(name="nope", set={"retention.ms": "5"})
    assert _status(stubs.admin.AlterTopicConfig, missing) == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("request_", "status"),
    [
        (pb.CreateTopicRequest(name="../x"), grpc.StatusCode.INVALID_ARGUMENT),
        (pb.CreateTopicRequest(name="x" * 300), grpc.StatusCode.INVALID_ARGUMENT),
        (pb.CreateTopicRequest(name=""), grpc.StatusCode.INVALID_ARGUMENT),
        (pb.CreateTopicRequest(name="t", partitions=-1), grpc.StatusCode.INVALID_ARGUMENT),
        (pb.CreateTopicRequest(name="t", partitions=1_000_000), grpc.StatusCode.INVALID_ARGUMENT),
        (pb.CreateTopicRequest(name="t", config={"retention.ms": "soon"}), grpc.StatusCode.INVALID_ARGUMENT),
        (
            pb.CreateTopicRequest(name="t", config={"max.message.bytes": str(2**30)}),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (pb.CreateTopicRequest(name="exists"), grpc.StatusCode.ALREADY_EXISTS),
    ],
)
def test_bad_create_requests_get_their_status_and_harm_nothing(stubs, request_, status) -> None:
    stubs.create_topic("exists")
    assert _status(stubs.admin.CreateTopic, request_) == status
    assert [t.name for t in stubs.admin.ListTopics(pb.ListTopicsRequest()).topics] == ["exists"]
    stubs.create_topic("fine")


def test_unknown_or_invalid_topic_in_admin_calls(stubs) -> None:
    assert _status(stubs.admin.DeleteTopic, pb.DeleteTopicRequest(name="ghost")) == grpc.StatusCode.NOT_FOUND
    bad_name = pb.DescribeTopicRequest(name="../x")
    assert _status(stubs.admin.DescribeTopic, bad_name) == grpc.StatusCode.INVALID_ARGUMENT
