"""Replication across three real broker processes and a real etcd: a topic with replication factor 3
is written with acks=all on its leader, every replica ends up with the same batches, and the leader's
loss moves leadership to an in-sync replica without losing an acknowledged record."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from logstore.wire.logstore.v1 import admin_pb2, produce_pb2

from logstore.records import build_batch
from tests.cluster_load import stored_records
from tests.cluster_support import Cluster, cluster_of
from tests.conftest import Stubs

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    yield from cluster_of(tmp_path, 3, ("--default-replication-factor=3", "--min-insync-replicas=2"))


def batch(*values: bytes) -> bytes:
    return build_batch(list(values))


def produce(stubs: Stubs, topic: str, records: bytes) -> produce_pb2.ProducePartitionResult:
    return stubs.produce_one(topic, 0, records, produce_pb2.ACKS_ALL)


def stored(data_dir: Path, topic: str) -> list[tuple[int, bytes | None]]:
    return [(offset, value) for offset, _, value in stored_records(data_dir, topic)]


def test_a_replicated_topic_is_written_on_every_replica(cluster: Cluster) -> None:
    creator = Stubs.connect(cluster.brokers[1].address)
    creator.admin.CreateTopic(admin_pb2.CreateTopicRequest(name="orders", partitions=1))
    state = cluster.wait_for_isr("orders", 0, 3)
    assert sorted(state.replicas) == [1, 2, 3]
    leader = Stubs.connect(cluster.brokers[state.leader].address)
    offsets = []
    for i in range(20):
        result = produce(leader, "orders", batch(f"v{i}".encode(), f"w{i}".encode()))
        assert result.error_code == 0, result.error_message
        offsets.append(result.base_offset)
    assert offsets == list(range(0, 40, 2))
    follower = next(b for b in cluster.brokers.values() if b.broker_id != state.leader)
    refused = produce(Stubs.connect(follower.address), "orders", batch(b"x"))
    assert refused.error_code == 35, refused.error_message  # NOT_LEADER_OR_FOLLOWER
    assert leader.values("orders", 0) == [v for i in range(20) for v in (f"v{i}".encode(), f"w{i}".encode())]
    cluster.stop()
    logs = {i: stored(b.data_dir, "orders") for i, b in cluster.brokers.items()}
    assert logs[1] == logs[2] == logs[3]
    assert [offset for offset, _ in logs[1]] == list(range(40))
