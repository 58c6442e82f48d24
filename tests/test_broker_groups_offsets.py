"""Committed offsets and group administration over gRPC: commit and fetch, survival of restarts and
SIGKILL, list, describe with lag, delete, reset, and the internal `__consumer_offsets` topic."""

from __future__ import annotations

import grpc
import pytest
from logstore.broker.embedded import BrokerProcess
from logstore.wire.logstore.v1 import admin_pb2, group_pb2
from logstore.wire.logstore.v1 import common_pb2 as common

from logstore.records import BatchBuilder, build_batch
from tests.conftest import GroupMember, Stubs, committed_offsets, group_stub, partition_set

OFFSETS_TOPIC = "__consumer_offsets"


def outside_commit(
    stub, group_id: str, offsets: dict[tuple[str, int], int]
) -> group_pb2.CommitOffsetsResponse:
    """A commit from outside the group (member id "", epoch -1), as admin tools make."""
    return GroupMember(stub, group_id).commit(offsets, epoch=-1)


def rpc_error(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def test_a_member_commits_many_partitions_with_metadata_and_fetches_them(stubs) -> None:
    stub = group_stub(stubs)
    stubs.create_topic("orders", 3)
    member = GroupMember(stub, "billing", ["orders"])
    member.heartbeat()
    answer = member.commit({("orders", 0): 10, ("orders", 2): 30}, metadata="batch 7")
    assert answer.error_code == common.ERROR_CODE_NONE
    assert [(r.topic, r.partition, r.error_code) for r in answer.results] == [
        ("orders", 0, 0),
        ("orders", 2, 0),
    ]

    fetched = stub.FetchOffsets(group_pb2.FetchOffsetsRequest(group_id="billing")).offsets
    assert [(c.topic, c.partition, c.offset, c.metadata) for c in fetched] == [
        ("orders", 0, 10, "batch 7"),
        ("orders", 2, 30, "batch 7"),
    ]
    assert all(c.commit_timestamp_ms > 1_600_000_000_000 for c in fetched)
    assert committed_offsets(stub, "billing", [("orders", 2), ("orders", 1), ("nowhere", 0)]) == {
        ("orders", 2): 30,
        ("orders", 1): -1,
        ("nowhere", 0): -1,
    }
    whole_topic = stub.FetchOffsets(
        group_pb2.FetchOffsetsRequest(
            group_id="billing", partitions=[group_pb2.TopicPartitions(topic="orders")]
        )
    )
    assert [c.offset for c in whole_topic.offsets] == [10, -1, 30]
    assert committed_offsets(stub, "never-committed") == {}

    assert member.commit({("orders", 0): 11}).error_code == common.ERROR_CODE_NONE
    assert committed_offsets(stub, "billing", [("orders", 0)]) == {("orders", 0): 11}


def test_bad_entries_of_a_commit_are_refused_one_by_one_and_the_others_stored(stubs) -> None:
    stub = group_stub(stubs)
    stubs.create_topic("orders", 2)
    request = group_pb2.CommitOffsetsRequest(
        group_id="g",
        member_epoch=-1,
        offsets=[
            group_pb2.OffsetCommit(topic="orders", partition=0, offset=4),
            group_pb2.OffsetCommit(topic="missing", partition=0, offset=1),
            group_pb2.OffsetCommit(topic="orders", partition=9, offset=1),
            group_pb2.OffsetCommit(topic="orders", partition=1, offset=-5),
            group_pb2.OffsetCommit(topic="orders", partition=1, offset=1, metadata="x" * 4097),
            group_pb2.OffsetCommit(topic="bad/name", partition=0, offset=1),
        ],
    )
    answer = stub.CommitOffsets(request)
    assert answer.error_code == common.ERROR_CODE_NONE
    assert [r.error_code for r in answer.results] == [
        common.ERROR_CODE_NONE,
        common.ERROR_CODE_UNKNOWN_TOPIC,
        common.ERROR_CODE_UNKNOWN_PARTITION,
        common.ERROR_CODE_INVALID_REQUEST,
        common.ERROR_CODE_INVALID_REQUEST,
        common.ERROR_CODE_INVALID_TOPIC,
    ]
    assert all(r.error_message for r in answer.results[1:])
    assert committed_offsets(stub, "g") == {("orders", 0): 4}


def test_committed_offsets_survive_a_restart_and_members_rejoin(start_broker, connect) -> None:
    broker = start_broker()
    stubs = connect(broker)
    stubs.create_topic("orders", 2)
    member = GroupMember(group_stub(stubs), "billing", ["orders"])
    member.heartbeat()
    assert member.commit({("orders", 0): 5, ("orders", 1): 7}).error_code == common.ERROR_CODE_NONE
    broker.stop()

    stub = group_stub(connect(start_broker()))
    assert committed_offsets(stub, "billing") == {("orders", 0): 5, ("orders", 1): 7}
    (listing,) = stub.ListGroups(group_pb2.ListGroupsRequest()).groups
    assert (listing.group_id, listing.state, listing.member_count) == (
        "billing",
        group_pb2.GROUP_STATE_EMPTY,
        0,
    )
    assert_member_rejoins_after_restart(member, stub)


def assert_member_rejoins_after_restart(member: GroupMember, stub) -> None:
    """Membership is not stored: the old epoch is unknown, and a rejoin under the same id works."""
    member.stub = stub
    assert member.heartbeat().error_code == common.ERROR_CODE_UNKNOWN_MEMBER_ID
    assert member.commit({("orders", 0): 6}).error_code == common.ERROR_CODE_UNKNOWN_MEMBER_ID
    old_id = member.member_id
    member.epoch = 0
    assert member.heartbeat().error_code == common.ERROR_CODE_NONE
    assert member.member_id == old_id
    assert member.assignment == {("orders", 0), ("orders", 1)}
    assert member.commit({("orders", 0): 6}).error_code == common.ERROR_CODE_NONE


@pytest.mark.slow
def test_committed_offsets_survive_a_sigkill_of_the_broker(tmp_path) -> None:
    data_dir, log_path = tmp_path / "data", tmp_path / "broker.log"
    first = BrokerProcess(data_dir, log_path)
    first.start()
    assert first.address is not None
    stubs = Stubs.connect(first.address)
    try:
        stubs.create_topic("orders", 2)
        member = GroupMember(group_stub(stubs), "billing", ["orders"])
        member.heartbeat()
        for offset in range(1, 21):  # many commits; the last answered one must be what survives
            assert member.commit({("orders", 0): offset, ("orders", 1): 2 * offset}).error_code == 0
        assert first.kill() == -9
    finally:
        stubs.channel.close()

    second = BrokerProcess(data_dir, log_path)
    second.start()
    assert second.address is not None
    stubs = Stubs.connect(second.address)
    try:
        assert "previous shutdown was not clean" in second.log_text()
        stub = group_stub(stubs)
        assert committed_offsets(stub, "billing") == {("orders", 0): 20, ("orders", 1): 40}
        assert_member_rejoins_after_restart(member, stub)
        assert second.terminate() == 0
    finally:
        stubs.channel.close()
        if second.process is not None and second.process.poll() is None:
            second.kill()


def test_list_and_describe_groups_with_committed_offsets_log_end_offsets_and_lag(stubs) -> None:
    stub = group_stub(stubs)
    stubs.create_topic("orders", 2)
    assert stubs.produce_one("orders", 0, build_batch([b"r"] * 5)).error_code == 0
    assert stubs.produce_one("orders", 1, build_batch([b"r"] * 3)).error_code == 0
    member = GroupMember(stub, "billing", ["orders"], client_id="billing-1")
    member.heartbeat()
    assert member.commit({("orders", 0): 2}, metadata="m").error_code == 0
    assert outside_commit(stub, "audit", {("orders", 1): 3}).error_code == 0

    listed = stub.ListGroups(group_pb2.ListGroupsRequest()).groups
    assert [(g.group_id, g.state, g.member_count) for g in listed] == [
        ("audit", group_pb2.GROUP_STATE_EMPTY, 0),
        ("billing", group_pb2.GROUP_STATE_STABLE, 1),
    ]

    group = stub.DescribeGroup(group_pb2.DescribeGroupRequest(group_id="billing")).group
    assert (group.group_id, group.state, group.assignor) == (
        "billing",
        group_pb2.GROUP_STATE_STABLE,
        "uniform",
    )
    assert group.group_epoch == group.assignment_epoch >= 1
    (described,) = group.members
    assert (described.member_id, described.member_epoch, described.client_id) == (
        member.member_id,
        member.epoch,
        "billing-1",
    )
    assert described.client_host  # the address the member joined from
    assert described.state == group_pb2.MEMBER_STATE_STABLE
    assert list(described.subscribed_topic_names) == ["orders"]
    assert list(described.assigned_partitions) == partition_set([("orders", 0), ("orders", 1)])
    assert list(described.target_assignment) == list(described.assigned_partitions)
    assert list(described.pending_revocation) == []
    assert [
        (p.topic, p.partition, p.committed_offset, p.metadata, p.log_end_offset, p.lag, p.member_id)
        for p in group.offsets
    ] == [
        ("orders", 0, 2, "m", 5, 3, member.member_id),
        ("orders", 1, -1, "", 3, -1, member.member_id),
    ]

    audit = stub.DescribeGroup(group_pb2.DescribeGroupRequest(group_id="audit")).group
    assert (audit.state, list(audit.members)) == (group_pb2.GROUP_STATE_EMPTY, [])
    assert [
        (p.partition, p.committed_offset, p.log_end_offset, p.lag, p.member_id) for p in audit.offsets
    ] == [(1, 3, 3, 0, "")]


def test_a_group_is_deleted_with_its_offsets_only_once_it_has_no_members(start_broker, connect) -> None:
    broker = start_broker()
    stubs = connect(broker)
    stub = group_stub(stubs)
    stubs.create_topic("orders", 1)
    member = GroupMember(stub, "billing", ["orders"])
    member.heartbeat()
    assert member.commit({("orders", 0): 4}).error_code == 0

    refused = rpc_error(lambda: stub.DeleteGroup(group_pb2.DeleteGroupRequest(group_id="billing")))
    assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert member.member_id in str(refused.details())
    assert committed_offsets(stub, "billing") == {("orders", 0): 4}

    member.leave()
    stub.DeleteGroup(group_pb2.DeleteGroupRequest(group_id="billing"))
    assert list(stub.ListGroups(group_pb2.ListGroupsRequest()).groups) == []
    assert committed_offsets(stub, "billing") == {}
    again = rpc_error(lambda: stub.DeleteGroup(group_pb2.DeleteGroupRequest(group_id="billing")))
    assert again.code() == grpc.StatusCode.NOT_FOUND

    broker.stop()
    stub = group_stub(connect(start_broker()))
    assert committed_offsets(stub, "billing") == {}
    assert list(stub.ListGroups(group_pb2.ListGroupsRequest()).groups) == []


def _timestamped(timestamp_ms: int, count: int) -> bytes:
    builder = BatchBuilder()
    for _ in range(count):
        builder.append(b"r", timestamp_ms=timestamp_ms)
    return builder.build()


def test_reset_offsets_in_every_mode_only_without_members(stubs) -> None:
    stub = group_stub(stubs)
    stubs.create_topic("orders", 2)
    assert stubs.produce_one("orders", 0, _timestamped(1_000, 3)).base_offset == 0  # offsets 0-2
    assert stubs.produce_one("orders", 0, _timestamped(2_000, 2)).base_offset == 3  # offsets 3-4
    member = GroupMember(stub, "g", ["orders"])
    member.heartbeat()
    assert member.commit({("orders", 0): 1}).error_code == 0

    def reset(mode: group_pb2.ResetMode, scope=(("orders", 0),), **values) -> list[tuple[int, int]]:
        answer = stub.ResetOffsets(
            group_pb2.ResetOffsetsRequest(group_id="g", partitions=partition_set(scope), mode=mode, **values)
        )
        return [(r.previous_offset, r.new_offset) for r in answer.results]

    busy = rpc_error(lambda: reset(group_pb2.RESET_MODE_EARLIEST))
    assert busy.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "active member" in str(busy.details())
    member.leave()

    assert reset(group_pb2.RESET_MODE_LATEST, dry_run=True) == [(1, 5)]
    assert committed_offsets(stub, "g") == {("orders", 0): 1}, "a dry run changes nothing"
    assert reset(group_pb2.RESET_MODE_EARLIEST) == [(1, 0)]
    assert reset(group_pb2.RESET_MODE_LATEST) == [(0, 5)]
    assert reset(group_pb2.RESET_MODE_OFFSET, offset=2) == [(5, 2)]
    assert reset(group_pb2.RESET_MODE_OFFSET, offset=99) == [(2, 5)], "clamped to the log end offset"
    assert reset(group_pb2.RESET_MODE_TIMESTAMP, timestamp_ms=1_500) == [(5, 3)]
    assert reset(group_pb2.RESET_MODE_TIMESTAMP, timestamp_ms=9_000) == [(3, 5)], "nothing later: log end"
    assert reset(group_pb2.RESET_MODE_SHIFT, shift=-2) == [(5, 3)]
    assert reset(group_pb2.RESET_MODE_SHIFT, shift=-10) == [(3, 0)], "clamped to the log start offset"
    assert committed_offsets(stub, "g") == {("orders", 0): 0}

    for call, status in [
        (
            lambda: reset(group_pb2.RESET_MODE_SHIFT, scope=(("orders", 0), ("orders", 1)), shift=1),
            "INVALID_ARGUMENT",
        ),
        (lambda: reset(group_pb2.RESET_MODE_EARLIEST, scope=(("nowhere", 0),)), "NOT_FOUND"),
        (lambda: reset(group_pb2.RESET_MODE_EARLIEST, scope=(("orders", 7),)), "NOT_FOUND"),
        (lambda: reset(group_pb2.RESET_MODE_TIMESTAMP, timestamp_ms=-1), "INVALID_ARGUMENT"),
        (lambda: reset(group_pb2.RESET_MODE_OFFSET, offset=-1), "INVALID_ARGUMENT"),
    ]:
        assert rpc_error(call).code().name == status
    assert committed_offsets(stub, "g") == {("orders", 0): 0}, "a failed reset moves nothing"

    # A topic alone means all of its partitions; no scope means every partition with a committed offset.
    assert reset(group_pb2.RESET_MODE_LATEST, scope=()) == [(0, 5)]
    whole = stub.ResetOffsets(
        group_pb2.ResetOffsetsRequest(
            group_id="g",
            partitions=[group_pb2.TopicPartitions(topic="orders")],
            mode=group_pb2.RESET_MODE_EARLIEST,
        )
    ).results
    assert [(r.partition, r.previous_offset, r.new_offset) for r in whole] == [(0, 5, 0), (1, -1, 0)]
    assert committed_offsets(stub, "g") == {("orders", 0): 0, ("orders", 1): 0}


def test_consumer_offsets_is_internal_readable_but_not_listed_written_deleted_or_grown(
    start_broker, connect
) -> None:
    stubs = connect(start_broker(offsets_topic_partitions=3))
    stubs.create_topic("orders", 1)
    assert [t.name for t in stubs.admin.ListTopics(admin_pb2.ListTopicsRequest()).topics] == ["orders"]
    described = stubs.admin.DescribeTopic(admin_pb2.DescribeTopicRequest(name=OFFSETS_TOPIC)).topic
    assert (len(described.partitions), described.config["cleanup.policy"]) == (3, "compact")

    produced = stubs.produce_one(OFFSETS_TOPIC, 0, build_batch([b"forged"]))
    assert produced.error_code == common.ERROR_CODE_INVALID_TOPIC
    assert "internal" in produced.error_message
    for call, status in [
        (
            lambda: stubs.admin.DeleteTopic(admin_pb2.DeleteTopicRequest(name=OFFSETS_TOPIC)),
            "INVALID_ARGUMENT",
        ),
        (
            lambda: stubs.admin.CreatePartitions(
                admin_pb2.CreatePartitionsRequest(name=OFFSETS_TOPIC, total_partitions=9)
            ),
            "INVALID_ARGUMENT",
        ),
        (lambda: stubs.create_topic(OFFSETS_TOPIC, 1), "ALREADY_EXISTS"),
    ]:
        assert rpc_error(call).code().name == status
    assert (
        len(stubs.admin.DescribeTopic(admin_pb2.DescribeTopicRequest(name=OFFSETS_TOPIC)).topic.partitions)
        == 3
    )

    stub = group_stub(stubs)
    assert outside_commit(stub, "g", {("orders", 0): 1}).error_code == 0
    stored = sum(p.log_end_offset for p in described.partitions)
    after = stubs.admin.DescribeTopic(admin_pb2.DescribeTopicRequest(name=OFFSETS_TOPIC)).topic
    assert sum(p.log_end_offset for p in after.partitions) == stored + 1, "the commit is a record in it"


def test_deleting_a_topic_forgets_its_committed_offsets(stubs) -> None:
    stub = group_stub(stubs)
    stubs.create_topic("gone", 1)
    stubs.create_topic("kept", 1)
    assert outside_commit(stub, "g", {("gone", 0): 3, ("kept", 0): 4}).error_code == 0
    stubs.admin.DeleteTopic(admin_pb2.DeleteTopicRequest(name="gone"))
    assert committed_offsets(stub, "g") == {("kept", 0): 4}
    stubs.create_topic("gone", 1)
    assert committed_offsets(stub, "g", [("gone", 0)]) == {("gone", 0): -1}, "a new topic starts clean"
