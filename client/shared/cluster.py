"""What a client knows of the cluster: the brokers' gRPC addresses and each partition's leader.

Pure bookkeeping, no I/O: the connection feeds it DescribeCluster and DescribeTopic answers, and the
producer and consumer ask it where to send, and tell it when an answer showed it stale
(``forget_leader`` after NOT_LEADER_OR_FOLLOWER or a dead channel), so the next refresh asks again.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from logstore.client.shared.types import ClusterDescription, PartitionInfo

NO_LEADER = -1


class ClusterMap:
    """Brokers and leaders as last learned. Thread-safe: updates take a lock; lookups read dicts whole."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.learned = False
        """Whether a DescribeCluster answer was seen (until then, ``clustered`` is a guess: False)."""
        self.clustered = False
        """Whether the brokers answered as an etcd cluster (else: one broker, id 0, leads everything)."""
        self.controller_id = NO_LEADER
        self._addresses: dict[int, str] = {}
        self._leaders: dict[tuple[str, int], int] = {}
        self._epochs: dict[tuple[str, int], int] = {}

    def learn_cluster(self, description: ClusterDescription) -> None:
        """A DescribeCluster answer: the live brokers' gRPC addresses replace the ones known."""
        with self._lock:
            self.learned = True
            self.clustered = description.clustered
            self.controller_id = description.controller_id
            self._addresses = {
                b.broker_id: b.endpoints["grpc"] for b in description.brokers if b.endpoints.get("grpc")
            }

    def learn_topic(self, topic: str, partitions: Iterable[PartitionInfo]) -> None:
        """A DescribeTopic answer: each partition's leader, unless an answer seen before was newer (a
        lagging broker's view must not undo a later failover)."""
        with self._lock:
            for p in partitions:
                key = (topic, p.partition)
                if p.leader_epoch < self._epochs.get(key, -1):
                    continue
                self._epochs[key] = p.leader_epoch
                if p.leader == NO_LEADER:
                    self._leaders.pop(key, None)
                else:
                    self._leaders[key] = p.leader

    def forget_leader(self, topic: str, partition: int) -> None:
        """The leader known did not lead (or could not be reached): ask again before sending there."""
        with self._lock:
            self._leaders.pop((topic, partition), None)

    def forget_broker(self, broker_id: int) -> None:
        """A broker could not be reached: every partition it led needs its new leader looked up."""
        with self._lock:
            for key in [k for k, leader in self._leaders.items() if leader == broker_id]:
                del self._leaders[key]

    def leader_of(self, topic: str, partition: int) -> int | None:
        return self._leaders.get((topic, partition))

    def address_of(self, broker_id: int) -> str | None:
        return self._addresses.get(broker_id)

    def addresses(self) -> list[str]:
        return list(self._addresses.values())

    def knows(self, broker_id: int) -> bool:
        return broker_id in self._addresses
