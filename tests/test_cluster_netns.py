"""Network faults without killing anyone: etcd and three brokers each in a network namespace of their
own, joined by a bridge (tests/netns_support.py). Cutting the partition leader's link leaves its process
running but unreachable: it must lose its lease and stop accepting writes (a client inside its namespace
is refused, never acknowledged), a new leader must be elected and serve the load, and after healing the
old leader must rejoin with its unacknowledged tail truncated. Then a follower is cut and healed. No run
may show two leaders acknowledging writes: every acknowledged record is in the final log exactly once,
identical on every replica, and nothing the isolated leader appended survives.

Needs root to make namespaces (CI runs as root); elsewhere it skips, saying so.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from logstore.wire.logstore.v1 import common_pb2, produce_pb2

from tests.cluster_load import IdempotentLoad, check_acknowledged_records_survived, stored_records
from tests.cluster_support import SESSION_TIMEOUT_MS, Cluster, ClusterBroker
from tests.conftest import Stubs
from tests.etcd_support import EtcdServer
from tests.netns_support import PrivateNetwork, namespaces_unavailable

pytestmark = pytest.mark.slow

TOPIC = "events"
EXTRA = ("--default-replication-factor=3", "--min-insync-replicas=2")
LEASE_S = SESSION_TIMEOUT_MS / 1000
PROBE = """
import json, sys, grpc
from logstore.records import build_batch
from logstore.wire.logstore.v1 import produce_pb2, produce_pb2_grpc
address, topic, acks, value = sys.argv[1:5]
stub = produce_pb2_grpc.ProduceServiceStub(grpc.insecure_channel(address))
data = produce_pb2.ProducePartitionData(topic=topic, partition=0, records=build_batch([value.encode()]))
request = produce_pb2.ProduceRequest(acks=int(acks), partitions=[data], timeout_ms=int(sys.argv[5]))
try:
    result = stub.Produce(request, timeout=30).results[0]
    print(json.dumps({"code": result.error_code, "message": result.error_message}))
except grpc.RpcError as exc:
    print(json.dumps({"code": -1, "message": f"{exc.code().name}: {exc.details()}"}))
"""


def probe(network: PrivateNetwork, broker: ClusterBroker, acks: int, value: str, timeout_ms: int) -> dict:
    """Produce one record from inside the broker's own namespace (the only place that reaches it now)."""
    done = subprocess.run(
        [*network.prefix(f"b{broker.broker_id}"), sys.executable, "-c", PROBE, broker.address, TOPIC,
         str(acks), value, str(timeout_ms)],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    answer: dict = json.loads(done.stdout)
    return answer


@pytest.fixture
def network() -> Iterator[PrivateNetwork]:
    why = namespaces_unavailable()
    if why is not None:
        pytest.skip(f"network namespaces unavailable: {why}")
    network = PrivateNetwork(["etcd", "b1", "b2", "b3"])
    try:
        network.create()
        yield network
    finally:
        network.destroy()


@pytest.fixture
def cluster(tmp_path: Path, network: PrivateNetwork) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path, 3, EXTRA)
    cluster.etcd = EtcdServer(tmp_path / "etcd", host=network.address("etcd"), prefix=network.prefix("etcd"))
    cluster.brokers = {
        i: ClusterBroker(
            i, tmp_path, cluster.etcd, cluster.cluster_root, EXTRA,
            host=network.address(f"b{i}"), prefix=network.prefix(f"b{i}"),
        )
        for i in (1, 2, 3)
    }  # fmt: skip
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def test_an_isolated_leader_stops_accepting_writes_and_rejoins_without_split_brain(
    cluster: Cluster, network: PrivateNetwork
) -> None:
    admin = Stubs.connect(cluster.brokers[1].address)
    admin.create_topic(TOPIC, partitions=1)
    cluster.wait_for_isr(TOPIC, 0, 3)
    producer_id = admin.produce.InitProducerId(produce_pb2.InitProducerIdRequest()).producer_id
    load = IdempotentLoad(cluster, producer_id, TOPIC)
    load.start()
    try:
        cluster.wait_for(lambda: len(load.acked) >= 20, "the load is running")

        old = cluster.wait_for_isr(TOPIC, 0, 3)
        isolated = cluster.brokers[old.leader]
        cut_at = time.monotonic()
        network.cut(f"b{isolated.broker_id}")
        # acks=all inside the cut: appended locally, never acknowledged (no follower can fetch it)
        inside = probe(network, isolated, produce_pb2.ACKS_ALL, "isolated-acks-all", 3 * SESSION_TIMEOUT_MS)
        assert inside["code"] != common_pb2.ERROR_CODE_NONE, inside
        cluster.wait_for(
            lambda: cluster.leader(TOPIC) not in (-1, isolated.broker_id),
            "a new leader while the old one is cut off",
            LEASE_S + 2,
        )
        new_leader = cluster.leader(TOPIC)
        state = cluster.partition(TOPIC, 0)
        assert state is not None and state.leader_epoch > old.leader_epoch

        # the isolated broker knows its lease lapsed: it refuses even acks=1 now
        def refused_as_not_leader() -> bool:
            answer = probe(network, isolated, produce_pb2.ACKS_LEADER, "isolated-acks-1", 1000)
            assert answer["code"] != common_pb2.ERROR_CODE_NONE or time.monotonic() - cut_at < LEASE_S, answer
            return bool(answer["code"] == common_pb2.ERROR_CODE_NOT_LEADER_OR_FOLLOWER)

        cluster.wait_for(refused_as_not_leader, "the isolated leader refuses writes", LEASE_S + 2)
        cluster.wait_for(
            lambda: load.acked_since(cut_at, isolated.broker_id) is not None,
            f"the load is acknowledged by the new leader {new_leader}",
        )

        network.heal(f"b{isolated.broker_id}")
        cluster.wait_for_isr(TOPIC, 0, 3, timeout_s=60)

        follower = next(
            r for r in (cluster.partition(TOPIC, 0) or state).replicas if r != cluster.leader(TOPIC)
        )
        network.cut(f"b{follower}")
        cluster.wait_for(
            lambda: follower not in (cluster.partition(TOPIC, 0) or state).isr,
            "the cut follower leaves the ISR",
        )
        written = len(load.acked)
        cluster.wait_for(lambda: len(load.acked) > written + 10, "writes go on with two in-sync replicas")
        network.heal(f"b{follower}")
        cluster.wait_for_isr(TOPIC, 0, 3, timeout_s=60)
        written = len(load.acked)
        cluster.wait_for(lambda: len(load.acked) > written + 10, "writes go on after healing")
    finally:
        load.join()

    check_acknowledged_records_survived(cluster, load)
    for broker in cluster.brokers.values():
        values = {value for _, _, value in stored_records(broker.data_dir, TOPIC)}
        assert not values & {b"isolated-acks-all", b"isolated-acks-1"}, (
            "the isolated leader's writes survived"
        )
