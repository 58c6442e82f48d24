"""What this listener tells Kafka clients about the cluster: the brokers and their Kafka addresses, each
partition's leader, epoch and replicas, the controller, and whether a request's leader epoch is current.

Pure translation of `core.cluster` (the domain's `ClusterInfo`) into Kafka's terms, shared by Metadata,
FindCoordinator, DescribeCluster and the epoch checks of Fetch, ListOffsets and OffsetForLeaderEpoch.

A single broker (no `--etcd`) answers exactly as before clusters existed: one node, this broker's id,
at the address the client reached it at, leader of every partition with no leader epoch (-1), so
clients send no epochs and nothing is fenced.
"""

from __future__ import annotations

from dataclasses import dataclass

from kio.schema.errors import ErrorCode
from logstore.broker.domain.cluster_info import NO_BROKER, ClusterInfo
from logstore.broker.domain.errors import FencedLeaderEpochError, UnknownLeaderEpochError
from logstore.broker.kafka.context import Endpoint

KAFKA_LISTENER = "kafka"
"""The name of this listener's address in a broker's registration (`BrokerNode.endpoints`)."""
NO_EPOCH = -1
"""A leader epoch not known or not sent (Kafka's RecordBatch.NO_PARTITION_LEADER_EPOCH)."""


@dataclass(frozen=True, slots=True)
class Node:
    """A broker as Kafka clients see it: node id and the host and port of its Kafka listener."""

    node_id: int
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class PartitionAnswer:
    """One partition of a Metadata answer."""

    error: ErrorCode
    leader: int
    leader_epoch: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    offline: tuple[int, ...]


def brokers(cluster: ClusterInfo, here: Endpoint) -> list[Node]:
    """The live brokers with a Kafka listener, by id. A single broker is the one node, at the address
    the client connected to (`here`), as it always answered."""
    if not cluster.clustered:
        return [Node(cluster.broker_id, here.host, here.port)]
    nodes = []
    for broker in cluster.brokers():
        address = broker.endpoint(KAFKA_LISTENER)
        if address is not None:
            nodes.append(Node(broker.broker_id, *address))
    return nodes


def node(cluster: ClusterInfo, here: Endpoint, broker_id: int) -> Node | None:
    """The Kafka address of broker `broker_id`, None when it is not live (or NO_BROKER)."""
    if broker_id == NO_BROKER:
        return None
    return next((n for n in brokers(cluster, here) if n.node_id == broker_id), None)


def controller_id(cluster: ClusterInfo) -> int:
    """The controller's node id, -1 while none is elected (a single broker is its own controller)."""
    return cluster.controller_id() if cluster.clustered else cluster.broker_id


def partition(cluster: ClusterInfo, live: set[int], topic: str, index: int) -> PartitionAnswer:
    """A partition's leader, epoch, replicas and ISR. As Kafka's metadata cache: a leader that is not a
    live broker is no leader (LEADER_NOT_AVAILABLE, -1, with the epoch and replicas still given), and
    replicas on brokers that are not live are listed as offline."""
    me = cluster.broker_id
    if not cluster.clustered:
        return PartitionAnswer(ErrorCode.none, me, NO_EPOCH, (me,), (me,), ())
    found = cluster.leadership(topic, index)
    if found is None:  # the topic is here but the cluster does not know the partition (yet)
        return PartitionAnswer(ErrorCode.leader_not_available, NO_BROKER, NO_EPOCH, (), (), ())
    offline = tuple(r for r in found.replicas if r not in live)
    if found.leader == NO_BROKER or found.leader not in live:
        return PartitionAnswer(
            ErrorCode.leader_not_available, NO_BROKER, found.leader_epoch, found.replicas, found.isr, offline
        )
    return PartitionAnswer(
        ErrorCode.none, found.leader, found.leader_epoch, found.replicas, found.isr, offline
    )


def partition_count(cluster: ClusterInfo, topic: str) -> int:
    """How many partitions the cluster knows of `topic` (0: none; a single broker knows none this way).

    `ClusterInfo` answers per partition only, so this counts the partitions it knows from 0 up."""
    if not cluster.clustered:
        return 0
    count = 0
    while cluster.leadership(topic, count) is not None:
        count += 1
    return count


def epoch_error(cluster: ClusterInfo, topic: str, index: int, current_leader_epoch: int) -> Exception | None:
    """KIP-320's check of the leader epoch a client says it saw (Fetch v9+, ListOffsets v4+,
    OffsetForLeaderEpoch v2+): older than the partition's is FENCED_LEADER_EPOCH (the client's metadata
    is stale), newer is UNKNOWN_LEADER_EPOCH (this broker's is). None when it matches, when the client
    sent none (-1), when this is a single broker, or when the cluster does not know the partition (the
    domain's own answer for it stands)."""
    if current_leader_epoch < 0 or not cluster.clustered:
        return None
    found = cluster.leadership(topic, index)
    if found is None or current_leader_epoch == found.leader_epoch:
        return None
    if current_leader_epoch < found.leader_epoch:
        return FencedLeaderEpochError(
            f"{topic}-{index}: leader epoch {current_leader_epoch} is older than the current "
            f"{found.leader_epoch}; refresh metadata"
        )
    return UnknownLeaderEpochError(
        f"{topic}-{index}: leader epoch {current_leader_epoch} is newer than the {found.leader_epoch} "
        f"broker {cluster.broker_id} knows; retry shortly"
    )
