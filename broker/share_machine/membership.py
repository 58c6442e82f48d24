"""The members of every share group, as a pure state machine (the share counterpart of
`group_machine.coordinator`, much simpler: partitions are not divided among members).

A member's assignment is every existing partition of the topics it subscribes to, topics in its order
(the order counts for priority fetches). Epochs follow Kafka's share groups:

- the group epoch grows whenever a member joins, leaves or its assignment changes;
- a member's epoch is the group epoch at which its assignment last changed (handed out in a heartbeat
  answer), and a heartbeat must send exactly that epoch (else `FencedMemberEpochError`: rejoin with
  epoch 0); `member()` shows the assignment of the member's last answer;
- a heartbeat from a member the group does not know (it left, timed out, or the broker restarted, since
  membership is not persisted) gets `UnknownMemberIdError`: rejoin with epoch 0.

The driver makes up member ids (``new_member_id``) so that this core stays deterministic, and passes the
group's effective `ShareGroupConfig` with every heartbeat (session timeout and heartbeat interval).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from logstore.broker.group_machine.model import (
    JOIN_GROUP_MEMBER_EPOCH,
    LEAVE_GROUP_MEMBER_EPOCH,
    RemovalReason,
)
from logstore.broker.group_machine.subscription import INTERNAL_TOPIC_PREFIX
from logstore.broker.group_machine.validation import check_group_id, checked_topics
from logstore.broker.share_machine.config import ShareGroupConfig
from logstore.broker.share_machine.errors import (
    FencedMemberEpochError,
    GroupIdNotFoundError,
    InvalidGroupRequestError,
    NonEmptyGroupError,
    UnknownMemberIdError,
)
from logstore.broker.share_machine.model import (
    AssignedTopic,
    MemberGone,
    ShareGroupDescription,
    ShareGroupState,
    ShareHeartbeatAnswer,
    ShareMember,
)


class _Member:
    __slots__ = ("assignment", "client_host", "client_id", "deadline_ms", "epoch", "member_id", "topics")

    def __init__(self, member_id: str, topics: tuple[str, ...], client_id: str, client_host: str) -> None:
        self.member_id = member_id
        self.topics = topics
        self.client_id = client_id
        self.client_host = client_host
        self.epoch = 0
        self.assignment: tuple[AssignedTopic, ...] = ()
        self.deadline_ms = 0

    def view(self) -> ShareMember:
        return ShareMember(
            self.member_id,
            self.epoch,
            self.client_id,
            self.client_host,
            self.topics,
            self.assignment,
            self.deadline_ms,
        )


class _Group:
    __slots__ = ("epoch", "group_id", "members")

    def __init__(self, group_id: str) -> None:
        self.group_id = group_id
        self.epoch = 0
        self.members: dict[str, _Member] = {}


def _checked_topic_names(topic_names: Sequence[str]) -> tuple[str, ...]:
    if isinstance(topic_names, str):
        raise InvalidGroupRequestError(f"topic names must be a list of names, not the string {topic_names!r}")
    names: list[str] = []
    for name in topic_names:
        if not isinstance(name, str) or not name:
            raise InvalidGroupRequestError(f"topic names must be non-empty strings, got {name!r}")
        if name.startswith(INTERNAL_TOPIC_PREFIX):
            raise InvalidGroupRequestError(
                f"topic {name!r} is internal (its name starts with {INTERNAL_TOPIC_PREFIX!r}); a share group "
                "cannot read it"
            )
        if name not in names:
            names.append(name)
    return tuple(names)


class ShareGroups:
    """Every share group's members and assignments. Methods take the time as ``now_ms``."""

    def __init__(self, topic_partitions: Mapping[str, int]) -> None:
        self._topics = checked_topics(topic_partitions)
        self._groups: dict[str, _Group] = {}

    # membership

    def heartbeat(
        self,
        group_id: str,
        member_id: str,
        member_epoch: int,
        topic_names: Sequence[str],
        client_id: str,
        client_host: str,
        now_ms: int,
        config: ShareGroupConfig,
        new_member_id: str = "",
    ) -> ShareHeartbeatAnswer:
        """Joins (epoch 0), stays (the member's epoch) or leaves (epoch -1).

        A join with member id "" takes `new_member_id`; a join with a known id rejoins as that member
        (an unknown one is created with it). ``topic_names`` is required on a new member's join; later an
        empty list keeps the subscription and a different one replaces it. Empty `client_id` /
        `client_host` keep the previous ones. Raises `InvalidGroupRequestError`, `UnknownMemberIdError`
        (unknown member, also on a leave) or `FencedMemberEpochError`."""
        check_group_id(group_id)
        if not isinstance(member_epoch, int) or member_epoch < LEAVE_GROUP_MEMBER_EPOCH:
            raise InvalidGroupRequestError(
                f"member epoch must be 0 (join), -1 (leave) or the epoch of the last answer, got {member_epoch!r}"
            )
        if not isinstance(member_id, str):
            raise InvalidGroupRequestError(f"member id must be a string, got {member_id!r}")
        topics = _checked_topic_names(topic_names)
        group = self._groups.get(group_id)
        member = group.members.get(member_id) if group is not None else None

        if member_epoch == LEAVE_GROUP_MEMBER_EPOCH:
            if group is None or member is None:
                raise self._unknown(group_id, member_id)
            del group.members[member_id]
            group.epoch += 1
            return ShareHeartbeatAnswer(
                member_id,
                LEAVE_GROUP_MEMBER_EPOCH,
                config.heartbeat_interval_ms,
                config.session_timeout_ms,
                (),
                MemberGone(group_id, member_id, RemovalReason.LEFT),
            )

        if member_epoch == JOIN_GROUP_MEMBER_EPOCH:
            if member is None:
                joining_id = member_id or new_member_id
                if not isinstance(joining_id, str) or not joining_id:
                    raise InvalidGroupRequestError(
                        "a join with an empty member id needs the id the broker made up"
                    )
                if not topics:
                    raise InvalidGroupRequestError(
                        f"joining share group {group_id!r} needs at least one topic name to read"
                    )
                if group is None:
                    group = self._groups[group_id] = _Group(group_id)
                member = group.members.get(joining_id)
                if member is None:
                    member = group.members[joining_id] = _Member(joining_id, topics, client_id, client_host)
                    group.epoch += 1
                    member.epoch = group.epoch
                    member.assignment = self._assignment(topics)
        else:
            if group is None or member is None:
                raise self._unknown(group_id, member_id)
            if member_epoch != member.epoch:
                raise FencedMemberEpochError(
                    f"member {member_id!r} of share group {group_id!r} sent epoch {member_epoch} but its "
                    f"current epoch is {member.epoch}; rejoin with member epoch 0"
                )
        assert group is not None
        subscribed = bool(topics) and topics != member.topics
        if subscribed:
            member.topics = topics
        assignment = self._assignment(member.topics)
        if assignment != member.assignment:  # a new subscription, or topics changed since the last beat
            if subscribed:
                group.epoch += 1
            member.epoch = group.epoch
            member.assignment = assignment
        if client_id:
            member.client_id = client_id
        if client_host:
            member.client_host = client_host
        member.deadline_ms = now_ms + config.session_timeout_ms
        return ShareHeartbeatAnswer(
            member.member_id,
            member.epoch,
            config.heartbeat_interval_ms,
            config.session_timeout_ms,
            member.assignment,
        )

    @staticmethod
    def _unknown(group_id: str, member_id: str) -> UnknownMemberIdError:
        return UnknownMemberIdError(
            f"member {member_id!r} is not in share group {group_id!r} (it left, timed out, or the broker "
            "restarted); rejoin with member epoch 0"
        )

    def _assignment(self, topics: tuple[str, ...]) -> tuple[AssignedTopic, ...]:
        return tuple(
            AssignedTopic(topic, tuple(range(self._topics[topic])))
            for topic in topics
            if self._topics.get(topic, 0) > 0
        )

    def topics_changed(self, topic_partitions: Mapping[str, int]) -> None:
        """Topics were created, deleted or grew. The group epoch of every group with a member whose
        assignment changes grows now; each such member gets its new assignment and epoch (the group's) in
        the answer to its next heartbeat, which may still send the old epoch (as in Kafka)."""
        self._topics = checked_topics(topic_partitions)
        for group in self._groups.values():
            if any(self._assignment(m.topics) != m.assignment for m in group.members.values()):
                group.epoch += 1

    def tick(self, now_ms: int) -> list[MemberGone]:
        """Removes members whose session expired (no heartbeat before their deadline)."""
        gone: list[MemberGone] = []
        for group_id in sorted(self._groups):
            group = self._groups[group_id]
            expired = sorted(m.member_id for m in group.members.values() if m.deadline_ms <= now_ms)
            for member_id in expired:
                del group.members[member_id]
                gone.append(MemberGone(group_id, member_id, RemovalReason.SESSION_TIMEOUT))
            if expired:
                group.epoch += 1
        return gone

    def next_deadline_ms(self) -> int | None:
        """The earliest session deadline; None without members."""
        deadlines = [m.deadline_ms for g in self._groups.values() for m in g.members.values()]
        return min(deadlines) if deadlines else None

    # reading

    def member(self, group_id: str, member_id: str) -> ShareMember:
        """A member as it stands, for ShareFetch / ShareAcknowledge. Raises `UnknownMemberIdError` for an
        unknown member, also of an unknown group (after a restart the group is unknown until its members
        rejoin, which that error tells them to do)."""
        group = self._groups.get(group_id)
        member = group.members.get(member_id) if group is not None else None
        if member is None:
            raise self._unknown(group_id, member_id)
        return member.view()

    def has_group(self, group_id: str) -> bool:
        return group_id in self._groups

    def member_count(self, group_id: str) -> int:
        """Members of the group now (0 for a group unknown here)."""
        group = self._groups.get(group_id)
        return len(group.members) if group is not None else 0

    def describe(self, group_id: str) -> ShareGroupDescription:
        """The group's members by id. Raises `GroupIdNotFoundError` when no member ever joined it (since
        this broker started) or it was removed."""
        group = self._groups.get(group_id)
        if group is None:
            raise GroupIdNotFoundError(f"share group {group_id!r} has no members and is not known")
        members = tuple(group.members[m].view() for m in sorted(group.members))
        state = ShareGroupState.STABLE if members else ShareGroupState.EMPTY
        return ShareGroupDescription(group_id, state, group.epoch, members)

    def groups(self) -> list[str]:
        """Ids of the share groups known here (with members now or before), sorted."""
        return sorted(self._groups)

    def forget_group(self, group_id: str) -> None:
        """Forgets a group with its members, without a word to them: its coordinator moved to another
        broker (in a cluster), where they join again."""
        self._groups.pop(group_id, None)

    def remove_group(self, group_id: str) -> None:
        """Forgets a group (delete). Raises `NonEmptyGroupError` while it has members; an unknown group is
        a no-op (the driver may know it only from its persisted state)."""
        group = self._groups.get(group_id)
        if group is None:
            return
        if group.members:
            raise NonEmptyGroupError(
                f"share group {group_id!r} still has {len(group.members)} member(s); stop them first"
            )
        del self._groups[group_id]
