"""librdkafka's AdminClient (confluent-kafka) against the Kafka listener: partitions, configs, records."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    ResourceType,
)
from logstore.broker.embedded import EmbeddedBroker
from logstore.wire.logstore.v1 import admin_pb2

from logstore.records import build_batch
from tests.conftest import StartBroker, Stubs

TIMEOUT = 30


@pytest.fixture
def kafka_broker(start_broker: StartBroker) -> EmbeddedBroker:
    return start_broker(kafka_port=0)


def client(broker: EmbeddedBroker) -> AdminClient:
    return AdminClient({"bootstrap.servers": broker.kafka_address})


def config(stubs: Stubs, topic: str) -> dict[str, str]:
    return dict(stubs.admin.DescribeTopic(admin_pb2.DescribeTopicRequest(name=topic)).topic.config)


def test_create_partitions_and_its_errors(
    kafka_broker: EmbeddedBroker, connect: Callable[[EmbeddedBroker], Stubs]
) -> None:
    admin = client(kafka_broker)
    admin.create_topics([NewTopic("cgrow", 1, 1)])["cgrow"].result(TIMEOUT)
    admin.create_partitions([NewPartitions("cgrow", 4)])["cgrow"].result(TIMEOUT)
    stubs = connect(kafka_broker)
    described = stubs.admin.DescribeTopic(admin_pb2.DescribeTopicRequest(name="cgrow")).topic
    assert len(described.partitions) == 4
    assert stubs.produce_one("cgrow", 3, build_batch([b"x"])).error_code == 0
    with pytest.raises(KafkaException) as raised:
        admin.create_partitions([NewPartitions("cgrow", 2)])["cgrow"].result(TIMEOUT)
    assert raised.value.args[0].name() == "INVALID_PARTITIONS"


# AlterConfigs is what older tools send; librdkafka's binding deprecates it for IncrementalAlterConfigs.
@pytest.mark.filterwarnings("ignore:alter_configs has been deprecated:DeprecationWarning")
def test_describe_and_alter_configs(
    kafka_broker: EmbeddedBroker, connect: Callable[[EmbeddedBroker], Stubs]
) -> None:
    admin = client(kafka_broker)
    admin.create_topics([NewTopic("cconf", 1, 1, config={"retention.ms": "60000"})])["cconf"].result(TIMEOUT)
    resource = ConfigResource(ResourceType.TOPIC, "cconf")
    entries = admin.describe_configs([resource])[resource].result(TIMEOUT)
    assert entries["retention.ms"].value == "60000"
    assert entries["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert entries["cleanup.policy"].is_default and not entries["cleanup.policy"].is_read_only
    change = ConfigResource(
        ResourceType.TOPIC,
        "cconf",
        incremental_configs=[
            ConfigEntry("segment.ms", "3600000", incremental_operation=AlterConfigOpType.SET),
            ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND),
        ],
    )
    admin.incremental_alter_configs([change])[change].result(TIMEOUT)
    after = config(connect(kafka_broker), "cconf")
    assert (after["segment.ms"], after["cleanup.policy"], after["retention.ms"]) == (
        "3600000",
        "compact,delete",
        "60000",
    )
    replace = ConfigResource(ResourceType.TOPIC, "cconf", set_config={"retention.ms": "1000"})
    admin.alter_configs([replace])[replace].result(TIMEOUT)
    after = config(connect(kafka_broker), "cconf")  # AlterConfigs replaces: the rest is back to defaults
    assert (after["retention.ms"], after["segment.ms"], after["cleanup.policy"]) == (
        "1000",
        "604800000",
        "delete",
    )
    bad = ConfigResource(ResourceType.TOPIC, "cconf", set_config={"no.such.config": "1"})
    with pytest.raises(KafkaException) as raised:
        admin.alter_configs([bad])[bad].result(TIMEOUT)
    assert raised.value.args[0].name() == "INVALID_CONFIG"
    assert "unknown topic config 'no.such.config'" in raised.value.args[0].str()
    missing = ConfigResource(ResourceType.TOPIC, "missing")
    with pytest.raises(KafkaException) as raised:
        admin.describe_configs([missing])[missing].result(TIMEOUT)
    assert raised.value.args[0].name() == "UNKNOWN_TOPIC_OR_PART"


def test_delete_records(kafka_broker: EmbeddedBroker, connect: Callable[[EmbeddedBroker], Stubs]) -> None:
    stubs = connect(kafka_broker)
    stubs.create_topic("ctrim")
    assert stubs.produce_one("ctrim", 0, build_batch([b"%d" % i for i in range(8)])).error_code == 0
    admin = client(kafka_broker)
    tp = TopicPartition("ctrim", 0, 5)
    deleted = admin.delete_records([tp])
    assert next(iter(deleted.values())).result(TIMEOUT).low_watermark == 5
    assert stubs.values("ctrim", 0, 5) == [b"5", b"6", b"7"]
    beyond = TopicPartition("ctrim", 0, 9)
    with pytest.raises(KafkaException) as raised:
        next(iter(admin.delete_records([beyond]).values())).result(TIMEOUT)
    assert raised.value.args[0].name() == "OFFSET_OUT_OF_RANGE"
