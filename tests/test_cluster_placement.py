"""Replica placement: Kafka's round robin, checked against assignments Kafka itself computes."""

from __future__ import annotations

from collections import Counter

import pytest
from logstore.broker.cluster.errors import InvalidReplicationFactorError
from logstore.broker.cluster.placement import assign_replicas


def test_matches_kafkas_own_expected_assignment() -> None:
    # Kafka's AdminUtilsTest.testReplicaAssignment: brokers 0..4, 10 partitions, RF 3, fixed start index 0.
    expected = [
        (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 0), (4, 0, 1),
        (0, 2, 3), (1, 3, 4), (2, 4, 0), (3, 0, 1), (4, 1, 2),
    ]  # fmt: skip
    assert assign_replicas(range(5), 10, 3, start_index=0, shift=0) == expected


def test_every_partition_has_distinct_replicas_and_leaders_spread_evenly() -> None:
    brokers = [10, 20, 30]
    placed = assign_replicas(brokers, 30, 3, start_index=1, shift=1)
    assert all(len(set(r)) == 3 and set(r) <= set(brokers) for r in placed)
    assert Counter(r[0] for r in placed) == {10: 10, 20: 10, 30: 10}


def test_new_partitions_continue_the_walk() -> None:
    whole = assign_replicas(range(4), 8, 2, start_index=3, shift=1)
    assert assign_replicas(range(4), 4, 2, start_index=3, shift=1, first_partition=4) == whole[4:]


@pytest.mark.parametrize("factor", [0, 4])
def test_a_replication_factor_the_brokers_cannot_hold_is_refused(factor: int) -> None:
    with pytest.raises(InvalidReplicationFactorError, match="replication factor"):
        assign_replicas([1, 2, 3], 1, factor)


def test_one_broker_one_replica() -> None:
    assert assign_replicas([7], 3, 1) == [(7,), (7,), (7,)]
