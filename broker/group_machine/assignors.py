"""Server-side partition assignors: pure functions from subscriptions to a target assignment.

An assignor sees only members whose subscriptions are already resolved to existing topics, and gives
each partition to at most one member subscribed to its topic. Every member appears in the result, with
an empty set if it gets nothing. Results are deterministic for the same inputs.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from typing import Protocol

from logstore.broker.group_machine.errors import UnsupportedAssignorError
from logstore.broker.group_machine.model import Assignment, TopicPartition

Subscriptions = Mapping[str, frozenset[str]]  # member id -> subscribed topics (existing ones only)
TopicPartitions = Mapping[str, int]  # topic -> partition count
Assignments = Mapping[str, Assignment]  # member id -> partitions
InstanceIds = Mapping[str, str]  # member id -> static instance id, for static members only


class Assignor(Protocol):
    name: str

    def assign(
        self,
        subscriptions: Subscriptions,
        topic_partitions: TopicPartitions,
        current: Assignments,
        instance_ids: InstanceIds | None = None,
    ) -> dict[str, Assignment]:
        """Return the target assignment; ``current`` is the previous target, for stickiness."""
        ...


def member_order(member_id: str, instance_ids: InstanceIds) -> tuple[int, str]:
    """Static members first, by instance id, then the others by member id: a static member that comes
    back under a new member id keeps its place (Kafka's order since KIP-345)."""
    instance_id = instance_ids.get(member_id)
    return (0, instance_id) if instance_id is not None else (1, member_id)


def _subscribers_by_topic(
    subscriptions: Subscriptions, topic_partitions: TopicPartitions, instance_ids: InstanceIds | None = None
) -> dict[str, list[str]]:
    """Topic -> its subscribers, in `member_order`."""
    subscribers: dict[str, list[str]] = {topic: [] for topic in topic_partitions}
    for member_id in sorted(subscriptions, key=lambda m: member_order(m, instance_ids or {})):
        for topic in subscriptions[member_id]:
            if topic in subscribers:
                subscribers[topic].append(member_id)
    return subscribers


class RangeAssignor:
    """Kafka's range assignor: per topic, the partitions are cut into contiguous ranges over the
    subscribed members in `member_order` (static members by instance id, then the others by member
    id); the first ``count % members`` members get one extra."""

    name = "range"

    def assign(
        self,
        subscriptions: Subscriptions,
        topic_partitions: TopicPartitions,
        current: Assignments,
        instance_ids: InstanceIds | None = None,
    ) -> dict[str, Assignment]:
        result: dict[str, set[TopicPartition]] = {member_id: set() for member_id in subscriptions}
        for topic, members in _subscribers_by_topic(subscriptions, topic_partitions, instance_ids).items():
            if not members:
                continue
            per_member, extra = divmod(topic_partitions[topic], len(members))
            start = 0
            for index, member_id in enumerate(members):
                size = per_member + (1 if index < extra else 0)
                result[member_id].update(TopicPartition(topic, p) for p in range(start, start + size))
                start += size
        return {member_id: frozenset(parts) for member_id, parts in result.items()}


class UniformAssignor:
    """Balanced and sticky, for identical or different subscriptions.

    1. Keep every partition of the previous target whose member still exists and is still subscribed.
    2. Give each unassigned partition to its least loaded subscriber, most constrained topics first.
    3. While some member can pass a partition, directly or along a chain of members (each hop gives
       one partition to a subscriber of its topic), to a member holding at least two fewer, do so
       along the shortest such chain, from the most loaded such member.

    Step 3 stops when no such chain exists, which is the condition for the most even loads possible
    (it minimises the sum of squared loads; see Harvey et al., "Semi-matchings for bipartite
    graphs"). Members with identical subscriptions then differ by at most one partition. Each step
    moves one unit of load from a most loaded member to a least loaded one, so homogeneous groups move
    no more partitions than balance needs: adding a fourth member to three members sharing 12
    partitions moves exactly 3.
    """

    name = "uniform"

    def assign(
        self,
        subscriptions: Subscriptions,
        topic_partitions: TopicPartitions,
        current: Assignments,
        instance_ids: InstanceIds | None = None,
    ) -> dict[str, Assignment]:
        subscribers = _subscribers_by_topic(subscriptions, topic_partitions)
        result: dict[str, set[TopicPartition]] = {member_id: set() for member_id in subscriptions}
        taken: set[TopicPartition] = set()

        for member_id in sorted(subscriptions):
            for tp in sorted(current.get(member_id, ())):
                still_valid = tp.topic in subscriptions[member_id] and tp.partition < topic_partitions.get(
                    tp.topic, 0
                )
                if still_valid and tp not in taken:
                    result[member_id].add(tp)
                    taken.add(tp)

        for topic in sorted(subscribers, key=lambda t: (len(subscribers[t]), t)):
            unassigned = [
                tp for p in range(topic_partitions[topic]) if (tp := TopicPartition(topic, p)) not in taken
            ]
            if subscribers[topic] and unassigned:
                _give_to_least_loaded(unassigned, subscribers[topic], result)

        _Balancer(result, subscriptions, topic_partitions).run()
        return {member_id: frozenset(parts) for member_id, parts in result.items()}


class _Balancer:
    """Step 3 of `UniformAssignor`, with the bookkeeping that keeps each step near O(members * topics)."""

    def __init__(
        self, result: dict[str, set[TopicPartition]], subscriptions: Subscriptions, topics: TopicPartitions
    ) -> None:
        self.result = result
        self.subscribed = {m: sorted(t for t in subscriptions[m] if t in topics) for m in result}
        self.holders: dict[str, dict[str, int]] = {topic: {} for topic in topics}  # topic -> member -> count
        for member_id in sorted(result):
            for tp in result[member_id]:
                held = self.holders[tp.topic]
                held[member_id] = held.get(member_id, 0) + 1

    def run(self) -> None:
        while self._step():
            pass

    def _step(self) -> bool:
        loads = {m: len(parts) for m, parts in self.result.items()}
        if not loads:
            return False
        least, most = min(loads.values()), max(loads.values())
        for level in range(least, most - 1):
            chain = self._shortest_chain_to(
                sorted(m for m, load in loads.items() if load == level), level + 2, loads
            )
            if chain:
                self._shift(chain)
                return True
        return False

    def _shortest_chain_to(
        self, receivers: list[str], min_giver_load: int, loads: Mapping[str, int]
    ) -> list[tuple[str, str, str]] | None:
        """Breadth-first from the receivers against the direction partitions flow; returns the hops
        (giver, topic, taker) from the most loaded member that is nearest to a receiver."""
        if not receivers:
            return None
        gives_to: dict[str, tuple[str, str]] = {}  # member -> (topic, member it passes a partition to)
        seen = set(receivers)
        expanded: set[str] = set()  # a topic's holders can give to any subscriber: expand it once
        frontier = receivers
        while frontier:
            layer: list[str] = []
            for taker in frontier:
                for topic in self.subscribed[taker]:
                    if topic in expanded:
                        continue
                    expanded.add(topic)
                    for holder in self.holders[topic]:
                        if holder not in seen:
                            seen.add(holder)
                            gives_to[holder] = (topic, taker)
                            layer.append(holder)
            givers = [m for m in layer if loads[m] >= min_giver_load]
            if givers:
                member = min(givers, key=lambda m: (-loads[m], m))
                hops = []
                while member in gives_to:
                    topic, taker = gives_to[member]
                    hops.append((member, topic, taker))
                    member = taker
                return hops
            frontier = sorted(layer)
        return None

    def _shift(self, hops: list[tuple[str, str, str]]) -> None:
        for giver, topic, taker in hops:
            moved = max(tp for tp in self.result[giver] if tp.topic == topic)
            self.result[giver].remove(moved)
            self.result[taker].add(moved)
            held = self.holders[topic]
            held[giver] -= 1
            if not held[giver]:
                del held[giver]
            held[taker] = held.get(taker, 0) + 1


def _give_to_least_loaded(
    partitions: list[TopicPartition], members: list[str], result: dict[str, set[TopicPartition]]
) -> None:
    """Give each partition in turn to the member holding the fewest (ties: lowest member id)."""
    heap = [(len(result[m]), m) for m in members]
    heapq.heapify(heap)
    for tp in partitions:
        load, member = heapq.heappop(heap)
        while load != len(result[member]):  # stale: the member took partitions of another topic since
            load, member = heapq.heappushpop(heap, (len(result[member]), member))
        result[member].add(tp)
        heapq.heappush(heap, (load + 1, member))


ASSIGNORS: dict[str, Assignor] = {
    assignor.name: assignor for assignor in (UniformAssignor(), RangeAssignor())
}


def get_assignor(name: str) -> Assignor:
    try:
        return ASSIGNORS[name]
    except KeyError:
        raise UnsupportedAssignorError(
            f"unknown server assignor {name!r}; the supported assignors are {sorted(ASSIGNORS)}"
        ) from None
