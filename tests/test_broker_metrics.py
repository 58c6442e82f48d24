"""The broker's /metrics, /healthz and /readyz against real brokers: counters grow by exactly what was
produced and fetched, over gRPC and the Kafka listener; lag falls to 0 once a group has consumed;
docs/metrics.md names exactly what is exposed; `--no-http` binds nothing."""

from __future__ import annotations

import asyncio
import re
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import pytest
from kafka import KafkaProducer
from logstore.bench.cli import build_parser
from logstore.broker.embedded import BrokerProcess, EmbeddedBroker
from logstore.broker.observability import BrokerMetrics, HttpEndpoint, Readiness
from logstore.broker.server import BindError
from logstore.broker.settings import Settings, SettingsError, from_arguments, load
from logstore.client import AcknowledgeType, Admin, Consumer, ShareConsumer, TopicPartition
from logstore.wire.logstore.v1 import admin_pb2_grpc, fetch_pb2, fetch_pb2_grpc, produce_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from logstore.records import build_batch
from tests.conftest import StartBroker, Stubs

DOCS = Path(__file__).resolve().parent.parent / "docs" / "metrics.md"
RECORDS = 10_000
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def scrape(broker: EmbeddedBroker) -> Samples:
    status, text = get(broker.http_url + "/metrics")
    assert status == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def grew(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def produce_batches(stubs: Stubs, topic: str, batches: int = 10) -> int:
    """RECORDS records in `batches` acks=all batches; returns the bytes sent."""
    per_batch = RECORDS // batches
    sent = 0
    for b in range(batches):
        batch = build_batch([b"record-%d-%d" % (b, i) for i in range(per_batch)])
        assert stubs.produce_one(topic, 0, batch).error_code == 0
        sent += len(batch)
    return sent


def test_grpc_produce_and_fetch_grow_the_counters_by_what_was_sent(
    broker: EmbeddedBroker, stubs: Stubs
) -> None:
    stubs.create_topic("orders")
    before = scrape(broker)
    sent = produce_batches(stubs, "orders")
    middle = scrape(broker)
    assert grew(before, middle, "logstore_topic_bytes_in_total", topic="orders") == sent
    assert grew(before, middle, "logstore_topic_records_in_total", topic="orders") == RECORDS
    assert grew(before, middle, "logstore_requests_total", listener="grpc", api="Produce") == 10
    assert (
        grew(before, middle, "logstore_request_duration_seconds_count", listener="grpc", api="Produce") == 10
    )
    assert value(middle, "logstore_partition_log_end_offset", topic="orders", partition="0") == RECORDS
    assert value(middle, "logstore_partition_size_bytes", topic="orders", partition="0") == sent
    assert value(middle, "logstore_fsync_duration_seconds_count") >= 1, "acks=all fsyncs"

    assert len(stubs.values("orders", 0)) == RECORDS
    after = scrape(broker)
    assert grew(middle, after, "logstore_topic_bytes_out_total", topic="orders") == sent
    assert grew(middle, after, "logstore_topic_records_out_total", topic="orders") == RECORDS
    assert grew(middle, after, "logstore_topic_bytes_in_total", topic="orders") == 0


def test_refused_partitions_are_counted_by_code(start_broker: StartBroker, connect) -> None:
    broker = start_broker(auto_create_topics=False)
    stubs = connect(broker)
    assert stubs.produce_one("missing", 0, build_batch([b"x"])).error_code != 0
    assert stubs.fetch_one("missing", 0, 0).error_code != 0
    samples = scrape(broker)
    assert value(samples, "logstore_produce_errors_total", listener="grpc", code="UNKNOWN_TOPIC") == 1
    assert value(samples, "logstore_fetch_errors_total", listener="grpc", code="UNKNOWN_TOPIC") == 1
    assert value(samples, "logstore_topic_records_in_total", topic="missing") == 0


def test_the_kafka_listener_counts_records_bytes_requests_and_connections(
    broker: EmbeddedBroker, stubs: Stubs
) -> None:
    stubs.create_topic("clicks")
    before = scrape(broker)
    producer = KafkaProducer(bootstrap_servers=broker.kafka_address, acks=1, linger_ms=5)
    try:
        futures = [producer.send("clicks", value=b"click-%d" % i, partition=0) for i in range(RECORDS)]
        producer.flush()
        assert all(future.get(timeout=30) for future in futures)
        during = scrape(broker)
        assert value(during, "logstore_connections", listener="kafka") >= 1
    finally:
        producer.close()
    after = scrape(broker)
    size = value(after, "logstore_partition_size_bytes", topic="clicks", partition="0")
    assert grew(before, after, "logstore_topic_records_in_total", topic="clicks") == RECORDS
    assert grew(before, after, "logstore_topic_bytes_in_total", topic="clicks") == size > 0
    assert grew(before, after, "logstore_requests_total", listener="kafka", api="Produce") >= 1
    assert grew(before, after, "logstore_requests_total", listener="kafka", api="Metadata") >= 1
    assert grew(before, after, "logstore_connections_opened_total", listener="kafka") >= 1


def test_the_grpc_listener_counts_the_connections_open_now(broker: EmbeddedBroker, stubs: Stubs) -> None:
    """One TCP connection per client channel (channelz's sockets), whatever the calls on it."""
    stubs.create_topic("views")
    before = value(scrape(broker), "logstore_connections", listener="grpc")
    assert before >= 1  # the fixture's own channel
    own = [("grpc.use_local_subchannel_pool", 1)]  # a connection of its own, not shared with `stubs`
    channels = [grpc.insecure_channel(broker.address, options=own) for _ in range(2)]
    try:
        for channel in channels:
            Stubs(
                channel,
                admin_pb2_grpc.AdminServiceStub(channel),
                produce_pb2_grpc.ProduceServiceStub(channel),
                fetch_pb2_grpc.FetchServiceStub(channel),
            ).produce_one("views", 0, build_batch([b"v"]))
        assert value(scrape(broker), "logstore_connections", listener="grpc") == before + 2
    finally:
        for channel in channels:
            channel.close()
    deadline = time.monotonic() + 10
    while value(scrape(broker), "logstore_connections", listener="grpc") != before:
        assert time.monotonic() < deadline, "closed channels still counted"
        time.sleep(0.05)


def poll_all(consumer: Consumer, count: int) -> int:
    """Poll until `count` records have come (bounded: a broken broker fails, it does not hang)."""
    got = 0
    deadline = time.monotonic() + 60
    while got < count:
        assert time.monotonic() < deadline, f"only {got} of {count} records came"
        got += sum(len(records) for records in consumer.poll(timeout_ms=100).values())
    return got


def test_lag_is_end_minus_committed_and_falls_to_zero_once_the_group_consumed(
    broker: EmbeddedBroker, stubs: Stubs
) -> None:
    stubs.create_topic("jobs")
    produce_batches(stubs, "jobs")
    labels = {"group": "workers", "topic": "jobs", "partition": "0"}
    with Consumer(
        "jobs",
        bootstrap=broker.address,
        group_id="workers",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    ) as consumer:
        poll_all(consumer, 1)
        consumer.commit({TopicPartition("jobs", 0): 4000})
        partial = scrape(broker)
        assert value(partial, "logstore_consumergroup_current_offset", **labels) == 4000
        assert value(partial, "logstore_consumergroup_lag", **labels) == RECORDS - 4000
        consumer.seek(TopicPartition("jobs", 0), 0)
        poll_all(consumer, RECORDS)
        consumer.commit()
    done = scrape(broker)
    assert value(done, "logstore_consumergroup_current_offset", **labels) == RECORDS
    assert value(done, "logstore_consumergroup_lag", **labels) == 0
    assert ("logstore_consumergroup_lag", frozenset(labels.items())) in done, "0 is listed, not left out"


def share_records(broker: EmbeddedBroker, stubs: Stubs) -> None:
    """Share group "workers" on "tasks": of 10 records, 7 accepted, 2 rejected (archived), 1 held."""
    stubs.create_topic("tasks")
    with Admin(broker.address) as admin:
        admin.alter_group_config("workers", {"share.auto.offset.reset": "earliest"})
    batch = build_batch([b"task-%d" % i for i in range(10)])
    assert stubs.produce_one("tasks", 0, batch).error_code == 0
    with ShareConsumer(
        "tasks", group_id="workers", bootstrap=broker.address, acknowledgement_mode="explicit"
    ) as consumer:
        got: list = []
        deadline = time.monotonic() + 60
        while len(got) < 10:
            assert time.monotonic() < deadline, f"only {len(got)} of 10 records came"
            got.extend(consumer.poll(timeout_ms=100))
        for record in got[:9]:
            consumer.acknowledge(
                record, AcknowledgeType.REJECT if record.offset in (4, 5) else AcknowledgeType.ACCEPT
            )
        consumer.commit_sync()
        samples = scrape(broker)
        labels = {"group": "workers", "topic": "tasks", "partition": "0"}
        assert value(samples, "logstore_sharegroup_records_archived_total", **labels) == 2
        assert value(samples, "logstore_sharegroup_records_in_flight", **labels) == 1
        assert value(samples, "logstore_topic_records_out_total", topic="tasks") == 10
        assert value(samples, "logstore_topic_bytes_out_total", topic="tasks") == len(batch)


def test_share_groups_show_records_in_flight_and_archived(broker: EmbeddedBroker, stubs: Stubs) -> None:
    share_records(broker, stubs)


def test_healthz_and_readyz_answer_on_a_running_broker(broker: EmbeddedBroker) -> None:
    assert get(broker.http_url + "/healthz") == (200, "ok\n")
    assert get(broker.http_url + "/readyz") == (200, "ready\n")
    assert get(broker.http_url + "/nothing")[0] == 404


def test_readyz_says_why_it_is_not_ready() -> None:
    """The endpoint itself, over a real socket: 503 with the state until the broker says ready."""

    async def run() -> list[tuple[int, str]]:
        readiness = Readiness()
        endpoint = HttpEndpoint(BrokerMetrics().registry, readiness, host="127.0.0.1", port=0)
        await endpoint.start()
        url = f"http://127.0.0.1:{endpoint.port}/readyz"
        try:
            answers = [await asyncio.to_thread(get, url)]
            readiness.state = "ready"
            answers.append(await asyncio.to_thread(get, url))
            readiness.state = "stopping"
            answers.append(await asyncio.to_thread(get, url))
            answers.append(await asyncio.to_thread(get, url.replace("/readyz", "/healthz")))
        finally:
            await endpoint.stop()
        return answers

    assert asyncio.run(run()) == [(503, "starting\n"), (200, "ready\n"), (503, "stopping\n"), (200, "ok\n")]


def test_a_client_that_sends_nothing_or_half_a_request_is_closed() -> None:
    """A slow client cannot hold the HTTP port's connections: silent or half a head, it is let go."""

    def closed_by_the_broker(port: int, payload: bytes) -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
            client.sendall(payload)
            return client.recv(100) == b""  # end of stream; without the timeout this waits 30 s, then raises

    async def run() -> list[bool]:
        endpoint = HttpEndpoint(
            BrokerMetrics().registry, Readiness(), host="127.0.0.1", port=0, idle_timeout_s=0.5
        )
        await endpoint.start()
        assert endpoint.port is not None
        try:
            return [
                await asyncio.to_thread(closed_by_the_broker, endpoint.port, payload)
                for payload in (b"", b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            ]
        finally:
            await endpoint.stop()

    assert asyncio.run(run()) == [True, True]


def listening_ports(pid: int) -> set[int]:
    """TCP ports process `pid` listens on, from /proc (its socket inodes matched to LISTEN entries)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = fd.readlink().as_posix() if fd.is_symlink() else ""
        found = re.fullmatch(r"socket:\[(\d+)\]", target)
        if found:
            inodes.add(found[1])
    ports = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


@pytest.mark.parametrize("http", [True, False])
def test_no_http_binds_nothing(tmp_path: Path, http: bool) -> None:
    args = [] if http else ["--no-http"]
    broker = BrokerProcess(tmp_path / "data", tmp_path / "broker.log", args=args)
    broker.start()
    try:
        assert broker.process is not None and broker.address and broker.kafka_address
        expected = {int(broker.address.rsplit(":", 1)[1]), int(broker.kafka_address.rsplit(":", 1)[1])}
        if http:
            assert broker.http_address is not None
            expected.add(int(broker.http_address.rsplit(":", 1)[1]))
        else:
            assert broker.http_address is None and "HTTP endpoint" not in broker.log_text()
        assert listening_ports(broker.process.pid) == expected
    finally:
        assert broker.terminate() == 0


def test_an_embedded_broker_without_http_keeps_no_metrics(start_broker: StartBroker) -> None:
    broker = start_broker(http=False)
    assert broker.server.http is None and not broker.server.metrics.enabled
    broker.server.metrics.auth_failures.labels(listener="grpc", mechanism="PLAIN").inc()  # a no-op hook


def documented() -> dict[str, tuple[str, frozenset[str]]]:
    """docs/metrics.md's tables: name -> (type, labels)."""
    rows = re.findall(r"^\| `(logstore_\w+)` \| (\w+) \| *([\w, ]*?) *\|", DOCS.read_text(), re.MULTILINE)
    return {name: (kind, frozenset(filter(None, re.split(r"[, ]+", labels)))) for name, kind, labels in rows}


def test_the_documented_metrics_are_the_exposed_ones(broker: EmbeddedBroker, stubs: Stubs) -> None:
    """Every family a broker exposes is documented with its type, and every label set seen in a scrape
    is the one documented; a metric added without a row (or a row without a metric) fails here."""
    stubs.create_topic("docs")
    produce_batches(stubs, "docs", batches=1)
    stubs.values("docs", 0)
    stubs.fetch_one("absent", 0, 0)
    assert stubs.produce_one("docs", 5, build_batch([b"x"])).error_code != 0
    broker.server.metrics.auth_failures.labels(listener="kafka", mechanism="SCRAM-SHA-256").inc()
    with Consumer("docs", bootstrap=broker.address, group_id="g", auto_offset_reset="earliest") as consumer:
        poll_all(consumer, 1)
        consumer.commit()
    share_records(broker, stubs)
    producer = KafkaProducer(bootstrap_servers=broker.kafka_address)
    producer.send("docs", b"x").get(timeout=30)
    status, text = get(broker.http_url + "/metrics")
    assert status == 200
    exposed: dict[str, str] = {}
    seen_labels: dict[str, set[frozenset[str]]] = {}
    for family in text_string_to_metric_families(text):
        if family.name.endswith("_created"):
            continue
        name = family.name + ("_total" if family.type == "counter" else "")
        exposed[name] = family.type
        for sample in family.samples:
            labels = frozenset(sample.labels) - {"le"}
            seen_labels.setdefault(name, set()).add(labels)
    producer.close()
    docs = documented()
    assert {name: kind for name, (kind, _) in docs.items()} == exposed
    for name, label_sets in seen_labels.items():
        assert label_sets == {docs[name][1]}, name
    assert set(seen_labels) == set(exposed), "every family had samples to check its labels on"


def test_the_http_port_comes_from_flag_environment_and_file(tmp_path: Path) -> None:
    assert (Settings().http_port, Settings().http) == (9094, True)
    assert from_arguments(build_parser().parse_args(["serve", "--http-port", "0"])).http_port == 0
    assert not from_arguments(build_parser().parse_args(["serve", "--no-http"])).http
    assert load({}, env={"LOGSTORE_HTTP_PORT": "2224"}).http_port == 2224
    assert not load({}, env={"LOGSTORE_HTTP": "false"}).http
    config = tmp_path / "broker.toml"
    config.write_text("http-port = 3333\n")
    assert load({}, env={"LOGSTORE_CONFIG": str(config)}).http_port == 3333
    with pytest.raises(SettingsError, match="http_port 9093 is also the gRPC or Kafka port"):
        load({"http_port": 9093}, env={})
    assert load({"http_port": 9092, "kafka_listener": False}, env={}).http_port == 9092
    assert load({"http_port": 9093, "http": False}, env={}).http_port == 9093, "off: no clash"


def test_an_http_port_in_use_stops_the_start_with_a_message(start_broker: StartBroker) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(BindError, match=f"cannot serve HTTP \\(/metrics\\) on 127.0.0.1:{port}"):
            start_broker(http_port=port)


def test_fetch_records_counts_the_plain_records_it_hands_out(broker: EmbeddedBroker, stubs: Stubs) -> None:
    stubs.create_topic("plain")
    produce_batches(stubs, "plain", batches=2)
    before = scrape(broker)
    request = fetch_pb2.FetchRecordsRequest(topic="plain", partition=0, offset=0, max_records=300)
    records = stubs.fetch.FetchRecords(request).records
    assert len(records) == 300
    after = scrape(broker)
    assert grew(before, after, "logstore_topic_records_out_total", topic="plain") == 300
    assert grew(before, after, "logstore_topic_bytes_out_total", topic="plain") == sum(
        len(r.key) + len(r.value) for r in records
    )
