"""Stateful property test of the group coordinator: random joins, heartbeats (some lagging one response
behind), subscription changes, leaves, crashes, static leaves and restarts, topic changes and time
steps. After every step no partition may have two owners; after a settle phase every subscribed
partition has exactly one owner and the assignment is what the assignor promises."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from logstore.broker.group_machine import (
    LEAVE_GROUP_MEMBER_EPOCH,
    LEAVE_GROUP_STATIC_MEMBER_EPOCH,
    Assignment,
    CoordinatorConfig,
    GroupCoordinator,
    GroupState,
    HeartbeatRequest,
    HeartbeatResponse,
    MemberState,
    RangeAssignor,
    RemovalReason,
    TopicPartition,
)

GROUP = "g"
SESSION_MS = 10_000
INTERVAL_MS = 1_000
REBALANCE_MS = 4_000
MAX_CLIENTS = 6
TOPIC_POOL = ("a0", "a1", "b0", "__internal")
# (topic names, regex): by name, by regex (which never matches "__internal"), and mixed
SUBSCRIPTIONS: tuple[tuple[tuple[str, ...], str | None], ...] = (
    (("a0",), None),
    (("a0", "b0"), None),
    ((), "a.*"),
    ((), ".*"),
    (("b0", "__internal"), "a1"),
)


@dataclass
class Client:
    """A well-behaved consumer. It owns what the last response it processed told it. Responses may
    wait unprocessed: a lagging heartbeat goes out with one response still unread, so it reports
    what the client was told one heartbeat ago."""

    member_id: str
    epoch: int
    instance_id: str | None
    subscription: tuple[tuple[str, ...], str | None]
    owned: Assignment
    last_heartbeat_ms: int
    unread: list[HeartbeatResponse] = field(default_factory=list)
    highest_epoch: int = 0

    def process(self, keep_unread: int = 0) -> None:
        while len(self.unread) > keep_unread:
            response = self.unread.pop(0)
            assert response.member_id == self.member_id
            assert response.member_epoch >= self.highest_epoch, "member epochs only grow"
            self.highest_epoch = response.member_epoch
            self.epoch, self.owned = response.member_epoch, response.assignment

    def may_own(self) -> Assignment:
        """Conservatively: what it owns, plus what it was told and will own once it reads it."""
        return self.owned.union(*(response.assignment for response in self.unread))


def resolve(subscription: tuple[tuple[str, ...], str | None], topics: dict[str, int]) -> frozenset[str]:
    names, regex = subscription
    resolved = {name for name in names if name in topics}
    if regex is not None:
        resolved |= {t for t in topics if not t.startswith("__") and re.fullmatch(regex, t)}
    return frozenset(resolved)


class GroupMachine(RuleBasedStateMachine):
    @initialize(
        assignor=st.sampled_from(["uniform", "range"]),
        first_members=st.lists(
            st.tuples(st.sampled_from(SUBSCRIPTIONS), st.booleans()), min_size=1, max_size=4
        ),
    )
    def start(self, assignor: str, first_members: list[tuple[tuple, bool]]) -> None:
        ids = (f"m{i}" for i in itertools.count())
        self.assignor = assignor
        self.topics: dict[str, int] = {"a0": 3, "b0": 2, "__internal": 2}
        self.coordinator = GroupCoordinator(
            CoordinatorConfig(
                session_timeout_ms=SESSION_MS, heartbeat_interval_ms=INTERVAL_MS, assignor=assignor
            ),
            topic_partitions=self.topics,
            member_id_factory=lambda: next(ids),
        )
        self.now = 0
        self.clients: dict[str, Client] = {}  # live processes, by member id
        self.away_instances: set[str] = set()  # static instance ids whose process is gone
        self.instance_ids = (f"i{i}" for i in itertools.count())
        self.group_epoch = 0
        for subscription, static in first_members:
            self._join(subscription, next(self.instance_ids) if static else None)

    # --- the clients' side ------------------------------------------------------------------------------

    def _join(self, subscription: tuple[tuple[str, ...], str | None], instance_id: str | None) -> Client:
        names, regex = subscription
        request = HeartbeatRequest(
            GROUP,
            "",
            0,
            instance_id=instance_id,
            rebalance_timeout_ms=REBALANCE_MS,
            subscribed_topic_names=names,
            subscribed_topic_regex=regex,
        )
        response = self.coordinator.heartbeat(request, self.now)
        client = Client(response.member_id, 0, instance_id, subscription, frozenset(), self.now, [response])
        client.process()
        self.clients[client.member_id] = client
        return client

    def _beat(self, client: Client, lag: bool = False, subscription: tuple | None = None) -> bool:
        """One heartbeat, lagging or not; True if it told the client something new."""
        client.process(keep_unread=1 if lag else 0)
        before = (client.epoch, client.owned)
        fields = {}
        if subscription is not None:
            fields = {"subscribed_topic_names": subscription[0], "subscribed_topic_regex": subscription[1]}
        request = HeartbeatRequest(
            GROUP,
            client.member_id,
            client.epoch,
            instance_id=client.instance_id,
            owned_partitions=client.owned,
            **fields,
        )
        response = self.coordinator.heartbeat(request, self.now)  # a well-behaved live member is never fenced
        client.last_heartbeat_ms = self.now
        if subscription is not None:
            client.subscription = subscription
        client.unread.append(response)
        if not lag:
            client.process()
        return (response.member_epoch, response.assignment) != before

    def _pick(self, data: st.DataObject, static_only: bool = False) -> Client:
        candidates = sorted(
            m for m, c in self.clients.items() if c.instance_id is not None or not static_only
        )
        return self.clients[data.draw(st.sampled_from(candidates))]

    def _advance(self, ms: int) -> None:
        unrevoked = {
            m.member_id
            for m in self.coordinator.describe_group(GROUP).members
            if m.state is MemberState.UNREVOKED_PARTITIONS
        }
        self.now += ms
        for removed in self.coordinator.tick(self.now).removed:
            client = self.clients.pop(removed.member_id, None)
            if client is None:
                continue  # crashed, left as a static member, or replaced: nobody to tell
            if removed.reason is RemovalReason.SESSION_TIMEOUT:
                assert self.now - client.last_heartbeat_ms >= SESSION_MS
            else:
                assert removed.reason is RemovalReason.REBALANCE_TIMEOUT and removed.member_id in unrevoked
            # The client learns it is out (its own timers say so) and drops everything it owned.
            if client.instance_id is not None:
                self.away_instances.add(client.instance_id)

    # --- rules ------------------------------------------------------------------------------------------

    @precondition(lambda self: len(self.clients) < MAX_CLIENTS)
    @rule(subscription=st.sampled_from(SUBSCRIPTIONS), static=st.booleans())
    def join(self, subscription: tuple[tuple[str, ...], str | None], static: bool) -> None:
        self._join(subscription, next(self.instance_ids) if static else None)

    @precondition(lambda self: self.clients)
    @rule(data=st.data(), lag=st.booleans())
    def heartbeat(self, data: st.DataObject, lag: bool) -> None:
        self._beat(self._pick(data), lag)

    @precondition(lambda self: self.clients)
    @rule(data=st.data())
    def read_responses(self, data: st.DataObject) -> None:
        self._pick(data).process()

    @precondition(lambda self: self.clients)
    @rule(data=st.data(), subscription=st.sampled_from(SUBSCRIPTIONS), lag=st.booleans())
    def change_subscription(self, data: st.DataObject, subscription: tuple, lag: bool) -> None:
        self._beat(self._pick(data), lag, subscription)

    @precondition(lambda self: self.clients)
    @rule(data=st.data())
    def leave(self, data: st.DataObject) -> None:
        client = self.clients.pop(self._pick(data).member_id)
        request = HeartbeatRequest(
            GROUP, client.member_id, LEAVE_GROUP_MEMBER_EPOCH, instance_id=client.instance_id
        )
        assert self.coordinator.heartbeat(request, self.now).assignment == frozenset()
        assert client.member_id not in {m.member_id for m in self.coordinator.describe_group(GROUP).members}

    @precondition(lambda self: self.clients)
    @rule(data=st.data())
    def crash(self, data: st.DataObject) -> None:
        client = self.clients.pop(self._pick(data).member_id)
        if client.instance_id is not None:
            self.away_instances.add(client.instance_id)

    @precondition(lambda self: any(c.instance_id for c in self.clients.values()))
    @rule(data=st.data())
    def static_leave(self, data: st.DataObject) -> None:
        client = self.clients.pop(self._pick(data, static_only=True).member_id)
        request = HeartbeatRequest(
            GROUP, client.member_id, LEAVE_GROUP_STATIC_MEMBER_EPOCH, instance_id=client.instance_id
        )
        assert self.coordinator.heartbeat(request, self.now).member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH
        assert client.instance_id is not None
        self.away_instances.add(client.instance_id)

    @precondition(lambda self: self.away_instances or any(c.instance_id for c in self.clients.values()))
    @rule(data=st.data())
    def static_restart(self, data: st.DataObject) -> None:
        """A static member's process comes back (after a leave or crash) or restarts in place."""
        live = {c.instance_id: c for c in self.clients.values() if c.instance_id is not None}
        instance_id = data.draw(st.sampled_from(sorted(self.away_instances | set(live))))
        if instance_id in live:
            del self.clients[live[instance_id].member_id]  # the old process is gone
        self.away_instances.discard(instance_id)
        before = self.coordinator.describe_group(GROUP)
        old = next((m for m in before.members if m.instance_id == instance_id), None)
        subscription = (old.subscribed_topic_names, old.subscribed_topic_regex) if old else SUBSCRIPTIONS[0]
        client = self._join(subscription, instance_id)
        if old is not None:
            after = self.coordinator.describe_group(GROUP)
            assert after.group_epoch == before.group_epoch, "a static member's return moves nothing"
            assert client.owned >= old.assigned_partitions & old.target_assignment

    @rule(topic=st.sampled_from(TOPIC_POOL), more=st.integers(1, 3))
    def create_or_grow_topic(self, topic: str, more: int) -> None:
        self.topics[topic] = self.topics.get(topic, 0) + more
        self.coordinator.update_topics(self.topics, self.now)

    @precondition(lambda self: self.topics)
    @rule(data=st.data())
    def delete_topic(self, data: st.DataObject) -> None:
        del self.topics[data.draw(st.sampled_from(sorted(self.topics)))]
        self.coordinator.update_topics(self.topics, self.now)

    @rule(ms=st.sampled_from([100, 1_000, 2_500, 4_500, 11_000]))
    def advance_time(self, ms: int) -> None:
        self._advance(ms)

    @rule()
    def settle(self) -> None:
        """Let dead members time out and live ones catch up, then check the final assignment."""
        for client in list(self.clients.values()):
            self._beat(client)
        for _ in range(SESSION_MS // INTERVAL_MS + 1):
            self._advance(INTERVAL_MS)
            for client in list(self.clients.values()):
                self._beat(client)
        for _ in range(6):
            changed = [self._beat(client) for client in list(self.clients.values())]
            if not any(changed):
                break
        self.check_settled()

    def teardown(self) -> None:
        if hasattr(self, "coordinator"):
            self.settle()

    # --- checks -----------------------------------------------------------------------------------------

    @invariant()
    def no_partition_has_two_owners(self) -> None:
        if not hasattr(self, "coordinator"):
            return
        description = self.coordinator.describe_group(GROUP)
        assert description.group_epoch >= self.group_epoch, "the group epoch only grows"
        assert description.target_assignment_epoch == description.group_epoch
        self.group_epoch = description.group_epoch
        held: dict[str, Assignment] = {}
        for member in description.members:
            holds = member.assigned_partitions | member.pending_revocation
            assert not holds & frozenset().union(*held.values())
            held[member.member_id] = holds
        seen: set[TopicPartition] = set()
        for client in self.clients.values():
            may_own = client.may_own()
            assert not may_own & seen, "a partition has two owners"
            seen |= may_own
            assert may_own <= held[client.member_id], "a client owns what the coordinator gave away"

    def check_settled(self) -> None:
        description = self.coordinator.describe_group(GROUP)
        assert set(self.clients) == {m.member_id for m in description.members}
        idle = (GroupState.EMPTY, GroupState.DEAD)  # Dead: no member ever joined
        assert description.state in ((GroupState.STABLE,) if self.clients else idle)
        subscriptions = {m: resolve(c.subscription, self.topics) for m, c in self.clients.items()}
        owned = {m: c.owned for m, c in self.clients.items()}
        subscribed = set().union(*subscriptions.values())
        expected = {TopicPartition(t, p) for t in subscribed for p in range(self.topics[t])}
        assert frozenset().union(*owned.values()) == expected, "every subscribed partition has an owner"
        assert sum(map(len, owned.values())) == len(expected), "and only one"
        for member_id, parts in owned.items():
            assert {tp.topic for tp in parts} <= subscriptions[member_id]
        if self.assignor == "range":
            instance_ids = {m: c.instance_id for m, c in self.clients.items() if c.instance_id}
            assert owned == RangeAssignor().assign(subscriptions, self.topics, {}, instance_ids)
            return
        for same in {s for s in subscriptions.values()}:
            sizes = [len(owned[m]) for m, s in subscriptions.items() if s == same]
            assert max(sizes) - min(sizes) <= 1, "uniform: identical subscriptions differ by at most one"


GroupMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)
TestGroupCoordinatorStateful = GroupMachine.TestCase
