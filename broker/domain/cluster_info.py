"""What the listeners and the domain may ask about the cluster: which brokers there are, who leads a
partition, who coordinates a group. One interface, two answers: `SingleBroker` (no `--etcd`: this
broker is the whole cluster and leads everything, as before clusters existed) and the cluster node's
view (`broker/replication/node.py`), kept current from etcd.

The listeners only translate these answers (Kafka's Metadata and FindCoordinator, the gRPC
DescribeCluster); the domain asks `check_leader` before it appends or reads, so a request that reached
the wrong broker is refused with NOT_LEADER_OR_FOLLOWER and the client refreshes its metadata.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from logstore.broker.domain.errors import NotCoordinatorError, NotLeaderOrFollowerError

NO_BROKER = -1
"""A leader, controller or coordinator that is not known right now (Kafka answers -1 too)."""


class CoordinatorKind(enum.Enum):
    """Which internal topic places a group's coordinator: consumer groups on `__consumer_offsets`,
    share groups on the share-state topic."""

    GROUP = "group"
    SHARE = "share"


@dataclass(frozen=True, slots=True)
class BrokerNode:
    """A live broker and the address clients reach it at per listener ("grpc", "kafka", "http")."""

    broker_id: int
    endpoints: Mapping[str, str] = field(default_factory=dict)

    def endpoint(self, listener: str) -> tuple[str, int] | None:
        """(host, port) of one listener, None when this broker does not serve it."""
        address = self.endpoints.get(listener)
        if not address:
            return None
        host, _, port = address.rpartition(":")
        return host.strip("[]"), int(port)


@dataclass(frozen=True, slots=True)
class PartitionLeadership:
    """A partition's leader (NO_BROKER when offline), leader epoch, replicas and in-sync replicas."""

    leader: int
    leader_epoch: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


class ClusterInfo(Protocol):
    """Read by the listeners and the domain on the broker's event loop."""

    @property
    def broker_id(self) -> int:
        """This broker's id (0 for a single broker)."""
        ...

    @property
    def clustered(self) -> bool:
        """Whether this broker is part of an etcd-coordinated cluster (else it is alone)."""
        ...

    def brokers(self) -> list[BrokerNode]:
        """The live brokers, this one included, by id."""
        ...

    def controller_id(self) -> int:
        """The controller's broker id, NO_BROKER while none is elected."""
        ...

    def leadership(self, topic: str, partition: int) -> PartitionLeadership | None:
        """Who leads the partition; None when the cluster does not know it (the topic is not there)."""
        ...

    def coordinator(self, kind: CoordinatorKind, key: str) -> int:
        """The broker id of the coordinator of group `key`, NO_BROKER while its partition has no leader."""
        ...

    def check_leader(self, topic: str, partition: int) -> None:
        """Raise NotLeaderOrFollowerError unless this broker leads the partition now."""
        ...

    def check_coordinator(self, kind: CoordinatorKind, key: str) -> None:
        """Raise NotCoordinatorError unless this broker coordinates group `key` now."""
        ...


class SingleBroker:
    """The cluster of one: this broker leads every partition and coordinates every group.

    `endpoints` is read at each call, so listeners bound after construction are listed. Not
    thread-safe (it holds no state of its own beyond the callable)."""

    broker_id = 0
    clustered = False

    def __init__(self, endpoints: Mapping[str, str] | None = None) -> None:
        self.endpoints: Mapping[str, str] = endpoints or {}

    def brokers(self) -> list[BrokerNode]:
        return [BrokerNode(self.broker_id, dict(self.endpoints))]

    def controller_id(self) -> int:
        return self.broker_id

    def leadership(self, topic: str, partition: int) -> PartitionLeadership | None:
        me = (self.broker_id,)
        return PartitionLeadership(self.broker_id, 0, me, me)

    def coordinator(self, kind: CoordinatorKind, key: str) -> int:
        return self.broker_id

    def check_leader(self, topic: str, partition: int) -> None:
        return None

    def check_coordinator(self, kind: CoordinatorKind, key: str) -> None:
        return None


def not_leader(topic: str, partition: int, leadership: PartitionLeadership | None, me: int) -> Exception:
    """The error for a request about a partition this broker `me` does not lead, naming who does."""
    if leadership is None:
        return NotLeaderOrFollowerError(f"{topic}-{partition}: broker {me} holds no replica of it")
    if leadership.leader == NO_BROKER:
        return NotLeaderOrFollowerError(
            f"{topic}-{partition} has no leader right now (epoch {leadership.leader_epoch}); retry shortly"
        )
    return NotLeaderOrFollowerError(
        f"{topic}-{partition} is led by broker {leadership.leader} (epoch {leadership.leader_epoch}), "
        f"not broker {me}; refresh metadata and send there"
    )


def not_coordinator(kind: CoordinatorKind, key: str, coordinator: int, me: int) -> Exception:
    if coordinator == NO_BROKER:
        return NotCoordinatorError(f"{kind.value} {key!r} has no coordinator right now; retry shortly")
    return NotCoordinatorError(
        f"{kind.value} {key!r} is coordinated by broker {coordinator}, not broker {me}; find it again",
        coordinator,
    )
