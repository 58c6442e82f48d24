"""Share groups in a cluster, through the raw ShareService: a group is coordinated by the leader of its
`__share_group_state` partition, which reads the data partitions other brokers lead from them; other
brokers answer a heartbeat with NOT_COORDINATOR; and what members accepted survives the coordinator's
`kill -9`, because the new leader of that partition had it replicated before the acknowledgement was
answered (the new members get only what was never accepted)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from logstore.wire.logstore.v1 import admin_pb2, share_pb2_grpc
from logstore.wire.logstore.v1 import common_pb2 as common
from logstore.wire.logstore.v1 import share_pb2 as pb

from logstore.records import BatchBuilder, iter_records
from tests.cluster_support import Cluster, cluster_of
from tests.conftest import Stubs
from tests.share_members import ACCEPT, REJECT, ShareMember, acks, owned, share_stub

pytestmark = pytest.mark.slow

TOPIC = "jobs"
PARTITIONS = 3
PER_PARTITION = 40


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    yield from cluster_of(tmp_path, 3, ("--default-replication-factor=3", "--min-insync-replicas=2"))


def stubs(cluster: Cluster, broker_id: int) -> Stubs:
    return Stubs.connect(cluster.brokers[broker_id].address)


def coordinator_of(cluster: Cluster, group_id: str, asking: int, not_this: int = -1) -> int:
    """The share coordinator as `asking` sees it (the first lookup creates the state topic)."""
    found: list[int] = []

    def known() -> bool:
        try:
            answer = stubs(cluster, asking).admin.FindCoordinator(
                admin_pb2.FindCoordinatorRequest(kind="share", key=group_id)
            )
        except grpc.RpcError as exc:  # UNAVAILABLE while the state partition has no leader
            assert exc.code() is grpc.StatusCode.UNAVAILABLE, exc
            return False
        found[:] = [answer.broker_id]
        return answer.broker_id > 0 and answer.broker_id != not_this

    cluster.wait_for(known, f"share group {group_id} has a coordinator (other than {not_this})")
    return found[0]


def produce(cluster: Cluster, start: int, count: int) -> None:
    """`count` records to each partition, sent to its leader (retried while leadership moves)."""
    for partition in range(PARTITIONS):
        builder = BatchBuilder()
        for i in range(start, start + count):
            builder.append(b"v%d" % i, key=b"k%d" % i)
        data = builder.build()

        def sent(partition: int = partition, data: bytes = data) -> bool:
            leader = cluster.leader(TOPIC, partition)
            if leader not in cluster.live_brokers():
                return False
            return (
                stubs(cluster, leader).produce_one(TOPIC, partition, data).error_code
                == common.ERROR_CODE_NONE
            )

        cluster.wait_for(sent, f"{TOPIC}-{partition} takes {count} records")


def topic_with_records(cluster: Cluster) -> None:
    """TOPIC, every partition on 3 in-sync replicas, PER_PARTITION records in each."""
    stubs(cluster, 1).create_topic(TOPIC, partitions=PARTITIONS)
    for partition in range(PARTITIONS):
        cluster.wait_for_isr(TOPIC, partition, 3)
    produce(cluster, 0, PER_PARTITION)


def joined(cluster: Cluster, broker_id: int, group_id: str) -> ShareMember:
    member = ShareMember(share_stub(stubs(cluster, broker_id).channel), group_id, [TOPIC])
    cluster.wait_for(
        lambda: member.heartbeat().error_code == common.ERROR_CODE_NONE,
        f"a member of {group_id} joins on broker {broker_id}",
    )
    return member


def set_earliest(cluster: Cluster, broker_id: int, group_id: str) -> None:
    stub = share_stub(stubs(cluster, broker_id).channel)
    request = pb.AlterGroupConfigRequest(group_id=group_id, set={"share.auto.offset.reset": "earliest"})
    cluster.wait_for(
        lambda: _altered(stub, request),
        f"share group {group_id} takes its configuration on broker {broker_id}",
    )


def consume(member: ShareMember, cluster: Cluster, expected: int) -> list[tuple[int, int]]:
    """Fetch and accept (in the next fetch) until `expected` records came; their (partition, offset)."""
    got: list[tuple[int, int]] = []
    pending: list[pb.PartitionAcknowledgements] = []

    def more() -> bool:
        answer = member.fetch(*pending, max_wait_ms=500, max_records=50)
        assert answer.error_code == common.ERROR_CODE_NONE, answer.error_message
        for result in answer.acknowledgement_results:
            assert all(r.error_code == common.ERROR_CODE_NONE for r in result.results), result
        records = owned(answer)
        pending[:] = [acks(TOPIC, p, (o, o, ACCEPT)) for _, p, o, _, _ in records]
        got.extend((p, o) for _, p, o, _, _ in records)
        return len(got) >= expected

    cluster.wait_for(more, f"{expected} records delivered", timeout_s=60)
    final = member.acknowledge(*pending)
    assert final.error_code == common.ERROR_CODE_NONE, final.error_message
    return got


def test_accepted_records_survive_the_share_coordinator_being_killed(cluster: Cluster) -> None:
    topic_with_records(cluster)
    group = "render-farm"
    coordinator = coordinator_of(cluster, group, asking=1)
    other = next(b for b in cluster.brokers if b != coordinator)
    refused = ShareMember(share_stub(stubs(cluster, other).channel), group, [TOPIC]).heartbeat()
    assert refused.error_code == common.ERROR_CODE_NOT_COORDINATOR, refused.error_message
    assert f"broker {coordinator}" in refused.error_message
    led_elsewhere = [p for p in range(PARTITIONS) if cluster.leader(TOPIC, p) != coordinator]
    assert led_elsewhere, "the test needs a partition the coordinator does not lead"

    set_earliest(cluster, coordinator, group)
    first = consume(joined(cluster, coordinator, group), cluster, PARTITIONS * PER_PARTITION)
    assert sorted(first) == [(p, o) for p in range(PARTITIONS) for o in range(PER_PARTITION)]

    cluster.brokers[coordinator].kill()
    survivor = next(b for b in cluster.brokers if b != coordinator)
    moved = coordinator_of(cluster, group, asking=survivor, not_this=coordinator)
    produce(cluster, PER_PARTITION, PER_PARTITION)
    second = consume(joined(cluster, moved, group), cluster, PARTITIONS * PER_PARTITION)
    assert sorted(second) == [
        (p, o) for p in range(PARTITIONS) for o in range(PER_PARTITION, 2 * PER_PARTITION)
    ]

    view = share_stub(stubs(cluster, moved).channel).DescribeShareGroup(
        pb.DescribeShareGroupRequest(group_id=group)
    )
    by_partition = {p.partition: p for p in view.group.partitions}
    assert sorted(by_partition) == list(range(PARTITIONS))
    for state in by_partition.values():
        assert (state.start_offset, state.in_flight_records, state.lag) == (2 * PER_PARTITION, 0, 0), state
    cluster.brokers[coordinator].start()


def test_the_coordinator_follows_a_data_partition_to_its_new_leader(cluster: Cluster) -> None:
    topic_with_records(cluster)
    group = "transcoders"
    coordinator = coordinator_of(cluster, group, asking=1)
    data_leader = next(
        cluster.leader(TOPIC, p) for p in range(PARTITIONS) if cluster.leader(TOPIC, p) != coordinator
    )
    set_earliest(cluster, coordinator, group)
    member = joined(cluster, coordinator, group)
    first = consume(member, cluster, PARTITIONS * PER_PARTITION)
    assert len(set(first)) == len(first) == PARTITIONS * PER_PARTITION

    cluster.brokers[data_leader].kill()
    cluster.wait_for(
        lambda: all(cluster.leader(TOPIC, p) != data_leader for p in range(PARTITIONS)),
        f"every partition of {TOPIC} moves off the killed broker {data_leader}",
    )
    produce(cluster, PER_PARTITION, PER_PARTITION)
    second = consume(member, cluster, PARTITIONS * PER_PARTITION)  # the same member: its coordinator lives
    assert sorted(second) == [
        (p, o) for p in range(PARTITIONS) for o in range(PER_PARTITION, 2 * PER_PARTITION)
    ]
    cluster.brokers[data_leader].start()


def test_rejected_records_reach_the_dead_letter_topic_on_its_leader(cluster: Cluster) -> None:
    topic_with_records(cluster)
    group = "thumbnails"
    coordinator = coordinator_of(cluster, group, asking=1)
    stub = share_stub(stubs(cluster, coordinator).channel)
    request = pb.AlterGroupConfigRequest(
        group_id=group,
        set={"share.auto.offset.reset": "earliest", "errors.deadletterqueue.topic.name": "thumbnails-dlq"},
    )
    cluster.wait_for(lambda: _altered(stub, request), f"share group {group} takes its configuration")
    member = joined(cluster, coordinator, group)
    rejected: set[tuple[int, int]] = set()
    accepted: set[tuple[int, int]] = set()
    pending: list[pb.PartitionAcknowledgements] = []

    def more() -> bool:
        answer = member.fetch(*pending, max_wait_ms=500, max_records=50)
        assert answer.error_code == common.ERROR_CODE_NONE, answer.error_message
        pending.clear()
        for _, partition, offset, _, _ in owned(answer):
            kind = REJECT if offset % 4 == 0 else ACCEPT
            (rejected if kind == REJECT else accepted).add((partition, offset))
            pending.append(acks(TOPIC, partition, (offset, offset, kind)))
        return len(rejected) + len(accepted) >= PARTITIONS * PER_PARTITION

    cluster.wait_for(more, "every record delivered once", timeout_s=60)
    assert member.acknowledge(*pending).error_code == common.ERROR_CODE_NONE

    def dead_letters() -> set[tuple[int, int]]:
        state = cluster.partition("thumbnails-dlq", 0)
        if state is None or state.leader < 0:
            return set()
        found = set()
        for record in iter_records(stubs(cluster, state.leader).fetch_one("thumbnails-dlq", 0, 0).records):
            headers = dict(record.headers)
            assert headers["__dlq.errors.group.id"] == group.encode()
            assert headers["__dlq.errors.topic"] == TOPIC.encode()
            found.add(
                (int(headers["__dlq.errors.partition"] or b""), int(headers["__dlq.errors.offset"] or b""))
            )
        return found

    cluster.wait_for(lambda: dead_letters() == rejected, "every rejected record is on the dead-letter topic")
    assert len(rejected) == PARTITIONS * PER_PARTITION // 4


def _altered(stub: share_pb2_grpc.ShareServiceStub, request: pb.AlterGroupConfigRequest) -> bool:
    try:
        stub.AlterGroupConfig(request)
    except grpc.RpcError:  # the state partition's leader is still taking it over
        return False
    return True
