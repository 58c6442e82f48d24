"""Small value types shared by the producer, consumer and admin client (kafka-python's names)."""

from __future__ import annotations

from typing import NamedTuple


class TopicPartition(NamedTuple):
    """One partition of one topic."""

    topic: str
    partition: int

    def __str__(self) -> str:
        return f"{self.topic}-{self.partition}"


class RecordMetadata(NamedTuple):
    """Where an acknowledged record was written.

    ``offset`` is -1 with acks=0 (the broker does not say). ``timestamp`` is the record's create time, or
    the broker's append time for a topic with ``message.timestamp.type=LogAppendTime``.
    """

    topic: str
    partition: int
    offset: int
    timestamp: int


class OffsetAndTimestamp(NamedTuple):
    """The answer of ``offsets_for_times``: the first offset at or after a time, and its batch timestamp."""

    offset: int
    timestamp: int


class PartitionInfo(NamedTuple):
    """A partition as the admin client describes it: its offsets (-1 when the broker asked holds no
    replica), its leader (-1 while it has none; 0 for a single broker), leader epoch, replicas and ISR."""

    partition: int
    log_start_offset: int
    log_end_offset: int
    leader: int = 0
    leader_epoch: int = 0
    replicas: tuple[int, ...] = (0,)
    isr: tuple[int, ...] = (0,)

    @property
    def under_replicated(self) -> bool:
        """Fewer replicas in sync than assigned (acks=all then waits on fewer copies)."""
        return len(self.isr) < len(self.replicas)


class BrokerMetadata(NamedTuple):
    """A live broker: its id and the "host:port" of each listener ("grpc", "kafka", "http")."""

    broker_id: int
    endpoints: dict[str, str]


class ClusterDescription(NamedTuple):
    """The cluster as one broker sees it (``Admin.describe_cluster``)."""

    brokers: list[BrokerMetadata]
    controller_id: int
    broker_id: int
    """The broker that answered."""
    clustered: bool
    """False for a broker alone (no --etcd): broker 0, which leads everything."""
    cluster_id: str = ""


class TopicDescription(NamedTuple):
    """A topic's effective configuration and its partitions' offsets."""

    name: str
    config: dict[str, str]
    partitions: list[PartitionInfo]
