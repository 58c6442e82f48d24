"""The Python client against three real broker processes and a real etcd: it bootstraps from several
addresses (or one follower's), sends each partition's batches to its leader, and an idempotent acks=all
producer carries on through the SIGKILL of a partition's leader with every acknowledged record in the
log exactly once and each key's records in order; a consumer reads across the same failover."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from logstore.client.admin.api import Admin
from logstore.client.consumer.api import Consumer
from logstore.client.producer.api import Producer
from logstore.client.producer.futures import RecordFuture
from logstore.client.shared.errors import ClientError, CommitFailedError, NotAvailableError
from logstore.client.shared.types import TopicPartition

from tests.cluster_support import Cluster, cluster_of

pytestmark = pytest.mark.slow

PARTITIONS = 6
KEYS = [f"k{n}".encode() for n in range(24)]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    yield from cluster_of(tmp_path, 3, ("--default-replication-factor=3", "--min-insync-replicas=2"))


def create_replicated(cluster: Cluster, topic: str, bootstrap: list[str] | str) -> dict[int, int]:
    """Create `topic` with RF 3 through the admin client; wait for full ISRs; its leaders by partition."""
    with Admin(bootstrap_servers=bootstrap) as admin:
        created = admin.create_topic(topic, PARTITIONS, {"min.insync.replicas": "2"}, replication_factor=3)
    assert len(created.partitions) == PARTITIONS
    leaders = {}
    for p in range(PARTITIONS):
        state = cluster.wait_for_isr(topic, p, 3)
        assert sorted(state.replicas) == [1, 2, 3]
        leaders[p] = state.leader
    return leaders


def wait_until(condition, what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s}s: {what}")
        time.sleep(0.05)


class Reader(threading.Thread):
    """A consumer (assign, from the start) polling in the background into `records`."""

    def __init__(self, bootstrap: list[str], topic: str) -> None:
        super().__init__(daemon=True)
        self.consumer = Consumer(
            bootstrap_servers=bootstrap, auto_offset_reset="earliest", request_timeout_ms=5000
        )
        self.consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
        self.records: list[tuple[int, int, bytes, bytes]] = []
        self.errors: list[BaseException] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                batch = self.consumer.poll(timeout_ms=200)
            except Exception as exc:  # a retriable error surfaced while the leader is away: keep polling
                with self.lock:
                    self.errors.append(exc)
                continue
            with self.lock:
                for tp, records in batch.items():
                    self.records.extend(
                        (tp.partition, r.offset, r.key or b"", r.value or b"") for r in records
                    )

    def count(self) -> int:
        with self.lock:
            return len(self.records)

    def stop(self) -> None:
        self.stopping.set()
        self.join(30)
        self.consumer.close()


def send_round(
    producer: Producer, topic: str, start: int, count: int
) -> list[tuple[bytes, bytes, RecordFuture]]:
    sent = []
    for n in range(start, start + count):
        key = KEYS[n % len(KEYS)]
        value = b"%s:%06d" % (key, n)
        sent.append((key, value, producer.send(topic, value, key=key)))
    return sent


@pytest.mark.parametrize("transport", ["stream", "unary"])
def test_an_idempotent_producer_and_a_consumer_carry_on_when_a_leader_is_killed(
    cluster: Cluster, transport: str
) -> None:
    leaders = create_replicated(cluster, "orders", cluster.bootstrap)
    assert len(set(leaders.values())) > 1, f"the partitions' leaders should be spread: {leaders}"
    reader = Reader(cluster.bootstrap, "orders")
    reader.start()
    producer = Producer(
        bootstrap_servers=cluster.bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=2,
        request_timeout_ms=5000,
        delivery_timeout_ms=120_000,
        produce_transport=transport,
    )
    sent: list[tuple[bytes, bytes, RecordFuture]] = []
    try:
        sent += send_round(producer, "orders", 0, 600)
        producer.flush(timeout=60)
        wait_until(lambda: reader.count() >= 600, "the consumer read the first round")
        victim = leaders[0]
        # Mid-stream: records are being sent while the leader of partition 0 dies.
        sent += send_round(producer, "orders", 600, 200)
        cluster.brokers[victim].kill()
        sent += send_round(producer, "orders", 800, 1200)
        producer.flush(timeout=120)
        cluster.wait_for(
            lambda: cluster.leader("orders", 0) not in (victim, -1), "partition 0 has a new leader"
        )
        acknowledged = {}
        for key, value, future in sent:
            metadata = future.get(timeout=0)  # every record acknowledged (none given up)
            acknowledged[value] = (metadata.partition, metadata.offset, key)
        wait_until(lambda: reader.count() >= len(sent), "the consumer read every acknowledged record")
        # The kill was felt: batches for the dead leader's partitions were sent again.
        assert producer.metrics()["producer-metrics"]["record-retry-total"] > 0
    finally:
        producer.close()
        reader.stop()
    records = reader.records
    values = [value for _, _, _, value in records]
    assert len(values) == len(set(values)), "a record was read twice"
    assert set(values) == set(acknowledged), "the log holds exactly the acknowledged records"
    for partition, offset, key, value in records:
        assert acknowledged[value] == (partition, offset, key), f"{value!r} is not where it was acknowledged"
    for key in KEYS:
        mine = [v for _, _, k, v in records if k == key]
        assert mine == sorted(mine), f"records of key {key!r} out of order"
        expected = sorted(v for v, (_, _, k) in acknowledged.items() if k == key)
        assert mine == expected


def logstore(*args: str) -> subprocess.CompletedProcess[bytes]:
    done = subprocess.run(
        [sys.executable, "-m", "logstore.bench.cli", *args], capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr.decode()
    return done


def test_a_producer_bootstrapped_from_one_follower_writes_to_every_leader(cluster: Cluster) -> None:
    created = logstore(
        "topics",
        "create",
        "payments",
        "--partitions",
        str(PARTITIONS),
        "--replication-factor",
        "3",
        "--config",
        "min.insync.replicas=1",
        "--bootstrap",
        ",".join(cluster.bootstrap),
    )
    assert created.stdout == b"created topic payments with 6 partitions, replication factor 3\n"
    leaders = {p: cluster.wait_for_isr("payments", p, 3).leader for p in range(PARTITIONS)}
    follower = next(b for b in cluster.brokers.values() if b.broker_id != leaders[0])
    with Producer(bootstrap_servers=follower.address, acks="all", produce_transport="unary") as producer:
        sent = send_round(producer, "payments", 0, 300)
        producer.flush(timeout=60)
        placed = {value: future.get(timeout=0) for _, value, future in sent}
    assert {m.partition for m in placed.values()} == set(range(PARTITIONS))  # every leader was written to
    with Consumer(bootstrap_servers=[follower.address], auto_offset_reset="earliest") as consumer:
        consumer.assign([TopicPartition("payments", p) for p in range(PARTITIONS)])
        read: dict[bytes, tuple[int, int]] = {}
        deadline = time.monotonic() + 60
        while len(read) < len(placed) and time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=500).items():
                read.update((r.value or b"", (tp.partition, r.offset)) for r in records)
    assert read == {value: (m.partition, m.offset) for value, m in placed.items()}
    # The flags reached the controller: etcd's assignment has them (the brokers default to 2 in-sync).
    (assignment,) = cluster._json_prefix("topics/payments").values()
    assert assignment["replication.factor"] == 3
    assert assignment["min.insync.replicas"] == 1


def test_cluster_status_matches_etcd_before_and_after_a_failover(cluster: Cluster) -> None:
    create_replicated(cluster, "events", cluster.bootstrap)

    def status() -> dict:
        document: dict = json.loads(
            logstore("cluster", "status", "--json", "--bootstrap", ",".join(cluster.bootstrap)).stdout
        )
        return document

    def agrees(document: dict) -> bool:
        for entry in document["topics"]["events"]:
            state = cluster.partition("events", entry["partition"])
            assert state is not None
            seen = (entry["leader"], entry["leader_epoch"], sorted(entry["replicas"]), sorted(entry["isr"]))
            if seen != (state.leader, state.leader_epoch, sorted(state.replicas), sorted(state.isr)):
                return False
            if entry["under_replicated"] != (len(state.isr) < len(state.replicas)):
                return False
        return document["controller_id"] == cluster.controller()

    document = status()
    assert document["clustered"] is True
    assert {b["broker_id"] for b in document["brokers"]} == {1, 2, 3}
    for b in document["brokers"]:
        assert b["endpoints"]["grpc"] == cluster.brokers[b["broker_id"]].address
    assert agrees(document), document
    assert document["under_replicated"] == []
    victim = cluster.leader("events", 0)
    cluster.brokers[victim].kill()
    cluster.wait_for(
        lambda: all(
            (s := cluster.partition("events", p)) is not None
            and s.leader not in (victim, -1)
            and victim not in s.isr
            for p in range(PARTITIONS)
        ),
        "every partition led by a live broker, the dead one out of every ISR",
    )
    # The brokers learn etcd's view through their watch: poll until the answer agrees (bounded).
    cluster.wait_for(lambda: agrees(status()), "cluster status agrees with etcd after the failover", 60)
    after = status()
    assert {b["broker_id"] for b in after["brokers"]} == {1, 2, 3} - {victim}
    assert {(u["topic"], u["partition"]) for u in after["under_replicated"]} == {
        ("events", p) for p in range(PARTITIONS)
    }
    text = logstore("cluster", "status", "--bootstrap", ",".join(cluster.bootstrap)).stdout.decode()
    assert text.count("UNDER-REPLICATED") == PARTITIONS
    assert "unreachable" not in text


def test_a_consumer_group_talks_to_its_coordinator(cluster: Cluster) -> None:
    from logstore.broker.replication.node import coordinator_partition

    create_replicated(cluster, "orders", cluster.bootstrap)
    with Producer(bootstrap_servers=cluster.bootstrap, acks="all") as producer:
        sent = send_round(producer, "orders", 0, 120)
        producer.flush(timeout=60)
    found: list[tuple[int, str]] = []
    with Admin(bootstrap_servers=cluster.bootstrap) as admin:

        def answered() -> bool:  # the first lookup has the controller create __consumer_offsets
            try:
                found.append(admin.find_coordinator("workers"))
            except NotAvailableError:
                return False
            return True

        cluster.wait_for(answered, "FindCoordinator names the coordinator of group workers", 60)
    coordinator, endpoint = found[-1]
    (assignment,) = cluster._json_prefix("topics/__consumer_offsets").values()
    partition = coordinator_partition("workers", len(assignment["replicas"]))
    assert coordinator == cluster.leader("__consumer_offsets", partition)
    assert endpoint == cluster.brokers[coordinator].address
    consumer = Consumer(
        bootstrap_servers=cluster.bootstrap,
        group_id="workers",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    try:
        consumer.subscribe(["orders"])
        read: set[bytes] = set()
        deadline = time.monotonic() + 90
        while len(read) < len(sent) and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                read.update(r.value or b"" for r in records)
        assert read == {value for _, value, _ in sent}
        consumer.commit()
        with Admin(bootstrap_servers=cluster.bootstrap) as admin:
            ends = {p.partition: p.log_end_offset for p in admin.describe_topics(["orders"])[0].partitions}
            assert "workers" in {g.group_id for g in admin.list_groups()}
        assert {p: consumer.committed(TopicPartition("orders", p)) for p in range(PARTITIONS)} == ends
        # The coordinator dies: the member finds the new one (the new leader of the group's partition),
        # keeps its assignment going, and its commits land there.
        cluster.brokers[coordinator].kill()
        cluster.wait_for(
            lambda: cluster.leader("__consumer_offsets", partition) not in (coordinator, -1),
            "the group's offsets partition has a new leader",
        )
        survivors = [b.address for b in cluster.brokers.values() if b.broker_id != coordinator]
        with Producer(bootstrap_servers=survivors, acks="all") as producer:
            more = send_round(producer, "orders", 1000, 120)
            producer.flush(timeout=60)
        wanted = {value for _, value, _ in more}
        deadline = time.monotonic() + 90
        while not wanted <= read and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                read.update(r.value or b"" for r in records)
        assert wanted <= read

        with Admin(bootstrap_servers=survivors) as admin:
            ends = {p.partition: p.log_end_offset for p in admin.describe_topics(["orders"])[0].partitions}
            assert admin.find_coordinator("workers")[0] == cluster.leader("__consumer_offsets", partition)
        refused: list[ClientError] = []

        def committed_at_the_end() -> bool:
            """The new coordinator does not know the member (membership is not replicated): its first
            commit is refused as from a lost member, it rejoins through its heartbeats, gets its
            partitions back at the committed offsets, reads on, and then commits there."""
            consumer.poll(timeout_ms=200)
            try:
                consumer.commit()
                found = {p: consumer.committed(TopicPartition("orders", p)) for p in range(PARTITIONS)}
            except (CommitFailedError, ClientError) as exc:  # lost member, or coordinator still moving
                refused.append(exc)
                return False
            return found == ends

        cluster.wait_for(committed_at_the_end, "the group commits its end offsets at the new coordinator", 90)
    finally:
        consumer.close()


def group_coordinated_elsewhere(cluster: Cluster, broker_id: int) -> str:
    """A group id whose coordinator is not `broker_id` (so calls sent there would be refused)."""
    with Admin(bootstrap_servers=cluster.bootstrap) as admin:
        found: list[str] = []

        def look() -> bool:
            for n in range(20):
                try:
                    coordinator, _ = admin.find_coordinator(f"aio-workers-{n}")
                except NotAvailableError:  # __consumer_offsets being created, or moving
                    return False
                if coordinator != broker_id:
                    found.append(f"aio-workers-{n}")
                    return True
            return False

        cluster.wait_for(look, f"a group coordinated by a broker other than {broker_id}", 60)
    return found[0]


def test_the_asyncio_clients_route_to_leaders_and_survive_a_leader_kill(cluster: Cluster) -> None:
    import asyncio

    from logstore.client.aio.producer import AsyncProducer

    leaders = create_replicated(cluster, "clicks", cluster.bootstrap)
    victim = leaders[0]
    follower = next(b for b in cluster.brokers.values() if b.broker_id not in (victim, leaders[1]))

    async def produce() -> dict[bytes, tuple[int, int]]:
        async with AsyncProducer(
            [follower.address], acks="all", request_timeout_ms=5000, delivery_timeout_ms=120_000
        ) as producer:
            futures = []
            for n in range(900):
                if n == 300:
                    await producer.flush()
                    cluster.brokers[victim].kill()
                key = KEYS[n % len(KEYS)]
                value = b"%s:%06d" % (key, n)
                futures.append((value, await producer.send_nowait_async("clicks", value, key)))
            await producer.flush()
            return {value: ((m := await f).partition, m.offset) for value, f in futures}

    async def consume(count: int) -> list[tuple[bytes, tuple[int, int]]]:
        from logstore.client.aio.consumer import AsyncConsumer

        read: list[tuple[bytes, tuple[int, int]]] = []
        async with AsyncConsumer(
            bootstrap_servers=[follower.address], auto_offset_reset="earliest"
        ) as consumer:
            consumer.assign([TopicPartition("clicks", p) for p in range(PARTITIONS)])
            deadline = time.monotonic() + 60
            while len(read) < count and time.monotonic() < deadline:
                for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                    read += [(r.value or b"", (tp.partition, r.offset)) for r in records]
        return read

    placed = asyncio.run(produce())
    assert {partition for partition, _ in placed.values()} == set(range(PARTITIONS))
    read = asyncio.run(consume(len(placed)))  # an AsyncConsumer from the same broker, across the leaders
    assert len(read) == len(placed) and dict(read) == placed  # each exactly once, where acknowledged

    async def consume_in_group(group: str) -> tuple[int, dict[int, int | None]]:
        """An AsyncConsumer in a group: its heartbeats and commits go to the group's coordinator."""
        from logstore.client.aio.consumer import AsyncConsumer

        seen = 0
        async with AsyncConsumer(
            "clicks",
            bootstrap_servers=[follower.address],
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        ) as consumer:
            deadline = time.monotonic() + 90
            while seen < len(placed) and time.monotonic() < deadline:
                seen += sum(len(r) for r in (await consumer.getmany(timeout_ms=500)).values())
            await consumer.commit()
            committed = {p: await consumer.committed(TopicPartition("clicks", p)) for p in range(PARTITIONS)}
        return seen, committed

    group = group_coordinated_elsewhere(cluster, follower.broker_id)
    seen, committed = asyncio.run(consume_in_group(group))
    ends = {p: 1 + max(o for part, o in placed.values() if part == p) for p in range(PARTITIONS)}
    assert seen == len(placed) and committed == ends


def test_a_broker_without_a_replica_describes_the_topic_and_clients_reach_its_leader(
    cluster: Cluster,
) -> None:
    with Admin(bootstrap_servers=cluster.bootstrap) as admin:
        admin.create_topic("lonely", 1, {"min.insync.replicas": "1"}, replication_factor=1)
    state = cluster.wait_for_isr("lonely", 0, 1)
    outsider = next(b for b in cluster.brokers.values() if b.broker_id != state.leader)
    with Admin(bootstrap_servers=outsider.address) as admin:
        (described,) = admin.describe_topics(["lonely"])
    (partition,) = described.partitions
    assert (partition.leader, partition.replicas, partition.isr) == (
        state.leader,
        (state.leader,),
        (state.leader,),
    )
    with Producer(bootstrap_servers=outsider.address, acks="all") as producer:
        offsets = [producer.send("lonely", b"v%d" % n).get(timeout=30).offset for n in range(5)]
    assert offsets == list(range(5))


def test_an_asyncio_consumer_hands_out_a_leaders_records_while_another_leader_long_polls(
    cluster: Cluster,
) -> None:
    """Each leader's answer is stored as it comes: with fetch_max_wait_ms far beyond the poll, a record
    on one leader reaches getmany while the call to a leader with nothing to send is still waiting (when
    a round waited for every leader, the poll came back empty)."""
    import asyncio

    from logstore.client.aio.consumer import AsyncConsumer

    leaders = create_replicated(cluster, "sparse", cluster.bootstrap)
    busy = 0
    idle = next(p for p in range(PARTITIONS) if leaders[p] != leaders[busy])

    async def first_poll() -> dict[TopicPartition, list[bytes | None]]:
        async with AsyncConsumer(
            bootstrap_servers=cluster.bootstrap, auto_offset_reset="earliest", fetch_max_wait_ms=60_000
        ) as consumer:
            consumer.assign([TopicPartition("sparse", busy), TopicPartition("sparse", idle)])
            with Producer(cluster.bootstrap, acks="all") as producer:
                producer.send("sparse", b"only one", partition=busy).get(30)
            got = await consumer.getmany(timeout_ms=20_000)
            return {tp: [r.value for r in records] for tp, records in got.items()}

    assert asyncio.run(first_poll()) == {TopicPartition("sparse", busy): [b"only one"]}
