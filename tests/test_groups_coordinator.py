"""Unit tests of the pure group coordinator: joins, hand-over, leaves, timeouts, static members,
fencing, topic changes and group administration. Time is just the ``now_ms`` passed in."""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterable

import pytest
from logstore.broker.group_machine import (
    LEAVE_GROUP_MEMBER_EPOCH,
    LEAVE_GROUP_STATIC_MEMBER_EPOCH,
    Assignment,
    CoordinatorConfig,
    FencedInstanceIdError,
    FencedMemberEpochError,
    GroupConfig,
    GroupCoordinator,
    GroupIdNotFoundError,
    GroupState,
    HeartbeatRequest,
    HeartbeatResponse,
    InvalidGroupRequestError,
    InvalidRegularExpressionError,
    MemberState,
    NonEmptyGroupError,
    RemovalReason,
    TopicPartition,
    UnknownMemberIdError,
    UnsupportedAssignorError,
)

SESSION_MS = 10_000
INTERVAL_MS = 1_000
REBALANCE_MS = 5_000
GROUP = "g"


def tps(topic: str, *partitions: int) -> Assignment:
    return frozenset(TopicPartition(topic, p) for p in partitions)


def make_coordinator(topics: dict[str, int] | None = None, **config: object) -> GroupCoordinator:
    ids = (f"m{i}" for i in itertools.count())
    settings = {"session_timeout_ms": SESSION_MS, "heartbeat_interval_ms": INTERVAL_MS} | config
    return GroupCoordinator(
        CoordinatorConfig(**settings),  # type: ignore[arg-type]
        topic_partitions={"t": 4} if topics is None else topics,
        member_id_factory=lambda: next(ids),
    )


class Consumer:
    """A well-behaved member: it reports owning exactly what its last response told it."""

    def __init__(
        self,
        coordinator: GroupCoordinator,
        topics: Collection[str] | None = ("t",),
        *,
        regex: str | None = None,
        instance_id: str | None = None,
        assignor: str | None = None,
        group: str = GROUP,
    ) -> None:
        self.coordinator = coordinator
        self.group = group
        self.topics = topics
        self.regex = regex
        self.instance_id = instance_id
        self.assignor = assignor
        self.member_id = ""
        self.epoch = 0
        self.assignment: Assignment = frozenset()

    def _take(self, response: HeartbeatResponse) -> HeartbeatResponse:
        self.member_id, self.epoch, self.assignment = (
            response.member_id,
            response.member_epoch,
            response.assignment,
        )
        return response

    def join(self, now_ms: int) -> HeartbeatResponse:
        request = HeartbeatRequest(
            self.group,
            self.member_id,
            0,
            instance_id=self.instance_id,
            rebalance_timeout_ms=REBALANCE_MS,
            subscribed_topic_names=self.topics,
            subscribed_topic_regex=self.regex,
            server_assignor=self.assignor,
        )
        return self._take(self.coordinator.heartbeat(request, now_ms))

    def beat(
        self, now_ms: int, owned: Iterable[tuple[str, int]] | None = None, **fields: object
    ) -> HeartbeatResponse:
        request = HeartbeatRequest(
            self.group,
            self.member_id,
            self.epoch,
            instance_id=self.instance_id,
            owned_partitions=self.assignment if owned is None else frozenset(owned),
            **fields,  # type: ignore[arg-type]
        )
        return self._take(self.coordinator.heartbeat(request, now_ms))

    def leave(self, now_ms: int) -> HeartbeatResponse:
        request = HeartbeatRequest(
            self.group, self.member_id, LEAVE_GROUP_MEMBER_EPOCH, instance_id=self.instance_id
        )
        return self.coordinator.heartbeat(request, now_ms)

    def leave_static(self, now_ms: int) -> HeartbeatResponse:
        request = HeartbeatRequest(
            self.group, self.member_id, LEAVE_GROUP_STATIC_MEMBER_EPOCH, instance_id=self.instance_id
        )
        return self.coordinator.heartbeat(request, now_ms)


def settle(consumers: Iterable[Consumer], now_ms: int, rounds: int = 4) -> int:
    """Let every consumer heartbeat a few times; returns the time after the last round."""
    consumers = list(consumers)
    for _ in range(rounds):
        for consumer in consumers:
            consumer.beat(now_ms)
        now_ms += 1
    return now_ms


# --- joining and hand-over ------------------------------------------------------------------------------


def test_first_member_gets_every_partition_at_epoch_one() -> None:
    coordinator = make_coordinator()
    response = Consumer(coordinator).join(0)
    assert response.member_id == "m0"
    assert response.member_epoch == 1
    assert response.assignment == tps("t", 0, 1, 2, 3)
    assert response.heartbeat_interval_ms == INTERVAL_MS
    description = coordinator.describe_group(GROUP)
    assert (description.state, description.group_epoch, description.assignor) == (
        GroupState.STABLE,
        1,
        "uniform",
    )


def test_second_member_gets_half_only_after_the_first_has_revoked_it() -> None:
    coordinator = make_coordinator()
    a, b = Consumer(coordinator), Consumer(coordinator)
    a.join(0)
    assert b.join(1).assignment == frozenset()
    assert b.epoch == 2  # caught up with the new target, waiting for partitions to be released
    assert coordinator.describe_group(GROUP).state is GroupState.RECONCILING

    revoking = a.beat(2)
    assert revoking.member_epoch == 1  # epoch moves only once the revocation is done
    kept = revoking.assignment
    assert len(kept) == 2
    # a's heartbeat that still lists the revoked partitions (its response was not processed yet)
    a.beat(3, owned=tps("t", 0, 1, 2, 3))
    assert b.beat(4).assignment == frozenset()
    assert coordinator.describe_group(GROUP).members[0].state is MemberState.UNREVOKED_PARTITIONS

    assert a.beat(5, owned=kept).member_epoch == 2
    assert b.beat(6).assignment == tps("t", 0, 1, 2, 3) - kept
    description = coordinator.describe_group(GROUP)
    assert description.state is GroupState.STABLE
    assert [m.member_epoch for m in description.members] == [2, 2]


def test_member_that_no_longer_owns_the_revoked_partitions_moves_on_at_once() -> None:
    coordinator = make_coordinator()
    a, b = Consumer(coordinator), Consumer(coordinator)
    a.join(0)
    b.join(1)
    a.beat(2)
    assert a.beat(3).member_epoch == 2  # the well-behaved member reports only what it kept


def test_subscription_change_revokes_before_the_other_member_gets_the_topic() -> None:
    coordinator = make_coordinator({"t": 2, "u": 2})
    a, b = Consumer(coordinator, ("t", "u")), Consumer(coordinator, ("u",))
    a.join(0)
    b.join(1)
    now = settle([a, b], 2)
    assert a.assignment == tps("t", 0, 1) and b.assignment == tps("u", 0, 1)

    a.beat(now, subscribed_topic_names=["u"])  # a drops t, and now shares u with b
    assert a.assignment == frozenset()  # t is revoked first; u comes once b has let go of one
    now = settle([a, b], now + 1)
    assert {len(a.assignment), len(b.assignment)} == {1}
    assert a.assignment | b.assignment == tps("u", 0, 1)


# --- leaving and timeouts -------------------------------------------------------------------------------


def test_leave_moves_partitions_to_the_remaining_member_and_is_idempotent() -> None:
    coordinator = make_coordinator()
    a, b = Consumer(coordinator), Consumer(coordinator)
    a.join(0)
    b.join(1)
    now = settle([a, b], 2)
    response = b.leave(now)
    assert (response.member_epoch, response.assignment) == (LEAVE_GROUP_MEMBER_EPOCH, frozenset())
    assert b.leave(now + 1).member_epoch == LEAVE_GROUP_MEMBER_EPOCH
    assert a.beat(now + 2).assignment == tps("t", 0, 1, 2, 3)
    with pytest.raises(UnknownMemberIdError) as error:
        b.beat(now + 3)
    assert error.value.rejoin


def test_session_timeout_removes_a_silent_member_and_its_partitions_move() -> None:
    coordinator = make_coordinator()
    a, b = Consumer(coordinator), Consumer(coordinator)
    a.join(0)
    b.join(0)
    settle([a, b], 0, rounds=3)  # last heartbeats at t=2
    assert coordinator.next_deadline_ms() == 2 + SESSION_MS
    a.beat(SESSION_MS)  # only a keeps heartbeating
    assert coordinator.tick(SESSION_MS + 1).removed == ()
    result = coordinator.tick(SESSION_MS + 2)
    assert [(r.member_id, r.reason) for r in result.removed] == [("m1", RemovalReason.SESSION_TIMEOUT)]
    assert result.next_deadline_ms == 2 * SESSION_MS
    assert a.beat(SESSION_MS + 3).assignment == tps("t", 0, 1, 2, 3)
    with pytest.raises(UnknownMemberIdError):
        b.beat(SESSION_MS + 4)


def test_timeouts_applied_by_another_call_are_reported_by_the_next_tick() -> None:
    coordinator = make_coordinator()
    a, b = Consumer(coordinator), Consumer(coordinator)
    a.join(0)
    b.join(0)
    a.beat(SESSION_MS - 1)
    assert a.beat(SESSION_MS).assignment == tps("t", 0, 1, 2, 3)  # b expired within this heartbeat
    assert len(coordinator.describe_group(GROUP).members) == 1
    assert [r.member_id for r in coordinator.tick(SESSION_MS + 1).removed] == ["m1"]
    assert coordinator.tick(SESSION_MS + 2).removed == ()


def test_member_that_never_revokes_is_fenced_after_its_rebalance_timeout() -> None:
    coordinator = make_coordinator()
    a, b = Consumer(coordinator), Consumer(coordinator)
    a.join(0)
    b.join(1)
    everything = tps("t", 0, 1, 2, 3)
    a.beat(2, owned=everything)  # revocation starts now: deadline 2 + REBALANCE_MS
    for now in range(1_000, REBALANCE_MS + 2, 1_000):
        a.beat(now, owned=everything)  # alive, but stubbornly keeps every partition
        b.beat(now)
        assert b.assignment == frozenset()
    result = coordinator.tick(REBALANCE_MS + 2)
    assert [(r.member_id, r.reason) for r in result.removed] == [("m0", RemovalReason.REBALANCE_TIMEOUT)]
    assert b.beat(REBALANCE_MS + 3).assignment == everything
    with pytest.raises(UnknownMemberIdError):
        a.beat(REBALANCE_MS + 4, owned=everything)


# --- static membership ----------------------------------------------------------------------------------


def _static_pair() -> tuple[GroupCoordinator, Consumer, Consumer, int]:
    coordinator = make_coordinator({"t": 6})
    a, b = Consumer(coordinator, instance_id="a"), Consumer(coordinator)
    a.join(0)
    b.join(1)
    return coordinator, a, b, settle([a, b], 2)


def test_static_member_that_leaves_temporarily_gets_its_partitions_back_without_movement() -> None:
    coordinator, a, b, now = _static_pair()
    before = coordinator.describe_group(GROUP)
    a_partitions, b_partitions = a.assignment, b.assignment
    assert a.leave_static(now).member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH
    assert b.beat(now + 1).assignment == b_partitions  # nothing moves while a is away

    restarted = Consumer(coordinator, instance_id="a")
    response = restarted.join(now + 2)
    assert response.member_id != a.member_id
    assert response.assignment == a_partitions
    assert coordinator.describe_group(GROUP).group_epoch == before.group_epoch
    assert b.beat(now + 3).assignment == b_partitions
    assert coordinator.describe_group(GROUP).state is GroupState.STABLE


def test_static_member_restarting_without_leaving_replaces_the_old_member_id() -> None:
    coordinator, a, b, now = _static_pair()
    a_partitions = a.assignment
    restarted = Consumer(coordinator, instance_id="a")
    assert restarted.join(now).assignment == a_partitions
    assert coordinator.describe_group(GROUP).group_epoch == 2
    with pytest.raises(FencedInstanceIdError):
        a.beat(now + 1)  # the old process is a zombie now
    with pytest.raises(FencedInstanceIdError):
        coordinator.validate_commit(GROUP, a.member_id, a.epoch, now + 1)
    with pytest.raises(FencedInstanceIdError):
        a.epoch = 0
        a.join(now + 1)  # nor can it take the place back by rejoining under its old member id
    assert [m.member_id for m in coordinator.describe_group(GROUP).members] == [
        b.member_id,
        restarted.member_id,
    ]


def test_static_member_that_does_not_come_back_is_removed_after_the_session_timeout() -> None:
    coordinator, a, b, now = _static_pair()
    a.leave_static(now)
    b.beat(now + SESSION_MS // 2)
    b.beat(now + SESSION_MS - 1)
    removed = coordinator.tick(now + SESSION_MS).removed
    assert [(r.instance_id, r.reason) for r in removed] == [("a", RemovalReason.SESSION_TIMEOUT)]
    assert b.beat(now + SESSION_MS + 1).assignment == tps("t", *range(6))


def test_static_leave_needs_the_instance_id() -> None:
    coordinator, a, _, now = _static_pair()
    with pytest.raises(InvalidGroupRequestError, match="instance_id"):
        coordinator.heartbeat(HeartbeatRequest(GROUP, a.member_id, LEAVE_GROUP_STATIC_MEMBER_EPOCH), now)


# --- fencing --------------------------------------------------------------------------------------------


def test_heartbeat_with_a_stale_or_future_epoch_is_fenced() -> None:
    coordinator = make_coordinator()
    a, b = Consumer(coordinator), Consumer(coordinator)
    a.join(0)
    b.join(1)
    now = settle([a, b], 2)
    assert a.epoch == 2
    for epoch in (1, 3):
        request = HeartbeatRequest(GROUP, a.member_id, epoch, owned_partitions=tps("t", 0, 1, 2, 3))
        with pytest.raises(FencedMemberEpochError, match="rejoin") as error:
            coordinator.heartbeat(request, now)
        assert error.value.rejoin and not error.value.retriable


def test_previous_epoch_is_accepted_when_the_member_owns_only_what_it_still_has() -> None:
    coordinator = make_coordinator()
    a, b = Consumer(coordinator), Consumer(coordinator)
    a.join(0)
    b.join(1)
    kept = a.beat(2).assignment
    a.beat(3)  # epoch 1 -> 2; pretend this response was lost
    lagging = HeartbeatRequest(GROUP, a.member_id, 1, owned_partitions=kept)
    assert coordinator.heartbeat(lagging, 4).member_epoch == 2


def test_fenced_member_rejoins_with_epoch_zero_and_keeps_its_partitions() -> None:
    coordinator = make_coordinator()
    a = Consumer(coordinator)
    a.join(0)
    with pytest.raises(FencedMemberEpochError):
        coordinator.heartbeat(HeartbeatRequest(GROUP, a.member_id, 7, owned_partitions=()), 1)
    a.epoch, a.assignment = 0, frozenset()
    response = a.join(2)
    assert (response.member_id, response.member_epoch, response.assignment) == ("m0", 1, tps("t", 0, 1, 2, 3))


def test_unknown_member_and_unknown_group_get_unknown_member_id() -> None:
    coordinator = make_coordinator()
    Consumer(coordinator).join(0)
    with pytest.raises(UnknownMemberIdError, match="rejoin"):
        coordinator.heartbeat(HeartbeatRequest(GROUP, "nobody", 1), 1)
    # what every member sees after a broker restart: the coordinator starts empty
    restarted = make_coordinator()
    with pytest.raises(UnknownMemberIdError, match="unknown to the coordinator"):
        restarted.heartbeat(HeartbeatRequest(GROUP, "m0", 1, owned_partitions=tps("t", 0)), 1)


def test_commit_is_accepted_only_at_the_member_current_epoch() -> None:
    coordinator = make_coordinator()
    a, b = Consumer(coordinator), Consumer(coordinator)
    a.join(0)
    coordinator.validate_commit(GROUP, a.member_id, 1, 1)
    b.join(1)
    a.beat(2)  # revoking: a's epoch stays 1 so it can commit what it gives up
    coordinator.validate_commit(GROUP, a.member_id, 1, 3)
    a.beat(4)
    coordinator.validate_commit(GROUP, a.member_id, 2, 5)
    with pytest.raises(FencedMemberEpochError):
        coordinator.validate_commit(GROUP, a.member_id, 1, 5)
    with pytest.raises(UnknownMemberIdError):
        coordinator.validate_commit(GROUP, "nobody", 2, 5)
    with pytest.raises(UnknownMemberIdError):
        coordinator.validate_commit(GROUP, b.member_id, b.epoch, 5 + SESSION_MS)  # b timed out


def test_commit_from_outside_the_group_needs_an_empty_group() -> None:
    coordinator = make_coordinator()
    coordinator.validate_commit("never-seen", "", -1, 0)
    a = Consumer(coordinator)
    a.join(0)
    with pytest.raises(NonEmptyGroupError, match="1 active member"):
        coordinator.validate_commit(GROUP, "", -1, 1)
    a.leave(2)
    coordinator.validate_commit(GROUP, "", -1, 3)
    with pytest.raises(InvalidGroupRequestError):
        coordinator.validate_commit(GROUP, "", 3, 3)


# --- topics and subscriptions ---------------------------------------------------------------------------


def test_regex_subscription_follows_topic_creation_deletion_and_growth() -> None:
    coordinator = make_coordinator({"orders-eu": 2, "orders": 1, "__consumer_offsets": 3})
    a = Consumer(coordinator, topics=None, regex="orders-.*")
    a.join(0)
    assert a.assignment == tps("orders-eu", 0, 1)

    epoch = coordinator.describe_group(GROUP).group_epoch
    changed = coordinator.update_topics(
        {"orders-eu": 3, "orders-us": 1, "orders": 1, "__consumer_offsets": 3}, 1
    )
    assert changed == (GROUP,)
    assert coordinator.describe_group(GROUP).group_epoch == epoch + 1
    assert a.beat(2).assignment == tps("orders-eu", 0, 1, 2) | tps("orders-us", 0)

    coordinator.update_topics({"orders-us": 1, "orders": 1, "__consumer_offsets": 3}, 3)
    assert a.beat(4).assignment == tps("orders-us", 0)  # the deleted topic is revoked
    assert a.beat(5).assignment == tps("orders-us", 0)
    assert coordinator.update_topics({"orders-us": 1, "orders": 1, "__consumer_offsets": 3, "x": 1}, 6) == ()


def test_regex_matches_whole_names_and_never_internal_topics() -> None:
    coordinator = make_coordinator({"__consumer_offsets": 2, "abc": 1, "ab": 1})
    a = Consumer(coordinator, topics=None, regex=".*b")
    assert a.join(0).assignment == tps("ab", 0)
    by_name = Consumer(coordinator, topics=["__consumer_offsets"], group="internal")
    assert by_name.join(0).assignment == tps("__consumer_offsets", 0, 1)


def test_subscription_to_a_missing_topic_is_assigned_when_the_topic_appears() -> None:
    coordinator = make_coordinator({})
    a = Consumer(coordinator, topics=["later"])
    assert a.join(0).assignment == frozenset()
    coordinator.update_topics({"later": 2}, 1)
    assert a.beat(2).assignment == tps("later", 0, 1)


def test_members_only_get_partitions_of_topics_they_subscribe_to() -> None:
    coordinator = make_coordinator({"t": 4, "u": 4})
    a, b, c = Consumer(coordinator, ("t",)), Consumer(coordinator, ("t", "u")), Consumer(coordinator, ("u",))
    for i, consumer in enumerate((a, b, c)):
        consumer.join(i)
    settle([a, b, c], 10)
    assert {tp.topic for tp in a.assignment} <= {"t"} and {tp.topic for tp in c.assignment} <= {"u"}
    assert a.assignment | b.assignment | c.assignment == tps("t", 0, 1, 2, 3) | tps("u", 0, 1, 2, 3)
    assert sorted(len(x.assignment) for x in (a, b, c)) == [2, 3, 3]


# --- assignor choice ------------------------------------------------------------------------------------


def test_range_and_uniform_are_chosen_by_the_first_member() -> None:
    topics = {"t": 3, "u": 3}
    results = {}
    for assignor in ("range", "uniform"):
        coordinator = make_coordinator(topics)
        a, b = Consumer(coordinator, ("t", "u"), assignor=assignor), Consumer(coordinator, ("t", "u"))
        a.join(0)
        b.join(1)
        settle([a, b], 2)
        assert coordinator.describe_group(GROUP).assignor == assignor
        results[assignor] = (a.assignment, b.assignment)
    assert results["range"] == (tps("t", 0, 1) | tps("u", 0, 1), tps("t", 2) | tps("u", 2))
    assert sorted(map(len, results["uniform"])) == [3, 3]


def test_group_config_overrides_the_assignor_and_rebalances() -> None:
    coordinator = make_coordinator({"t": 3, "u": 3})
    a, b = Consumer(coordinator, ("t", "u")), Consumer(coordinator, ("t", "u"))
    a.join(0)
    b.join(1)
    now = settle([a, b], 2)
    epoch = coordinator.describe_group(GROUP).group_epoch
    coordinator.configure_group(GROUP, GroupConfig(assignor="range"), now)
    description = coordinator.describe_group(GROUP)
    assert (description.assignor, description.group_epoch) == ("range", epoch + 1)
    settle([a, b], now + 1)
    assert a.assignment == tps("t", 0, 1) | tps("u", 0, 1)


def test_uniform_moves_exactly_three_partitions_when_a_fourth_member_joins_three() -> None:
    coordinator = make_coordinator({"t": 12})
    consumers = [Consumer(coordinator) for _ in range(3)]
    for i, consumer in enumerate(consumers):
        consumer.join(i)
    now = settle(consumers, 10)
    before = {c.member_id: c.assignment for c in consumers}
    assert sorted(map(len, before.values())) == [4, 4, 4]
    newcomer = Consumer(coordinator)
    newcomer.join(now)
    settle([*consumers, newcomer], now + 1)
    assert len(newcomer.assignment) == 3
    moved = sum(len(before[c.member_id] - c.assignment) for c in consumers)
    assert moved == 3
    assert all(len(c.assignment) == 3 for c in consumers)


# --- administration and bad input -----------------------------------------------------------------------


def test_describe_list_and_delete_groups() -> None:
    coordinator = make_coordinator()
    assert coordinator.describe_group("nope").state is GroupState.DEAD
    with pytest.raises(GroupIdNotFoundError):
        coordinator.delete_group("nope")
    a = Consumer(coordinator)
    a.join(0)
    a.beat(1, client_id="billing-1", client_host="10.0.0.7")
    coordinator.ensure_group("offsets-only")
    listing = [(g.group_id, g.state, g.member_count) for g in coordinator.list_groups()]
    assert listing == [(GROUP, GroupState.STABLE, 1), ("offsets-only", GroupState.EMPTY, 0)]
    member = coordinator.describe_group(GROUP).members[0]
    assert (member.client_id, member.client_host, member.subscribed_topic_names) == (
        "billing-1",
        "10.0.0.7",
        ("t",),
    )
    assert (
        member.owned_partitions
        == member.assigned_partitions
        == member.target_assignment
        == tps("t", 0, 1, 2, 3)
    )
    with pytest.raises(NonEmptyGroupError, match="m0"):
        coordinator.delete_group(GROUP)
    a.leave(2)
    assert coordinator.describe_group(GROUP).state is GroupState.EMPTY
    coordinator.delete_group(GROUP)
    assert coordinator.describe_group(GROUP).state is GroupState.DEAD


def test_member_may_choose_its_own_member_id() -> None:
    coordinator = make_coordinator()
    response = coordinator.heartbeat(HeartbeatRequest(GROUP, "my-id", 0, subscribed_topic_names=["t"]), 0)
    assert (response.member_id, response.member_epoch) == ("my-id", 1)


@pytest.mark.parametrize(
    ("request_", "error", "match"),
    [
        (HeartbeatRequest(GROUP, "", 0), InvalidGroupRequestError, "must send subscribed_topic_names"),
        (
            HeartbeatRequest(GROUP, "", 0, subscribed_topic_names=["t"], owned_partitions=[("t", 0)]),
            InvalidGroupRequestError,
            "owns no partitions",
        ),
        (
            HeartbeatRequest(GROUP, "", 0, subscribed_topic_regex="(unclosed"),
            InvalidRegularExpressionError,
            "regular",
        ),
        (
            HeartbeatRequest(GROUP, "", 0, subscribed_topic_names=["t"], server_assignor="sticky"),
            UnsupportedAssignorError,
            "range",
        ),
        (HeartbeatRequest(GROUP, "", 0, subscribed_topic_names="t"), InvalidGroupRequestError, "collection"),
        (HeartbeatRequest(GROUP, "", 3), InvalidGroupRequestError, "empty member id"),
        (HeartbeatRequest(GROUP, "m0", -3), InvalidGroupRequestError, "member epoch"),
        (HeartbeatRequest("", "", 0, subscribed_topic_names=["t"]), InvalidGroupRequestError, "group id"),
        (
            HeartbeatRequest(GROUP, "", 0, subscribed_topic_names=["t"], rebalance_timeout_ms=0),
            InvalidGroupRequestError,
            "rebalance_timeout_ms",
        ),
    ],
)
def test_malformed_heartbeats_are_rejected_and_change_nothing(
    request_: HeartbeatRequest, error: type[Exception], match: str
) -> None:
    coordinator = make_coordinator()
    with pytest.raises(error, match=match):
        coordinator.heartbeat(request_, 0)
    assert coordinator.list_groups() == []
    assert coordinator.describe_group(GROUP).members == ()


def test_unreported_owned_partitions_count_as_still_owned() -> None:
    coordinator = make_coordinator()
    a, b = Consumer(coordinator), Consumer(coordinator)
    a.join(0)
    b.join(1)
    a.beat(2)
    silent = HeartbeatRequest(GROUP, a.member_id, a.epoch)  # owned_partitions not sent
    assert coordinator.heartbeat(silent, 3).member_epoch == 1
    assert b.beat(4).assignment == frozenset()


def test_group_config_overrides_session_timeout_and_heartbeat_interval() -> None:
    coordinator = make_coordinator()
    coordinator.configure_group(GROUP, GroupConfig(session_timeout_ms=3_000, heartbeat_interval_ms=500), 0)
    a = Consumer(coordinator)
    assert a.join(0).heartbeat_interval_ms == 500
    assert coordinator.next_deadline_ms() == 3_000
    assert [r.reason for r in coordinator.tick(3_000).removed] == [RemovalReason.SESSION_TIMEOUT]
    with pytest.raises(InvalidGroupRequestError, match="smaller than session_timeout_ms"):
        coordinator.configure_group(GROUP, GroupConfig(heartbeat_interval_ms=SESSION_MS), 1)
    with pytest.raises(UnsupportedAssignorError):
        coordinator.configure_group(GROUP, GroupConfig(assignor="nope"), 1)


def test_coordinator_config_is_checked() -> None:
    with pytest.raises(InvalidGroupRequestError, match="heartbeat_interval_ms"):
        GroupCoordinator(CoordinatorConfig(session_timeout_ms=1_000, heartbeat_interval_ms=1_000))
    with pytest.raises(InvalidGroupRequestError, match="partition counts"):
        GroupCoordinator(topic_partitions={"t": -1})
