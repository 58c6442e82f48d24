"""Kafka clients against a real 3-broker cluster (real etcd, real broker processes): every broker's
Metadata names the three brokers and the leaders, epochs and ISRs etcd holds; requests to a broker that
does not lead, or with a stale or future leader epoch, are refused with Kafka's codes; and librdkafka and
kafka-python producers (acks=all, idempotent) and assigned consumers carry on across a SIGKILL of the
partition's leader, with every acknowledged record readable afterwards exactly once and in order.

What a broker says is compared with etcd (what the controller wrote), never with another broker's answer.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import mmh3
import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KafkaPythonPartition
from kafka.net import KafkaNetSocket
from kafka.protocol.admin import DescribeClusterRequest, DescribeClusterResponse
from kafka.protocol.consumer import (
    FetchRequest,
    FetchResponse,
    JoinGroupRequest,
    JoinGroupResponse,
    ListOffsetsRequest,
    ListOffsetsResponse,
    OffsetCommitRequest,
    OffsetCommitResponse,
    OffsetFetchRequest,
    OffsetFetchResponse,
    OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse,
)
from kafka.protocol.metadata import (
    FindCoordinatorRequest,
    FindCoordinatorResponse,
    MetadataRequest,
    MetadataResponse,
)
from kafka.protocol.producer import ProduceRequest, ProduceResponse

from logstore.records import build_batch
from tests.cluster_support import Cluster, cluster_of
from tests.kafka_wire import decode_response, read_exactly, send_request

pytestmark = pytest.mark.slow

NOT_LEADER_OR_FOLLOWER, FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH = 6, 74, 75
UNKNOWN_TOPIC_OR_PARTITION, NOT_COORDINATOR, MEMBER_ID_REQUIRED = 3, 16, 79
BEFORE_KILL = 150
"""Records acknowledged before the leader is killed."""
AFTER_KILL = 150
"""Records acknowledged after it (by the new leader)."""
FAILOVER_DEADLINE_S = 90.0


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    yield from cluster_of(tmp_path, 3, ("--default-replication-factor=3", "--min-insync-replicas=2"))


# --- raw requests ------------------------------------------------------------------------------------


def call(address: str, request: Any, response_class: Any, version: int) -> Any:
    """One request on its own connection to `address` (host:port), its answer decoded."""
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        send_request(sock, request, 1)
        (size,) = struct.unpack(">i", read_exactly(sock, 4))
        frame = read_exactly(sock, size)
    assert struct.unpack(">i", frame[:4])[0] == 1
    return decode_response(response_class, frame[4:], version)


def metadata(address: str, topic: str) -> Any:
    request = MetadataRequest(
        version=9,
        topics=[MetadataRequest.MetadataRequestTopic(name=topic)],
        allow_auto_topic_creation=False,
        include_cluster_authorized_operations=False,
        include_topic_authorized_operations=False,
    )
    return call(address, request, MetadataResponse, 9)


def fetch(address: str, topic: str, offset: int, current_leader_epoch: int) -> Any:
    partition = FetchRequest.FetchTopic.FetchPartition(
        partition=0,
        current_leader_epoch=current_leader_epoch,
        fetch_offset=offset,
        log_start_offset=-1,
        partition_max_bytes=1 << 20,
    )
    request = FetchRequest(
        version=11, replica_id=-1, max_wait_ms=0, min_bytes=0, max_bytes=1 << 20, isolation_level=0,
        session_id=0, session_epoch=-1, topics=[FetchRequest.FetchTopic(topic=topic, partitions=[partition])],
        forgotten_topics_data=[], rack_id="",
    )  # fmt: skip
    return call(address, request, FetchResponse, 11).responses[0].partitions[0]


def list_latest(address: str, topic: str, current_leader_epoch: int) -> Any:
    asked = ListOffsetsRequest.ListOffsetsTopic
    partition = asked.ListOffsetsPartition(
        partition_index=0, current_leader_epoch=current_leader_epoch, timestamp=-1
    )
    request = ListOffsetsRequest(
        version=5, replica_id=-1, isolation_level=0, topics=[asked(name=topic, partitions=[partition])]
    )
    return call(address, request, ListOffsetsResponse, 5).topics[0].partitions[0]


def epoch_end(address: str, topic: str, current_leader_epoch: int, leader_epoch: int) -> tuple[int, int, int]:
    asked = OffsetForLeaderEpochRequest.OffsetForLeaderTopic
    partition = asked.OffsetForLeaderPartition(
        partition=0, current_leader_epoch=current_leader_epoch, leader_epoch=leader_epoch
    )
    request = OffsetForLeaderEpochRequest(
        version=3, replica_id=-1, topics=[asked(topic=topic, partitions=[partition])]
    )
    got = call(address, request, OffsetForLeaderEpochResponse, 3).topics[0].partitions[0]
    return got.error_code, got.leader_epoch, got.end_offset


def produce_raw(address: str, topic: str, value: bytes) -> Any:
    data = ProduceRequest.TopicProduceData(
        name=topic,
        partition_data=[
            ProduceRequest.TopicProduceData.PartitionProduceData(index=0, records=build_batch([value]))
        ],
    )
    request = ProduceRequest(version=8, acks=-1, timeout_ms=10_000, topic_data=[data])
    return call(address, request, ProduceResponse, 8).responses[0].partition_responses[0]


# --- the cluster as etcd and the brokers describe it -------------------------------------------------


def kafka_bootstrap(cluster: Cluster) -> str:
    return ",".join(b.kafka_address for b in cluster.brokers.values())


def create_topic(cluster: Cluster, name: str, partitions: int, replication_factor: int = 3) -> None:
    """Through librdkafka's admin client; then until every ISR is full."""
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap(cluster)})
    config = {} if replication_factor >= 2 else {"min.insync.replicas": "1"}  # the cluster's is 2
    new = NewTopic(name, partitions, replication_factor, config=config)
    admin.create_topics([new], request_timeout=30)[name].result(timeout=60)
    for partition in range(partitions):
        cluster.wait_for_isr(name, partition, replication_factor)


def live(cluster: Cluster) -> list[int]:
    return sorted(i for i, b in cluster.brokers.items() if b.running)


def metadata_mismatch(cluster: Cluster, broker_id: int, topic: str, partitions: int) -> str | None:
    """How broker `broker_id`'s Metadata differs from etcd (None: it does not)."""
    address = cluster.brokers[broker_id].kafka_address
    answer = metadata(address, topic)
    expected_brokers = {
        (i, cluster.brokers[i].host, cluster.brokers[i].kafka_port) for i in cluster.live_brokers()
    }
    brokers = {(b.node_id, b.host, b.port) for b in answer.brokers}
    if brokers != expected_brokers:
        return f"broker {broker_id} lists brokers {sorted(brokers)}, etcd {sorted(expected_brokers)}"
    if answer.controller_id != cluster.controller():
        return f"broker {broker_id} names controller {answer.controller_id}, etcd {cluster.controller()}"
    (found,) = answer.topics
    if found.error_code != 0 or len(found.partitions) != partitions:
        return f"broker {broker_id}: {topic} error {found.error_code}, {len(found.partitions)} partitions"
    alive = cluster.live_brokers()
    for p in found.partitions:
        state = cluster.partition(topic, p.partition_index)
        assert state is not None
        leader = state.leader if state.leader in alive else -1
        said = (
            p.leader_id,
            p.leader_epoch,
            tuple(p.replica_nodes),
            tuple(p.isr_nodes),
            set(p.offline_replicas),
        )
        etcd = (leader, state.leader_epoch, state.replicas, state.isr, set(state.replicas) - alive)
        if said != etcd:
            return f"broker {broker_id}: {topic}-{p.partition_index} is {said}, etcd {etcd}"
    return None


def wait_for_metadata(cluster: Cluster, topic: str, partitions: int) -> None:
    """Until every live broker's Metadata agrees with etcd (each broker follows etcd on its own)."""
    mismatches: dict[int, str | None] = {}

    def agreed() -> bool:
        for broker_id in live(cluster):
            mismatches[broker_id] = metadata_mismatch(cluster, broker_id, topic, partitions)
        return not any(mismatches.values())

    try:
        cluster.wait_for(agreed, f"every broker's Metadata for {topic} agrees with etcd")
    except AssertionError:
        raise AssertionError(f"Metadata differs from etcd: {mismatches}") from None


def kill_leader(cluster: Cluster, topic: str) -> tuple[int, int]:
    """SIGKILL the partition's leader; returns it and the leader epoch it led at."""
    state = cluster.partition(topic, 0)
    assert state is not None and state.leader > 0
    cluster.brokers[state.leader].kill()
    return state.leader, state.leader_epoch


def wait_for_new_leader(cluster: Cluster, topic: str, old: int) -> int:
    def moved() -> bool:
        state = cluster.partition(topic, 0)
        return state is not None and state.leader > 0 and state.leader != old

    cluster.wait_for(moved, f"{topic}-0 has a leader other than broker {old}", timeout_s=60)
    return cluster.leader(topic)


def within(deadline: float, what: str) -> None:
    if time.monotonic() > deadline:
        raise AssertionError(f"not within {FAILOVER_DEADLINE_S}s: {what}")


# --- Metadata, coordinators, refusals ----------------------------------------------------------------


def test_every_broker_describes_the_cluster_as_etcd_holds_it_before_and_after_a_failover(
    cluster: Cluster,
) -> None:
    create_topic(cluster, "orders", 3)
    wait_for_metadata(cluster, "orders", 3)
    create_topic(cluster, "solo", 1, replication_factor=1)  # one replica: all three name its one broker
    wait_for_metadata(cluster, "solo", 1)
    for broker in cluster.brokers.values():
        described = call(
            broker.kafka_address,
            DescribeClusterRequest(version=0, include_cluster_authorized_operations=False),
            DescribeClusterResponse,
            0,
        )
        assert described.controller_id == cluster.controller()
        assert sorted((b.broker_id, b.port) for b in described.brokers) == sorted(
            (i, b.kafka_port) for i, b in cluster.brokers.items()
        )

    old, _ = kill_leader(cluster, "orders")
    new = wait_for_new_leader(cluster, "orders", old)
    cluster.wait_for(lambda: old not in cluster.live_brokers(), f"broker {old}'s registration expired")
    wait_for_metadata(cluster, "orders", 3)
    assert new != old
    survivors = live(cluster)
    for broker_id in survivors:
        answer = metadata(cluster.brokers[broker_id].kafka_address, "orders")
        assert sorted(b.node_id for b in answer.brokers) == survivors
        assert old in answer.topics[0].partitions[0].offline_replicas


def test_a_metadata_request_has_the_controller_create_an_unknown_topic(cluster: Cluster) -> None:
    """Auto-creation in a cluster goes through the controller: LEADER_NOT_AVAILABLE (retriable, as Kafka
    answers the request that creates a topic) until the topic's partitions have leaders, then the
    cluster's answer from every broker."""
    asked_at = cluster.brokers[2].kafka_address
    request = MetadataRequest(
        version=9,
        topics=[MetadataRequest.MetadataRequestTopic(name="auto-made")],
        allow_auto_topic_creation=True,
        include_cluster_authorized_operations=False,
        include_topic_authorized_operations=False,
    )
    codes = []

    def created() -> bool:
        (topic,) = call(asked_at, request, MetadataResponse, 9).topics
        codes.append(topic.error_code)
        return topic.error_code == 0

    cluster.wait_for(created, "a Metadata request auto-creates the topic")
    assert set(codes) <= {0, 5}, codes  # 5: LEADER_NOT_AVAILABLE
    cluster.wait_for_isr("auto-made", 0, 3)
    wait_for_metadata(cluster, "auto-made", 1)


def find_coordinators(cluster: Cluster, group_id: str) -> dict[tuple[int, int], tuple[int, int, str, int]]:
    """(error, node, host, port) of FindCoordinator from each live broker, by (broker, version): v2 as
    librdkafka sends it, and v4 (batched keys, KIP-699) as kafka-python does."""
    answers = {}
    for broker_id in live(cluster):
        address = cluster.brokers[broker_id].kafka_address
        one = call(
            address, FindCoordinatorRequest(version=2, key=group_id, key_type=0), FindCoordinatorResponse, 2
        )
        batched = call(
            address,
            FindCoordinatorRequest(version=4, key_type=0, coordinator_keys=[group_id]),
            FindCoordinatorResponse,
            4,
        ).coordinators[0]
        assert batched.key == group_id
        answers[broker_id, 2] = (one.error_code, one.node_id, one.host, one.port)
        answers[broker_id, 4] = (batched.error_code, batched.node_id, batched.host, batched.port)
    return answers


def offsets_leader(cluster: Cluster, group_id: str) -> int | None:
    """The leader etcd names for the group's partition of `__consumer_offsets` (8 partitions)."""
    partition = int(mmh3.hash(group_id.encode(), seed=0, signed=False)) % 8
    state = cluster.partition("__consumer_offsets", partition)
    return None if state is None or state.leader <= 0 else state.leader


def group_requests(address: str, group_id: str) -> list[int]:
    """The error codes of a JoinGroup (v4: a new member is first given its id, MEMBER_ID_REQUIRED counts
    as reaching the coordinator), an OffsetFetch and an OffsetCommit from outside the group."""
    joined = call(
        address,
        JoinGroupRequest(
            version=4, group_id=group_id, session_timeout_ms=6000, rebalance_timeout_ms=6000, member_id="",
            protocol_type="consumer", protocols=[JoinGroupRequest.JoinGroupRequestProtocol(name="range", metadata=b"")],
        ),
        JoinGroupResponse,
        4,
    )  # fmt: skip
    fetched = call(
        address,
        OffsetFetchRequest(version=5, group_id=group_id, topics=None, require_stable=False),
        OffsetFetchResponse,
        5,
    )
    topic = OffsetCommitRequest.OffsetCommitRequestTopic
    committed = call(
        address,
        OffsetCommitRequest(
            version=7, group_id=group_id, generation_id_or_member_epoch=-1, member_id="", group_instance_id=None,
            topics=[topic(name="orders", partitions=[topic.OffsetCommitRequestPartition(
                partition_index=0, committed_offset=1, committed_leader_epoch=-1, committed_metadata="",
            )])],
        ),
        OffsetCommitResponse,
        7,
    )  # fmt: skip
    join_code = 0 if joined.error_code == MEMBER_ID_REQUIRED else joined.error_code
    commit_code = committed.topics[0].partitions[0].error_code
    return [join_code, fetched.error_code, 0 if commit_code == UNKNOWN_TOPIC_OR_PARTITION else commit_code]


def test_every_broker_names_the_leader_of_the_groups_offsets_partition_as_its_coordinator(
    cluster: Cluster,
) -> None:
    """The first lookup has the cluster create `__consumer_offsets` (COORDINATOR_NOT_AVAILABLE meanwhile,
    and a client retries); then every broker names the same node, at its Kafka address: the leader of the
    group's partition. After that leader's SIGKILL, the new leader."""
    seen: dict[tuple[int, int], tuple[int, int, str, int]] = {}

    def agreed() -> bool:
        seen.clear()
        seen.update(find_coordinators(cluster, "billing"))
        leader = offsets_leader(cluster, "billing")
        found = None if leader is None else cluster.brokers[leader]
        expected = None if found is None else (0, found.broker_id, found.host, found.kafka_port)
        assert all(code in (0, 15) for code, *_ in seen.values()), seen  # 15: COORDINATOR_NOT_AVAILABLE
        return expected is not None and all(answer == expected for answer in seen.values())

    cluster.wait_for(agreed, "every broker names the coordinator etcd implies")
    old = offsets_leader(cluster, "billing")
    assert old is not None
    for broker_id in live(cluster):  # the group's requests anywhere else: NOT_COORDINATOR
        expected = 0 if broker_id == old else NOT_COORDINATOR
        assert group_requests(cluster.brokers[broker_id].kafka_address, "billing") == [expected] * 3
    cluster.brokers[old].kill()
    cluster.wait_for(
        lambda: offsets_leader(cluster, "billing") not in (None, old), "the offsets partition moved"
    )
    cluster.wait_for(agreed, "every survivor names the new coordinator", timeout_s=60)


def test_requests_to_a_follower_or_with_another_leader_epoch_are_refused_with_kafkas_codes(
    cluster: Cluster,
) -> None:
    create_topic(cluster, "ledger", 1)
    state = cluster.partition("ledger", 0)
    assert state is not None
    first = cluster.brokers[state.leader].kafka_address
    for i in range(3):
        assert produce_raw(first, "ledger", f"e0-{i}".encode()).error_code == 0
    follower = next(b for i, b in cluster.brokers.items() if i != state.leader).kafka_address
    assert produce_raw(follower, "ledger", b"x").error_code == NOT_LEADER_OR_FOLLOWER
    assert fetch(follower, "ledger", 0, -1).error_code == NOT_LEADER_OR_FOLLOWER
    assert list_latest(follower, "ledger", -1).error_code == NOT_LEADER_OR_FOLLOWER

    old, old_epoch = kill_leader(cluster, "ledger")
    new = wait_for_new_leader(cluster, "ledger", old)
    new_state = cluster.partition("ledger", 0)
    assert new_state is not None and new_state.leader_epoch > old_epoch
    epoch = new_state.leader_epoch
    leader = cluster.brokers[new].kafka_address
    cluster.wait_for(
        lambda: fetch(leader, "ledger", 0, epoch).error_code == 0, f"broker {new} serves epoch {epoch}"
    )
    assert fetch(leader, "ledger", 0, old_epoch).error_code == FENCED_LEADER_EPOCH
    assert fetch(leader, "ledger", 0, epoch + 1).error_code == UNKNOWN_LEADER_EPOCH
    assert list_latest(leader, "ledger", old_epoch).error_code == FENCED_LEADER_EPOCH
    assert list_latest(leader, "ledger", epoch + 1).error_code == UNKNOWN_LEADER_EPOCH
    assert list_latest(leader, "ledger", epoch).error_code == 0
    # a new leader's high watermark catches up once the other follower has fetched from it
    cluster.wait_for(lambda: list_latest(leader, "ledger", epoch).offset == 3, "the new leader's end is 3")
    cluster.wait_for_isr("ledger", 0, 2)  # acks=all needs min.insync.replicas
    for i in range(2):
        assert produce_raw(leader, "ledger", f"e1-{i}".encode()).error_code == 0
    # KIP-320: where each epoch ends on the new leader: the old one where the new one began
    assert epoch_end(leader, "ledger", epoch, old_epoch) == (0, old_epoch, 3)
    assert epoch_end(leader, "ledger", epoch, epoch) == (0, epoch, 5)
    assert epoch_end(leader, "ledger", old_epoch, old_epoch)[0] == FENCED_LEADER_EPOCH
    other = next(i for i in live(cluster) if i != new)
    assert (
        epoch_end(cluster.brokers[other].kafka_address, "ledger", epoch, old_epoch)[0]
        == NOT_LEADER_OR_FOLLOWER
    )


# --- real clients across a failover ------------------------------------------------------------------


def record(message: Message) -> tuple[int, bytes]:
    """A librdkafka message's offset and value (every record here has both)."""
    offset, value = message.offset(), message.value()
    assert offset is not None and value is not None
    return offset, value


def read_all(cluster: Cluster, topic: str, count: int) -> list[tuple[int, bytes]]:
    """(offset, value) of the partition's first `count` records, read by a fresh librdkafka consumer."""
    consumer = Consumer(
        {"bootstrap.servers": kafka_bootstrap(cluster), "group.id": "verify", "enable.auto.commit": False}
    )
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        found: list[tuple[int, bytes]] = []
        deadline = time.monotonic() + 60
        while len(found) < count:
            within(deadline, f"reading back {count} records of {topic}")
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                found.append(record(message))
        return found
    finally:
        consumer.close()


def check_exactly_once_in_order(acked: dict[int, bytes], stored: list[tuple[int, bytes]], sent: int) -> None:
    """Every acknowledged record is stored at its acknowledged offset, each value once, in send order."""
    assert len(acked) >= BEFORE_KILL + AFTER_KILL
    stored_at = dict(stored)
    assert all(stored_at.get(offset) == value for offset, value in acked.items())
    values = [value for _, value in stored]
    assert values == [b"%d" % i for i in range(sent)]  # idempotent: none lost, none twice, in order
    assert [offset for offset, _ in stored] == list(range(sent))


def test_librdkafka_producer_and_assigned_consumer_carry_on_across_the_leaders_kill(cluster: Cluster) -> None:
    create_topic(cluster, "payments", 1)
    bootstrap = kafka_bootstrap(cluster)
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "message.timeout.ms": 60_000,
            "topic.metadata.refresh.interval.ms": 1000,
        }
    )
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "payments-tail",
            "enable.auto.commit": False,
            "topic.metadata.refresh.interval.ms": 1000,
        }
    )
    consumer.assign([TopicPartition("payments", 0, 0)])
    acked: dict[int, bytes] = {}
    failed: list[KafkaError] = []
    consumed: list[tuple[int, bytes]] = []

    def delivered(error: KafkaError | None, message: Message) -> None:
        if error is not None:
            failed.append(error)
        else:
            offset, value = record(message)
            acked[offset] = value

    def consume() -> None:
        message = consumer.poll(0.01)
        if message is not None and message.error() is None:
            consumed.append(record(message))

    sent = 0
    killed_at: int | None = None
    deadline = time.monotonic() + FAILOVER_DEADLINE_S
    try:
        while killed_at is None or len(acked) < killed_at + AFTER_KILL:
            within(deadline, f"{AFTER_KILL} acknowledgements after the kill (have {len(acked)})")
            if len(producer) < 50:
                producer.produce("payments", value=b"%d" % sent, on_delivery=delivered)
                sent += 1
            producer.poll(0)
            consume()
            if killed_at is None and len(acked) >= BEFORE_KILL:
                old, _ = kill_leader(cluster, "payments")
                killed_at = len(acked)
        assert producer.flush(60) == 0
        assert failed == []
        while len(consumed) < sent:
            within(deadline + 60, f"the assigned consumer reaches offset {sent} (at {len(consumed)})")
            consume()
    finally:
        consumer.close()
    assert wait_for_new_leader(cluster, "payments", old) != old
    check_exactly_once_in_order(acked, consumed, sent)
    check_exactly_once_in_order(acked, read_all(cluster, "payments", sent), sent)


@pytest.fixture
def kafka_python_closes_failed_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    """kafka-python 3.0.12 leaves a socket open when a connect fails (`KafkaNetSocket.sock_connect`
    raises without closing it), so each of its retries towards the killed broker would leak one (a
    ResourceWarning, an error here, whenever it is collected). Close it, as the client should."""
    original = KafkaNetSocket.sock_connect

    async def sock_connect(self: Any, net: Any, sock: socket.socket, *args: Any, **kwargs: Any) -> Any:
        try:
            return await original(self, net, sock, *args, **kwargs)
        except BaseException:
            sock.close()
            raise

    monkeypatch.setattr(KafkaNetSocket, "sock_connect", sock_connect)


def test_kafka_python_producer_and_assigned_consumer_carry_on_across_the_leaders_kill(
    cluster: Cluster, kafka_python_closes_failed_sockets: None
) -> None:
    create_topic(cluster, "invoices", 1)
    bootstrap = [b.kafka_address for b in cluster.brokers.values()]
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        delivery_timeout_ms=60_000,
        request_timeout_ms=10_000,
        metadata_max_age_ms=1000,
    )
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        metadata_max_age_ms=1000,
    )
    partition = KafkaPythonPartition("invoices", 0)
    consumer.assign([partition])
    acked: dict[int, bytes] = {}
    failed: list[BaseException] = []
    consumed: list[tuple[int, bytes]] = []
    pending: list[Any] = []

    def on_sent(value: bytes) -> Callable[[Any], None]:
        return lambda metadata: acked.__setitem__(metadata.offset, value)

    def consume() -> None:
        for records in consumer.poll(timeout_ms=10).values():
            consumed.extend((r.offset, r.value) for r in records)

    sent = 0
    killed_at: int | None = None
    deadline = time.monotonic() + FAILOVER_DEADLINE_S
    try:
        while killed_at is None or len(acked) < killed_at + AFTER_KILL:
            within(deadline, f"{AFTER_KILL} acknowledgements after the kill (have {len(acked)})")
            pending = [f for f in pending if not f.is_done]
            if len(pending) < 50:
                value = b"%d" % sent
                future = producer.send("invoices", value=value, partition=0)
                future.add_callback(on_sent(value))
                future.add_errback(failed.append)
                pending.append(future)
                sent += 1
            consume()
            if killed_at is None and len(acked) >= BEFORE_KILL:
                old, _ = kill_leader(cluster, "invoices")
                killed_at = len(acked)
        producer.flush(timeout=60)
        assert failed == []
        assert len(acked) == sent
        while len(consumed) < sent:
            within(deadline + 60, f"the assigned consumer reaches offset {sent} (at {len(consumed)})")
            consume()
    finally:
        consumer.close()
        producer.close(timeout=10)
    assert wait_for_new_leader(cluster, "invoices", old) != old
    check_exactly_once_in_order(acked, consumed, sent)
    check_exactly_once_in_order(acked, read_all(cluster, "invoices", sent), sent)


# --- consumer groups across the loss of their coordinator ---------------------------------------------


def group_coordinated_by(cluster: Cluster, broker_id: int) -> str:
    """A group id whose coordinator is `broker_id` (the leader of its `__consumer_offsets` partition),
    after a FindCoordinator has had the cluster create that topic and its partitions have leaders."""
    address = cluster.brokers[broker_id].kafka_address
    call(address, FindCoordinatorRequest(version=2, key="warm-up", key_type=0), FindCoordinatorResponse, 2)
    cluster.wait_for(
        lambda: all(offsets_leader(cluster, f"group-{n}") is not None for n in range(64)),
        "every __consumer_offsets partition has a leader",
    )
    return next(f"group-{n}" for n in range(1000) if offsets_leader(cluster, f"group-{n}") == broker_id)


def check_group_read_everything(consumed: list[tuple[int, bytes]], sent: int) -> None:
    """A group member may read again from its last commit after a failover (at least once), but every
    record it gets is the one stored at that offset, and it got them all."""
    assert {offset for offset, _ in consumed} == set(range(sent))
    assert all(value == b"%d" % offset for offset, value in consumed)


def test_a_librdkafka_group_member_carries_on_when_the_leader_and_its_coordinator_is_killed(
    cluster: Cluster,
) -> None:
    create_topic(cluster, "shipments", 1)
    leader = cluster.leader("shipments")
    group = group_coordinated_by(cluster, leader)
    bootstrap = kafka_bootstrap(cluster)
    producer = Producer(
        {"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 5}
    )
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": True,
            "auto.commit.interval.ms": 200,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500,
            "topic.metadata.refresh.interval.ms": 1000,
        }
    )
    consumer.subscribe(["shipments"])
    acked: dict[int, bytes] = {}
    consumed: list[tuple[int, bytes]] = []

    def delivered(error: KafkaError | None, message: Message) -> None:
        assert error is None, error
        offset, value = record(message)
        acked[offset] = value

    def consume() -> None:
        message = consumer.poll(0.01)
        if message is not None and message.error() is None:
            consumed.append(record(message))

    sent = 0
    killed_at: int | None = None
    deadline = time.monotonic() + FAILOVER_DEADLINE_S
    try:
        while killed_at is None or len(acked) < killed_at + AFTER_KILL:
            within(deadline, f"{AFTER_KILL} acknowledgements after the kill (have {len(acked)})")
            if len(producer) < 50:
                producer.produce("shipments", value=b"%d" % sent, on_delivery=delivered)
                sent += 1
            producer.poll(0)
            consume()
            # the member has read (and auto-committed) from its coordinator before both go
            if killed_at is None and len(acked) >= BEFORE_KILL and len(consumed) >= BEFORE_KILL // 2:
                kill_leader(cluster, "shipments")
                killed_at = len(acked)
        assert producer.flush(60) == 0
        while {offset for offset, _ in consumed} != set(range(sent)):
            within(deadline + 60, f"the group member reads every offset up to {sent}")
            consume()
        check_group_read_everything(consumed, sent)

        def committed_everything() -> bool:
            consume()
            try:
                consumer.commit(asynchronous=False)
            except Exception:  # the coordinator may still be moving; the member finds it again
                return False
            (position,) = consumer.committed([TopicPartition("shipments", 0)], timeout=10)
            return position.offset == sent

        cluster.wait_for(committed_everything, f"{group} commits offset {sent} with its new coordinator")
    finally:
        consumer.close()
    assert offsets_leader(cluster, group) not in (None, leader)


def test_a_kafka_python_group_member_carries_on_when_the_leader_and_its_coordinator_is_killed(
    cluster: Cluster, kafka_python_closes_failed_sockets: None
) -> None:
    create_topic(cluster, "receipts", 1)
    leader = cluster.leader("receipts")
    group = group_coordinated_by(cluster, leader)
    bootstrap = [b.kafka_address for b in cluster.brokers.values()]
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        metadata_max_age_ms=1000,
    )
    consumer = KafkaConsumer(
        "receipts",
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=True,
        auto_commit_interval_ms=200,
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
        metadata_max_age_ms=1000,
    )
    acked: dict[int, bytes] = {}
    failed: list[BaseException] = []
    consumed: list[tuple[int, bytes]] = []
    pending: list[Any] = []

    def consume() -> None:
        for records in consumer.poll(timeout_ms=10).values():
            consumed.extend((r.offset, r.value) for r in records)

    sent = 0
    killed_at: int | None = None
    deadline = time.monotonic() + FAILOVER_DEADLINE_S
    try:
        while killed_at is None or len(acked) < killed_at + AFTER_KILL:
            within(deadline, f"{AFTER_KILL} acknowledgements after the kill (have {len(acked)})")
            pending = [f for f in pending if not f.is_done]
            if len(pending) < 50:
                value = b"%d" % sent
                future = producer.send("receipts", value=value, partition=0)
                future.add_callback(lambda metadata, value=value: acked.__setitem__(metadata.offset, value))
                future.add_errback(failed.append)
                pending.append(future)
                sent += 1
            consume()
            if killed_at is None and len(acked) >= BEFORE_KILL and len(consumed) >= BEFORE_KILL // 2:
                kill_leader(cluster, "receipts")
                killed_at = len(acked)
        producer.flush(timeout=60)
        assert failed == [] and len(acked) == sent
        while {offset for offset, _ in consumed} != set(range(sent)):
            within(deadline + 60, f"the group member reads every offset up to {sent}")
            consume()
        check_group_read_everything(consumed, sent)
        partition = KafkaPythonPartition("receipts", 0)

        def committed_everything() -> bool:
            consume()
            try:
                consumer.commit()
            except Exception:  # the coordinator may still be moving; the member finds it again
                return False
            return consumer.committed(partition) == sent

        cluster.wait_for(committed_everything, f"{group} commits offset {sent} with its new coordinator")
    finally:
        consumer.close()
        producer.close(timeout=10)
    assert offsets_leader(cluster, group) not in (None, leader)
