"""kafka-python's KafkaAdminClient against the Kafka listener: growing topics, configs, deleting records.

Each change is checked where it lands too: through the gRPC admin API, a real producer or a consumer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
from kafka.errors import (
    InvalidPartitionsError,
    InvalidReplicationAssignmentError,
    OffsetOutOfRangeError,
    UnknownTopicOrPartitionError,
)
from logstore.broker.embedded import EmbeddedBroker
from logstore.wire.logstore.v1 import admin_pb2

from tests.conftest import StartBroker, Stubs


@pytest.fixture
def kafka_broker(start_broker: StartBroker) -> EmbeddedBroker:
    return start_broker(kafka_port=0)


@pytest.fixture
def admin(kafka_broker: EmbeddedBroker) -> Iterator[KafkaAdminClient]:
    client = KafkaAdminClient(bootstrap_servers=kafka_broker.kafka_address)
    yield client
    client.close()


def described(stubs: Stubs, topic: str) -> admin_pb2.TopicDescription:
    return stubs.admin.DescribeTopic(admin_pb2.DescribeTopicRequest(name=topic)).topic


def produce(broker: EmbeddedBroker, topic: str, partition: int, count: int) -> list[int]:
    producer = KafkaProducer(bootstrap_servers=broker.kafka_address)
    try:
        futures = [producer.send(topic, b"v%d" % i, partition=partition) for i in range(count)]
        producer.flush(30)
        return [future.get(30).offset for future in futures]
    finally:
        producer.close(30)


def topic_configs(
    admin: KafkaAdminClient, topic: str, config_filter: str = "all"
) -> dict[str, dict[str, object]]:
    resource = ConfigResource(ConfigResourceType.TOPIC, topic)
    configs: dict[str, dict[str, object]] = admin.describe_configs([resource], config_filter=config_filter)[
        "topic"
    ][topic]
    return configs


def test_create_partitions_grows_a_topic_whose_new_partitions_take_records(
    kafka_broker: EmbeddedBroker, admin: KafkaAdminClient, connect: Callable[[EmbeddedBroker], Stubs]
) -> None:
    admin.create_topics([NewTopic("grow", 1, 1)])
    admin.create_partitions({"grow": 3})
    assert len(described(connect(kafka_broker), "grow").partitions) == 3
    assert produce(kafka_broker, "grow", 2, 3) == [0, 1, 2]  # a new partition, known from fresh metadata


def test_create_partitions_refuses_shrinking_assignments_and_unknown_topics_and_honours_validate_only(
    kafka_broker: EmbeddedBroker, admin: KafkaAdminClient, connect: Callable[[EmbeddedBroker], Stubs]
) -> None:
    admin.create_topics([NewTopic("fixed", 2, 1)])
    with pytest.raises(InvalidPartitionsError):
        admin.create_partitions({"fixed": 1})
    with pytest.raises(InvalidPartitionsError):
        admin.create_partitions({"fixed": 2})  # not larger: nothing to add
    with pytest.raises(InvalidReplicationAssignmentError):
        admin.create_partitions({"fixed": {"count": 3, "assignments": [[0]]}})
    with pytest.raises(UnknownTopicOrPartitionError):
        admin.create_partitions({"missing": 3})
    admin.create_partitions({"fixed": 5}, validate_only=True)
    with pytest.raises(InvalidPartitionsError):
        admin.create_partitions({"fixed": 1}, validate_only=True)
    assert len(described(connect(kafka_broker), "fixed").partitions) == 2


def test_describe_configs_tells_set_values_from_defaults_under_kafka_names(admin: KafkaAdminClient) -> None:
    admin.create_topics([NewTopic("conf", 1, 1, topic_configs={"retention.ms": "60000"})])
    configs = topic_configs(admin, "conf")
    assert {"retention.ms", "cleanup.policy", "segment.bytes", "max.message.bytes"} <= set(configs)
    assert configs["retention.ms"]["value"] == "60000"
    assert configs["retention.ms"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"
    assert configs["cleanup.policy"]["value"] == "delete"
    assert configs["cleanup.policy"]["config_source"] == "DEFAULT_CONFIG"
    assert not any(config["read_only"] for config in configs.values())
    assert list(topic_configs(admin, "conf", "modified")) == ["retention.ms"]
    with_synonyms = admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, "conf", configs=["retention.ms"])],
        include_synonyms=True,
        config_filter="all",
    )["topic"]["conf"]
    assert list(with_synonyms) == ["retention.ms"]
    assert [(s["name"], s["source"]) for s in with_synonyms["retention.ms"]["synonyms"]] == [
        ("retention.ms", "DYNAMIC_TOPIC_CONFIG"),
        ("log.retention.ms", "DEFAULT_CONFIG"),
    ]


def test_describe_configs_of_the_broker_gives_its_settings_under_kafka_names(
    start_broker: StartBroker,
) -> None:
    broker = start_broker(kafka_port=0, default_partitions=3, topic_defaults={"retention.ms": "3600000"})
    admin = KafkaAdminClient(bootstrap_servers=broker.kafka_address)
    try:
        resource = ConfigResource(ConfigResourceType.BROKER, "0")
        configs = admin.describe_configs([resource], config_filter="all")["broker"]["0"]
        admin.create_topics([NewTopic("inherits", 1, 1)])
        topic = topic_configs(admin, "inherits")
    finally:
        admin.close()
    assert configs["num.partitions"]["value"] == "3"
    assert configs["num.partitions"]["config_source"] == "STATIC_BROKER_CONFIG"
    assert configs["log.retention.ms"]["value"] == "3600000"
    assert configs["log.segment.bytes"]["config_source"] == "DEFAULT_CONFIG"
    assert configs["auto.create.topics.enable"]["value"] == "true"
    assert all(config["read_only"] for config in configs.values())
    # A topic's value that comes from the broker's own defaults says so.
    assert topic["retention.ms"]["value"] == "3600000"
    assert topic["retention.ms"]["config_source"] == "STATIC_BROKER_CONFIG"


@pytest.mark.parametrize("incremental", [True, False])
def test_alter_configs_changes_the_topic_as_the_engine_sees_it(
    kafka_broker: EmbeddedBroker,
    admin: KafkaAdminClient,
    connect: Callable[[EmbeddedBroker], Stubs],
    incremental: bool,
) -> None:
    admin.create_topics([NewTopic("alt", 1, 1, topic_configs={"segment.ms": "3600000"})])
    resource = ConfigResource(ConfigResourceType.TOPIC, "alt", configs={"retention.ms": "1000"})
    assert admin.alter_configs([resource], incremental=incremental) == {"topic": {"alt": "OK"}}
    config = described(connect(kafka_broker), "alt").config
    # The set value landed; the other one the topic had set stays (kafka-python resends it without
    # IncrementalAlterConfigs, since AlterConfigs replaces the whole config).
    assert (config["retention.ms"], config["segment.ms"]) == ("1000", "3600000")
    check = ConfigResource(ConfigResourceType.TOPIC, "alt", configs={"retention.ms": "5"})
    admin.alter_configs([check], validate_only=True, incremental=incremental)
    assert described(connect(kafka_broker), "alt").config["retention.ms"] == "1000"


def test_alter_configs_resets_deleted_keys_and_refuses_unknown_names_with_a_message(
    kafka_broker: EmbeddedBroker, admin: KafkaAdminClient, connect: Callable[[EmbeddedBroker], Stubs]
) -> None:
    admin.create_topics([NewTopic("reset", 1, 1, topic_configs={"retention.ms": "1000"})])
    admin.reset_configs([ConfigResource(ConfigResourceType.TOPIC, "reset", configs=["retention.ms"])])
    assert described(connect(kafka_broker), "reset").config["retention.ms"] == "604800000"
    for incremental in (True, False):
        bad = ConfigResource(ConfigResourceType.TOPIC, "reset", configs={"retention.mss": "1"})
        result = admin.alter_configs([bad], raise_on_unknown=False, incremental=incremental)
        assert "InvalidConfigurationError" in result["topic"]["reset"]
        assert "unknown topic config 'retention.mss'" in result["topic"]["reset"]
    bad_value = ConfigResource(ConfigResourceType.TOPIC, "reset", configs={"cleanup.policy": "sometimes"})
    result = admin.alter_configs([bad_value], raise_on_unknown=False)
    assert "cleanup.policy must be one of" in result["topic"]["reset"]


def test_delete_records_moves_the_start_so_consumers_from_earliest_begin_there(
    start_broker: StartBroker, connect: Callable[[EmbeddedBroker], Stubs]
) -> None:
    broker = start_broker(kafka_port=0)
    admin = KafkaAdminClient(bootstrap_servers=broker.kafka_address)
    try:
        assert produce(broker, "trim", 0, 10) == list(range(10))
        tp = TopicPartition("trim", 0)
        assert admin.delete_records({tp: 4})[tp]["low_watermark"] == 4
        assert admin.delete_records({tp: 2})[tp]["low_watermark"] == 4  # below the start: no change
        with pytest.raises(OffsetOutOfRangeError):
            admin.delete_records({tp: 11})
    finally:
        admin.close()
    assert described(connect(broker), "trim").partitions[0].log_start_offset == 4
    consumer = KafkaConsumer(
        bootstrap_servers=broker.kafka_address, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    try:
        consumer.assign([tp])
        assert consumer.beginning_offsets([tp]) == {tp: 4}
        consumer.seek_to_beginning(tp)
        records: list[object] = []
        for _ in range(50):
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
            if len(records) >= 6:
                break
        assert [r.offset for r in records] == list(range(4, 10))  # type: ignore[attr-defined]
    finally:
        consumer.close()
    broker.stop()
    restarted = start_broker(kafka_port=0)
    admin = KafkaAdminClient(bootstrap_servers=restarted.kafka_address)
    try:
        assert admin.delete_records({tp: -1})[tp]["low_watermark"] == 10  # -1: up to the high watermark
    finally:
        admin.close()
    assert described(connect(restarted), "trim").partitions[0].log_start_offset == 10


def test_delete_records_of_an_unknown_partition_is_unknown_topic_or_partition(
    admin: KafkaAdminClient,
) -> None:
    admin.create_topics([NewTopic("one", 1, 1)])
    with pytest.raises(UnknownTopicOrPartitionError):
        admin.delete_records(
            {TopicPartition("one", 0): 0, TopicPartition("one", 1): 0}, partition_leader_id=0
        )
