"""Consumer-group membership over gRPC: sharing, liveness, leaving, fencing, topic changes, bad input.

Members are driven with the raw GroupService stub (see `GroupMember` in conftest). Waiting is always a
bounded loop of heartbeats that ends when the condition holds; the pause between rounds only paces the
members, it never decides an outcome.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, cast

import grpc
import pytest
from logstore.broker.group_machine import CoordinatorConfig
from logstore.broker.settings import SettingsError, add_arguments, load
from logstore.wire.logstore.v1 import admin_pb2, group_pb2
from logstore.wire.logstore.v1 import common_pb2 as common

from logstore.records import build_batch
from tests.conftest import GroupMember, committed_offsets, flatten, group_stub, partition_set

SESSION_TIMEOUT_MS = 1000
HEARTBEAT_INTERVAL_MS = 100
PACE_S = 0.02
"""Pause between heartbeat rounds: faster than the heartbeat interval, as a keen client would be."""
ROUNDS_LIMIT_S = 15.0


@pytest.fixture
def group_broker(start_broker, connect):
    """A broker with a short session timeout, and stubs for it: (admin-capable Stubs, GroupService stub)."""
    broker = start_broker(
        group_session_timeout_ms=SESSION_TIMEOUT_MS, group_heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS
    )
    stubs = connect(broker)
    return stubs, group_stub(stubs)


def assert_no_partition_held_twice(members: Sequence[GroupMember]) -> None:
    seen: dict[tuple[str, int], str] = {}
    for member in members:
        for tp in member.assignment:
            assert tp not in seen, f"{tp} answered to both {seen[tp]} and {member.member_id}"
            seen[tp] = member.member_id


def heartbeat_until(
    members: Sequence[GroupMember], done: Callable[[], bool], limit_s: float = ROUNDS_LIMIT_S
) -> int:
    """Heartbeat every member, round after round, until `done()`; checks after every single heartbeat
    that no partition is in two members' answered assignments. Returns the number of rounds."""
    deadline = time.monotonic() + limit_s
    rounds = 0
    while not done():
        assert time.monotonic() < deadline, "the group did not get there: " + repr(
            [(m.member_id, sorted(m.assignment)) for m in members]
        )
        for member in members:
            answer = member.heartbeat()
            assert answer.error_code == common.ERROR_CODE_NONE, answer.error_message
            assert_no_partition_held_twice(members)
        rounds += 1
        if not done():
            time.sleep(PACE_S)
    return rounds


def partitions(topic: str, *numbers: int) -> frozenset[tuple[str, int]]:
    return frozenset((topic, n) for n in numbers)


def evenly_shared(members: Sequence[GroupMember], total: int) -> Callable[[], bool]:
    def check() -> bool:
        sizes = [len(m.assignment) for m in members]
        return sum(sizes) == total and max(sizes) - min(sizes) <= 1

    return check


def test_three_members_share_six_partitions_and_a_dead_members_move_after_the_session_timeout(
    group_broker, record_property
) -> None:
    stubs, stub = group_broker
    stubs.create_topic("jobs", 6)
    members = [GroupMember(stub, "workers", ["jobs"]) for _ in range(3)]
    heartbeat_until(members, evenly_shared(members, 6))
    assert [len(m.assignment) for m in members] == [2, 2, 2]
    assert members[0].last is not None
    assert members[0].last.heartbeat_interval_ms == HEARTBEAT_INTERVAL_MS
    assert members[0].last.session_timeout_ms == SESSION_TIMEOUT_MS

    dead, survivors = members[2], members[:2]
    orphaned = dead.assignment
    last_heartbeat_sent = time.monotonic()
    assert dead.heartbeat().error_code == common.ERROR_CODE_NONE
    heartbeat_until(survivors, lambda: all(any(tp in m.assignment for m in survivors) for tp in orphaned))
    handed_over = time.monotonic()
    handover_ms = (handed_over - last_heartbeat_sent) * 1000
    record_property("handover_ms", round(handover_ms))
    print(f"hand-over after a member died: {handover_ms:.0f} ms (session timeout {SESSION_TIMEOUT_MS} ms)")
    # The broker cannot have removed the member before its session ended (a bound, not a timing guess;
    # less 1 ms because the broker's clock counts whole milliseconds).
    assert handover_ms > SESSION_TIMEOUT_MS - 1
    assert sorted(len(m.assignment) for m in survivors) == [3, 3]

    # The dead member comes back as a zombie: its commit is refused and stores nothing.
    refused = dead.commit({("jobs", p): 1 for _, p in orphaned})
    assert refused.error_code == common.ERROR_CODE_UNKNOWN_MEMBER_ID
    assert all(r.error_code == common.ERROR_CODE_UNKNOWN_MEMBER_ID for r in refused.results)
    assert set(committed_offsets(stub, "workers", orphaned).values()) == {-1}
    assert dead.heartbeat().error_code == common.ERROR_CODE_UNKNOWN_MEMBER_ID


def test_the_broker_removes_a_silent_member_on_its_own_without_any_call_touching_the_group(
    group_broker, caplog
) -> None:
    """Survivors' heartbeats would notice a timed-out member too; here nobody calls, so only the broker's
    own timer can remove it."""
    caplog.set_level(logging.INFO, logger="logstore.broker.domain.groups")
    stubs, stub = group_broker
    stubs.create_topic("jobs", 1)
    member = GroupMember(stub, "lonely", ["jobs"])
    assert member.heartbeat().error_code == common.ERROR_CODE_NONE
    last_heartbeat_sent = time.monotonic()

    def removed() -> bool:
        return any("removed member " + member.member_id in r.getMessage() for r in caplog.records)

    deadline = time.monotonic() + ROUNDS_LIMIT_S
    while not removed():
        assert time.monotonic() < deadline, "the silent member was never removed"
        time.sleep(PACE_S)
    assert (time.monotonic() - last_heartbeat_sent) * 1000 > SESSION_TIMEOUT_MS - 1  # whole-ms clock
    assert "session_timeout" in next(
        r.getMessage() for r in caplog.records if "removed member" in r.getMessage()
    )
    (listing,) = stub.ListGroups(group_pb2.ListGroupsRequest()).groups
    assert (listing.group_id, listing.state, listing.member_count) == (
        "lonely",
        group_pb2.GROUP_STATE_EMPTY,
        0,
    )


def test_a_member_that_leaves_hands_its_partitions_over_at_once(group_broker) -> None:
    stubs, stub = group_broker
    stubs.create_topic("jobs", 6)
    members = [GroupMember(stub, "workers", ["jobs"]) for _ in range(3)]
    heartbeat_until(members, evenly_shared(members, 6))

    leaving, survivors = members[2], members[:2]
    left = leaving.leave()
    assert (left.error_code, left.member_epoch, list(left.assignment)) == (common.ERROR_CODE_NONE, -1, [])
    for member in survivors:  # one heartbeat each, no waiting for any timeout
        assert member.heartbeat().error_code == common.ERROR_CODE_NONE
    assert_no_partition_held_twice(survivors)
    assert sorted(len(m.assignment) for m in survivors) == [3, 3]
    assert survivors[0].assignment | survivors[1].assignment == partitions("jobs", *range(6))


def test_a_partition_moves_only_after_its_owner_has_released_it(group_broker) -> None:
    stubs, stub = group_broker
    stubs.create_topic("jobs", 2)
    first = GroupMember(stub, "workers", ["jobs"])
    first.heartbeat()
    assert first.assignment == partitions("jobs", 0, 1)

    second = GroupMember(stub, "workers", ["jobs"])
    assert second.heartbeat().error_code == common.ERROR_CODE_NONE
    assert second.assignment == frozenset(), "nothing is free until the first member releases a partition"
    # The first member's next answer revokes one partition; until it reports owning only the other one,
    # the second member waits.
    told = first.stub.Heartbeat(
        group_pb2.HeartbeatRequest(group_id="workers", member_id=first.member_id, member_epoch=first.epoch)
    )
    assert len(told.assignment[0].partitions) == 1
    first.assignment = flatten(told.assignment)  # released, but not reported yet
    assert second.heartbeat().error_code == common.ERROR_CODE_NONE
    assert second.assignment == frozenset()
    first.heartbeat()  # now reports owning only what the answer left it
    heartbeat_until([first, second], evenly_shared([first, second], 2))


def test_fenced_and_unknown_members_cannot_commit(group_broker) -> None:
    stubs, stub = group_broker
    stubs.create_topic("jobs", 2)
    member = GroupMember(stub, "workers", ["jobs"])
    member.heartbeat()
    stale_epoch = member.epoch
    other = GroupMember(stub, "workers", ["jobs"])
    heartbeat_until([member, other], evenly_shared([member, other], 2))
    assert member.epoch > stale_epoch

    fenced = member.commit({("jobs", 0): 5}, epoch=stale_epoch)
    assert fenced.error_code == common.ERROR_CODE_FENCED_MEMBER_EPOCH
    assert "epoch" in fenced.error_message
    assert [r.error_code for r in fenced.results] == [common.ERROR_CODE_FENCED_MEMBER_EPOCH]

    stranger = GroupMember(stub, "workers")
    stranger.member_id, stranger.epoch = "no-such-member", 3
    unknown = stranger.commit({("jobs", 0): 6})
    assert unknown.error_code == common.ERROR_CODE_UNKNOWN_MEMBER_ID

    outsider = GroupMember(stub, "workers")
    outsider.epoch = -1
    busy = outsider.commit({("jobs", 0): 7})
    assert busy.error_code == common.ERROR_CODE_NON_EMPTY_GROUP

    assert committed_offsets(stub, "workers", [("jobs", 0)]) == {("jobs", 0): -1}
    assert member.commit({("jobs", 0): 8}).error_code == common.ERROR_CODE_NONE
    assert committed_offsets(stub, "workers", [("jobs", 0)]) == {("jobs", 0): 8}

    zombie = member.heartbeat(member_epoch=member.epoch + 7)
    assert zombie.error_code == common.ERROR_CODE_FENCED_MEMBER_EPOCH
    assert (zombie.member_epoch, list(zombie.assignment)) == (0, [])
    assert zombie.heartbeat_interval_ms == HEARTBEAT_INTERVAL_MS


def test_a_static_member_that_comes_back_keeps_its_partitions(group_broker) -> None:
    stubs, stub = group_broker
    stubs.create_topic("jobs", 4)
    members = [GroupMember(stub, "workers", ["jobs"], instance_id=f"host-{n}") for n in range(2)]
    heartbeat_until(members, evenly_shared(members, 4))
    held, old_epoch = members[1].assignment, members[1].epoch
    away = members[1].heartbeat(member_epoch=-2, instance_id="host-1")
    assert (away.error_code, away.member_epoch) == (common.ERROR_CODE_NONE, -2)

    back = GroupMember(stub, "workers", ["jobs"], instance_id="host-1")
    assert back.heartbeat().error_code == common.ERROR_CODE_NONE
    assert back.assignment == held
    twin = members[1].heartbeat(member_epoch=old_epoch)
    assert twin.error_code == common.ERROR_CODE_FENCED_INSTANCE_ID


def test_new_partitions_and_matching_topics_are_assigned_and_deleted_topics_unassigned(group_broker) -> None:
    stubs, stub = group_broker
    stubs.create_topic("orders-eu", 2)
    stubs.create_topic("audit", 1)
    member = GroupMember(stub, "readers", ["events"], regex="orders-.*")
    member.heartbeat()
    assert member.assignment == partitions("orders-eu", 0, 1)

    stubs.admin.CreatePartitions(admin_pb2.CreatePartitionsRequest(name="orders-eu", total_partitions=3))
    heartbeat_until([member], lambda: ("orders-eu", 2) in member.assignment)

    stubs.create_topic("orders-us", 1)
    heartbeat_until([member], lambda: ("orders-us", 0) in member.assignment)

    assert stubs.produce_one("events", 0, build_batch([b"e"])).error_code == 0  # auto-creates "events"
    heartbeat_until([member], lambda: ("events", 0) in member.assignment)

    stubs.admin.DeleteTopic(admin_pb2.DeleteTopicRequest(name="orders-eu"))
    heartbeat_until([member], lambda: not any(t == "orders-eu" for t, _ in member.assignment))
    assert member.assignment == partitions("orders-us", 0) | partitions("events", 0)


@pytest.mark.parametrize(
    ("join", "code"),
    [
        ({"group_id": ""}, common.ERROR_CODE_INVALID_GROUP_REQUEST),
        ({"regex": "orders-(["}, common.ERROR_CODE_INVALID_REGULAR_EXPRESSION),
        ({"server_assignor": "round-robin"}, common.ERROR_CODE_UNSUPPORTED_ASSIGNOR),
        ({"member_epoch": -3}, common.ERROR_CODE_INVALID_GROUP_REQUEST),
        ({"no_subscription": True}, common.ERROR_CODE_INVALID_GROUP_REQUEST),
        ({"member_epoch": 4}, common.ERROR_CODE_INVALID_GROUP_REQUEST),  # a non-zero epoch needs a member id
        ({"member_id": "ghost", "member_epoch": 4}, common.ERROR_CODE_UNKNOWN_MEMBER_ID),
    ],
    ids=["empty-group", "bad-regex", "unknown-assignor", "bad-epoch", "no-subscription", "no-id", "ghost"],
)
def test_bad_heartbeats_get_their_code_and_the_group_carries_on(group_broker, join, code) -> None:
    stubs, stub = group_broker
    stubs.create_topic("orders", 2)
    steady = GroupMember(stub, "g", ["orders"])
    steady.heartbeat()
    request = group_pb2.HeartbeatRequest(group_id=join.get("group_id", "g"))
    if not join.get("no_subscription"):
        request.subscription.topic_names.append("orders")
        request.subscription.topic_regex = join.get("regex", "")
    request.server_assignor = join.get("server_assignor", "")
    request.member_epoch = join.get("member_epoch", 0)
    request.member_id = join.get("member_id", "")
    answer = stub.Heartbeat(request)
    assert answer.error_code == code
    assert answer.error_message
    assert list(answer.assignment) == []
    assert steady.heartbeat().error_code == common.ERROR_CODE_NONE
    assert steady.assignment == partitions("orders", 0, 1)


def test_bad_admin_requests_get_their_status_and_the_broker_carries_on(group_broker) -> None:
    stubs, stub = group_broker
    calls = [
        (
            lambda: stub.DescribeGroup(group_pb2.DescribeGroupRequest(group_id="nobody")),
            grpc.StatusCode.NOT_FOUND,
        ),
        (
            lambda: stub.DeleteGroup(group_pb2.DeleteGroupRequest(group_id="nobody")),
            grpc.StatusCode.NOT_FOUND,
        ),
        (lambda: stub.DescribeGroup(group_pb2.DescribeGroupRequest()), grpc.StatusCode.INVALID_ARGUMENT),
        (lambda: stub.DeleteGroup(group_pb2.DeleteGroupRequest()), grpc.StatusCode.INVALID_ARGUMENT),
        (lambda: stub.FetchOffsets(group_pb2.FetchOffsetsRequest()), grpc.StatusCode.INVALID_ARGUMENT),
        (
            lambda: stub.CommitOffsets(group_pb2.CommitOffsetsRequest(group_id="g", member_epoch=-1)),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            lambda: stub.ResetOffsets(group_pb2.ResetOffsetsRequest(group_id="g")),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            lambda: stub.ResetOffsets(
                group_pb2.ResetOffsetsRequest(group_id="nobody", mode=group_pb2.RESET_MODE_EARLIEST)
            ),
            grpc.StatusCode.NOT_FOUND,
        ),
    ]
    for call, status in calls:
        with pytest.raises(grpc.RpcError) as caught:
            call()
        assert caught.value.code() == status, caught.value.details()
        assert caught.value.details()
    empty_id = stub.CommitOffsets(
        group_pb2.CommitOffsetsRequest(
            member_epoch=-1, offsets=[group_pb2.OffsetCommit(topic="t", partition=0, offset=1)]
        )
    )
    assert empty_id.error_code == common.ERROR_CODE_INVALID_GROUP_REQUEST
    assert list(stub.ListGroups(group_pb2.ListGroupsRequest()).groups) == []
    stubs.create_topic("t", 1)
    assert GroupMember(stub, "g", ["t"]).heartbeat().error_code == common.ERROR_CODE_NONE


def test_each_group_gets_the_assignor_its_first_member_asks_for(group_broker) -> None:
    stubs, stub = group_broker
    stubs.create_topic("jobs", 4)
    ranged = [GroupMember(stub, "ranged", ["jobs"], server_assignor="range") for _ in range(2)]
    uniform = [GroupMember(stub, "uniform", ["jobs"]) for _ in range(2)]
    heartbeat_until(ranged, evenly_shared(ranged, 4))
    heartbeat_until(uniform, evenly_shared(uniform, 4))

    def assignor(group_id: str) -> str:
        return stub.DescribeGroup(group_pb2.DescribeGroupRequest(group_id=group_id)).group.assignor

    assert (assignor("ranged"), assignor("uniform")) == ("range", "uniform")
    first, second = sorted(ranged, key=lambda m: m.member_id)  # range orders dynamic members by id
    assert (first.assignment, second.assignment) == (partitions("jobs", 0, 1), partitions("jobs", 2, 3))


def test_a_member_that_does_not_release_a_revoked_partition_in_time_is_removed(group_broker) -> None:
    """It keeps heartbeating (so its session never ends) but keeps reporting the revoked partition: only
    its rebalance timeout can remove it, and only then does the partition move."""
    stubs, stub = group_broker
    stubs.create_topic("jobs", 2)
    stubborn = GroupMember(stub, "workers", ["jobs"], rebalance_timeout_ms=200)
    stubborn.heartbeat()
    newcomer = GroupMember(stub, "workers", ["jobs"])
    newcomer.heartbeat()
    everything = partitions("jobs", 0, 1)
    holding_on = group_pb2.HeartbeatRequest(group_id="workers", member_id=stubborn.member_id)
    holding_on.owned_partitions.topics.extend(partition_set(everything))

    deadline = time.monotonic() + ROUNDS_LIMIT_S
    while True:
        holding_on.member_epoch = stubborn.epoch
        answer = stub.Heartbeat(holding_on)
        if answer.error_code != common.ERROR_CODE_NONE:
            break
        assert len(flatten(answer.assignment)) == 1, "told to give a partition up"
        assert newcomer.heartbeat().error_code == common.ERROR_CODE_NONE
        if newcomer.assignment:  # then the old owner must be gone: removal cannot be undone
            answer = stub.Heartbeat(holding_on)
            assert answer.error_code != common.ERROR_CODE_NONE, "a partition moved while its owner held on"
            break
        assert time.monotonic() < deadline, "the member that held on was never removed"
        time.sleep(PACE_S)
    assert answer.error_code == common.ERROR_CODE_UNKNOWN_MEMBER_ID
    heartbeat_until([newcomer], lambda: newcomer.assignment == everything)


def test_group_settings_follow_flags_over_environment_over_file(tmp_path) -> None:
    config = tmp_path / "broker.toml"
    config.write_text(
        'group_session_timeout_ms = 9000\ngroup-assignor = "range"\ngroup_rebalance_timeout_ms = 60000\n'
    )
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    flags = parser.parse_args(["--config", str(config), "--group-heartbeat-interval-ms", "700"])
    env = {"LOGSTORE_GROUP_SESSION_TIMEOUT_MS": "8000", "LOGSTORE_OFFSETS_TOPIC_PARTITIONS": "4"}
    settings = load({k: v for k, v in vars(flags).items()}, env=env)
    assert settings.group_config() == CoordinatorConfig(8000, 700, 60_000, "range")
    assert settings.offsets_topic_partitions == 4
    for bad, named in [
        (
            {"group_session_timeout_ms": 500, "group_heartbeat_interval_ms": 500},
            "group_heartbeat_interval_ms",
        ),
        ({"group_assignor": "sticky"}, "group_assignor"),
        ({"offsets_topic_partitions": 0}, "offsets_topic_partitions"),
    ]:
        with pytest.raises(SettingsError, match=named):
            load(cast("dict[str, Any]", bad), env={})
