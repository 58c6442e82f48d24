"""The share-group RPCs and Metadata's topic ids on the wire: the errors a client that gets a session,
an epoch or an id wrong receives. kafka-python has no share-group messages, so these requests are
written with kio (the listener's own codec); librdkafka is the independent client
(tests/test_kafka_share_confluent.py)."""

from __future__ import annotations

import datetime
import io
import socket
import struct
import uuid
from typing import Any

import pytest
from kio.index import load_request_schema, load_response_schema
from kio.schema.metadata.v12 import request as metadata_v12
from kio.schema.request_header import v2 as request_header_v2
from kio.schema.share_fetch.v1 import request as share_fetch_v1
from kio.serial import entity_reader, entity_writer
from kio.static.primitive import i32Timedelta
from logstore.broker.embedded import EmbeddedBroker
from logstore.client import Admin

from tests.conftest import StartBroker
from tests.kafka_wire import kafka_socket, receive

METADATA, SHARE_GROUP_HEARTBEAT, SHARE_FETCH, SHARE_ACKNOWLEDGE = 3, 76, 78, 79
INVALID_REQUEST, UNKNOWN_TOPIC_ID, INCONSISTENT_GROUP_PROTOCOL = 42, 100, 23
SHARE_SESSION_NOT_FOUND, INVALID_SHARE_SESSION_EPOCH = 122, 123

# kio's fields are typed with its own int types (i16, i32, ...); these tests pass plain ints.
RequestHeader: Any = request_header_v2.RequestHeader
MetadataRequestTopic: Any = metadata_v12.MetadataRequestTopic
AcknowledgementBatch: Any = share_fetch_v1.AcknowledgementBatch
FetchPartition: Any = share_fetch_v1.FetchPartition
FetchTopic: Any = share_fetch_v1.FetchTopic


@pytest.fixture
def kafka_broker(start_broker: StartBroker) -> EmbeddedBroker:
    broker = start_broker(kafka_port=0)
    with Admin(broker.address) as admin:
        admin.create_topic("jobs", partitions=2)
    return broker


def call(sock: socket.socket, api_key: int, version: int, **fields: Any) -> Any:
    request = load_request_schema(api_key, version)(**fields)
    body = io.BytesIO()
    header = RequestHeader(
        request_api_key=api_key, request_api_version=version, correlation_id=7, client_id="tests"
    )
    entity_writer(request_header_v2.RequestHeader)(body, header)
    entity_writer(type(request))(body, request)
    sock.sendall(struct.pack(">i", len(body.getvalue())) + body.getvalue())
    correlation_id, answer = receive(sock)
    assert correlation_id == 7 and answer[0] == 0  # response header v1: no tagged fields
    response, _ = entity_reader(load_response_schema(api_key, version))(answer[1:], 0)
    return response


def topic_id(sock: socket.socket, name: str) -> uuid.UUID:
    answer = call(
        sock,
        METADATA,
        12,
        topics=(MetadataRequestTopic(topic_id=None, name=name),),
        allow_auto_topic_creation=False,
        include_topic_authorized_operations=False,
    )
    (topic,) = answer.topics
    assert topic.error_code == 0 and topic.topic_id != uuid.UUID(int=0)
    return topic.topic_id


def join(sock: socket.socket, group: str, member: str) -> Any:
    return call(
        sock,
        SHARE_GROUP_HEARTBEAT,
        1,
        group_id=group,
        member_id=member,
        member_epoch=0,
        rack_id=None,
        subscribed_topic_names=("jobs",),
    )


def share_fetch(
    sock: socket.socket, group: str, member: str, epoch: int, topics: tuple[Any, ...] = ()
) -> Any:
    return call(
        sock,
        SHARE_FETCH,
        1,
        group_id=group,
        member_id=member,
        share_session_epoch=epoch,
        max_wait=i32Timedelta.parse(datetime.timedelta(0)),
        min_bytes=1,
        max_bytes=1 << 20,
        max_records=100,
        batch_size=100,
        topics=topics,
        forgotten_topics_data=(),
    )


def fetch_topic(
    topic: uuid.UUID, partition: int, acks: tuple[tuple[int, int, tuple[int, ...]], ...] = ()
) -> Any:
    batches = tuple(
        AcknowledgementBatch(first_offset=first, last_offset=last, acknowledge_types=types)
        for first, last, types in acks
    )
    return FetchTopic(
        topic_id=topic,
        partitions=(FetchPartition(partition_index=partition, acknowledgement_batches=batches),),
    )


def test_metadata_v12_names_topic_ids_and_answers_an_unknown_id_with_unknown_topic_id(
    kafka_broker: EmbeddedBroker,
) -> None:
    with kafka_socket(kafka_broker) as sock:
        jobs = topic_id(sock, "jobs")
        by_id = call(
            sock,
            METADATA,
            12,
            topics=(
                MetadataRequestTopic(topic_id=jobs, name=None),
                MetadataRequestTopic(topic_id=uuid.uuid4(), name=None),
            ),
            allow_auto_topic_creation=False,
            include_topic_authorized_operations=False,
        )
    known = by_id.topics[0]
    assert (known.name, known.topic_id, known.error_code) == ("jobs", jobs, 0)
    assert by_id.topics[1].error_code == UNKNOWN_TOPIC_ID and by_id.topics[1].name is None


def test_a_share_heartbeat_gets_its_assignment_by_topic_id(kafka_broker: EmbeddedBroker) -> None:
    with kafka_socket(kafka_broker) as sock:
        jobs = topic_id(sock, "jobs")
        answer = join(sock, "wire", "m1")
    assert answer.error_code == 0 and answer.member_id == "m1" and answer.member_epoch > 0
    assert [(t.topic_id, sorted(t.partitions)) for t in answer.assignment.topic_partitions] == [
        (jobs, [0, 1])
    ]


def test_share_heartbeats_without_a_member_id_or_for_a_consumer_groups_id_are_refused(
    kafka_broker: EmbeddedBroker,
) -> None:
    from logstore.client import Consumer

    with Consumer("jobs", bootstrap_servers=kafka_broker.address, group_id="classic") as consumer:
        consumer.poll(timeout_ms=2000)
        with kafka_socket(kafka_broker) as sock:
            nameless = join(sock, "wire", "")
            taken = join(sock, "classic", "m1")
    assert nameless.error_code == INVALID_REQUEST and "member_id" in nameless.error_message
    assert taken.error_code == INCONSISTENT_GROUP_PROTOCOL and "classic" in taken.error_message


def test_share_session_epochs_are_checked(kafka_broker: EmbeddedBroker) -> None:
    with kafka_socket(kafka_broker) as sock:
        jobs = topic_id(sock, "jobs")
        join(sock, "wire", "m1")
        no_session = share_fetch(sock, "wire", "m1", 3, (fetch_topic(jobs, 0),))
        opened = share_fetch(sock, "wire", "m1", 0, (fetch_topic(jobs, 0),))
        skipped = share_fetch(sock, "wire", "m1", 2)
        next_one = share_fetch(sock, "wire", "m1", 1)
    assert no_session.error_code == SHARE_SESSION_NOT_FOUND and "epoch 0" in no_session.error_message
    assert opened.error_code == 0
    assert [(t.topic_id, [p.partition_index for p in t.partitions]) for t in opened.responses] == [
        (jobs, [0])
    ]
    assert (
        skipped.error_code == INVALID_SHARE_SESSION_EPOCH
        and "expected epoch 1, got 2" in skipped.error_message
    )
    assert next_one.error_code == 0


def test_acknowledging_while_opening_a_session_or_without_one_is_refused(
    kafka_broker: EmbeddedBroker,
) -> None:
    with kafka_socket(kafka_broker) as sock:
        jobs = topic_id(sock, "jobs")
        join(sock, "wire", "m1")
        opening = share_fetch(sock, "wire", "m1", 0, (fetch_topic(jobs, 0, ((0, 0, (1,)),)),))
        ack_open = call(
            sock, SHARE_ACKNOWLEDGE, 1, group_id="wire", member_id="m1", share_session_epoch=0, topics=()
        )
        share_fetch(sock, "wire", "m1", 0)
        bad_type = share_fetch(sock, "wire", "m1", 1, (fetch_topic(jobs, 0, ((0, 1, (1, 7)),)),))
    assert opening.error_code == INVALID_REQUEST and "epoch 0" in opening.error_message
    assert ack_open.error_code == INVALID_REQUEST and "epoch cannot be 0" in ack_open.error_message
    assert bad_type.error_code == INVALID_REQUEST and "1 (accept)" in bad_type.error_message


def test_a_session_naming_an_unknown_topic_id_gets_unknown_topic_id_for_it(
    kafka_broker: EmbeddedBroker,
) -> None:
    stranger = uuid.uuid4()
    with kafka_socket(kafka_broker) as sock:
        join(sock, "wire", "m1")
        answer = share_fetch(sock, "wire", "m1", 0, (fetch_topic(stranger, 0),))
    assert answer.error_code == 0
    (topic,) = answer.responses
    assert topic.topic_id == stranger and [p.error_code for p in topic.partitions] == [UNKNOWN_TOPIC_ID]
