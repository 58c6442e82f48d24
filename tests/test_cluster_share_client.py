"""The share consumers (threaded and asyncio), the admin client's share-group calls and the `logstore`
CLI against three real broker processes and a real etcd, each bootstrapped with ONE broker that does not
coordinate the group: every ShareService call must reach the group's share coordinator (a member only
joins there: other brokers answer its heartbeats NOT_COORDINATOR, and the admin calls the same), and the
consumers carry on through the coordinator's SIGKILL and restart, twice (the second time the one broker
a consumer was bootstrapped with), without a record confirmed accepted ever being delivered again."""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from logstore.client.admin.api import Admin
from logstore.client.aio.share import AsyncShareConsumer
from logstore.client.producer.api import Producer
from logstore.client.share.api import ShareConsumer
from logstore.client.shared.errors import GroupIdNotFoundError
from logstore.client.shared.types import TopicPartition
from logstore.wire.logstore.v1 import admin_pb2, admin_pb2_grpc

from tests.cluster_support import Cluster, cluster_of
from tests.test_cli_groups import logstore

pytestmark = pytest.mark.slow

TOPIC = "jobs"
STATE_TOPIC = "__share_group_state"
PARTITIONS = 3
Offset = tuple[int, int]  # (partition, offset)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    yield from cluster_of(tmp_path, 3, ("--default-replication-factor=3", "--min-insync-replicas=2"))


def create_topic(cluster: Cluster) -> None:
    with Admin(cluster.bootstrap) as admin:
        admin.create_topic(TOPIC, PARTITIONS, {"min.insync.replicas": "2"}, replication_factor=3)
    for partition in range(PARTITIONS):
        cluster.wait_for_isr(TOPIC, partition, 3)


def produce(cluster: Cluster, start: int, count: int) -> set[Offset]:
    """`count` records spread over the partitions (acks=all, retried through a failover); where they went."""
    with Producer(cluster.bootstrap, acks="all", linger_ms=5) as producer:
        futures = [
            producer.send(TOPIC, b"job-%d" % i, partition=i % PARTITIONS) for i in range(start, start + count)
        ]
        producer.flush()
        return {(m.partition, m.offset) for m in (f.get(timeout=60) for f in futures)}


def coordinator_of(cluster: Cluster, group_id: str, not_this: int = -1) -> int:
    """The share coordinator as a live broker answers FindCoordinator (the first lookup creates the state
    topic; UNAVAILABLE while the group's state partition has no leader)."""
    found: list[int] = []

    def known() -> bool:
        for broker in cluster.brokers.values():
            if not broker.running:
                continue
            with grpc.insecure_channel(broker.address) as channel:
                try:
                    answer = admin_pb2_grpc.AdminServiceStub(channel).FindCoordinator(
                        admin_pb2.FindCoordinatorRequest(kind="share", key=group_id), timeout=5
                    )
                except grpc.RpcError:
                    return False
            found[:] = [answer.broker_id]
            return answer.broker_id > 0 and answer.broker_id != not_this
        return False

    cluster.wait_for(known, f"share group {group_id} has a coordinator (other than {not_this})", 60)
    return found[0]


def full_isrs(cluster: Cluster, topic: str) -> None:
    """Until every partition of `topic` (as etcd lists them) has all three replicas in sync."""
    partitions = [int(key.rsplit("/", 1)[1]) for key in cluster._json_prefix(f"partitions/{topic}/")]
    assert partitions, f"{topic} is not in the cluster"
    for partition in partitions:
        cluster.wait_for_isr(topic, partition, 3, timeout_s=60)


SHARE_CALLS = ("ShareHeartbeat", "ShareFetch", "ShareAcknowledge")


def share_calls(cluster: Cluster, broker_id: int) -> dict[str, float]:
    """The ShareService calls a broker received over gRPC, from its /metrics (logstore_requests)."""
    url = f"http://127.0.0.1:{cluster.brokers[broker_id].http_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as answer:
        text = answer.read().decode()
    counts = dict.fromkeys(SHARE_CALLS, 0.0)
    for line in text.splitlines():
        if line.startswith("logstore_requests_total{") and 'listener="grpc"' in line:
            api = line.split('api="', 1)[1].split('"', 1)[0]
            if api in counts:
                counts[api] = float(line.rsplit(" ", 1)[1])
    return counts


def others(cluster: Cluster, broker_id: int) -> list[str]:
    """The addresses of the brokers other than `broker_id`."""
    return [b.address for i, b in cluster.brokers.items() if i != broker_id]


def start_earliest(address: str, group_id: str) -> None:
    """The group reads from the start (set through `address`, which need not coordinate it)."""
    with Admin(address) as admin:
        admin.alter_group_config(group_id, {"share.auto.offset.reset": "earliest"})


def settled(cluster: Cluster, group_id: str, *, everywhere: bool = True) -> Callable[[], bool]:
    """Whether the group is described with every record done and none archived: nothing in flight and no
    lag on any partition, by every broker's Admin (or, not `everywhere`, by one bootstrapped with all)."""
    bootstraps = [b.address for b in cluster.brokers.values()] if everywhere else [cluster.bootstrap]

    def check() -> bool:
        for bootstrap in bootstraps:
            with Admin(bootstrap) as admin:
                group = admin.describe_share_group(group_id)
            if len(group.partitions) != PARTITIONS:
                return False
            if any(p.in_flight or p.lag or p.archived for p in group.partitions):
                return False
        return True

    return check


class Ledger:
    """What the consumers of one group were handed and which acceptances the broker confirmed (the
    acknowledgement commit callback without an error). Thread-safe: the consumers' threads share it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.confirmed: set[Offset] = set()
        self.delivered: list[tuple[str, Offset, int]] = []
        self.again: list[str] = []
        """Deliveries of an offset whose acceptance had been confirmed before: must stay empty."""
        self.closing: set[str] = set()
        """Consumers that are closing (their close releases what they prefetched: not acceptances)."""

    def handed(self, who: str, partition: int, offset: int, delivery_count: int) -> None:
        with self._lock:
            if (partition, offset) in self.confirmed:
                self.again.append(f"{who}: {TOPIC}-{partition}@{offset} (delivery {delivery_count})")
            self.delivered.append((who, (partition, offset), delivery_count))

    def callback(self, who: str) -> Callable[[dict[TopicPartition, set[int]], Exception | None], None]:
        def answered(offsets: dict[TopicPartition, set[int]], error: Exception | None) -> None:
            with self._lock:
                if error is None and who not in self.closing:
                    for tp, numbers in offsets.items():
                        self.confirmed.update((tp.partition, o) for o in numbers)

        return answered

    def close(self, who: str) -> None:
        with self._lock:
            self.closing.add(who)

    def handed_out(self) -> set[Offset]:
        with self._lock:
            return {where for _, where, _ in self.delivered}

    def snapshot(self) -> set[Offset]:
        with self._lock:
            return set(self.confirmed)


def threaded_worker(
    bootstrap: str, group_id: str, ledger: Ledger, stop: threading.Event, *, pace_s: float = 0.0
) -> None:
    """A ShareConsumer (implicit mode: each poll accepts the one before) until `stop`; then it commits
    what it was handed and closes."""
    with ShareConsumer(
        TOPIC,
        group_id=group_id,
        bootstrap=bootstrap,
        max_poll_records=10,
        share_acquire_mode="record_limit",  # 10 at a time, however the producer batched them
        request_timeout_ms=20_000,
    ) as consumer:
        consumer.set_acknowledgement_commit_callback(ledger.callback("threaded"))
        while not stop.is_set():
            for record in consumer.poll(timeout_ms=200):
                ledger.handed("threaded", record.partition, record.offset, record.delivery_count)
            if pace_s:
                time.sleep(pace_s)  # the work of a poll: keeps records in flight across the kill
        consumer.commit_sync()
        ledger.close("threaded")


async def async_worker(
    bootstrap: str, group_id: str, ledger: Ledger, stop: threading.Event, *, pace_s: float = 0.0
) -> None:
    async with AsyncShareConsumer(
        TOPIC,
        group_id=group_id,
        bootstrap_servers=bootstrap,
        max_poll_records=10,
        share_acquire_mode="record_limit",
        request_timeout_ms=20_000,
    ) as consumer:
        consumer.set_acknowledgement_commit_callback(ledger.callback("asyncio"))
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for record in records:
                    ledger.handed("asyncio", record.partition, record.offset, record.delivery_count)
            if pace_s:
                await asyncio.sleep(pace_s)
        await consumer.commit()
        ledger.close("asyncio")


def diagnosis(cluster: Cluster, group_id: str, records: set[Offset], ledger: Ledger) -> str:
    """What is missing, and the group as its coordinator describes it (for a failure's message)."""
    missing = sorted(records - ledger.handed_out())
    unconfirmed = sorted(records - ledger.snapshot())
    lines = [
        f"{len(missing)} of {len(records)} never delivered, first {missing[:10]}",
        f"{len(unconfirmed)} not confirmed accepted, first {unconfirmed[:10]}",
    ]
    try:
        with Admin(cluster.bootstrap, request_timeout_ms=5000) as admin:
            described = admin.describe_share_group(group_id)
        lines += [f"members {described.members}", *map(str, described.partitions)]
    except Exception as exc:
        lines.append(f"describing the group failed: {exc}")
    return "\n".join(lines)


class Workers:
    """Worker threads with one stop; `join` raises what a worker raised."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self._threads: list[threading.Thread] = []

    def run(self, work: Callable[[], object]) -> None:
        def guarded() -> None:
            try:
                work()
            except BaseException as exc:
                self.errors.append(exc)

        thread = threading.Thread(target=guarded, daemon=True)
        thread.start()
        self._threads.append(thread)

    def join(self) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(60)
            assert not thread.is_alive(), "a share consumer did not close within 60 s"
        if self.errors:
            raise self.errors[0]


def wait_for(cluster: Cluster, workers: Workers, condition: Callable[[], bool], what: str) -> None:
    """`cluster.wait_for`, failing at once with a worker's error."""

    def done() -> bool:
        if workers.errors:
            raise workers.errors[0]
        return condition()

    cluster.wait_for(done, what, timeout_s=120)


@pytest.mark.parametrize("kind", ["threaded", "asyncio"])
def test_a_share_consumer_bootstrapped_at_a_non_coordinator_consumes_everything(
    cluster: Cluster, kind: str
) -> None:
    create_topic(cluster)
    group = f"render-{kind}"
    coordinator = coordinator_of(cluster, group)
    bootstrap = others(cluster, coordinator)[0]
    start_earliest(bootstrap, group)
    records = produce(cluster, 0, 150)

    ledger = Ledger()
    workers = Workers()
    if kind == "threaded":
        workers.run(lambda: threaded_worker(bootstrap, group, ledger, workers.stop))
    else:
        workers.run(lambda: asyncio.run(async_worker(bootstrap, group, ledger, workers.stop)))
    wait_for(cluster, workers, lambda: ledger.snapshot() >= records, "every record accepted")
    workers.join()

    delivered = [where for _, where, _ in ledger.delivered]
    assert sorted(delivered) == sorted(records), "each record delivered once, none lost"
    bootstrap_id = next(i for i, b in cluster.brokers.items() if b.address == bootstrap)
    assert share_calls(cluster, bootstrap_id) == dict.fromkeys(SHARE_CALLS, 0.0), (
        "the broker bootstrapped with does not coordinate: no share call went there (not even to be forwarded)"
    )
    assert all(share_calls(cluster, coordinator).values()), "every kind went to the coordinator"
    assert ledger.again == []
    cluster.wait_for(settled(cluster, group), "nothing in flight and no lag, as every broker describes it")
    with Admin(bootstrap) as admin:
        assert admin.describe_share_group(group).members == [], "the member left at close"


def test_share_consumers_carry_on_through_the_coordinator_being_killed_twice(cluster: Cluster) -> None:
    create_topic(cluster)
    group = "render-farm"
    coordinator = coordinator_of(cluster, group)
    threaded_bootstrap, async_bootstrap = others(cluster, coordinator)
    start_earliest(threaded_bootstrap, group)
    records = produce(cluster, 0, 600)

    ledger = Ledger()
    workers = Workers()
    workers.run(lambda: threaded_worker(threaded_bootstrap, group, ledger, workers.stop, pace_s=0.05))
    workers.run(lambda: asyncio.run(async_worker(async_bootstrap, group, ledger, workers.stop, pace_s=0.05)))
    wait_for(cluster, workers, lambda: len(ledger.snapshot()) >= 150, "150 acceptances confirmed")
    cluster.brokers[coordinator].kill()
    before_kill = ledger.snapshot()
    assert len(before_kill) < len(records), "the kill came before the consumers were done"
    moved = coordinator_of(cluster, group, not_this=coordinator)
    records |= produce(cluster, 600, 150)
    cluster.brokers[coordinator].start()
    records |= produce(cluster, 750, 150)

    # The new coordinator is the one broker a consumer was bootstrapped with: killed too, that consumer
    # goes on through the brokers it learned of.
    assert cluster.brokers[moved].address in (threaded_bootstrap, async_bootstrap)
    wait_for(cluster, workers, lambda: len(ledger.snapshot()) >= len(before_kill) + 300, "300 more accepted")
    for topic in (TOPIC, STATE_TOPIC):
        full_isrs(cluster, topic)
    cluster.brokers[moved].kill()
    coordinator_of(cluster, group, not_this=moved)
    records |= produce(cluster, 900, 150)
    cluster.brokers[moved].start()

    # Every record accepted: delivered, and done for the group. (Not every acceptance is confirmed to the
    # client: one applied and replicated whose answer the kill cut off is sent again and refused.)
    accepted_by_group = settled(cluster, group, everywhere=False)
    try:
        wait_for(
            cluster,
            workers,
            lambda: ledger.handed_out() >= records and accepted_by_group(),
            "every record delivered and the group done with all of them",
        )
    except AssertionError as failed:
        raise AssertionError(f"{failed}\n{diagnosis(cluster, group, records, ledger)}") from None
    workers.join()

    assert ledger.again == [], "a record whose acceptance was confirmed was delivered again"
    assert {who for who, _, _ in ledger.delivered} == {"threaded", "asyncio"}
    redelivered = {where for _, where, count in ledger.delivered if count > 1}
    assert not redelivered & before_kill
    assert {where for _, where, _ in ledger.delivered} == records
    cluster.wait_for(settled(cluster, group), "nothing in flight and no lag, as every broker describes it")


def test_admin_share_calls_and_the_cli_at_a_non_coordinator(cluster: Cluster) -> None:
    create_topic(cluster)
    group = "workers"
    coordinator = coordinator_of(cluster, group)
    address = others(cluster, coordinator)[0]
    with Admin(address) as admin:
        admin.alter_group_config(
            group, {"share.auto.offset.reset": "earliest", "share.record.lock.duration.ms": 15000}
        )
        configs = {c.name: c for c in admin.describe_group_config(group)}
        assert configs["share.record.lock.duration.ms"].value == "15000"
        assert configs["share.record.lock.duration.ms"].is_group_value
        admin.alter_group_config(group, delete=["share.record.lock.duration.ms"])
        configs = {c.name: c for c in admin.describe_group_config(group)}
        assert not configs["share.record.lock.duration.ms"].is_group_value
    produce(cluster, 0, 6)

    printed = logstore(address, "share", "consume", TOPIC, "--group", group, "--max-messages", "6")
    assert sorted(printed.stdout.splitlines()) == [f"job-{i}" for i in range(6)]
    described = logstore(address, "groups", "describe", group).stdout
    assert f"Share group '{group}' is Empty with 0 members" in described
    rows = [line.split() for line in described.splitlines() if line.split()[:2] == [group, TOPIC]]
    assert len(rows) == PARTITIONS
    for row in rows:  # GROUP TOPIC PARTITION START END LOG-END IN-FLIGHT ACQUIRED ARCHIVED LAG
        assert row[3] == row[5] == "2" and row[6] == row[9] == "0", described
    set_up = logstore(address, "groups", "alter-config", group, "--set", "share.delivery.count.limit=3")
    assert set_up.returncode == 0
    shown = logstore(address, "groups", "describe-config", group).stdout
    assert any(line.split()[:2] == ["share.delivery.count.limit", "3"] for line in shown.splitlines())

    with Admin(address) as admin:
        group_view = admin.describe_share_group(group)
        assert group_view.members == []
        assert sum(p.lag for p in group_view.partitions) == 0
    listed = [line.split() for line in logstore(address, "groups", "list").stdout.splitlines()]
    assert [group, "share", "Empty", "0"] in listed, listed
    logstore(address, "groups", "delete", group)
    with Admin(address) as admin, pytest.raises(GroupIdNotFoundError):
        admin.describe_share_group(group)
