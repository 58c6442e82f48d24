"""Share groups over Kafka's protocol on a real 3-broker cluster (real etcd, broker processes, librdkafka).

A share group lives with its coordinator, the leader of its `__share_group_state` partition. Kafka
clients find it with FindCoordinator key type GROUP, which names the consumer-group coordinator of that
id; a broker that does not coordinate the share group passes the ShareGroupHeartbeat on, and the
partition leaders pass ShareFetch and ShareAcknowledge on (forwarding). Both internal topics have 8
partitions and a group hashes to the same index in each, so whether the two coordinators of a group
differ depends on where the controller placed the two topics (they differ for every group, or for none):
the raw Kafka heartbeat below is sent to a broker that does not coordinate the share group either way.

librdkafka's ShareConsumer reads every record of a topic (replication factor 3, 3 partitions), and carries
on across a SIGKILL of the share coordinator and its restart: everything is accepted at least once, and
what was accepted before the kill is never delivered again (its state was replicated).

On the raw ShareService: a ShareFetch or ShareAcknowledge sent to a broker that does not coordinate the
group is served (forwarded), and one marked forwarded that arrives there is answered NOT_COORDINATOR.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from confluent_kafka import AcknowledgeType, Message, Producer, ShareConsumer
from kafka.protocol.metadata import FindCoordinatorRequest, FindCoordinatorResponse
from logstore.wire.logstore.v1 import common_pb2 as common
from logstore.wire.logstore.v1 import share_pb2 as pb

from tests.cluster_support import Cluster, cluster_of
from tests.share_members import ACCEPT, ShareMember, acks, describe, owned, share_stub
from tests.test_cluster_kafka import call
from tests.test_cluster_share import coordinator_of, set_earliest, stubs
from tests.test_kafka_share_wire import SHARE_GROUP_HEARTBEAT
from tests.test_kafka_share_wire import call as kio_call

pytestmark = pytest.mark.slow

TOPIC = "tasks"
PARTITIONS = 3
PER_PARTITION = 30
GROUP_KEY, SHARE_KEY = 0, 2
FORWARDED = (("logstore-forwarded", "1"),)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    yield from cluster_of(tmp_path, 3, ("--default-replication-factor=3", "--min-insync-replicas=2"))


def kafka_coordinator(cluster: Cluster, key: str, key_type: int) -> int:
    """The coordinator every live broker's FindCoordinator (v2, as librdkafka sends it) names, once they
    all name the same live broker; the first lookup has the cluster create the internal topic."""
    found: list[int] = []

    def agreed() -> bool:
        answers = set()
        for broker_id in cluster.live_brokers():
            request = FindCoordinatorRequest(version=2, key=key, key_type=key_type)
            answer = call(cluster.brokers[broker_id].kafka_address, request, FindCoordinatorResponse, 2)
            answers.add((answer.error_code, answer.node_id))
        found[:] = [node for _, node in answers]
        return len(answers) == 1 and next(iter(answers))[0] == 0 and found[0] in cluster.live_brokers()

    cluster.wait_for(agreed, f"every broker names one coordinator of {key!r} (key type {key_type})")
    return found[0]


def coordinators(cluster: Cluster, group: str) -> tuple[int, int]:
    """(share coordinator, consumer-group coordinator) of `group` as the Kafka listeners name them; the
    share one is checked against the gRPC FindCoordinator's and Kafka's "group:topicId:partition" key."""
    share = kafka_coordinator(cluster, group, SHARE_KEY)
    assert coordinator_of(cluster, group, asking=1) == share
    assert kafka_coordinator(cluster, f"{group}:{'A' * 22}:0", SHARE_KEY) == share
    return share, kafka_coordinator(cluster, group, GROUP_KEY)


def create_topic(cluster: Cluster) -> None:
    stubs(cluster, 1).create_topic(TOPIC, partitions=PARTITIONS)
    for partition in range(PARTITIONS):
        cluster.wait_for_isr(TOPIC, partition, 3)


def produce(cluster: Cluster, first: int, count: int) -> None:
    """`count` records to each partition (values p<partition>-<i>), acks=all, idempotent."""
    bootstrap = ",".join(b.kafka_address for b in cluster.brokers.values())
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    failed: list[Any] = []
    for partition in range(PARTITIONS):
        for i in range(first, first + count):
            producer.produce(
                TOPIC,
                value=b"p%d-%d" % (partition, i),
                partition=partition,
                on_delivery=lambda err, _msg: failed.append(err) if err is not None else None,
            )
    assert producer.flush(90) == 0
    assert failed == []


def place(message: Message) -> tuple[int, int]:
    partition, offset = message.partition(), message.offset()
    assert partition is not None and offset is not None
    return partition, offset


def window_done(cluster: Cluster, group: str, coordinator: int, end: int) -> bool:
    """Whether the coordinator's view has every partition done up to `end` with nothing in flight."""
    try:
        view = describe(share_stub(stubs(cluster, coordinator).channel), group)
    except grpc.RpcError:  # moving, or not yet reloaded
        return False
    states = [p for p in view.partitions if p.topic == TOPIC]
    return len(states) == PARTITIONS and all(
        (p.start_offset, p.in_flight_records) == (end, 0) for p in states
    )


def test_a_librdkafka_share_consumer_carries_on_across_a_kill_of_the_share_coordinator(
    cluster: Cluster,
) -> None:
    create_topic(cluster)
    group = "farm"
    coordinator, _ = coordinators(cluster, group)
    assert any(cluster.leader(TOPIC, p) != coordinator for p in range(PARTITIONS))
    set_earliest(cluster, coordinator, group)
    produce(cluster, 0, PER_PARTITION)
    bootstrap = ",".join(b.kafka_address for b in cluster.brokers.values())
    consumer = ShareConsumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "share.acknowledgement.mode": "explicit"}
    )
    accepted: dict[tuple[int, int], int] = {}  # (partition, offset) -> times accepted

    def work() -> None:
        messages = consumer.poll(0.5)
        for message in messages:
            if message.error() is not None:  # a broker went away: librdkafka reports and carries on
                continue
            partition, offset = place(message)
            assert message.value() == b"p%d-%d" % (partition, offset)
            consumer.acknowledge(message, AcknowledgeType.ACCEPT)
            accepted[partition, offset] = accepted.get((partition, offset), 0) + 1
        if messages:
            consumer.commit_sync()

    try:
        consumer.subscribe([TOPIC])
        before = {(p, o) for p in range(PARTITIONS) for o in range(PER_PARTITION)}

        def first_round() -> bool:
            work()
            return before <= set(accepted) and window_done(cluster, group, coordinator, PER_PARTITION)

        cluster.wait_for(first_round, f"the share consumer accepted {len(before)} records", timeout_s=90)
        assert set(accepted) == before
        assert set(accepted.values()) == {1}, "each delivered once while nothing failed"

        cluster.brokers[coordinator].kill()
        survivor = next(b for b in cluster.brokers if b != coordinator)
        moved = coordinator_of(cluster, group, asking=survivor, not_this=coordinator)
        cluster.brokers[coordinator].start()
        produce(cluster, PER_PARTITION, PER_PARTITION)
        after = {(p, o) for p in range(PARTITIONS) for o in range(PER_PARTITION, 2 * PER_PARTITION)}

        def second_round() -> bool:
            work()
            return after <= set(accepted) and window_done(cluster, group, moved, 2 * PER_PARTITION)

        cluster.wait_for(second_round, "the share consumer accepted the records sent after the kill", 120)
    finally:
        consumer.close()
    assert set(accepted) == before | after
    again = sorted(k for k in before if accepted[k] > 1)
    assert not again, f"records accepted before the kill were delivered again: {again}"


def test_share_calls_at_a_broker_that_does_not_coordinate_are_forwarded_once(cluster: Cluster) -> None:
    create_topic(cluster)
    group = "relay"
    coordinator, _ = coordinators(cluster, group)
    set_earliest(cluster, coordinator, group)
    produce(cluster, 0, 5)
    member = ShareMember(share_stub(stubs(cluster, coordinator).channel), group, [TOPIC]).join()
    other = next(b for b in cluster.brokers if b != coordinator)
    elsewhere = ShareMember(share_stub(stubs(cluster, other).channel), group, [TOPIC])
    elsewhere.member_id, elsewhere.epoch = member.member_id, member.epoch

    refused = elsewhere.heartbeat()  # heartbeats are not forwarded on the gRPC API
    assert refused.error_code == common.ERROR_CODE_NOT_COORDINATOR, refused.error_message
    assert f"broker {coordinator}" in refused.error_message

    # Kafka's ShareGroupHeartbeat is: the member joins at the coordinator through `other`.
    kafka_member = str(uuid.uuid4())
    host, port = cluster.brokers[other].kafka_address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        beat = kio_call(
            sock, SHARE_GROUP_HEARTBEAT, 1, group_id=group, member_id=kafka_member, member_epoch=0,
            rack_id=None, subscribed_topic_names=(TOPIC,),
        )  # fmt: skip
    assert (beat.error_code, beat.member_id) == (0, kafka_member), beat.error_message
    assert beat.member_epoch > 0
    assert [sorted(t.partitions) for t in beat.assignment.topic_partitions] == [list(range(PARTITIONS))]
    members = describe(share_stub(stubs(cluster, coordinator).channel), group).members
    assert kafka_member in {m.member_id for m in members}

    got: list[tuple[str, int, int, int, bytes | None]] = []

    def fetched() -> bool:
        answer = elsewhere.fetch(max_wait_ms=1000)
        assert answer.error_code == common.ERROR_CODE_NONE, answer.error_message
        got.extend(owned(answer))
        return len(got) >= PARTITIONS * 5

    cluster.wait_for(fetched, f"broker {other} serves the member's fetches (forwarded to {coordinator})")
    assert sorted((p, o) for _, p, o, _, _ in got) == [(p, o) for p in range(PARTITIONS) for o in range(5)]

    first = got[0]
    marked = pb.ShareFetchRequest(group_id=group, member_id=member.member_id, max_wait_ms=0)
    answer = elsewhere.stub.ShareFetch(marked, metadata=FORWARDED)
    assert answer.error_code == common.ERROR_CODE_NOT_COORDINATOR, answer.error_message
    assert answer.partitions == []
    acknowledgement = pb.ShareAcknowledgeRequest(
        group_id=group,
        member_id=member.member_id,
        acknowledgements=[acks(TOPIC, first[1], (first[2], first[2], ACCEPT))],
    )
    answer_ack = elsewhere.stub.ShareAcknowledge(acknowledgement, metadata=FORWARDED)
    assert answer_ack.error_code == common.ERROR_CODE_NOT_COORDINATOR, answer_ack.error_message

    held: dict[int, list[tuple[int, int, int]]] = {}
    for _, partition, offset, _, _ in got:
        held.setdefault(partition, []).append((offset, offset, ACCEPT))
    done = elsewhere.acknowledge(*(acks(TOPIC, p, *ranges) for p, ranges in held.items()))
    assert done.error_code == common.ERROR_CODE_NONE, done.error_message
    assert all(r.error_code == common.ERROR_CODE_NONE for p in done.results for r in p.results), done
    cluster.wait_for(
        lambda: window_done(cluster, group, coordinator, 5), "the coordinator has them all accepted"
    )
