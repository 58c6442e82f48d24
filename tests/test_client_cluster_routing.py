"""How the client finds brokers and leaders: bootstrap lists, the cluster map's bookkeeping (pure), and
against one real broker that nothing changes (broker 0, leader and coordinator of everything) while
unreachable bootstrap addresses are skipped and named."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from logstore.broker.embedded import EmbeddedBroker
from logstore.client.admin.api import Admin, NewTopic
from logstore.client.consumer.api import Consumer
from logstore.client.producer.api import Producer
from logstore.client.shared.cluster import ClusterMap
from logstore.client.shared.connection import Connection, parse_bootstrap, parse_bootstrap_list
from logstore.client.shared.errors import BrokerUnavailableError
from logstore.client.shared.types import BrokerMetadata, ClusterDescription, PartitionInfo, TopicPartition

from tests.etcd_support import free_port

# --- bootstrap addresses -------------------------------------------------------------------------------


def test_bootstrap_takes_a_list_or_a_comma_separated_string() -> None:
    assert parse_bootstrap_list("a:1") == ["a:1"]
    assert parse_bootstrap_list("a:1, b:2,a:1") == ["a:1", "b:2"]
    assert parse_bootstrap_list(["a:1", "b:2,c:3"]) == ["a:1", "b:2", "c:3"]
    assert parse_bootstrap(("b:2", "a:1")) == "b:2"


@pytest.mark.parametrize("bad", ["", "a", "a:0", "a:x", ":9", "a:1,,b:2"])
def test_a_bad_bootstrap_address_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="is not 'host:port'"):
        parse_bootstrap_list(bad)


def test_an_empty_or_odd_bootstrap_is_refused() -> None:
    with pytest.raises(ValueError, match="empty list"):
        parse_bootstrap_list([])
    with pytest.raises(TypeError):
        parse_bootstrap_list(9093)  # type: ignore[arg-type]


# --- the cluster map (pure) ------------------------------------------------------------------------------


def cluster_of_three() -> ClusterDescription:
    brokers = [
        BrokerMetadata(i, {"grpc": f"10.0.0.{i}:9093", "kafka": f"10.0.0.{i}:9092"}) for i in (1, 2, 3)
    ]
    return ClusterDescription(brokers, 1, 2, True)


def partition(number: int, leader: int, epoch: int) -> PartitionInfo:
    return PartitionInfo(number, 0, 0, leader, epoch, (1, 2, 3), (1, 2, 3))


def test_the_map_learns_brokers_and_leaders() -> None:
    cluster = ClusterMap()
    assert not cluster.learned and not cluster.clustered
    cluster.learn_cluster(cluster_of_three())
    assert cluster.learned and cluster.clustered and cluster.controller_id == 1
    assert cluster.address_of(3) == "10.0.0.3:9093" and cluster.address_of(4) is None
    cluster.learn_topic("t", [partition(0, 1, 0), partition(1, 2, 0), partition(2, -1, 3)])
    assert [cluster.leader_of("t", p) for p in range(3)] == [1, 2, None]  # -1: no leader right now


def test_a_stale_answer_does_not_undo_a_failover() -> None:
    cluster = ClusterMap()
    cluster.learn_topic("t", [partition(0, 2, 5)])
    cluster.learn_topic("t", [partition(0, 1, 4)])  # a lagging broker's older view
    assert cluster.leader_of("t", 0) == 2
    cluster.learn_topic("t", [partition(0, 3, 6)])
    assert cluster.leader_of("t", 0) == 3


def test_forgetting_a_leader_or_a_broker_makes_them_looked_up_again() -> None:
    cluster = ClusterMap()
    cluster.learn_cluster(cluster_of_three())
    cluster.learn_topic("t", [partition(0, 1, 0), partition(1, 2, 0), partition(2, 1, 0)])
    cluster.forget_leader("t", 1)
    assert cluster.leader_of("t", 1) is None
    cluster.forget_broker(1)
    assert [cluster.leader_of("t", p) for p in range(3)] == [None, None, None]
    cluster.learn_topic("t", [partition(0, 3, 1)])
    assert cluster.leader_of("t", 0) == 3


def test_a_broker_alone_leads_everything_at_the_address_it_was_reached_at() -> None:
    connection = Connection("127.0.0.1:1", max_send_bytes=1024, max_receive_bytes=1024)
    try:
        found = connection.leader("anything", 7)
        assert found is not None and found[0] == 0 and found[1] is connection.current
        assert connection.for_broker(5) is connection.current
    finally:
        connection.close()


# --- one real broker -------------------------------------------------------------------------------------


def dead_address() -> str:
    return f"127.0.0.1:{free_port()}"


def test_a_broker_alone_describes_itself_as_broker_0(broker: EmbeddedBroker) -> None:
    with Admin(bootstrap_servers=broker.address) as admin:
        cluster = admin.describe_cluster()
        assert cluster.clustered is False
        assert (cluster.broker_id, cluster.controller_id) == (0, 0)
        assert [b.broker_id for b in cluster.brokers] == [0]
        assert cluster.brokers[0].endpoints["grpc"].rsplit(":", 1)[1] == broker.address.rsplit(":", 1)[1]
        (topic,) = admin.create_topics([NewTopic("orders", 2)])
        assert [(p.leader, p.leader_epoch, p.replicas, p.isr) for p in topic.partitions] == [
            (0, 0, (0,), (0,))
        ] * 2
        (described,) = admin.describe_topics(["orders"])
        assert not any(p.under_replicated for p in described.partitions)
        assert admin.find_coordinator("workers")[0] == 0
        assert admin.find_coordinator("workers", "share")[0] == 0


def test_a_broker_alone_refuses_a_replication_factor_above_one(broker: EmbeddedBroker) -> None:
    from logstore.client.shared.errors import InvalidReplicationFactorError

    with Admin(bootstrap_servers=broker.address) as admin:
        with pytest.raises(InvalidReplicationFactorError, match="alone"):
            admin.create_topic("orders", 1, replication_factor=2)
        assert admin.create_topic("single", 1, replication_factor=1).partitions[0].replicas == (0,)


def test_unreachable_bootstrap_addresses_are_skipped(broker: EmbeddedBroker) -> None:
    bootstrap = f"{dead_address()},{dead_address()},{broker.address}"
    with Admin(bootstrap_servers=bootstrap) as admin:
        admin.create_topic("orders", 3)
        assert admin.list_topics() == {"orders": 3}
    with Producer(bootstrap_servers=bootstrap, acks="all") as producer:
        futures = [producer.send("orders", b"v%d" % n, key=b"k%d" % n) for n in range(30)]
        producer.flush(timeout=30)
        placed = sorted((f.get(0).partition, f.get(0).offset) for f in futures)
    with Consumer(bootstrap_servers=bootstrap.split(","), auto_offset_reset="earliest") as consumer:
        consumer.assign([TopicPartition("orders", p) for p in range(3)])
        read: list[tuple[int, int]] = []
        while len(read) < len(placed):
            for tp, records in consumer.poll(timeout_ms=10_000).items():
                read += [(tp.partition, r.offset) for r in records]
    assert sorted(read) == placed


def test_when_no_address_answers_each_is_named() -> None:
    first, second = dead_address(), dead_address()
    with (
        Admin(bootstrap_servers=[first, second], request_timeout_ms=5000) as admin,
        pytest.raises(BrokerUnavailableError) as failed,
    ):
        admin.list_topics()
    message = str(failed.value)
    assert "no broker answered" in message and first in message and second in message


def test_cluster_status_of_a_broker_alone(broker: EmbeddedBroker) -> None:
    with Admin(bootstrap_servers=broker.address) as admin:
        admin.create_topic("orders", 2)
    command = [sys.executable, "-m", "logstore.bench.cli", "cluster", "status", "--bootstrap", broker.address]
    done = subprocess.run([*command, "--json"], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    document = json.loads(done.stdout)
    assert document["clustered"] is False and document["controller_id"] == 0
    assert document["topics"]["orders"] == [
        {
            "partition": p,
            "leader": 0,
            "leader_epoch": 0,
            "replicas": [0],
            "isr": [0],
            "under_replicated": False,
        }
        for p in range(2)
    ]
    assert document["under_replicated"] == [] and document["offline"] == []
    text = subprocess.run(command, capture_output=True, timeout=60)
    assert text.returncode == 0, text.stderr.decode()
    assert b"single broker" in text.stdout and b"under-replicated partitions: none" in text.stdout


def test_the_async_producer_skips_an_unreachable_first_address(broker: EmbeddedBroker) -> None:
    import asyncio

    from logstore.client.aio.producer import AsyncProducer

    async def produce() -> list[int]:
        async with AsyncProducer(
            [dead_address(), broker.address], acks="all", retry_backoff_ms=10
        ) as producer:
            futures = [await producer.send_nowait_async("orders", b"v%d" % n) for n in range(10)]
            return [(await f).offset for f in futures]

    with Admin(bootstrap_servers=broker.address) as admin:
        admin.create_topic("orders", 1)
    assert asyncio.run(produce()) == list(range(10))


def test_the_share_consumers_and_admin_skip_an_unreachable_first_address(broker: EmbeddedBroker) -> None:
    import asyncio

    from logstore.client.aio.share import AsyncShareConsumer
    from logstore.client.share.api import ShareConsumer

    bootstrap = [dead_address(), broker.address]
    with Admin(bootstrap_servers=bootstrap) as admin:
        admin.create_topic("jobs", 2)
        admin.alter_group_config("workers", {"share.auto.offset.reset": "earliest"})
        assert admin.find_coordinator("workers", "share")[0] == 0
    with Producer(bootstrap_servers=broker.address) as producer:
        for n in range(20):
            producer.send("jobs", b"job-%d" % n, partition=n % 2)
    got: list[bytes] = []
    with ShareConsumer(
        "jobs", group_id="workers", bootstrap=bootstrap, max_poll_records=5, share_acquire_mode="record_limit"
    ) as consumer:
        while len(got) < 10:  # (implicit mode: every record handed out is accepted)
            got += [r.value or b"" for r in consumer.poll(timeout_ms=10_000)]
        assert consumer.commit_sync() == {}

    async def rest() -> list[bytes]:
        values: list[bytes] = []
        async with AsyncShareConsumer("jobs", group_id="workers", bootstrap_servers=bootstrap) as worker:
            while not values or len(values) + len(got) < 20:
                for records in (await worker.getmany(timeout_ms=10_000)).values():
                    values += [r.value or b"" for r in records]
            assert await worker.commit() == {}
        return values

    got += asyncio.run(rest())
    assert sorted(got) == sorted(b"job-%d" % n for n in range(20))
    with Admin(bootstrap_servers=bootstrap) as admin:
        group = admin.describe_share_group("workers")
    assert group.members == [] and sum(p.lag for p in group.partitions) == 0


def test_share_clients_that_reach_no_broker_say_so_naming_each_address() -> None:
    import asyncio

    from logstore.client.aio.share import AsyncShareConsumer
    from logstore.client.share.api import ShareConsumer

    first, second = dead_address(), dead_address()
    with (
        Admin(bootstrap_servers=[first, second], request_timeout_ms=1000) as admin,
        pytest.raises(BrokerUnavailableError) as failed,
    ):
        admin.describe_share_group("workers")
    for text in (str(failed.value),):
        assert "no broker answered" in text and first in text and second in text
    with (
        ShareConsumer("jobs", group_id="workers", bootstrap=[first, second], request_timeout_ms=1000) as c,
        pytest.raises(BrokerUnavailableError) as failed,
    ):
        while True:
            c.poll(timeout_ms=500)
    text = str(failed.value)
    assert "no broker answered" in text and first in text and second in text

    async def poll() -> str:
        async with AsyncShareConsumer(
            "jobs", group_id="workers", bootstrap_servers=[first, second], request_timeout_ms=1000
        ) as worker:
            with pytest.raises(BrokerUnavailableError) as failed:
                while True:
                    await worker.getmany(timeout_ms=500)
            return str(failed.value)

    text = asyncio.run(poll())
    assert "no broker answered" in text and first in text and second in text
