"""Consumer-group coordinators in a cluster: a group is coordinated by the leader of its partition of
`__consumer_offsets` (created in the cluster on the first lookup), other brokers answer NOT_COORDINATOR,
and committed offsets survive the coordinator's `kill -9` because the new leader of that partition had
them replicated before the commit was answered."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import mmh3
import pytest
from logstore.wire.logstore.v1 import common_pb2, group_pb2_grpc

from tests.cluster_support import Cluster, cluster_of
from tests.conftest import GroupMember, Stubs, committed_offsets

pytestmark = pytest.mark.slow

OFFSETS_PARTITIONS = 8  # the broker's default offsets_topic_partitions


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    yield from cluster_of(tmp_path, 3, ("--default-replication-factor=3", "--min-insync-replicas=2"))


def groups_stub(cluster: Cluster, broker_id: int) -> group_pb2_grpc.GroupServiceStub:
    return group_pb2_grpc.GroupServiceStub(Stubs.connect(cluster.brokers[broker_id].address).channel)


def offsets_partition(group_id: str) -> int:
    return int(mmh3.hash(group_id.encode(), seed=0, signed=False)) % OFFSETS_PARTITIONS


def coordinator_of(cluster: Cluster, group_id: str) -> int:
    """The group's coordinator as etcd says: the leader of its offsets partition, once it has one."""
    partition = offsets_partition(group_id)
    cluster.wait_for(
        lambda: (
            (state := cluster.partition("__consumer_offsets", partition)) is not None and state.leader > 0
        ),
        f"__consumer_offsets-{partition} has a leader",
    )
    return cluster.leader("__consumer_offsets", partition)


def joined(cluster: Cluster, broker_id: int, group_id: str) -> GroupMember:
    """A member that joined on `broker_id`, retrying while the coordinator's partition takes over."""
    member = GroupMember(groups_stub(cluster, broker_id), group_id, topics=["orders"])

    def join() -> bool:
        answer = member.heartbeat()
        return answer.error_code == common_pb2.ERROR_CODE_NONE and bool(member.assignment)

    cluster.wait_for(join, f"a member of {group_id} joins on broker {broker_id}")
    return member


def test_committed_offsets_survive_the_coordinator_being_killed(cluster: Cluster) -> None:
    admin = Stubs.connect(cluster.brokers[1].address)
    admin.create_topic("orders", partitions=2)
    cluster.wait_for_isr("orders", 0, 3)

    first = GroupMember(groups_stub(cluster, 1), "billing", topics=["orders"])
    first_answer = first.heartbeat()  # the first lookup asks the controller for __consumer_offsets
    coordinator = coordinator_of(cluster, "billing")
    if coordinator != 1:
        assert first_answer.error_code == common_pb2.ERROR_CODE_NOT_COORDINATOR, first_answer.error_message
    partition = offsets_partition("billing")
    cluster.wait_for_isr("__consumer_offsets", partition, 3)

    member = joined(cluster, coordinator, "billing")
    outcome = member.commit({("orders", 0): 7, ("orders", 1): 3})
    assert outcome.error_code == 0, outcome.error_message
    assert all(r.error_code == 0 for r in outcome.results), outcome.results
    assert committed_offsets(
        groups_stub(cluster, coordinator), "billing", [("orders", 0), ("orders", 1)]
    ) == {
        ("orders", 0): 7,
        ("orders", 1): 3,
    }

    other = next(i for i in cluster.brokers if i != coordinator)
    refused = GroupMember(groups_stub(cluster, other), "billing", topics=["orders"]).heartbeat()
    assert refused.error_code == common_pb2.ERROR_CODE_NOT_COORDINATOR, refused.error_message
    assert f"broker {coordinator}" in refused.error_message
    with pytest.raises(grpc.RpcError) as raised:
        committed_offsets(groups_stub(cluster, other), "billing")
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "coordinated by broker" in str(raised.value.details())

    cluster.brokers[coordinator].kill()
    cluster.wait_for(
        lambda: cluster.leader("__consumer_offsets", partition) not in (-1, coordinator),
        f"__consumer_offsets-{partition} moves off the killed broker {coordinator}",
    )
    successor = cluster.leader("__consumer_offsets", partition)

    def committed_on_successor() -> bool:
        try:
            found = committed_offsets(
                groups_stub(cluster, successor), "billing", [("orders", 0), ("orders", 1)]
            )
        except grpc.RpcError:
            return False  # the new leader is still taking the partition over
        return found == {("orders", 0): 7, ("orders", 1): 3}

    cluster.wait_for(committed_on_successor, f"broker {successor} serves billing's commits")

    again = joined(cluster, successor, "billing")
    assert again.commit({("orders", 0): 9}).error_code == 0
    cluster.brokers[coordinator].start()
    cluster.wait_for_isr("__consumer_offsets", partition, 3)
    assert committed_offsets(groups_stub(cluster, successor), "billing", [("orders", 0)]) == {
        ("orders", 0): 9
    }
