"""The consumer-group coordinator: a pure state machine for Kafka's server-side-assignment protocol
(KIP-848). No I/O, no threads, no clock: every call that depends on time takes ``now_ms``.

Epochs. The *group epoch* grows whenever what the assignor sees changes (members, their resolved
subscriptions, partition counts of subscribed topics, the assignor). The *target assignment* is
recomputed in the same call, so its epoch always equals the group epoch. Each member has a *member
epoch*: the target epoch it has caught up with. A member moves up only once it has revoked every
partition it must give away; partitions being revoked stay held by their old owner, and a member is
only handed partitions nobody holds. So no partition ever has two owners, and each member's epochs only
grow.

Timeouts. A member not heard from for the group's session timeout is removed; a member that does not
revoke partitions within its rebalance timeout is removed too (fenced). Timeouts are applied by
`tick`, and also lazily to a group before any call that touches it, so the outcome of a sequence of
calls does not depend on how often `tick` runs. `tick` reports every timeout removal since the last
call and the time the next one falls due, for the driver to schedule.

Restarts. Nothing here is persisted: after a broker restart the coordinator starts empty and groups
rebuild from heartbeats. A member heartbeating with a non-zero epoch to a group or member id the
coordinator does not know gets `UnknownMemberIdError`, which tells the client to release its
partitions and rejoin with epoch 0. Committed offsets live in the log, not here.

Not thread-safe: the driver serialises calls (one asyncio task, or a lock).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping

from logstore.broker.group_machine.assignors import get_assignor
from logstore.broker.group_machine.errors import (
    FencedInstanceIdError,
    FencedMemberEpochError,
    GroupIdNotFoundError,
    InvalidGroupRequestError,
    NonEmptyGroupError,
    UnknownMemberIdError,
)
from logstore.broker.group_machine.model import (
    EMPTY_ASSIGNMENT,
    JOIN_GROUP_MEMBER_EPOCH,
    LEAVE_GROUP_MEMBER_EPOCH,
    LEAVE_GROUP_STATIC_MEMBER_EPOCH,
    CoordinatorConfig,
    GroupConfig,
    GroupDescription,
    GroupListing,
    GroupState,
    HeartbeatRequest,
    HeartbeatResponse,
    MemberDescription,
    MemberRemoved,
    MemberState,
    RemovalReason,
    TickResult,
)
from logstore.broker.group_machine.reconcile import Reconciled, next_assignment, reconcile
from logstore.broker.group_machine.state import AssignmentInputs, Group, Member
from logstore.broker.group_machine.subscription import Subscription
from logstore.broker.group_machine.validation import (
    check_group_id,
    check_member_epoch,
    check_positive,
    check_request,
    check_session_timeout,
    check_timeouts,
    checked_topics,
    owned_partitions,
    requested_subscription,
)

_NO_SUBSCRIPTION = (
    "a member joining the group for the first time must send subscribed_topic_names or subscribed_topic_regex"
)


def _uuid_member_id() -> str:
    return uuid.uuid4().hex


class GroupCoordinator:
    """All consumer groups of one broker. See the module docstring for the model.

    Not thread-safe: a pure state machine, driven from the broker's event loop by GroupDomain.
    """

    def __init__(
        self,
        config: CoordinatorConfig | None = None,
        *,
        topic_partitions: Mapping[str, int] | None = None,
        member_id_factory: Callable[[], str] = _uuid_member_id,
    ) -> None:
        self._config = config or CoordinatorConfig()
        check_timeouts(self._config.session_timeout_ms, self._config.heartbeat_interval_ms)
        check_positive("rebalance_timeout_ms", self._config.rebalance_timeout_ms)
        get_assignor(self._config.assignor)
        self._new_member_id = member_id_factory
        self._topics: dict[str, int] = checked_topics(topic_partitions or {})
        self._groups: dict[str, Group] = {}
        self._timed_out: list[MemberRemoved] = []

    # --- heartbeats ----------------------------------------------------------------------------------

    def heartbeat(self, request: HeartbeatRequest, now_ms: int) -> HeartbeatResponse:
        """Join, stay in, or leave a group, and learn which partitions the member may own now.

        Epoch 0 joins (a new member, a rejoin after a fence, or a static instance coming back; the
        joining process must own nothing). Epoch -1 leaves for good: it answers normally even if the
        member is already gone. Epoch -2 is a static member's temporary leave: its partitions stay
        reserved until its instance id rejoins or its session times out. Any other epoch must be the
        member's current one (or the previous one, if the reported owned partitions are a subset of
        what the member has now: the last response was lost or not processed yet).

        Raises `UnknownMemberIdError` (member or group unknown: rejoin with epoch 0),
        `FencedMemberEpochError` (stale epoch: release partitions, rejoin with epoch 0),
        `FencedInstanceIdError` (another process took this static member's place),
        `InvalidGroupRequestError` and its subclasses for malformed requests. A failed call changes
        nothing (apart from applying timeouts that were due).
        """
        check_request(request)
        group = self._groups.get(request.group_id)
        if group is not None:
            self._expire(group, now_ms)
        if request.session_timeout_ms is not None and request.member_epoch >= JOIN_GROUP_MEMBER_EPOCH:
            check_session_timeout(
                request.session_timeout_ms,
                self._config.min_session_timeout_ms,
                self._config.max_session_timeout_ms,
                self._heartbeat_interval(group),
            )
        if request.member_epoch == LEAVE_GROUP_MEMBER_EPOCH:
            return self._leave(group, request)
        if request.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH:
            return self._leave_static(group, request, now_ms)
        owned = owned_partitions(request)
        if request.member_epoch == JOIN_GROUP_MEMBER_EPOCH:
            group, member = self._join(group, request, now_ms)
        else:
            member = self._known_member(group, request.group_id, request.member_id)
            assert group is not None
            check_member_epoch(group, member, request, owned)
            if request.instance_id is not None and request.instance_id != member.instance_id:
                raise InvalidGroupRequestError(
                    f"member {member.member_id!r} joined group {group.group_id!r} with instance id "
                    f"{member.instance_id!r} but now sends {request.instance_id!r}; the instance id cannot change"
                )
            subscription = requested_subscription(request)
            if self._update_member(member, request, subscription):
                self._refresh_target(group)
            member.session_deadline_ms = now_ms + self._session_timeout(group, member)
            if owned is not None:
                member.owned_reported = owned
            self._apply(
                group,
                member,
                reconcile(
                    member.state,
                    member.epoch,
                    member.assigned,
                    member.pending_revocation,
                    owned,
                    group.target.get(member.member_id, EMPTY_ASSIGNMENT),
                    group.target_epoch,
                    lambda tp: group.is_free_for(member.member_id, tp),
                ),
                now_ms,
            )
        return self._response(group, member)

    def _join(self, group: Group | None, request: HeartbeatRequest, now_ms: int) -> tuple[Group, Member]:
        """Epoch 0: a new member, a member rejoining after a fence, or a static member coming back.
        Creates the group on the first join."""
        if request.owned_partitions:
            raise InvalidGroupRequestError(
                "a member joining with epoch 0 owns no partitions; send owned_partitions empty or unset"
            )
        subscription = requested_subscription(request)
        if request.server_assignor is not None:
            get_assignor(request.server_assignor)
        if group is None:
            if subscription is None:
                raise InvalidGroupRequestError(_NO_SUBSCRIPTION)
            group = self._groups[request.group_id] = Group(request.group_id)
        if request.member_id in group.replaced:
            self._known_member(group, group.group_id, request.member_id)  # raises FencedInstanceIdError
        member = group.members.get(request.member_id) if request.member_id else None
        if member is not None:
            if member.instance_id != request.instance_id:
                raise InvalidGroupRequestError(
                    f"member {member.member_id!r} of group {group.group_id!r} has instance id "
                    f"{member.instance_id!r}, not {request.instance_id!r}; rejoin with the same instance id "
                    "or with an empty member id"
                )
        elif request.instance_id is not None and request.instance_id in group.static_members:
            old = group.members[group.static_members[request.instance_id]]
            member = group.replace_static_member(old, request.member_id or self._fresh_member_id(group))
            group.assignment_inputs = self._assignment_inputs(group)  # same subscriptions: no rebalance
        else:
            if subscription is None:
                raise InvalidGroupRequestError(_NO_SUBSCRIPTION)
            if not group.members:
                group.first_member_assignor = request.server_assignor
            member = Member(
                member_id=request.member_id or self._fresh_member_id(group),
                instance_id=request.instance_id,
                subscription=subscription,
                resolved_topics=subscription.resolve(self._topics),
                rebalance_timeout_ms=self._config.rebalance_timeout_ms,
                session_deadline_ms=now_ms,
            )
            group.add_member(member)
        self._update_member(member, request, subscription)
        self._refresh_target(group)
        member.session_deadline_ms = now_ms + self._session_timeout(group, member)
        member.owned_reported = EMPTY_ASSIGNMENT
        # The joining process owns nothing, so whatever it held but should not keep is released now.
        target = group.target.get(member.member_id, EMPTY_ASSIGNMENT)
        group.set_partitions(member, member.assigned & target, EMPTY_ASSIGNMENT)
        member.state = MemberState.STABLE
        next_step = next_assignment(
            member.epoch,
            member.assigned,
            target,
            group.target_epoch,
            lambda tp: group.is_free_for(member.member_id, tp),
        )
        self._apply(group, member, next_step, now_ms)
        return group, member

    def _leave(self, group: Group | None, request: HeartbeatRequest) -> HeartbeatResponse:
        """Epoch -1: remove the member for good. Leaving twice, or after a timeout, is not an error."""
        member = group.members.get(request.member_id) if group is not None else None
        if group is not None and member is not None:
            group.remove_member(member)
            self._refresh_target(group)
        return HeartbeatResponse(
            request.member_id, LEAVE_GROUP_MEMBER_EPOCH, self._heartbeat_interval(group), EMPTY_ASSIGNMENT
        )

    def _leave_static(self, group: Group | None, request: HeartbeatRequest, now_ms: int) -> HeartbeatResponse:
        """Epoch -2: a static member goes away for a while. Its partitions stay reserved for it until
        its instance id rejoins or its session times out; the group does not rebalance."""
        if request.instance_id is None:
            raise InvalidGroupRequestError("member epoch -2 (temporary leave) needs the member's instance_id")
        member = group.members.get(request.member_id) if group is not None else None
        if group is not None and member is not None:
            if member.instance_id != request.instance_id:
                raise InvalidGroupRequestError(
                    f"member {member.member_id!r} has instance id {member.instance_id!r}, not "
                    f"{request.instance_id!r}"
                )
            keep = member.assigned & group.target.get(member.member_id, EMPTY_ASSIGNMENT)
            group.set_partitions(member, keep, EMPTY_ASSIGNMENT)
            member.previous_epoch = member.epoch
            member.epoch = LEAVE_GROUP_STATIC_MEMBER_EPOCH
            member.state = MemberState.LEFT_STATIC
            member.revocation_deadline_ms = None
            member.session_deadline_ms = now_ms + self._session_timeout(group, member)
        return HeartbeatResponse(
            request.member_id,
            LEAVE_GROUP_STATIC_MEMBER_EPOCH,
            self._heartbeat_interval(group),
            EMPTY_ASSIGNMENT,
        )

    def _known_member(self, group: Group | None, group_id: str, member_id: str) -> Member:
        member = group.members.get(member_id) if group is not None else None
        if member is not None:
            return member
        if group is not None and member_id in group.replaced:
            raise FencedInstanceIdError(
                f"member {member_id!r} of group {group_id!r} was replaced by a newer process with the same "
                f"instance id {group.replaced[member_id]!r}; every live process needs its own instance id"
            )
        where = (
            f"group {group_id!r}" if group is not None else f"group {group_id!r}, unknown to the coordinator,"
        )
        raise UnknownMemberIdError(
            f"member {member_id!r} is not in {where} (it left, timed out, was fenced, or the coordinator "
            "restarted); release all partitions and rejoin with member epoch 0"
        )

    def _update_member(
        self, member: Member, request: HeartbeatRequest, subscription: Subscription | None
    ) -> bool:
        """Apply the optional fields of a heartbeat; True if the resolved subscription changed."""
        if request.rebalance_timeout_ms is not None:
            member.rebalance_timeout_ms = request.rebalance_timeout_ms
        if request.session_timeout_ms is not None:
            member.session_timeout_ms = request.session_timeout_ms
        if request.client_id:
            member.client_id = request.client_id
        if request.client_host:
            member.client_host = request.client_host
        if subscription is None or subscription == member.subscription:
            return False
        member.subscription = subscription
        resolved = subscription.resolve(self._topics)
        changed = resolved != member.resolved_topics
        member.resolved_topics = resolved
        return changed

    def _apply(self, group: Group, member: Member, step: Reconciled | None, now_ms: int) -> None:
        if step is None:
            return
        group.set_partitions(member, step.assigned, step.pending_revocation)
        if step.epoch != member.epoch:
            member.previous_epoch, member.epoch = member.epoch, step.epoch
        if step.state is not MemberState.UNREVOKED_PARTITIONS:
            member.revocation_deadline_ms = None
        elif member.state is not MemberState.UNREVOKED_PARTITIONS or member.revocation_deadline_ms is None:
            member.revocation_deadline_ms = now_ms + member.rebalance_timeout_ms
        member.state = step.state

    def _response(self, group: Group, member: Member) -> HeartbeatResponse:
        return HeartbeatResponse(
            member.member_id,
            member.epoch,
            self._heartbeat_interval(group),
            member.assigned,
            self._session_timeout(group, member),
        )

    def _fresh_member_id(self, group: Group) -> str:
        for _ in range(100):
            member_id = self._new_member_id()
            if member_id and member_id not in group.members and member_id not in group.replaced:
                return member_id
        raise RuntimeError("the member id factory keeps returning ids already in use")

    # --- commits -------------------------------------------------------------------------------------

    def validate_commit(self, group_id: str, member_id: str, member_epoch: int, now_ms: int) -> None:
        """Raise unless an offset commit with this identity may be stored.

        A member commits with its member id and current member epoch (the one from its last heartbeat
        response); an older or newer epoch raises `FencedMemberEpochError`, an unknown member
        `UnknownMemberIdError`. A commit from outside the group (admin tools, consumers using
        assign()) uses member id "" and epoch -1 and is accepted only while the group has no members
        (`NonEmptyGroupError` otherwise); it does not create the group (see `ensure_group`).
        """
        check_group_id(group_id)
        group = self._groups.get(group_id)
        if group is not None:
            self._expire(group, now_ms)
        if member_epoch == LEAVE_GROUP_MEMBER_EPOCH and not member_id:
            if group is not None and group.members:
                raise NonEmptyGroupError(
                    f"group {group_id!r} has {len(group.members)} active member(s); a commit from outside "
                    "the group (empty member id, epoch -1) is only accepted while the group has no members. "
                    "Commit as a member, or stop the members first"
                )
            return
        if not member_id or member_epoch < 0:
            raise InvalidGroupRequestError(
                f"a commit needs the member id and epoch from the last heartbeat (got member id "
                f"{member_id!r}, epoch {member_epoch}); use member id '' and epoch -1 to commit from "
                "outside the group"
            )
        member = self._known_member(group, group_id, member_id)
        if member.epoch != member_epoch:
            raise FencedMemberEpochError(
                f"member {member_id!r} of group {group_id!r} committed with epoch {member_epoch} but its "
                f"current epoch is {member.epoch}; heartbeat to learn the current epoch, and if the "
                "heartbeat is fenced too, release all partitions and rejoin with epoch 0"
            )

    # --- topics and timeouts -------------------------------------------------------------------------

    def update_topics(self, topic_partitions: Mapping[str, int], now_ms: int) -> tuple[str, ...]:
        """Replace the snapshot of topics and partition counts; returns the ids of the groups whose
        target assignment was recomputed (new partitions, new topics matching a subscription, deleted
        topics)."""
        topics = checked_topics(topic_partitions)
        for group in self._groups.values():
            self._expire(group, now_ms)
        self._topics = topics
        rebalanced = []
        for group_id, group in sorted(self._groups.items()):
            resolved: dict[Subscription, frozenset[str]] = {}
            for member in group.members.values():
                if member.subscription not in resolved:
                    resolved[member.subscription] = member.subscription.resolve(topics)
                member.resolved_topics = resolved[member.subscription]
            if self._refresh_target(group):
                rebalanced.append(group_id)
        return tuple(rebalanced)

    def tick(self, now_ms: int) -> TickResult:
        """Remove every member whose session or rebalance timeout has passed; report all timeout
        removals since the previous tick (including those applied lazily by other calls)."""
        for group in self._groups.values():
            self._expire(group, now_ms)
        removed, self._timed_out = tuple(self._timed_out), []
        return TickResult(removed, self.next_deadline_ms())

    def next_deadline_ms(self) -> int | None:
        """When the earliest session or rebalance timeout falls due; None if there are no members."""
        deadlines = [
            deadline
            for group in self._groups.values()
            for member in group.members.values()
            for deadline in (member.session_deadline_ms, member.revocation_deadline_ms)
            if deadline is not None
        ]
        return min(deadlines, default=None)

    def _expire(self, group: Group, now_ms: int) -> None:
        removed = []
        for member_id in sorted(group.members):
            member = group.members[member_id]
            if now_ms >= member.session_deadline_ms:
                reason = RemovalReason.SESSION_TIMEOUT
            elif member.revocation_deadline_ms is not None and now_ms >= member.revocation_deadline_ms:
                reason = RemovalReason.REBALANCE_TIMEOUT
            else:
                continue
            group.remove_member(member)
            removed.append(MemberRemoved(group.group_id, member_id, member.instance_id, reason))
        if removed:
            self._refresh_target(group)
            self._timed_out.extend(removed)

    # --- target assignment ---------------------------------------------------------------------------

    def _assignor_name(self, group: Group) -> str:
        return group.config.assignor or group.first_member_assignor or self._config.assignor

    def _assignment_inputs(self, group: Group) -> AssignmentInputs:
        subscriptions = {member_id: m.resolved_topics for member_id, m in group.members.items()}
        topics = set().union(*subscriptions.values())
        metadata = frozenset((topic, self._topics[topic]) for topic in topics if topic in self._topics)
        return self._assignor_name(group), frozenset(subscriptions.items()), metadata

    def _refresh_target(self, group: Group) -> bool:
        """Bump the group epoch and recompute the target if the assignor's inputs changed."""
        inputs = self._assignment_inputs(group)
        if inputs == group.assignment_inputs:
            return False
        assignor_name, subscriptions, metadata = inputs
        group.epoch += 1
        instance_ids = {member_id: m.instance_id for member_id, m in group.members.items() if m.instance_id}
        group.target = get_assignor(assignor_name).assign(
            dict(subscriptions), dict(metadata), group.target, instance_ids
        )
        group.target_epoch = group.epoch
        group.assignment_inputs = inputs
        return True

    # --- groups --------------------------------------------------------------------------------------

    def configure_group(self, group_id: str, config: GroupConfig, now_ms: int) -> None:
        """Set a group's overrides (creating the group if needed). A new assignor takes effect at once;
        new timeouts apply from each member's next heartbeat."""
        check_group_id(group_id)
        if config.assignor is not None:
            get_assignor(config.assignor)
        session = config.session_timeout_ms or self._config.session_timeout_ms
        interval = config.heartbeat_interval_ms or self._config.heartbeat_interval_ms
        for name in ("session_timeout_ms", "heartbeat_interval_ms"):
            value = getattr(config, name)
            if value is not None:
                check_positive(name, value)
        check_timeouts(session, interval)
        group = self._groups.setdefault(group_id, Group(group_id))
        self._expire(group, now_ms)
        group.config = config
        if group.members:
            self._refresh_target(group)

    def ensure_group(self, group_id: str) -> None:
        """Make an empty group known (for groups that only have committed offsets, e.g. replayed at
        start-up), so that it is listed and can be deleted."""
        check_group_id(group_id)
        self._groups.setdefault(group_id, Group(group_id))

    def delete_group(self, group_id: str) -> None:
        """Forget a group without members. Deleting its committed offsets is the caller's job."""
        group = self._groups.get(group_id)
        if group is None:
            raise GroupIdNotFoundError(f"group {group_id!r} does not exist")
        if group.members:
            raise NonEmptyGroupError(
                f"group {group_id!r} still has {len(group.members)} member(s): "
                f"{sorted(group.members)}; stop them (or wait for their session timeout) before deleting it"
            )
        del self._groups[group_id]

    def list_groups(self) -> list[GroupListing]:
        return [
            GroupListing(group_id, group.state(), len(group.members))
            for group_id, group in sorted(self._groups.items())
        ]

    def describe_group(self, group_id: str) -> GroupDescription:
        """The group as of the last call; an unknown group is described as Dead with no members."""
        group = self._groups.get(group_id)
        if group is None:
            return GroupDescription(group_id, GroupState.DEAD, 0, 0, "", ())
        members = tuple(
            MemberDescription(
                member_id=m.member_id,
                instance_id=m.instance_id,
                client_id=m.client_id,
                client_host=m.client_host,
                subscribed_topic_names=tuple(sorted(m.subscription.topic_names)),
                subscribed_topic_regex=m.subscription.regex,
                member_epoch=m.epoch,
                state=m.state,
                owned_partitions=m.owned_reported,
                assigned_partitions=m.assigned,
                pending_revocation=m.pending_revocation,
                target_assignment=group.target.get(m.member_id, EMPTY_ASSIGNMENT),
            )
            for _, m in sorted(group.members.items())
        )
        return GroupDescription(
            group_id, group.state(), group.epoch, group.target_epoch, self._assignor_name(group), members
        )

    def _session_timeout(self, group: Group, member: Member | None = None) -> int:
        """The member's own session timeout if it sent one, else the group's, else the broker's."""
        if member is not None and member.session_timeout_ms is not None:
            return member.session_timeout_ms
        return group.config.session_timeout_ms or self._config.session_timeout_ms

    def _heartbeat_interval(self, group: Group | None) -> int:
        if group is not None and group.config.heartbeat_interval_ms:
            return group.config.heartbeat_interval_ms
        return self._config.heartbeat_interval_ms
