"""The two listeners' ports: Kafka's protocol on 9092 by default (the port Kafka clients assume), the gRPC
API on 9093; both from flags, LOGSTORE_* environment and the TOML file like the other settings; the
Kafka listener can be turned off; the broker logs the ports it got. No test binds a fixed port."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from kafka import KafkaAdminClient
from kafka.protocol.metadata import ApiVersionsRequest, ApiVersionsResponse
from logstore.bench.cli import build_parser
from logstore.broker.embedded import BrokerProcess
from logstore.broker.server import BindError
from logstore.broker.settings import Settings, SettingsError, from_arguments, load
from logstore.client.console.common import DEFAULT_BOOTSTRAP as CONSOLE_BOOTSTRAP
from logstore.client.consumer.config import ConsumerConfig
from logstore.client.producer.config import ProducerConfig
from logstore.client.shared.connection import DEFAULT_BOOTSTRAP

from tests.conftest import StartBroker
from tests.kafka_wire import receive, send_request


def test_by_default_kafka_gets_9092_and_grpc_9093() -> None:
    for settings in (Settings(), load({}, env={}), from_arguments(build_parser().parse_args(["serve"]))):
        assert (settings.kafka_port, settings.port, settings.serves_kafka) == (9092, 9093, True)


def _help(*command: str, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit):
        build_parser().parse_args([*command, "--help"])
    return " ".join(capsys.readouterr().out.split())


def test_the_serve_help_states_both_default_ports(capsys: pytest.CaptureFixture[str]) -> None:
    text = _help("serve", capsys=capsys)
    assert "gRPC API's TCP port, 0 for any free one (default 9093)" in text
    assert "Kafka protocol listener's TCP port, 0 for any free one (default 9092)" in text
    assert "--no-kafka-listener" in text


def test_every_client_default_is_the_grpc_port() -> None:
    """`logstore produce` with no --bootstrap (and no LOGSTORE_BOOTSTRAP) reaches the gRPC API: port 9093."""
    grpc_default = f"127.0.0.1:{Settings().port}"
    assert DEFAULT_BOOTSTRAP == CONSOLE_BOOTSTRAP == grpc_default == "127.0.0.1:9093"
    assert ProducerConfig().bootstrap_servers == ConsumerConfig().bootstrap_servers == grpc_default


def test_the_console_help_names_the_grpc_port(capsys: pytest.CaptureFixture[str]) -> None:
    assert "(default: $LOGSTORE_BOOTSTRAP or 127.0.0.1:9093)" in _help("produce", "t", capsys=capsys)


def test_the_listener_is_on_by_default_and_off_on_request(start_broker: StartBroker, tmp_path: Path) -> None:
    assert start_broker().server.kafka is not None, "on by default (on a free port in tests)"
    off = start_broker(data_dir=tmp_path / "other", kafka_listener=False)
    assert off.server.kafka is None and not off.settings.serves_kafka


def test_ports_from_flag_environment_and_file(tmp_path: Path) -> None:
    config = tmp_path / "broker.toml"
    config.write_text("kafka_port = 1111\nport = 1112\n")
    from_file = load({}, env={"LOGSTORE_CONFIG": str(config)})
    assert (from_file.kafka_port, from_file.port) == (1111, 1112)
    env = {"LOGSTORE_CONFIG": str(config), "LOGSTORE_KAFKA_PORT": "2222", "LOGSTORE_PORT": "2223"}
    assert (load({}, env=env).kafka_port, load({}, env=env).port) == (2222, 2223)
    flags = from_arguments(build_parser().parse_args(["serve", "--kafka-port", "0", "--port", "0"]))
    assert (flags.kafka_port, flags.port, flags.serves_kafka) == (0, 0, True)
    off = from_arguments(build_parser().parse_args(["serve", "--no-kafka-listener"]))
    assert not off.serves_kafka
    assert not load({}, env={"LOGSTORE_KAFKA_LISTENER": "false"}).serves_kafka
    config.write_text("kafka-listener = false\n")
    assert not load({}, env={"LOGSTORE_CONFIG": str(config)}).serves_kafka


@pytest.mark.parametrize("port", ["-1", "65536"])
def test_a_kafka_port_out_of_range_is_refused_by_name(port: str) -> None:
    """-1 no longer means "off" (that is `--no-kafka-listener`): it is refused, not silently obeyed."""
    with pytest.raises(SettingsError, match="kafka_port must be between 0 and 65535"):
        load({}, env={"LOGSTORE_KAFKA_PORT": port})


def test_the_kafka_port_must_differ_from_the_grpc_port() -> None:
    with pytest.raises(SettingsError, match="kafka_port and port are both 9092"):
        load({"port": 9092}, env={})  # the old gRPC port, with the listener left on
    with pytest.raises(SettingsError, match="kafka_port and port are both 9093"):
        load({}, env={"LOGSTORE_KAFKA_PORT": "9093"})
    assert load({"port": 9092, "kafka_listener": False}, env={}).port == 9092, "the old behaviour"
    both_free = load({"port": 0, "kafka_port": 0}, env={})
    assert (both_free.port, both_free.kafka_port) == (0, 0), "port 0 is a free port each, not a clash"


def _api_versions_answered(address: str) -> bool:
    host, _, port = address.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        send_request(sock, ApiVersionsRequest(version=2), 5)
        correlation_id, body = receive(sock)
    return correlation_id == 5 and ApiVersionsResponse.decode(body, version=2).error_code == 0


def _grpc_answered(address: str) -> bool:
    with grpc.insecure_channel(address) as channel:
        answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    return answer.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize(
    "command",
    [(sys.executable, "-m", "logstore.broker"), (sys.executable, "-m", "logstore.bench.cli", "serve")],
    ids=["python -m logstore.broker", "logstore serve"],
)
def test_a_broker_with_default_settings_but_the_ports_serves_both_listeners(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    process = BrokerProcess(tmp_path / "data", tmp_path / "broker.log", command=command)  # both ports 0
    address = process.start()
    try:
        assert process.kafka_address is not None, process.log_text()
        assert process.kafka_address != address
        assert _api_versions_answered(process.kafka_address)
        assert _grpc_answered(address)
        admin = KafkaAdminClient(bootstrap_servers=process.kafka_address)
        try:
            assert admin.list_topics() == []
        finally:
            admin.close()
    finally:
        assert process.terminate() == 0
    log = process.log_text()
    assert f"Kafka protocol listener on {process.kafka_address}" in log
    assert f"listening on {address} (gRPC API" in log


def test_a_broker_process_with_no_kafka_listener_serves_grpc_only(tmp_path: Path) -> None:
    process = BrokerProcess(tmp_path / "data", tmp_path / "broker.log", args=["--no-kafka-listener"])
    address = process.start()
    try:
        assert process.kafka_address is None
        assert _grpc_answered(address)
    finally:
        assert process.terminate() == 0


def test_a_kafka_port_in_use_stops_the_start_with_a_message(start_broker: StartBroker) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(BindError, match=f"cannot listen for Kafka clients on 127.0.0.1:{port}"):
            start_broker(kafka_port=port)
