"""Server-side partition assignors: pure functions from subscriptions to a target assignment.

An assignor sees only members whose subscriptions are already resolved to existing topics, and gives
each partition to at most one member subscribed to its topic. Every member appears in the result, with
an empty set if it gets nothing. Results are deterministic for the same inputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from broker.groups.errors import UnsupportedAssignorError
from broker.groups.model import Assignment, TopicPartition

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
    3. Move a partition from a member to a subscriber of its topic holding at least two fewer; when no
       such direct move is left, shift one partition along a chain of members (each hop gives a
       partition to a subscriber of its topic) from a member to one holding at least two fewer.

    Step 3 stops when no chain from a member to one holding two or fewer partitions less exists, which
    is the condition for the most even loads possible (it minimises the sum of squared loads; see
    Harvey et al., "Semi-matchings for bipartite graphs"). Members with identical subscriptions then
    differ by at most one partition. Direct moves come first and each move fixes one unit of
    imbalance, so homogeneous groups move no more partitions than balance needs: adding a fourth
    member to three members sharing 12 partitions moves exactly 3.
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
            members = subscribers[topic]
            if not members:
                continue
            for partition in range(topic_partitions[topic]):
                tp = TopicPartition(topic, partition)
                if tp not in taken:
                    receiver = min(members, key=lambda m: (len(result[m]), m))
                    result[receiver].add(tp)
                    taken.add(tp)

        while self._move_one(result, subscribers) or self._move_along_chain(result, subscribers):
            pass
        return {member_id: frozenset(parts) for member_id, parts in result.items()}

    @staticmethod
    def _move_one(result: dict[str, set[TopicPartition]], subscribers: Mapping[str, list[str]]) -> bool:
        """Move one partition from the most loaded member that can give one; False when balanced."""
        for giver in sorted(result, key=lambda m: (-len(result[m]), m)):
            giver_load = len(result[giver])
            best: tuple[int, str, str] | None = None  # (receiver load, receiver, topic)
            for topic in sorted({tp.topic for tp in result[giver]}):
                for receiver in subscribers[topic]:
                    load = len(result[receiver])
                    if load + 1 < giver_load and (best is None or (load, receiver) < best[:2]):
                        best = (load, receiver, topic)
            if best is not None:
                _, receiver, topic = best
                moved = max(tp for tp in result[giver] if tp.topic == topic)
                result[giver].remove(moved)
                result[receiver].add(moved)
                return True
        return False

    @staticmethod
    def _move_along_chain(
        result: dict[str, set[TopicPartition]], subscribers: Mapping[str, list[str]]
    ) -> bool:
        """Shift one partition along the shortest chain from a member to one holding two fewer."""
        for giver in sorted(result, key=lambda m: (-len(result[m]), m)):
            via: dict[str, tuple[str, str] | None] = {giver: None}  # member -> (previous member, topic)
            frontier = [giver]
            while frontier:
                next_frontier = []
                for holder in frontier:
                    for topic in sorted({tp.topic for tp in result[holder]}):
                        for member in subscribers[topic]:
                            if member not in via:
                                via[member] = (holder, topic)
                                next_frontier.append(member)
                frontier = next_frontier
            receiver = min((m for m in via if m != giver), key=lambda m: (len(result[m]), m), default=None)
            if receiver is None or len(result[receiver]) + 1 >= len(result[giver]):
                continue
            member = receiver
            while (hop := via[member]) is not None:
                holder, topic = hop
                moved = max(tp for tp in result[holder] if tp.topic == topic)
                result[holder].remove(moved)
                result[member].add(moved)
                member = holder
            return True
        return False


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
