"""Topic administration in a cluster goes through the controller, so every broker applies the same
change: a topic created, grown, reconfigured and deleted through one broker's admin API is so in etcd and
in every broker's local logs; a change that cannot be met is refused where it was asked for."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from logstore.wire.logstore.v1 import admin_pb2

from logstore.manager import LogManager
from logstore.records import build_batch, iter_records
from tests.cluster_support import Cluster, cluster_of
from tests.conftest import Stubs

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    yield from cluster_of(tmp_path, 3, ("--default-replication-factor=3", "--min-insync-replicas=2"))


def described(cluster: Cluster, broker_id: int, topic: str) -> admin_pb2.TopicDescription:
    stubs = Stubs.connect(cluster.brokers[broker_id].address)
    return stubs.admin.DescribeTopic(admin_pb2.DescribeTopicRequest(name=topic)).topic


def on_every_broker(cluster: Cluster, topic: str, check: object) -> bool:
    try:
        return all(check(described(cluster, i, topic)) for i in cluster.brokers)  # type: ignore[operator]
    except grpc.RpcError:
        return False


def test_a_topic_is_grown_reconfigured_and_deleted_on_every_broker(cluster: Cluster) -> None:
    admin = Stubs.connect(cluster.brokers[2].address).admin
    admin.CreateTopic(
        admin_pb2.CreateTopicRequest(
            name="orders", partitions=2, config={"retention.ms": "3600000", "min.insync.replicas": "2"}
        )
    )
    assert on_every_broker(cluster, "orders", lambda t: t.config["retention.ms"] == "3600000")

    grown = admin.CreatePartitions(admin_pb2.CreatePartitionsRequest(name="orders", total_partitions=5))
    assert len(grown.topic.partitions) == 5
    for p in range(5):
        state = cluster.wait_for_isr("orders", p, 3)
        assert sorted(state.replicas) == [1, 2, 3]
    cluster.wait_for(
        lambda: on_every_broker(cluster, "orders", lambda t: len(t.partitions) == 5), "5 partitions"
    )

    admin.AlterTopicConfig(
        admin_pb2.AlterTopicConfigRequest(
            name="orders", set={"retention.ms": "7200000"}, reset=["min.insync.replicas"]
        )
    )
    cluster.wait_for(
        lambda: on_every_broker(
            cluster,
            "orders",
            lambda t: t.config["retention.ms"] == "7200000" and t.config["min.insync.replicas"] == "1",
        ),
        "every broker has the new configs",
    )
    assignment = cluster._json_prefix("topics/orders")[f"{cluster.cluster_root}/topics/orders"]
    assert assignment["min.insync.replicas"] == 1 and assignment["config"]["retention.ms"] == "7200000"

    with pytest.raises(grpc.RpcError) as refused:
        admin.AlterTopicConfig(
            admin_pb2.AlterTopicConfigRequest(name="orders", set={"min.insync.replicas": "4"})
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    Stubs.connect(cluster.brokers[3].address).admin.DeleteTopic(admin_pb2.DeleteTopicRequest(name="orders"))
    assert cluster.partition("orders", 0) is None and not cluster._json_prefix("topics/orders")

    def gone_everywhere() -> bool:
        for i in cluster.brokers:
            with pytest.raises(grpc.RpcError) as missing:
                described(cluster, i, "orders")
            if missing.value.code() != grpc.StatusCode.NOT_FOUND:
                return False
        return True

    cluster.wait_for(gone_everywhere, "every broker deleted the topic")
    cluster.stop()
    for broker in cluster.brokers.values():
        assert not list(broker.data_dir.glob("orders-*")), f"broker {broker.broker_id} kept orders' logs"


def test_a_min_insync_replicas_above_the_replication_factor_is_refused(cluster: Cluster) -> None:
    admin = Stubs.connect(cluster.brokers[1].address).admin
    with pytest.raises(grpc.RpcError) as refused:
        admin.CreateTopic(
            admin_pb2.CreateTopicRequest(name="strict", partitions=1, config={"min.insync.replicas": "4"})
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "no acks=all write could ever succeed" in str(refused.value.details())


def test_every_broker_describes_a_topics_min_insync_replicas_as_the_cluster_holds_it(
    cluster: Cluster,
) -> None:
    """DescribeTopic's config lists min.insync.replicas (Kafka's DescribeConfigs does) with the value in
    the cluster's topic assignment, the one acks=all is held to: given at creation, the creating broker's
    --min-insync-replicas when not given, and after a change, on every broker alike."""
    admin = Stubs.connect(cluster.brokers[1].address).admin
    admin.CreateTopic(
        admin_pb2.CreateTopicRequest(name="given", partitions=1, config={"min.insync.replicas": "3"})
    )
    Stubs.connect(cluster.brokers[2].address).admin.CreateTopic(
        admin_pb2.CreateTopicRequest(name="defaulted", partitions=1)
    )

    def assigned(topic: str) -> str:
        return str(
            cluster._json_prefix(f"topics/{topic}")[f"{cluster.cluster_root}/topics/{topic}"][
                "min.insync.replicas"
            ]
        )

    def everywhere(topic: str, value: str) -> bool:
        return on_every_broker(cluster, topic, lambda t: t.config.get("min.insync.replicas") == value)

    cluster.wait_for(lambda: everywhere("given", "3") and everywhere("defaulted", "2"), "as created")
    assert (assigned("given"), assigned("defaulted")) == ("3", "2")
    admin.AlterTopicConfig(admin_pb2.AlterTopicConfigRequest(name="given", set={"min.insync.replicas": "2"}))
    cluster.wait_for(lambda: everywhere("given", "2"), "every broker describes the changed value")
    assert assigned("given") == "2"


def test_a_partition_reassigned_to_other_brokers_keeps_every_record_and_moves_its_leader(
    cluster: Cluster,
) -> None:
    """`logstore topics reassign`: the new replica joins and catches up, then the old leader, left out,
    hands over (leader epoch bumped) and empties its copy; the moved partition holds every record, and takes
    new ones."""
    admin = Stubs.connect(cluster.brokers[1].address)
    admin.admin.CreateTopic(
        admin_pb2.CreateTopicRequest(
            name="moving", partitions=1, replication_factor=2, config={"min.insync.replicas": "1"}
        )
    )
    before = cluster.wait_for_isr("moving", 0, 2)
    newcomer = next(i for i in cluster.brokers if i not in before.replicas)
    staying = next(r for r in before.replicas if r != before.leader)
    leader = Stubs.connect(cluster.brokers[before.leader].address)
    for i in range(50):
        assert leader.produce_one("moving", 0, build_batch([f"r{i}".encode()])).error_code == 0
    done = subprocess.run(
        [sys.executable, "-m", "logstore.bench.cli", "topics", "reassign", "moving",
         "--replicas", f"0={newcomer},{staying}", "--bootstrap", cluster.brokers[staying].address],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"moving moving-0 to brokers {newcomer},{staying}" in done.stdout

    def moved() -> bool:
        state = cluster.partition("moving", 0)
        return state is not None and state.replicas == (newcomer, staying) and state.leader == newcomer

    cluster.wait_for(moved, f"moving-0 is on brokers {newcomer},{staying}, led by {newcomer}")

    after = cluster.partition("moving", 0)
    assert after is not None and after.leader_epoch == before.leader_epoch + 1
    assignment = cluster._json_prefix("topics/moving")[f"{cluster.cluster_root}/topics/moving"]
    assert assignment["replicas"] == [[newcomer, staying]]
    new_leader = Stubs.connect(cluster.brokers[newcomer].address)
    result = new_leader.produce_one("moving", 0, build_batch([b"after the move"]))
    assert result.error_code == 0 and result.base_offset == 50, result.error_message
    assert new_leader.values("moving", 0) == [f"r{i}".encode() for i in range(50)] + [b"after the move"]
    refused = Stubs.connect(cluster.brokers[before.leader].address).produce_one(
        "moving", 0, build_batch([b"to the old leader"])
    )
    assert refused.error_code == 35, refused.error_message  # NOT_LEADER_OR_FOLLOWER

    with pytest.raises(grpc.RpcError) as bad:
        admin.admin.ReassignPartitions(
            admin_pb2.ReassignPartitionsRequest(
                name="moving", partitions=[admin_pb2.PartitionReassignment(partition=0, replicas=[1, 9])]
            )
        )
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "not live" in str(bad.value.details())

    removed = cluster.brokers[before.leader]
    cluster.wait_for(
        lambda: "moving-0: this broker is no longer one of its replicas" in removed.log_tail(20_000),
        f"broker {before.leader}, no longer a replica of moving-0, empties its copy",
    )
    removed.stop()
    with LogManager(removed.data_dir) as manager:
        emptied = manager.log("moving", 0)
        assert (emptied.log_start_offset, emptied.log_end_offset) == (0, 0)


def test_a_broker_away_while_its_topic_was_deleted_and_made_again_keeps_none_of_the_old_records(
    cluster: Cluster,
) -> None:
    """Topic ids (KIP-516): the controller names each topic; a broker that still holds an earlier topic of
    the same name drops it for the new one instead of mixing the old records into it."""
    admin = Stubs.connect(cluster.brokers[1].address)
    admin.create_topic("reborn", partitions=1)
    state = cluster.wait_for_isr("reborn", 0, 3)
    away = next(i for i in cluster.brokers if i != state.leader and i != cluster.controller())
    leader = Stubs.connect(cluster.brokers[state.leader].address)
    for i in range(30):
        assert leader.produce_one("reborn", 0, build_batch([f"old{i}".encode()])).error_code == 0
    cluster.wait_for_isr("reborn", 0, 3)
    cluster.brokers[away].stop()
    cluster.wait_for(lambda: away not in cluster.live_brokers(), f"broker {away} is gone")
    admin = Stubs.connect(cluster.brokers[state.leader].address)  # not the broker that is away
    admin.admin.DeleteTopic(admin_pb2.DeleteTopicRequest(name="reborn"))
    admin.admin.CreateTopic(
        admin_pb2.CreateTopicRequest(
            name="reborn", partitions=1, replication_factor=2, config={"min.insync.replicas": "1"}
        )
    )
    new = cluster.wait_for_isr("reborn", 0, 2)
    fresh = Stubs.connect(cluster.brokers[new.leader].address)
    for i in range(5):
        assert fresh.produce_one("reborn", 0, build_batch([f"new{i}".encode()])).error_code == 0
    cluster.brokers[away].start()
    admin.admin.ReassignPartitions(
        admin_pb2.ReassignPartitionsRequest(
            name="reborn",
            partitions=[admin_pb2.PartitionReassignment(partition=0, replicas=[*new.replicas, away])],
        )
    )
    cluster.wait_for(
        lambda: (s := cluster.partition("reborn", 0)) is not None and len(s.isr) == 3,
        f"broker {away} replicates the new topic",
    )
    cluster.stop()
    with LogManager(cluster.brokers[away].data_dir) as manager:
        values = [r.value for r in iter_records(manager.log("reborn", 0).read(0, 1 << 20).data)]
    assert values == [f"new{i}".encode() for i in range(5)], values
