"""Every served version of every key, encoded and decoded by kafka-python's spec-driven classes."""

from __future__ import annotations

from typing import Any

import pytest
from kafka.protocol.admin import (
    AlterConfigsRequest,
    AlterConfigsResponse,
    CreatePartitionsRequest,
    CreatePartitionsResponse,
    CreateTopicsRequest,
    CreateTopicsResponse,
    DeleteRecordsRequest,
    DeleteRecordsResponse,
    DeleteTopicsRequest,
    DeleteTopicsResponse,
    DescribeClusterRequest,
    DescribeClusterResponse,
    DescribeConfigsRequest,
    DescribeConfigsResponse,
    IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
)
from kafka.protocol.consumer import (
    FetchRequest,
    FetchResponse,
    ListOffsetsRequest,
    ListOffsetsResponse,
    OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse,
)
from kafka.protocol.metadata import (
    ApiVersionsRequest,
    ApiVersionsResponse,
    FindCoordinatorRequest,
    FindCoordinatorResponse,
    MetadataRequest,
    MetadataResponse,
)
from kafka.protocol.producer import (
    InitProducerIdRequest,
    InitProducerIdResponse,
    ProduceRequest,
    ProduceResponse,
)
from logstore.broker.embedded import EmbeddedBroker
from logstore.broker.kafka.groups import share_state_group
from logstore.broker.kafka.versions import (
    ALTER_CONFIGS,
    APIS,
    CREATE_PARTITIONS,
    CREATE_TOPICS,
    DELETE_RECORDS,
    DELETE_TOPICS,
    DESCRIBE_CLUSTER,
    DESCRIBE_CONFIGS,
    FETCH,
    FIND_COORDINATOR,
    INCREMENTAL_ALTER_CONFIGS,
    LIST_OFFSETS,
    METADATA,
    OFFSET_FOR_LEADER_EPOCH,
    PRODUCE,
)

from logstore.records import build_batch, iter_records
from tests.conftest import StartBroker
from tests.kafka_wire import decode_response, kafka_socket, receive, send_request


@pytest.fixture
def kafka_broker(start_broker: StartBroker) -> EmbeddedBroker:
    return start_broker(kafka_port=0)


def served(key: int) -> list[int]:
    low, high = APIS[key].served
    return list(range(low, high + 1))


def call(broker: EmbeddedBroker, request: Any, response_class: Any, version: int) -> Any:
    with kafka_socket(broker) as sock:
        send_request(sock, request, 1)
        correlation_id, body = receive(sock)
    assert correlation_id == 1
    return decode_response(response_class, body, version)


@pytest.mark.parametrize("version", [0, 1, 2])
def test_api_versions(kafka_broker: EmbeddedBroker, version: int) -> None:
    response = call(kafka_broker, ApiVersionsRequest(version=version), ApiVersionsResponse, version)
    assert response.error_code == 0 and len(response.api_keys) == len(APIS)


@pytest.mark.parametrize("version", served(PRODUCE))
def test_produce_then_fetch_and_list_offsets(kafka_broker: EmbeddedBroker, version: int) -> None:
    topic = f"produce-v{version}"
    data = ProduceRequest.TopicProduceData(
        name=topic,
        partition_data=[
            ProduceRequest.TopicProduceData.PartitionProduceData(index=0, records=build_batch([b"a", b"b"]))
        ],
    )
    request = ProduceRequest(version=version, acks=1, timeout_ms=10_000, topic_data=[data])
    response = call(kafka_broker, request, ProduceResponse, version)
    partition = response.responses[0].partition_responses[0]
    assert (partition.error_code, partition.base_offset) == (0, 0)


@pytest.mark.parametrize("version", served(FETCH))
def test_fetch(kafka_broker: EmbeddedBroker, version: int) -> None:
    topic = f"fetch-v{version}"
    produce = ProduceRequest.TopicProduceData(
        name=topic,
        partition_data=[
            ProduceRequest.TopicProduceData.PartitionProduceData(index=0, records=build_batch([b"x"]))
        ],
    )
    call(
        kafka_broker,
        ProduceRequest(version=7, acks=1, timeout_ms=10_000, topic_data=[produce]),
        ProduceResponse,
        7,
    )
    partition = FetchRequest.FetchTopic.FetchPartition(
        partition=0, fetch_offset=0, partition_max_bytes=1 << 20
    )
    request = FetchRequest(
        version=version, replica_id=-1, max_wait_ms=0, min_bytes=0, max_bytes=1 << 20,
        topics=[FetchRequest.FetchTopic(topic=topic, partitions=[partition])],
    )  # fmt: skip
    response = call(kafka_broker, request, FetchResponse, version)
    got = response.responses[0].partitions[0]
    assert (got.error_code, got.high_watermark) == (0, 1)
    assert [r.value for r in iter_records(got.records)] == [b"x"]


@pytest.mark.parametrize("version", served(LIST_OFFSETS))
def test_list_offsets(kafka_broker: EmbeddedBroker, version: int) -> None:
    partition = ListOffsetsRequest.ListOffsetsTopic.ListOffsetsPartition(partition_index=0, timestamp=-1)
    request = ListOffsetsRequest(
        version=version, replica_id=-1, isolation_level=0,
        topics=[ListOffsetsRequest.ListOffsetsTopic(name="missing-topic", partitions=[partition])],
    )  # fmt: skip
    response = call(kafka_broker, request, ListOffsetsResponse, version)
    assert response.topics[0].partitions[0].error_code == 3  # UNKNOWN_TOPIC_OR_PARTITION


@pytest.mark.parametrize("version", served(METADATA))
def test_metadata(kafka_broker: EmbeddedBroker, version: int) -> None:
    topics: list[object] | None = [] if version == 0 else None  # both mean every topic
    response = call(kafka_broker, MetadataRequest(version=version, topics=topics), MetadataResponse, version)
    assert [b.node_id for b in response.brokers] == [0]


@pytest.mark.parametrize("version", served(FIND_COORDINATOR))
def test_find_coordinator(kafka_broker: EmbeddedBroker, version: int) -> None:
    """A single broker coordinates every group, one key at a time (v0-3) or several (v4+)."""
    request = FindCoordinatorRequest(version=version, key="g1", key_type=0, coordinator_keys=["g1", "g2"])
    response = call(kafka_broker, request, FindCoordinatorResponse, version)
    answers = response.coordinators if version >= 4 else [response]
    assert [(a.error_code, a.node_id, a.port) for a in answers] == [(0, 0, kafka_broker.kafka_port)] * len(
        answers
    )
    if version >= 4:
        assert [a.key for a in answers] == ["g1", "g2"]
    if version == 0:  # v0 has no key type: always a group
        return
    transactional = FindCoordinatorRequest(version=version, key="tx", key_type=1, coordinator_keys=["tx"])
    refused = call(kafka_broker, transactional, FindCoordinatorResponse, version)
    first = refused.coordinators[0] if version >= 4 else refused
    assert (first.error_code, first.node_id) == (15, -1)  # COORDINATOR_NOT_AVAILABLE
    # KIP-932's share key type: Kafka's "group:topicId:partition" or a plain group id, both this broker
    share_key = "g1:AAAAAAAAAAAAAAAAAAAAAA:0"
    share = FindCoordinatorRequest(
        version=version, key=share_key, key_type=2, coordinator_keys=[share_key, "g2"]
    )
    found = call(kafka_broker, share, FindCoordinatorResponse, version)
    answers = found.coordinators if version >= 4 else [found]
    assert [(a.error_code, a.node_id, a.port) for a in answers] == [(0, 0, kafka_broker.kafka_port)] * len(
        answers
    )


@pytest.mark.parametrize(
    ("key", "group"),
    [
        ("g1:AAAAAAAAAAAAAAAAAAAAAA:0", "g1"),  # Kafka's share-partition key
        ("a:b:AAAAAAAAAAAAAAAAAAAAAA:12", "a:b"),  # a group id may hold colons
        ("g1", "g1"),
        ("a:b:1", "a:b:1"),  # "b" is no topic id: the whole key is the group
        ("g1:AAAAAAAAAAAAAAAAAAAAAA:x", "g1:AAAAAAAAAAAAAAAAAAAAAA:x"),
    ],
)
def test_a_share_key_names_its_group(key: str, group: str) -> None:
    assert share_state_group(key) == group


@pytest.mark.parametrize("version", served(OFFSET_FOR_LEADER_EPOCH))
def test_offset_for_leader_epoch(kafka_broker: EmbeddedBroker, version: int) -> None:
    """A single broker never truncated its log: any epoch ends at the log end; none (-1) is undefined."""
    topic = f"epochs-v{version}"
    produce = ProduceRequest.TopicProduceData(
        name=topic,
        partition_data=[
            ProduceRequest.TopicProduceData.PartitionProduceData(index=0, records=build_batch([b"a", b"b"]))
        ],
    )
    call(
        kafka_broker,
        ProduceRequest(version=7, acks=1, timeout_ms=10_000, topic_data=[produce]),
        ProduceResponse,
        7,
    )
    asked = OffsetForLeaderEpochRequest.OffsetForLeaderTopic
    partitions = [
        asked.OffsetForLeaderPartition(partition=0, current_leader_epoch=-1, leader_epoch=0),
        asked.OffsetForLeaderPartition(partition=0, current_leader_epoch=-1, leader_epoch=-1),
        asked.OffsetForLeaderPartition(partition=5, current_leader_epoch=-1, leader_epoch=0),
    ]
    request = OffsetForLeaderEpochRequest(
        version=version, replica_id=-1, topics=[asked(topic=topic, partitions=partitions)]
    )
    response = call(kafka_broker, request, OffsetForLeaderEpochResponse, version)
    got = [(p.error_code, p.leader_epoch, p.end_offset) for p in response.topics[0].partitions]
    assert got == [(0, 0, 2), (0, -1, -1), (3, -1, -1)]  # 3: UNKNOWN_TOPIC_OR_PARTITION


@pytest.mark.parametrize("version", served(DESCRIBE_CLUSTER))
def test_describe_cluster(kafka_broker: EmbeddedBroker, version: int) -> None:
    request = DescribeClusterRequest(
        version=version,
        include_cluster_authorized_operations=False,
        endpoint_type=1,
        include_fenced_brokers=False,
    )
    response = call(kafka_broker, request, DescribeClusterResponse, version)
    assert (response.error_code, response.cluster_id, response.controller_id) == (0, "logstore", 0)
    assert [(b.broker_id, b.port) for b in response.brokers] == [(0, kafka_broker.kafka_port)]
    if version >= 1:  # KIP-919: this is not a controller's listener
        request = DescribeClusterRequest(
            version=version, include_cluster_authorized_operations=False, endpoint_type=2
        )
        assert call(kafka_broker, request, DescribeClusterResponse, version).error_code == 114


@pytest.mark.parametrize("version", served(CREATE_TOPICS))
def test_create_and_delete_topics(start_broker: StartBroker, version: int) -> None:
    broker = start_broker(kafka_port=0)
    topic = CreateTopicsRequest.CreatableTopic(
        name="made", num_partitions=2, replication_factor=1, assignments=[], configs=[]
    )
    request = CreateTopicsRequest(version=version, topics=[topic], timeout_ms=10_000, validate_only=False)
    created = call(broker, request, CreateTopicsResponse, version)
    assert [(t.name, t.error_code) for t in created.topics] == [("made", 0)]
    delete_version = min(version - 1, APIS[DELETE_TOPICS].served[1])
    deleted = call(
        broker,
        DeleteTopicsRequest(version=delete_version, topic_names=["made"], timeout_ms=10_000),
        DeleteTopicsResponse,
        delete_version,
    )
    assert [(r.name, r.error_code) for r in deleted.responses] == [("made", 0)]


@pytest.mark.parametrize("version", [0, 1])
def test_init_producer_id(kafka_broker: EmbeddedBroker, version: int) -> None:
    request = InitProducerIdRequest(version=version, transactional_id=None, transaction_timeout_ms=60_000)
    response = call(kafka_broker, request, InitProducerIdResponse, version)
    assert response.error_code == 0 and response.producer_id >= 0


def make_topic(broker: EmbeddedBroker, name: str) -> None:
    topic = CreateTopicsRequest.CreatableTopic(
        name=name, num_partitions=1, replication_factor=1, assignments=[], configs=[]
    )
    request = CreateTopicsRequest(version=4, topics=[topic], timeout_ms=10_000, validate_only=False)
    assert call(broker, request, CreateTopicsResponse, 4).topics[0].error_code == 0


@pytest.mark.parametrize("version", served(CREATE_PARTITIONS))
def test_create_partitions(kafka_broker: EmbeddedBroker, version: int) -> None:
    make_topic(kafka_broker, "grown")
    topic = CreatePartitionsRequest.CreatePartitionsTopic(name="grown", count=3, assignments=None)
    request = CreatePartitionsRequest(version=version, topics=[topic], timeout_ms=10_000, validate_only=False)
    response = call(kafka_broker, request, CreatePartitionsResponse, version)
    assert [(r.name, r.error_code) for r in response.results] == [("grown", 0)]


@pytest.mark.parametrize("version", served(DESCRIBE_CONFIGS))
def test_describe_configs(kafka_broker: EmbeddedBroker, version: int) -> None:
    make_topic(kafka_broker, "described")
    resource = DescribeConfigsRequest.DescribeConfigsResource(
        resource_type=2, resource_name="described", configuration_keys=["retention.ms"]
    )
    request = DescribeConfigsRequest(version=version, resources=[resource], include_synonyms=True)
    result = call(kafka_broker, request, DescribeConfigsResponse, version).results[0]
    assert result.error_code == 0
    assert [(c.name, c.value, c.config_source) for c in result.configs] == [("retention.ms", "604800000", 5)]
    assert [(s.name, s.source) for s in result.configs[0].synonyms] == [("log.retention.ms", 5)]


@pytest.mark.parametrize("version", served(ALTER_CONFIGS))
def test_alter_configs(kafka_broker: EmbeddedBroker, version: int) -> None:
    make_topic(kafka_broker, "altered")
    config = AlterConfigsRequest.AlterConfigsResource.AlterableConfig(name="retention.ms", value="1000")
    resource = AlterConfigsRequest.AlterConfigsResource(
        resource_type=2, resource_name="altered", configs=[config]
    )
    request = AlterConfigsRequest(version=version, resources=[resource], validate_only=False)
    response = call(kafka_broker, request, AlterConfigsResponse, version)
    assert [(r.resource_name, r.error_code) for r in response.responses] == [("altered", 0)]


@pytest.mark.parametrize("version", served(INCREMENTAL_ALTER_CONFIGS))
def test_incremental_alter_configs(kafka_broker: EmbeddedBroker, version: int) -> None:
    make_topic(kafka_broker, "altered")
    config = IncrementalAlterConfigsRequest.AlterConfigsResource.AlterableConfig(
        name="retention.ms", config_operation=0, value="1000"
    )
    resource = IncrementalAlterConfigsRequest.AlterConfigsResource(
        resource_type=2, resource_name="altered", configs=[config]
    )
    request = IncrementalAlterConfigsRequest(version=version, resources=[resource], validate_only=False)
    response = call(kafka_broker, request, IncrementalAlterConfigsResponse, version)
    assert [(r.resource_name, r.error_code) for r in response.responses] == [("altered", 0)]


@pytest.mark.parametrize("version", served(DELETE_RECORDS))
def test_delete_records(kafka_broker: EmbeddedBroker, version: int) -> None:
    make_topic(kafka_broker, "trimmed")
    partition = DeleteRecordsRequest.DeleteRecordsTopic.DeleteRecordsPartition(partition_index=0, offset=-1)
    topic = DeleteRecordsRequest.DeleteRecordsTopic(name="trimmed", partitions=[partition])
    request = DeleteRecordsRequest(version=version, topics=[topic], timeout_ms=10_000)
    got = call(kafka_broker, request, DeleteRecordsResponse, version).topics[0].partitions[0]
    assert (got.partition_index, got.low_watermark, got.error_code) == (0, 0, 0)
