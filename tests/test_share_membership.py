"""ShareGroups: joining, staying, leaving, fencing, session expiry and assignments that follow topics."""

from __future__ import annotations

import pytest
from logstore.broker.group_machine.model import RemovalReason
from logstore.broker.share_machine import (
    AssignedTopic,
    FencedMemberEpochError,
    GroupIdNotFoundError,
    InvalidGroupRequestError,
    MemberGone,
    NonEmptyGroupError,
    ShareGroupConfig,
    ShareGroups,
    ShareGroupState,
    ShareHeartbeatAnswer,
    UnknownMemberIdError,
)

CONFIG = ShareGroupConfig(session_timeout_ms=3_000, heartbeat_interval_ms=1_000)


def join(
    groups: ShareGroups, member: str, topics: list[str], now: int = 0, group: str = "g"
) -> ShareHeartbeatAnswer:
    return groups.heartbeat(group, "", 0, topics, "client", "host", now, CONFIG, new_member_id=member)


def beat(
    groups: ShareGroups,
    answer: ShareHeartbeatAnswer,
    now: int,
    topics: list[str] | None = None,
    group: str = "g",
) -> ShareHeartbeatAnswer:
    return groups.heartbeat(group, answer.member_id, answer.member_epoch, topics or [], "", "", now, CONFIG)


def test_a_join_gets_the_made_up_id_and_every_partition_of_its_topics_in_order() -> None:
    groups = ShareGroups({"tasks": 2, "other": 1, "empty": 0})
    answer = join(groups, "m1", ["other", "tasks", "missing", "other"])
    assert answer.member_id == "m1"
    assert answer.member_epoch == 1
    assert (answer.heartbeat_interval_ms, answer.session_timeout_ms) == (1_000, 3_000)
    assert answer.assignment == (AssignedTopic("other", (0,)), AssignedTopic("tasks", (0, 1)))
    member = groups.member("g", "m1")
    assert member.topic_names == ("other", "tasks", "missing")
    assert (member.client_id, member.client_host, member.session_deadline_ms) == ("client", "host", 3_000)


def test_group_epoch_grows_on_membership_changes_member_epoch_on_assignment_changes() -> None:
    groups = ShareGroups({"tasks": 2})
    a = join(groups, "a", ["tasks"])
    b = join(groups, "b", ["tasks"])
    assert (a.member_epoch, b.member_epoch) == (1, 2)
    assert groups.describe("g").group_epoch == 2
    assert beat(groups, a, 10).member_epoch == 1  # nothing changed for a
    groups.topics_changed({"tasks": 3})
    assert groups.describe("g").group_epoch == 3
    a = beat(groups, a, 20)
    assert a.member_epoch == 3 and a.assignment == (AssignedTopic("tasks", (0, 1, 2)),)
    b = beat(groups, b, 30)  # b still sends epoch 2, as it may: the answer tells it the new one
    assert b.member_epoch == 3 and b.assignment == (AssignedTopic("tasks", (0, 1, 2)),)
    with pytest.raises(FencedMemberEpochError, match="current epoch is 3"):
        groups.heartbeat("g", "b", 2, [], "", "", 40, CONFIG)  # an epoch older than the answer's


def test_a_topic_created_later_is_assigned_then() -> None:
    groups = ShareGroups({})
    a = join(groups, "a", ["later"])
    assert a.assignment == ()
    groups.topics_changed({"later": 1})
    answer = beat(groups, a, 10)  # the old epoch is still accepted once; the answer carries the new one
    assert answer.assignment == (AssignedTopic("later", (0,)),)
    assert answer.member_epoch == a.member_epoch + 1


def test_a_new_subscription_replaces_the_old_and_an_empty_one_keeps_it() -> None:
    groups = ShareGroups({"x": 1, "y": 1})
    a = join(groups, "a", ["x"])
    a = beat(groups, a, 10, topics=["y", "x"])
    assert a.assignment == (AssignedTopic("y", (0,)), AssignedTopic("x", (0,)))
    assert a.member_epoch == 2
    a = beat(groups, a, 20, topics=[])
    assert groups.member("g", "a").topic_names == ("y", "x")


def test_leave_removes_the_member_and_names_it() -> None:
    groups = ShareGroups({"tasks": 1})
    a = join(groups, "a", ["tasks"])
    answer = groups.heartbeat("g", "a", -1, [], "", "", 5, CONFIG)
    assert answer.member_epoch == -1 and answer.assignment == ()
    assert answer.gone == MemberGone("g", "a", RemovalReason.LEFT)
    with pytest.raises(UnknownMemberIdError):
        groups.member("g", "a")
    with pytest.raises(UnknownMemberIdError):
        beat(groups, a, 6)
    with pytest.raises(UnknownMemberIdError):  # a second leave
        groups.heartbeat("g", "a", -1, [], "", "", 7, CONFIG)
    description = groups.describe("g")
    assert description.state is ShareGroupState.EMPTY and description.members == ()


def test_unknown_members_and_groups_are_told_to_rejoin() -> None:
    groups = ShareGroups({"tasks": 1})
    with pytest.raises(UnknownMemberIdError, match="rejoin with member epoch 0"):
        groups.heartbeat("nobody", "m", 4, [], "", "", 0, CONFIG)  # e.g. after a broker restart
    with pytest.raises(UnknownMemberIdError):
        groups.member("nobody", "m")
    join(groups, "a", ["tasks"])
    with pytest.raises(UnknownMemberIdError):
        groups.heartbeat("g", "zz", 1, [], "", "", 0, CONFIG)
    with pytest.raises(GroupIdNotFoundError):
        groups.describe("nobody")


def test_rejoin_with_a_known_id_keeps_the_member() -> None:
    groups = ShareGroups({"tasks": 1})
    a = join(groups, "a", ["tasks"])
    again = groups.heartbeat("g", "a", 0, ["tasks"], "", "", 100, CONFIG, new_member_id="ignored")
    assert (again.member_id, again.member_epoch) == ("a", a.member_epoch)
    assert groups.member("g", "a").session_deadline_ms == 3_100
    fresh = groups.heartbeat("g", "mine", 0, ["tasks"], "", "", 100, CONFIG, new_member_id="ignored")
    assert fresh.member_id == "mine"  # an id the client chose is kept (Kafka 4's clients make their own)


@pytest.mark.parametrize(
    ("group_id", "member_id", "epoch", "topics", "words"),
    [
        ("", "", 0, ["t"], "group id must be a non-empty string"),
        ("g", "", 0, [], "needs at least one topic"),
        ("g", "", 0, ["__consumer_offsets"], "internal"),
        ("g", "", 0, [""], "non-empty strings"),
        ("g", "", -2, ["t"], "member epoch must be"),
    ],
)
def test_bad_heartbeats_are_refused(
    group_id: str, member_id: str, epoch: int, topics: list[str], words: str
) -> None:
    groups = ShareGroups({"t": 1})
    with pytest.raises(InvalidGroupRequestError, match=words):
        groups.heartbeat(group_id, member_id, epoch, topics, "", "", 0, CONFIG, new_member_id="m")
    assert groups.groups() == []


def test_a_join_without_any_id_is_refused() -> None:
    with pytest.raises(InvalidGroupRequestError):
        ShareGroups({"t": 1}).heartbeat("g", "", 0, ["t"], "", "", 0, CONFIG)


def test_sessions_expire_at_their_deadline_and_heartbeats_extend_them() -> None:
    groups = ShareGroups({"t": 1})
    a = join(groups, "a", ["t"], now=0)
    join(groups, "b", ["t"], now=1_000)
    join(groups, "c", ["t"], now=0, group="h")
    assert groups.next_deadline_ms() == 3_000
    beat(groups, a, 2_500)
    assert groups.tick(2_999) == []
    assert groups.tick(3_000) == [MemberGone("h", "c", RemovalReason.SESSION_TIMEOUT)]
    assert groups.next_deadline_ms() == 4_000
    assert groups.tick(5_500) == [
        MemberGone("g", "a", RemovalReason.SESSION_TIMEOUT),
        MemberGone("g", "b", RemovalReason.SESSION_TIMEOUT),
    ]
    assert groups.next_deadline_ms() is None
    assert groups.describe("g").group_epoch == 3  # two joins, one expiry round


def test_describe_lists_members_by_id_and_the_group_state() -> None:
    groups = ShareGroups({"t": 1})
    join(groups, "b", ["t"])
    join(groups, "a", ["t"])
    description = groups.describe("g")
    assert description.state is ShareGroupState.STABLE
    assert [m.member_id for m in description.members] == ["a", "b"]
    assert groups.groups() == ["g"] and groups.has_group("g") and not groups.has_group("x")


def test_a_group_with_members_cannot_be_removed() -> None:
    groups = ShareGroups({"t": 1})
    join(groups, "a", ["t"])
    with pytest.raises(NonEmptyGroupError):
        groups.remove_group("g")
    groups.heartbeat("g", "a", -1, [], "", "", 1, CONFIG)
    groups.remove_group("g")
    groups.remove_group("never-known")
    assert groups.groups() == []
