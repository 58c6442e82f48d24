"""Replica placement: Kafka's rack-unaware round robin (AdminUtils.assignReplicasToBrokers). Pure.

The first replicas of consecutive partitions walk the sorted broker list from `start_index`; the other
replicas follow at a shift that grows by one each time the walk wraps, so that a broker's followers are
spread over the others instead of always landing on its neighbour. The first replica is the preferred
leader. The driver picks `start_index` and `shift` at random, as Kafka does, so that many topics do not
all lead from the same broker.
"""

from __future__ import annotations

from collections.abc import Iterable

from logstore.broker.cluster.errors import InvalidReplicationFactorError


def assign_replicas(
    brokers: Iterable[int],
    partitions: int,
    replication_factor: int,
    *,
    start_index: int = 0,
    shift: int = 0,
    first_partition: int = 0,
) -> list[tuple[int, ...]]:
    """The replica list of partitions first_partition .. first_partition + partitions - 1, in order.

    `first_partition` lets new partitions of a grown topic continue the walk where the old ones stopped.
    """
    ids = sorted(set(brokers))
    count = len(ids)
    if replication_factor < 1:
        raise InvalidReplicationFactorError(f"replication factor must be >= 1, got {replication_factor}")
    if replication_factor > count:
        raise InvalidReplicationFactorError(
            f"replication factor {replication_factor} is larger than the {count} available brokers"
        )
    if partitions < 0:
        raise ValueError(f"partition count must be >= 0, got {partitions}")
    assignments: list[tuple[int, ...]] = []
    next_shift = shift % count
    for partition in range(first_partition, first_partition + partitions):
        if partition > 0 and partition % count == 0:
            next_shift += 1
        first = (partition + start_index) % count
        replicas = [ids[first]]
        for j in range(replication_factor - 1):
            replicas.append(ids[_replica_index(first, next_shift, j, count)])
        assignments.append(tuple(replicas))
    return assignments


def _replica_index(first: int, second_shift: int, replica: int, count: int) -> int:
    step = 1 + (second_shift + replica) % (count - 1)
    return (first + step) % count
