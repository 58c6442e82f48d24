"""The classic group coordinator (Kafka's GroupCoordinator before KIP-848), as a pure state machine.

A rebalance runs in two rounds. JoinGroup: every member sends its supported protocols and waits; when all
known members have joined (or the longest rebalance timeout passes, dropping the ones that did not), the
generation advances, one protocol every member supports is chosen, and the leader gets everyone's
metadata. SyncGroup: the leader sends the assignment it computed; every member's SyncGroup is answered
with its share. Heartbeats keep a member's session and tell it when to join again (REBALANCE_IN_PROGRESS);
generation ids fence members that missed a rebalance.

JoinGroup and SyncGroup are long polls, so calls do not always answer their own request: each returns the
`Completions` it caused (answers to waiting requests, its own among them when it finished a round), and
the driver holds the waiting requests. Everything takes `now_ms`; `tick` applies the timeouts and
`next_deadline_ms` says when the next one falls due. Not thread-safe; no I/O.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from logstore.broker.classic_group_machine.errors import (
    IllegalGenerationError,
    InvalidGroupIdError,
    InvalidSessionTimeoutError,
    MemberIdRequiredError,
    RebalanceInProgressError,
)
from logstore.broker.classic_group_machine.model import (
    ClassicConfig,
    ClassicGroupDescription,
    ClassicGroupListing,
    ClassicGroupState,
    ClassicMemberDescription,
    Completions,
    JoinedMember,
    JoinRequest,
    JoinResult,
    SyncResult,
)
from logstore.broker.group_machine.errors import (
    FencedInstanceIdError,
    GroupIdNotFoundError,
    NonEmptyGroupError,
    UnknownMemberIdError,
)
from logstore.broker.share_machine.errors import InconsistentGroupProtocolError

State = ClassicGroupState


@dataclass(slots=True)
class _Member:
    member_id: str
    instance_id: str | None
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocols: tuple[tuple[str, bytes], ...]
    session_deadline_ms: int
    assignment: bytes = b""
    joining: bool = False
    """A JoinGroup of this member waits for the rebalance to complete (its session is on hold)."""
    syncing: bool = False
    """A SyncGroup of this member waits for the leader's assignment (its session is on hold)."""

    def metadata(self, protocol: str | None) -> bytes:
        return next((data for name, data in self.protocols if name == protocol), b"")


@dataclass(slots=True)
class _Group:
    group_id: str
    state: State = State.EMPTY
    generation_id: int = 0
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader_id: str | None = None
    members: dict[str, _Member] = field(default_factory=dict)
    """In join order: the first member becomes the leader when the old one is gone."""
    pending_ids: dict[str, int] = field(default_factory=dict)
    """Member ids handed out with MEMBER_ID_REQUIRED, and until when each may be used to join."""
    rebalance_deadline_ms: int | None = None
    static_ids: dict[str, str] = field(default_factory=dict)
    """Static members: group.instance.id -> its current member id."""


def _new_member_id(client_id: str) -> str:
    return f"{client_id or 'member'}-{uuid.uuid4()}"


class ClassicGroupCoordinator:
    """Classic consumer groups: membership, generations and the leader's assignment relay."""

    def __init__(self, config: ClassicConfig, new_member_id: Callable[[str], str] = _new_member_id) -> None:
        self._config = config
        self._new_member_id = new_member_id
        self._groups: dict[str, _Group] = {}
        self._done = Completions()

    # --- the protocol ---------------------------------------------------------------------------------

    def join(self, request: JoinRequest, now_ms: int) -> tuple[str, Completions]:
        """Add or refresh a member and start (or join) a rebalance; returns the member id to wait with.

        Raises MemberIdRequiredError (with the id to use) for a dynamic member's first JoinGroup from v4,
        and the refusals: INVALID_GROUP_ID, INVALID_SESSION_TIMEOUT, INCONSISTENT_GROUP_PROTOCOL,
        UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID."""
        self._check_join(request)
        group = self._groups.get(request.group_id)
        if group is None:
            if request.member_id:
                raise UnknownMemberIdError(
                    f"member {request.member_id!r} is not in group {request.group_id!r}, which has no "
                    "members; join again without a member id"
                )
            group = self._groups[request.group_id] = _Group(request.group_id)
        self._check_protocols(group, request)
        member_id = request.member_id
        if not member_id:
            member_id = self._join_new(group, request, now_ms)
        elif member_id in group.pending_ids:
            del group.pending_ids[member_id]
            self._add_member(group, member_id, request, now_ms)
        else:
            self._join_known(group, request, now_ms)
        return member_id, self._take()

    def sync(
        self,
        group_id: str,
        generation_id: int,
        member_id: str,
        instance_id: str | None,
        assignments: dict[str, bytes],
        now_ms: int,
    ) -> Completions:
        """A member's SyncGroup; the leader's carries every member's assignment. The answer to this
        member is in the completions, or comes later when the leader's assignment arrives."""
        group, member = self._member(group_id, member_id, instance_id)
        self._check_generation(group, generation_id)
        member.session_deadline_ms = now_ms + member.session_timeout_ms
        if group.state is State.PREPARING_REBALANCE:
            raise RebalanceInProgressError(f"group {group_id!r} is rebalancing; join again")
        if group.state is State.STABLE:
            self._done.syncs[group_id, member_id] = self._sync_result(group, member)
            return self._take()
        member.syncing = True
        if member_id == group.leader_id:
            for each in group.members.values():
                each.assignment = assignments.get(each.member_id, b"")
            group.state = State.STABLE
            for each in group.members.values():
                if each.syncing:
                    each.syncing = False
                    each.session_deadline_ms = now_ms + each.session_timeout_ms
                    self._done.syncs[group.group_id, each.member_id] = self._sync_result(group, each)
        return self._take()

    def heartbeat(
        self, group_id: str, generation_id: int, member_id: str, instance_id: str | None, now_ms: int
    ) -> None:
        """Keep a member's session; REBALANCE_IN_PROGRESS tells it to join again."""
        group, member = self._member(group_id, member_id, instance_id)
        self._check_generation(group, generation_id)
        member.session_deadline_ms = now_ms + member.session_timeout_ms
        if group.state is State.PREPARING_REBALANCE:
            raise RebalanceInProgressError(f"group {group_id!r} is rebalancing; join again")

    def leave(
        self, group_id: str, members: list[tuple[str, str | None]], now_ms: int
    ) -> tuple[list[Exception | None], Completions]:
        """Remove members ((member id, instance id) each; a static member may leave by instance id alone);
        one error or None per member, in order."""
        group = self._groups.get(group_id)
        errors: list[Exception | None] = []
        for member_id, instance_id in members:
            try:
                if group is None:
                    raise UnknownMemberIdError(f"group {group_id!r} has no members")
                if not member_id and instance_id:
                    member_id = group.static_ids.get(instance_id, "")
                _, member = self._member(group_id, member_id, instance_id)
                self._remove(group, member, "left the group", now_ms)
                errors.append(None)
            except (UnknownMemberIdError, FencedInstanceIdError) as exc:
                errors.append(exc)
        return errors, self._take()

    def abandon(self, group_id: str, member_id: str, now_ms: int) -> Completions:
        """A waiting JoinGroup or SyncGroup will never be answered (its connection closed): the member's
        session runs again, so a process that died mid-rebalance is removed after its session timeout,
        not after the whole rebalance timeout (which is max.poll.interval.ms, minutes by default)."""
        group = self._groups.get(group_id)
        member = group.members.get(member_id) if group is not None else None
        if member is not None and (member.joining or member.syncing):
            member.joining = member.syncing = False
            member.session_deadline_ms = now_ms + member.session_timeout_ms
        return self._take()

    def validate_commit(
        self, group_id: str, generation_id: int, member_id: str, instance_id: str | None
    ) -> None:
        """May this offset commit be stored? Kafka's rules: a commit from outside group management
        (generation -1) only while the group has no members; a member's only at its own generation
        and never between the rounds of a rebalance."""
        group = self._groups.get(group_id)
        if group is None or not group.members:
            if generation_id >= 0:
                raise IllegalGenerationError(
                    f"group {group_id!r} has no generation {generation_id}: it has no members; join it "
                    "first, or commit with generation -1"
                )
            return
        if generation_id < 0 and not member_id:
            raise UnknownMemberIdError(
                f"group {group_id!r} has {len(group.members)} member(s); a commit from outside the group "
                "(generation -1, no member id) is refused while it has members"
            )
        self._member(group_id, member_id, instance_id)  # fenced, or not a member: refused
        self._check_generation(group, generation_id)
        if group.state is State.COMPLETING_REBALANCE:
            raise RebalanceInProgressError(
                f"group {group_id!r} is between JoinGroup and SyncGroup; commit after SyncGroup"
            )

    def tick(self, now_ms: int) -> Completions:
        """Apply every due timeout: ended sessions, unused member ids, overdue rebalances."""
        for group in list(self._groups.values()):
            for member_id, deadline in list(group.pending_ids.items()):
                if deadline <= now_ms:
                    del group.pending_ids[member_id]
            for member in list(group.members.values()):
                if not (member.joining or member.syncing) and member.session_deadline_ms <= now_ms:
                    self._remove(group, member, "session timed out", now_ms)
            if group.state is State.PREPARING_REBALANCE:
                overdue = group.rebalance_deadline_ms is not None and group.rebalance_deadline_ms <= now_ms
                self._maybe_complete_join(group, now_ms, force=overdue)
            if group.state is State.EMPTY and not group.members and not group.pending_ids:
                del self._groups[group.group_id]  # its offsets, if any, are the offset store's
        return self._take()

    def next_deadline_ms(self) -> int | None:
        deadlines: list[int] = []
        for group in self._groups.values():
            deadlines.extend(group.pending_ids.values())
            deadlines.extend(
                m.session_deadline_ms for m in group.members.values() if not (m.joining or m.syncing)
            )
            if group.rebalance_deadline_ms is not None:
                deadlines.append(group.rebalance_deadline_ms)
        return min(deadlines, default=None)

    # --- admin ----------------------------------------------------------------------------------------

    def has_members(self, group_id: str) -> bool:
        group = self._groups.get(group_id)
        return group is not None and bool(group.members or group.pending_ids)

    def describe(self, group_id: str) -> ClassicGroupDescription | None:
        group = self._groups.get(group_id)
        if group is None:
            return None
        stable = group.state is State.STABLE
        members = tuple(
            ClassicMemberDescription(
                m.member_id,
                m.instance_id,
                m.client_id,
                m.client_host,
                m.metadata(group.protocol_name),
                m.assignment if stable else b"",
            )
            for m in group.members.values()
        )
        return ClassicGroupDescription(
            group.group_id,
            group.state,
            group.generation_id,
            group.protocol_type or "",
            group.protocol_name or "",
            group.leader_id or "",
            members,
        )

    def list_groups(self) -> list[ClassicGroupListing]:
        return [
            ClassicGroupListing(g.group_id, g.protocol_type or "", g.state, len(g.members))
            for g in sorted(self._groups.values(), key=lambda g: g.group_id)
        ]

    def delete(self, group_id: str) -> None:
        """Forget a group without members (its offsets are the caller's to delete)."""
        group = self._groups.get(group_id)
        if group is None:
            raise GroupIdNotFoundError(f"group {group_id!r} does not exist")
        if group.members or group.pending_ids:
            raise NonEmptyGroupError(
                f"group {group_id!r} has {len(group.members)} active member(s); stop its consumers (or "
                "wait for their session timeout) before deleting it"
            )
        del self._groups[group_id]

    # --- the steps ------------------------------------------------------------------------------------

    def _check_join(self, request: JoinRequest) -> None:
        if not request.group_id:
            raise InvalidGroupIdError("the group id is empty; a consumer group needs a name")
        low, high = self._config.min_session_timeout_ms, self._config.max_session_timeout_ms
        if not low <= request.session_timeout_ms <= high:
            raise InvalidSessionTimeoutError(
                f"session timeout {request.session_timeout_ms} ms is outside this broker's {low}..{high} "
                "ms (group.min.session.timeout.ms, group.max.session.timeout.ms)"
            )
        if not request.protocol_type or not request.protocols:
            raise InconsistentGroupProtocolError(
                "a JoinGroup must name its protocol type and at least one protocol (assignor)"
            )

    def _check_protocols(self, group: _Group, request: JoinRequest) -> None:
        if not group.members:
            return
        if request.protocol_type != group.protocol_type:
            raise InconsistentGroupProtocolError(
                f"group {group.group_id!r} has protocol type {group.protocol_type!r}, not "
                f"{request.protocol_type!r}"
            )
        offered = {name for name, _ in request.protocols}
        others = [m for m in group.members.values() if m.member_id != request.member_id]
        common = set.intersection(offered, *({n for n, _ in m.protocols} for m in others))
        if not common:
            theirs = (
                sorted(set.intersection(*({n for n, _ in m.protocols} for m in others))) if others else []
            )
            raise InconsistentGroupProtocolError(
                f"group {group.group_id!r}'s members use the assignors {theirs}; this member offers "
                f"{sorted(offered)}, none in common"
            )

    def _join_new(self, group: _Group, request: JoinRequest, now_ms: int) -> str:
        if request.instance_id is not None:
            member_id = self._new_member_id(request.client_id)
            old_id = group.static_ids.get(request.instance_id)
            if old_id is not None and old_id in group.members:
                # A restarted static member takes its old place; the old id is fenced from now on.
                self._remove(
                    group,
                    group.members[old_id],
                    "replaced by a new process of its instance id",
                    now_ms,
                    rebalance=False,
                )
            self._add_member(group, member_id, request, now_ms)
            return member_id
        member_id = self._new_member_id(request.client_id)
        if request.require_known_member_id:
            group.pending_ids[member_id] = now_ms + request.session_timeout_ms
            raise MemberIdRequiredError(
                f"join group {group.group_id!r} again with the member id this answer gives", member_id
            )
        self._add_member(group, member_id, request, now_ms)
        return member_id

    def _join_known(self, group: _Group, request: JoinRequest, now_ms: int) -> None:
        _, member = self._member(group.group_id, request.member_id, request.instance_id)
        if group.state is State.EMPTY:
            raise UnknownMemberIdError(f"member {request.member_id!r} is not in group {group.group_id!r}")
        changed = member.protocols != request.protocols
        member.protocols = request.protocols
        member.session_timeout_ms = request.session_timeout_ms
        member.rebalance_timeout_ms = request.rebalance_timeout_ms
        if group.state is State.PREPARING_REBALANCE:
            member.joining = True
            self._maybe_complete_join(group, now_ms)
        elif not changed and (
            group.state is State.COMPLETING_REBALANCE or member.member_id != group.leader_id
        ):
            # Nothing new (such as a JoinGroup answer that was lost): this generation's answer again.
            self._done.joins[group.group_id, member.member_id] = self._join_result(group, member)
        else:
            member.joining = True
            self._prepare_rebalance(group, now_ms)

    def _add_member(self, group: _Group, member_id: str, request: JoinRequest, now_ms: int) -> None:
        if not group.members:
            group.protocol_type = request.protocol_type
        group.members[member_id] = _Member(
            member_id,
            request.instance_id,
            request.client_id,
            request.client_host,
            request.session_timeout_ms,
            request.rebalance_timeout_ms,
            request.protocols,
            session_deadline_ms=now_ms + request.session_timeout_ms,
            joining=True,
        )
        if request.instance_id is not None:
            group.static_ids[request.instance_id] = member_id
        self._prepare_rebalance(group, now_ms)

    def _prepare_rebalance(self, group: _Group, now_ms: int) -> None:
        if group.state is State.COMPLETING_REBALANCE:
            for member in group.members.values():  # the leader's assignment will never come
                if member.syncing:
                    member.syncing = False
                    member.session_deadline_ms = now_ms + member.session_timeout_ms
                    self._done.syncs[group.group_id, member.member_id] = SyncResult(
                        error=RebalanceInProgressError(f"group {group.group_id!r} is rebalancing again")
                    )
        if group.state is not State.PREPARING_REBALANCE:
            group.state = State.PREPARING_REBALANCE
            timeout = max((m.rebalance_timeout_ms for m in group.members.values()), default=0)
            group.rebalance_deadline_ms = now_ms + timeout
            for member in group.members.values():
                member.assignment = b""
        self._maybe_complete_join(group, now_ms)

    def _maybe_complete_join(self, group: _Group, now_ms: int, *, force: bool = False) -> None:
        everyone = all(m.joining for m in group.members.values()) and not group.pending_ids
        if not (everyone or force):
            return
        for member in list(group.members.values()):
            if not member.joining:
                self._remove(group, member, "did not join the rebalance in time", now_ms, rebalance=False)
        group.pending_ids.clear()
        group.generation_id += 1
        group.rebalance_deadline_ms = None
        if not group.members:
            group.state = State.EMPTY
            group.protocol_type = group.protocol_name = group.leader_id = None
            return
        group.protocol_name = _choose_protocol(list(group.members.values()))
        if group.leader_id not in group.members:
            group.leader_id = next(iter(group.members))
        group.state = State.COMPLETING_REBALANCE
        for member in group.members.values():
            member.joining = False
            member.session_deadline_ms = now_ms + member.session_timeout_ms
            self._done.joins[group.group_id, member.member_id] = self._join_result(group, member)

    def _remove(
        self, group: _Group, member: _Member, why: str, now_ms: int, *, rebalance: bool = True
    ) -> None:
        del group.members[member.member_id]
        if member.instance_id is not None and group.static_ids.get(member.instance_id) == member.member_id:
            del group.static_ids[member.instance_id]
        gone = UnknownMemberIdError(
            f"member {member.member_id!r} was removed from group {group.group_id!r}: {why}"
        )
        if member.joining:
            self._done.joins[group.group_id, member.member_id] = JoinResult(member.member_id, error=gone)
        if member.syncing:
            self._done.syncs[group.group_id, member.member_id] = SyncResult(error=gone)
        self._done.removed.append((group.group_id, member.member_id, why))
        if member.member_id == group.leader_id:
            group.leader_id = None
        if not rebalance:
            return
        if group.state in (State.STABLE, State.COMPLETING_REBALANCE):
            self._prepare_rebalance(group, now_ms)
        elif group.state is State.PREPARING_REBALANCE:
            self._maybe_complete_join(group, now_ms)

    def _member(self, group_id: str, member_id: str, instance_id: str | None) -> tuple[_Group, _Member]:
        group = self._groups.get(group_id)
        if instance_id is not None and group is not None:
            current = group.static_ids.get(instance_id)
            if current is not None and current != member_id:
                raise FencedInstanceIdError(
                    f"instance id {instance_id!r} of group {group_id!r} now belongs to member {current!r}: "
                    "another process joined with it; every process needs its own group.instance.id"
                )
        member = group.members.get(member_id) if group is not None else None
        if group is None or member is None:
            raise UnknownMemberIdError(
                f"member {member_id!r} is not in group {group_id!r} (it left, timed out or was never "
                "there); join again"
            )
        return group, member

    def _check_generation(self, group: _Group, generation_id: int) -> None:
        if generation_id != group.generation_id:
            raise IllegalGenerationError(
                f"generation {generation_id} of group {group.group_id!r} is over (now "
                f"{group.generation_id}); join again"
            )

    def _join_result(self, group: _Group, member: _Member) -> JoinResult:
        leader = member.member_id == group.leader_id
        members = (
            tuple(
                JoinedMember(m.member_id, m.instance_id, m.metadata(group.protocol_name))
                for m in group.members.values()
            )
            if leader
            else ()
        )
        return JoinResult(
            member.member_id,
            group.generation_id,
            group.protocol_type,
            group.protocol_name,
            group.leader_id or "",
            members,
        )

    def _sync_result(self, group: _Group, member: _Member) -> SyncResult:
        return SyncResult(member.assignment, group.protocol_type, group.protocol_name)

    def _take(self) -> Completions:
        done, self._done = self._done, Completions()
        return done


def _choose_protocol(members: list[_Member]) -> str:
    """The protocol every member supports that most members list first among those (Kafka's vote)."""
    common = set.intersection(*({name for name, _ in m.protocols} for m in members))
    votes = Counter(next(name for name, _ in m.protocols if name in common) for m in members)
    best = max(votes.values())
    return next(name for name, _ in members[0].protocols if votes.get(name) == best)
