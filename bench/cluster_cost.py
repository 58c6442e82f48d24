"""What replication costs, and how a cluster's cost grows with its partitions.

    .venv/bin/python -m logstore.bench.cluster_cost throughput [--runs 3] [--seconds 8]
    .venv/bin/python -m logstore.bench.cluster_cost scale [--partitions 10,100,1000]
    .venv/bin/python -m logstore.bench.cluster_cost share [--runs 3] [--records 60000]
    .venv/bin/python -m logstore.bench.cluster_cost commit [--runs 3] [--commits 50]

Run from the repository's root: it starts etcd and the brokers with the test suite's harness
(`tests/cluster_support.py`: Debian's etcd-server, `python -m logstore.broker --etcd ...`, 3 s leases).

`throughput`: acks=all produce to one partition, replication factor 3 over 3 brokers (min.insync.replicas
2) beside a single broker without etcd (acks=all there waits for the fsync policy only), in alternating
turns, each turn with a fresh broker set. The producer sends prebuilt ~16 KiB batches of 100-byte records
with 4 calls in flight, so the figure is the brokers' and replication's rate, not a client's. Everything
shares this machine's cores: the 3 brokers and the producer compete for them, which a real cluster would
not; the ratio is the figure to read (the issue's goal: at least 0.40).

`scale`: per partition count, one topic of that many partitions (replication factor 3) on 3 brokers: the
bytes the cluster's metadata takes in etcd, then SIGKILL of one broker and the time until every
partition it led has a new leader in etcd, and the controller's CPU seconds over that failover and per
second while idle.

`share`: one share-group member accepting `--records` records (100 bytes) of a 3-partition topic, the
acknowledgements riding on the next ShareFetch (up to 500 records each), until the last is answered, on a
single broker and on the group's coordinator in a 3-broker cluster (replication factor 3), where two of
the three partitions are usually led by other brokers and read from them, and every acknowledgement waits
for the state partition's in-sync replicas. Alternating turns, fresh brokers each turn.

`commit`: a consumer-group member's CommitOffsets latency, one commit after another, on a single broker
and on the group's coordinator in a 3-broker cluster (the commit is answered once on every in-sync
replica of its `__consumer_offsets` partition): median and max per turn.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aetcd
import grpc
from logstore.broker.embedded import BrokerProcess
from logstore.wire.logstore.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    group_pb2_grpc,
    produce_pb2,
    produce_pb2_grpc,
    share_pb2,
    share_pb2_grpc,
)

from logstore.records import BatchBuilder

VALUE = b"v" * 100
BATCH_BYTES = 16 * 1024
IN_FLIGHT = 4
TOPIC = "bench"


def batch() -> tuple[bytes, int]:
    builder = BatchBuilder()
    count = 0
    while builder.size_in_bytes() < BATCH_BYTES:
        builder.append(VALUE)
        count += 1
    return builder.build(), count


async def produce_for(address: str, seconds: float) -> float:
    """acks=all records/s to TOPIC-0 at `address` with IN_FLIGHT calls outstanding."""
    records, count = batch()
    data = produce_pb2.ProducePartitionData(topic=TOPIC, partition=0, records=records)
    request = produce_pb2.ProduceRequest(acks=produce_pb2.ACKS_ALL, partitions=[data], timeout_ms=30_000)
    async with grpc.aio.insecure_channel(address) as channel:
        stub = produce_pb2_grpc.ProduceServiceStub(channel)
        for _ in range(20):  # warm-up
            await stub.Produce(request)
        sent = 0
        deadline = time.monotonic() + seconds

        async def pipeline() -> None:
            nonlocal sent
            while time.monotonic() < deadline:
                answer = await stub.Produce(request)
                result = answer.results[0]
                if result.error_code != 0:
                    raise RuntimeError(f"produce failed: {result.error_message}")
                sent += count

        started = time.monotonic()
        await asyncio.gather(*(pipeline() for _ in range(IN_FLIGHT)))
        return sent / (time.monotonic() - started)


@contextlib.contextmanager
def single_broker(partitions: int = 1) -> Iterator[str]:
    """A fresh broker without etcd with TOPIC made; yields its address."""
    with tempfile.TemporaryDirectory(prefix="logstore-cluster-cost-") as work:
        broker = BrokerProcess(Path(work) / "data", Path(work) / "broker.log")
        address = broker.start()
        try:
            create_topic(address, partitions)
            yield address
        finally:
            broker.terminate()


@contextlib.contextmanager
def three_brokers() -> Iterator[Any]:
    """A fresh cluster of 3 (replication factor 3, min.insync.replicas 2); yields the test harness's
    `Cluster`."""
    from tests.cluster_support import Cluster

    with tempfile.TemporaryDirectory(prefix="logstore-cluster-cost-") as work:
        cluster = Cluster(Path(work), 3, ("--default-replication-factor=3", "--min-insync-replicas=2"))
        cluster.start()
        try:
            yield cluster
        finally:
            cluster.stop()


def create_topic(address: str, partitions: int) -> None:
    with grpc.insecure_channel(address) as channel:
        admin_pb2_grpc.AdminServiceStub(channel).CreateTopic(
            admin_pb2.CreateTopicRequest(name=TOPIC, partitions=partitions)
        )


def single_broker_run(seconds: float) -> float:
    with single_broker() as address:
        return asyncio.run(produce_for(address, seconds))


def cluster_run(seconds: float) -> float:
    with three_brokers() as cluster:
        create_topic(cluster.brokers[1].address, 1)
        state = cluster.wait_for_isr(TOPIC, 0, 3)
        return asyncio.run(produce_for(cluster.brokers[state.leader].address, seconds))


def throughput(runs: int, seconds: float) -> dict[str, Any]:
    single: list[float] = []
    replicated: list[float] = []
    for turn in range(runs):
        order = (single_broker_run, cluster_run) if turn % 2 == 0 else (cluster_run, single_broker_run)
        for run in order:
            rate = run(seconds)
            (single if run is single_broker_run else replicated).append(rate)
            print(f"{run.__name__}: {rate:,.0f} records/s", file=sys.stderr)
    ratio = statistics.median(replicated) / statistics.median(single)
    return {
        "single_broker_acks_all_records_s": single,
        "rf3_acks_all_records_s": replicated,
        "median_single": statistics.median(single),
        "median_rf3": statistics.median(replicated),
        "ratio": ratio,
    }


SHARE_PARTITIONS = 3


async def prefill(address_of: Any, records: int) -> int:
    """About `records` records spread over the share topic's partitions, acks=all, at each partition's
    leader; returns how many exactly."""
    data, count = batch()
    batches = max(1, records // SHARE_PARTITIONS // count)
    for partition in range(SHARE_PARTITIONS):
        async with grpc.aio.insecure_channel(address_of(partition)) as channel:
            stub = produce_pb2_grpc.ProduceServiceStub(channel)
            part = produce_pb2.ProducePartitionData(topic=TOPIC, partition=partition, records=data)
            for _ in range(batches):
                answer = await stub.Produce(
                    produce_pb2.ProduceRequest(acks=produce_pb2.ACKS_ALL, partitions=[part])
                )
                assert answer.results[0].error_code == 0, answer.results[0].error_message
    return batches * count * SHARE_PARTITIONS


async def accept_all(address: str, group: str, records: int) -> float:
    """Accepted records/s of one member that takes and accepts `records` records."""
    async with grpc.aio.insecure_channel(
        address, options=[("grpc.max_receive_message_length", 64 << 20)]
    ) as channel:
        stub = share_pb2_grpc.ShareServiceStub(channel)
        await stub.AlterGroupConfig(
            share_pb2.AlterGroupConfigRequest(group_id=group, set={"share.auto.offset.reset": "earliest"})
        )
        joined = await stub.ShareHeartbeat(
            share_pb2.ShareHeartbeatRequest(group_id=group, member_epoch=0, topic_names=[TOPIC])
        )
        assert joined.error_code == 0, joined.error_message
        pending: list[share_pb2.PartitionAcknowledgements] = []
        accepted = 0
        started = time.perf_counter()
        while accepted < records:
            answer = await stub.ShareFetch(
                share_pb2.ShareFetchRequest(
                    group_id=group,
                    member_id=joined.member_id,
                    acknowledgements=pending,
                    max_records=500,
                    max_wait_ms=500,
                )
            )
            assert answer.error_code == 0, answer.error_message
            pending = []
            for part in answer.partitions:
                ranges = [
                    share_pb2.ShareAcknowledgement(
                        first_offset=r.first_offset,
                        last_offset=r.last_offset,
                        type=share_pb2.ACKNOWLEDGE_TYPE_ACCEPT,
                    )
                    for r in part.acquired_ranges
                ]
                accepted += sum(r.last_offset - r.first_offset + 1 for r in part.acquired_ranges)
                pending.append(
                    share_pb2.PartitionAcknowledgements(
                        topic=part.topic, partition=part.partition, ranges=ranges
                    )
                )
        final = await stub.ShareAcknowledge(
            share_pb2.ShareAcknowledgeRequest(
                group_id=group, member_id=joined.member_id, acknowledgements=pending
            )
        )
        assert final.error_code == 0, final.error_message
        return accepted / (time.perf_counter() - started)


def share_single_run(records: int) -> float:
    with single_broker(SHARE_PARTITIONS) as address:
        written = asyncio.run(prefill(lambda partition: address, records))
        return asyncio.run(accept_all(address, "bench", written))


def share_cluster_run(records: int) -> float:
    with three_brokers() as cluster:
        coordinator = _coordinator(cluster, "share", "bench")
        for partition in range(SHARE_PARTITIONS):
            cluster.wait_for_isr(TOPIC, partition, 3)
        cluster.wait_for_isr("__share_group_state", _state_partition("bench"), 3)
        leaders = [cluster.leader(TOPIC, partition) for partition in range(SHARE_PARTITIONS)]
        print(f"coordinator {coordinator}, partition leaders {leaders}", file=sys.stderr)
        written = asyncio.run(prefill(lambda partition: cluster.brokers[leaders[partition]].address, records))
        return asyncio.run(accept_all(cluster.brokers[coordinator].address, "bench", written))


def _state_partition(group: str) -> int:
    """The group's partition of its internal topic (both have 8 partitions by default)."""
    from logstore.broker.replication.node import coordinator_partition

    return coordinator_partition(group, 8)


def share(runs: int, records: int) -> dict[str, Any]:
    single: list[float] = []
    clustered: list[float] = []
    for turn in range(runs):
        order = (
            (share_single_run, share_cluster_run) if turn % 2 == 0 else (share_cluster_run, share_single_run)
        )
        for run in order:
            rate = run(records)
            (single if run is share_single_run else clustered).append(rate)
            print(f"{run.__name__}: {rate:,.0f} records/s", file=sys.stderr)
    return {
        "single_broker_accepted_records_s": single,
        "cluster_coordinator_accepted_records_s": clustered,
        "median_single": statistics.median(single),
        "median_cluster": statistics.median(clustered),
        "ratio": statistics.median(clustered) / statistics.median(single),
    }


def commit_latencies(address: str, commits: int) -> list[float]:
    from tests.conftest import GroupMember

    with grpc.insecure_channel(address) as channel:
        member = GroupMember(group_pb2_grpc.GroupServiceStub(channel), "bench", topics=[TOPIC])
        deadline = time.monotonic() + 30
        while member.heartbeat().error_code != 0 or not member.assignment:
            assert time.monotonic() < deadline, "the member never got its partition"
            time.sleep(0.1)
        took = []
        for offset in range(commits):
            started = time.perf_counter()
            answer = member.commit({(TOPIC, 0): offset})
            took.append(time.perf_counter() - started)
            assert answer.error_code == 0, answer.error_message
        return took


def commit_single_run(commits: int) -> list[float]:
    with single_broker() as address:
        return commit_latencies(address, commits)


def commit_cluster_run(commits: int) -> list[float]:
    with three_brokers() as cluster:
        coordinator = _coordinator(cluster, "group", "bench")
        cluster.wait_for_isr(TOPIC, 0, 3)
        cluster.wait_for_isr("__consumer_offsets", _state_partition("bench"), 3)
        return commit_latencies(cluster.brokers[coordinator].address, commits)


def _coordinator(cluster: Any, kind: str, group: str) -> int:
    """Create the topic (one partition per share partition count) and find the group's coordinator."""
    with grpc.insecure_channel(cluster.brokers[1].address) as channel:
        admin = admin_pb2_grpc.AdminServiceStub(channel)
        partitions = SHARE_PARTITIONS if kind == "share" else 1
        admin.CreateTopic(admin_pb2.CreateTopicRequest(name=TOPIC, partitions=partitions))
        request = admin_pb2.FindCoordinatorRequest(kind=kind, key=group)
        found: list[int] = []

        def known() -> bool:
            try:
                found[:] = [admin.FindCoordinator(request).broker_id]
            except grpc.RpcError:
                return False
            return found[0] > 0

        cluster.wait_for(known, f"{kind} group {group} has a coordinator")
        return found[0]


def commit(runs: int, commits: int) -> dict[str, Any]:
    single: list[float] = []
    clustered: list[float] = []
    for turn in range(runs):
        order = (
            (commit_single_run, commit_cluster_run)
            if turn % 2 == 0
            else (commit_cluster_run, commit_single_run)
        )
        for run in order:
            took = run(commits)
            (single if run is commit_single_run else clustered).extend(took)
            print(f"{run.__name__}: median {statistics.median(took) * 1000:.2f} ms", file=sys.stderr)
    return {
        "single_broker_commit_ms_median": statistics.median(single) * 1000,
        "single_broker_commit_ms_max": max(single) * 1000,
        "cluster_commit_ms_median": statistics.median(clustered) * 1000,
        "cluster_commit_ms_max": max(clustered) * 1000,
        "commits_per_setup": commits,
        "runs": runs,
    }


def process_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def etcd_bytes(cluster: Any) -> tuple[int, int]:
    async def read(client: aetcd.Client) -> tuple[int, int]:
        found = await client.get_prefix(cluster.cluster_root.encode())
        items = list(found)
        return len(items), sum(len(kv.key) + len(kv.value) for kv in items)

    result: tuple[int, int] = cluster._etcd(read)
    return result


def scale_run(partitions: int) -> dict[str, Any]:
    from tests.cluster_support import Cluster

    with tempfile.TemporaryDirectory(prefix="logstore-cluster-scale-") as work:
        cluster = Cluster(Path(work), 3, ("--default-replication-factor=3", "--min-insync-replicas=2"))
        cluster.start()
        try:
            started = time.monotonic()
            with grpc.insecure_channel(cluster.brokers[1].address) as channel:
                admin_pb2_grpc.AdminServiceStub(channel).CreateTopic(
                    admin_pb2.CreateTopicRequest(name=TOPIC, partitions=partitions), timeout=600
                )
            cluster.wait_for(
                lambda: all(
                    (s := cluster.partition(TOPIC, p)) is not None and len(s.isr) == 3
                    for p in (0, partitions - 1)
                ),
                "the topic is fully replicated",
                timeout_s=600,
            )
            created_s = time.monotonic() - started
            keys, size = etcd_bytes(cluster)
            controller = cluster.controller()
            assert controller is not None
            victim = next(i for i in cluster.brokers if i != controller)
            led = [p for p in range(partitions) if cluster.leader(TOPIC, p) == victim]
            controller_pid = cluster.brokers[controller].process.pid  # type: ignore[union-attr]
            idle_before = process_cpu_s(controller_pid)
            time.sleep(5)
            idle_cpu_per_s = (process_cpu_s(controller_pid) - idle_before) / 5
            cpu_before = process_cpu_s(controller_pid)
            killed = time.monotonic()
            cluster.brokers[victim].kill()
            cluster.wait_for(
                lambda: all(cluster.leader(TOPIC, p) not in (-1, victim) for p in led),
                "every partition of the killed broker has a new leader",
                timeout_s=600,
            )
            failover_s = time.monotonic() - killed
            failover_cpu_s = process_cpu_s(controller_pid) - cpu_before
            return {
                "partitions": partitions,
                "create_s": created_s,
                "etcd_keys": keys,
                "etcd_bytes": size,
                "partitions_moved": len(led),
                "failover_s": failover_s,
                "controller_cpu_s_during_failover": failover_cpu_s,
                "controller_idle_cpu_per_s": idle_cpu_per_s,
            }
        finally:
            cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="what", required=True)
    run = sub.add_parser("throughput")
    run.add_argument("--runs", type=int, default=3)
    run.add_argument("--seconds", type=float, default=8.0)
    grow = sub.add_parser("scale")
    grow.add_argument("--partitions", default="10,100,1000")
    commits = sub.add_parser("commit")
    commits.add_argument("--runs", type=int, default=3)
    commits.add_argument("--commits", type=int, default=50)
    queue = sub.add_parser("share")
    queue.add_argument("--runs", type=int, default=3)
    queue.add_argument("--records", type=int, default=60_000)
    args = parser.parse_args()
    if args.what == "throughput":
        print(json.dumps(throughput(args.runs, args.seconds), indent=1))
    elif args.what == "commit":
        print(json.dumps(commit(args.runs, args.commits), indent=1))
    elif args.what == "share":
        print(json.dumps(share(args.runs, args.records), indent=1))
    else:
        results = [scale_run(int(n)) for n in args.partitions.split(",")]
        print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
