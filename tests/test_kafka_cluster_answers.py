"""What the Kafka listener says about the cluster (`cluster_answers`), from a `ClusterInfo` whose answers
the test sets: brokers and their Kafka addresses, leaders that are gone, offline replicas, and KIP-320's
epoch checks. A single broker answers as it always did."""

from __future__ import annotations

from dataclasses import dataclass, field

from kio.schema.errors import ErrorCode
from logstore.broker.domain.cluster_info import (
    NO_BROKER,
    BrokerNode,
    CoordinatorKind,
    PartitionLeadership,
    SingleBroker,
)
from logstore.broker.domain.errors import FencedLeaderEpochError, UnknownLeaderEpochError
from logstore.broker.kafka import cluster_answers
from logstore.broker.kafka.cluster_answers import Node, PartitionAnswer
from logstore.broker.kafka.context import Endpoint

HERE = Endpoint("10.0.0.9", 9092)


@dataclass
class Cluster:
    """A cluster as a broker's view shows it; each answer is what the test put in."""

    broker_id: int = 2
    clustered: bool = True
    nodes: list[BrokerNode] = field(default_factory=list)
    controller: int = 1
    partitions: dict[tuple[str, int], PartitionLeadership] = field(default_factory=dict)

    def brokers(self) -> list[BrokerNode]:
        return self.nodes

    def controller_id(self) -> int:
        return self.controller

    def leadership(self, topic: str, partition: int) -> PartitionLeadership | None:
        return self.partitions.get((topic, partition))

    def coordinator(self, kind: CoordinatorKind, key: str) -> int:
        return NO_BROKER

    def check_leader(self, topic: str, partition: int) -> None:
        return None

    def check_coordinator(self, kind: CoordinatorKind, key: str) -> None:
        return None


def three() -> Cluster:
    return Cluster(
        nodes=[
            BrokerNode(1, {"grpc": "h1:7000", "kafka": "h1:9092"}),
            BrokerNode(2, {"grpc": "h2:7000", "kafka": "h2:9093"}),
            BrokerNode(3, {"grpc": "[::1]:7000", "kafka": "[::1]:9094"}),
            BrokerNode(4, {"grpc": "h4:7000"}),  # no Kafka listener: not a node Kafka clients can use
        ],
        partitions={
            ("t", 0): PartitionLeadership(1, 4, (1, 2, 3), (1, 2)),
            ("t", 1): PartitionLeadership(NO_BROKER, 7, (1, 2, 3), ()),
            ("t", 2): PartitionLeadership(5, 2, (5, 1, 3), (5, 1)),
        },
    )


def test_a_single_broker_is_the_one_node_at_the_address_the_client_used() -> None:
    alone = SingleBroker({"kafka": "elsewhere:1"})
    assert cluster_answers.brokers(alone, HERE) == [Node(0, "10.0.0.9", 9092)]
    assert cluster_answers.controller_id(alone) == 0
    assert cluster_answers.partition(alone, {0}, "t", 3) == PartitionAnswer(
        ErrorCode.none, 0, -1, (0,), (0,), ()
    )
    assert cluster_answers.partition_count(alone, "t") == 0
    assert cluster_answers.node(alone, HERE, 0) == Node(0, "10.0.0.9", 9092)
    assert cluster_answers.epoch_error(alone, "t", 0, 12) is None


def test_a_cluster_lists_its_live_brokers_with_their_kafka_addresses() -> None:
    cluster = three()
    assert cluster_answers.brokers(cluster, HERE) == [
        Node(1, "h1", 9092),
        Node(2, "h2", 9093),
        Node(3, "::1", 9094),
    ]
    assert cluster_answers.node(cluster, HERE, 3) == Node(3, "::1", 9094)
    assert cluster_answers.node(cluster, HERE, 4) is None
    assert cluster_answers.node(cluster, HERE, NO_BROKER) is None
    assert cluster_answers.controller_id(cluster) == 1
    cluster.controller = NO_BROKER
    assert cluster_answers.controller_id(cluster) == -1


def test_partitions_name_their_leader_epoch_and_replicas_and_a_gone_leader_is_no_leader() -> None:
    cluster = three()
    live = {1, 2, 3}
    assert cluster_answers.partition(cluster, live, "t", 0) == PartitionAnswer(
        ErrorCode.none, 1, 4, (1, 2, 3), (1, 2), ()
    )
    assert cluster_answers.partition(cluster, live, "t", 1) == PartitionAnswer(
        ErrorCode.leader_not_available, -1, 7, (1, 2, 3), (), ()
    )
    # the controller has not moved the partition off broker 5 yet, but 5 is not live: no leader
    assert cluster_answers.partition(cluster, live, "t", 2) == PartitionAnswer(
        ErrorCode.leader_not_available, -1, 2, (5, 1, 3), (5, 1), (5,)
    )
    assert cluster_answers.partition(cluster, live, "t", 3) == PartitionAnswer(
        ErrorCode.leader_not_available, -1, -1, (), (), ()
    )
    assert cluster_answers.partition_count(cluster, "t") == 3
    assert cluster_answers.partition_count(cluster, "other") == 0


def test_an_older_epoch_is_fenced_and_a_newer_one_unknown() -> None:
    cluster = three()
    assert isinstance(cluster_answers.epoch_error(cluster, "t", 0, 3), FencedLeaderEpochError)
    assert isinstance(cluster_answers.epoch_error(cluster, "t", 0, 5), UnknownLeaderEpochError)
    assert cluster_answers.epoch_error(cluster, "t", 0, 4) is None
    assert cluster_answers.epoch_error(cluster, "t", 0, -1) is None  # the client sent none
    assert cluster_answers.epoch_error(cluster, "t", 9, 3) is None  # unknown here: the domain answers
