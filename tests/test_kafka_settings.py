"""The Kafka listener's settings: off unless a Kafka port is given (gRPC still owns 9092), from flags,
LOGSTORE_* environment and the TOML file like the others; the broker logs the port it got."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from logstore.bench.cli import build_parser
from logstore.broker.embedded import BrokerProcess
from logstore.broker.server import BindError
from logstore.broker.settings import SettingsError, from_arguments, load

from tests.conftest import StartBroker


def test_no_kafka_listener_unless_a_port_is_given(start_broker: StartBroker) -> None:
    settings = load({}, env={})
    assert settings.kafka_port == -1 and not settings.serves_kafka
    broker = start_broker()
    assert broker.server.kafka is None


def test_kafka_port_from_flag_environment_and_file(tmp_path: Path) -> None:
    config = tmp_path / "broker.toml"
    config.write_text("kafka_port = 1111\n")
    assert load({}, env={"LOGSTORE_CONFIG": str(config)}).kafka_port == 1111
    assert load({}, env={"LOGSTORE_CONFIG": str(config), "LOGSTORE_KAFKA_PORT": "2222"}).kafka_port == 2222
    args = build_parser().parse_args(["serve", "--kafka-port", "0"])
    settings = from_arguments(args)
    assert settings.kafka_port == 0 and settings.serves_kafka
    off = from_arguments(build_parser().parse_args(["serve", "--kafka-port", "0", "--no-kafka-listener"]))
    assert not off.serves_kafka
    assert not load({}, env={"LOGSTORE_KAFKA_PORT": "9", "LOGSTORE_KAFKA_LISTENER": "false"}).serves_kafka


@pytest.mark.parametrize("port", ["-2", "65536"])
def test_a_kafka_port_out_of_range_is_refused_by_name(port: str) -> None:
    with pytest.raises(SettingsError, match="kafka_port"):
        load({}, env={"LOGSTORE_KAFKA_PORT": port})


def test_the_broker_process_logs_its_kafka_port_and_kafka_clients_reach_it(tmp_path: Path) -> None:
    process = BrokerProcess(tmp_path / "data", tmp_path / "broker.log", args=["--kafka-port", "0"])
    process.start()
    try:
        assert process.kafka_address is not None, process.log_text()
        admin = KafkaAdminClient(bootstrap_servers=process.kafka_address)
        try:
            assert admin.list_topics() == []
        finally:
            admin.close()
    finally:
        assert process.terminate() == 0
    assert "Kafka protocol listener on 127.0.0.1:" in process.log_text()


def test_the_kafka_port_must_differ_from_the_grpc_port() -> None:
    with pytest.raises(SettingsError, match="kafka_port and port are both 9092"):
        load({"kafka_port": 9092}, env={})
    assert load({"kafka_port": 9092, "kafka_listener": False}, env={}).port == 9092


def test_a_kafka_port_in_use_stops_the_start_with_a_message(start_broker: StartBroker) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(BindError, match=f"cannot listen for Kafka clients on 127.0.0.1:{port}"):
            start_broker(kafka_port=port)
