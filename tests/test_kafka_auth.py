"""The Kafka listener with --require-auth: kafka-python over SASL_PLAINTEXT with SCRAM-SHA-256/512 and
PLAIN, unchanged, allowed by ACLs and refused without them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAuthorizationFailedError
from kafka.protocol.metadata import MetadataRequest, MetadataResponse
from kafka.protocol.producer import ProduceResponse
from kafka.protocol.sasl import (
    SaslAuthenticateRequest,
    SaslAuthenticateResponse,
    SaslHandshakeRequest,
    SaslHandshakeResponse,
)
from logstore.broker.embedded import EmbeddedBroker

from tests.auth_helpers import USERS, acl, make_users
from tests.conftest import StartBroker
from tests.kafka_wire import decode_response, is_closed, kafka_socket, read_exactly, receive, send_request


def sasl(user: str, mechanism: str = "SCRAM-SHA-256", password: str | None = None) -> dict[str, Any]:
    return {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": mechanism,
        "sasl_plain_username": user,
        "sasl_plain_password": USERS[user] if password is None else password,
    }


@pytest.fixture
def secured(start_broker: StartBroker, tmp_path: Path) -> Callable[..., EmbeddedBroker]:
    def start(acls: list = ()) -> EmbeddedBroker:  # type: ignore[assignment]
        make_users(tmp_path / "data", list(acls))
        broker = start_broker(kafka_port=0, require_auth=True, super_users="User:admin")
        admin = KafkaAdminClient(bootstrap_servers=broker.kafka_address, **sasl("admin"))
        try:
            admin.create_topics([NewTopic("orders", 1, 1), NewTopic("secret", 1, 1)])
        finally:
            admin.close()
        return broker

    return start


def send(broker: EmbeddedBroker, user: str, topic: str = "orders", **config: Any) -> Any:
    producer = KafkaProducer(
        bootstrap_servers=broker.kafka_address, max_block_ms=10_000, retries=0, **sasl(user, **config)
    )
    try:
        return producer.send(topic, b"hello").get(15)
    finally:
        producer.close(5)


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"])
def test_kafka_python_produces_and_consumes_with_the_acls(
    secured: Callable[..., EmbeddedBroker], mechanism: str
) -> None:
    broker = secured(
        [
            acl("User:alice", "Write", "orders"),
            acl("User:alice", "Read", "orders"),
            acl("User:alice", "Read", "billing", "group"),
        ]
    )
    assert send(broker, "alice", mechanism=mechanism).offset == 0
    consumer = KafkaConsumer(
        "orders",
        bootstrap_servers=broker.kafka_address,
        group_id="billing",
        auto_offset_reset="earliest",
        consumer_timeout_ms=10_000,
        **sasl("alice", mechanism),
    )
    try:
        values = [next(consumer).value]
        consumer.commit()
        assert consumer.committed(TopicPartition("orders", 0)) == 1
        assert consumer.topics() == {"orders"}  # "secret" is not listed to alice
    finally:
        consumer.close()
    assert values == [b"hello"]


def test_without_an_acl_the_write_is_topic_authorization_failed(
    secured: Callable[..., EmbeddedBroker],
) -> None:
    broker = secured([acl("User:alice", "Write", "orders")])
    with pytest.raises(TopicAuthorizationFailedError):
        send(broker, "bob")
    with pytest.raises(TopicAuthorizationFailedError):
        send(broker, "alice", topic="secret")
    assert send(broker, "alice").offset == 0


def test_deny_beats_allow_over_kafka(secured: Callable[..., EmbeddedBroker]) -> None:
    broker = secured(
        [acl("User:*", "Write", "orders"), acl("User:bob", "Write", "orders", permission="deny")]
    )
    with pytest.raises(TopicAuthorizationFailedError):
        send(broker, "bob")
    assert send(broker, "alice").offset == 0


def _plain_login(sock: Any, user: str, password: str) -> Any:
    send_request(sock, SaslHandshakeRequest(version=1, mechanism="PLAIN"), 1)
    handshake = decode_response(SaslHandshakeResponse, receive(sock)[1], 1)
    assert handshake.error_code == 0 and "SCRAM-SHA-256" in handshake.mechanisms
    token = f"\0{user}\0{password}".encode()
    send_request(sock, SaslAuthenticateRequest(version=1, auth_bytes=token), 2)
    return decode_response(SaslAuthenticateResponse, receive(sock)[1], 1)


def test_a_wrong_password_or_no_sasl_gets_no_service(secured: Callable[..., EmbeddedBroker]) -> None:
    broker = secured([acl("User:*", "All", "orders")])
    security = broker.server.security
    assert security is not None
    before = security.failures["kafka"]
    answers = []
    for user, password in (("alice", "wrong"), ("mallory", "wrong")):
        with kafka_socket(broker) as sock:
            answer = _plain_login(sock, user, password)
            assert answer.error_code == 58  # SASL_AUTHENTICATION_FAILED
            answers.append(answer.error_message)
            assert is_closed(sock)
    assert answers[0] == answers[1] == "authentication failed: wrong user name or password"
    assert security.failures["kafka"] == before + 2
    with kafka_socket(broker) as sock:  # no SASL at all: the connection is closed
        send_request(sock, MetadataRequest(version=1, topics=None), 1)
        assert is_closed(sock)
    with kafka_socket(broker) as sock:
        assert _plain_login(sock, "alice", USERS["alice"]).error_code == 0
        send_request(sock, MetadataRequest(version=1, topics=None), 3)
        metadata = decode_response(MetadataResponse, receive(sock)[1], 1)
        assert [t[1] for t in metadata.topics] == ["orders"]  # "secret" is not listed


def test_confluent_kafka_produces_over_sasl_scram_with_an_acl_and_is_refused_without(
    secured: Callable[..., EmbeddedBroker],
) -> None:
    from confluent_kafka import Producer

    broker = secured([acl("User:alice", "Write", "orders")])
    delivered: list[Any] = []

    def produce(user: str, topic: str) -> Any:
        producer = Producer(
            {
                "bootstrap.servers": broker.kafka_address,
                "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanisms": "SCRAM-SHA-512",
                "sasl.username": user,
                "sasl.password": USERS[user],
                "message.timeout.ms": 10_000,
            }
        )
        producer.produce(topic, b"hi", on_delivery=lambda err, msg: delivered.append((err, msg)))
        producer.flush(15)
        return delivered.pop()

    error, message = produce("alice", "orders")
    assert error is None and message.offset() == 0
    error, _ = produce("alice", "secret")
    assert error is not None and error.code() == 29, error  # TOPIC_AUTHORIZATION_FAILED


def test_group_tools_and_topic_admin_over_kafka_follow_the_acls(
    secured: Callable[..., EmbeddedBroker],
) -> None:
    from kafka.admin import ConfigResource, ConfigResourceType

    broker = secured(
        [
            acl("User:alice", "Read", "orders"),
            acl("User:alice", "Read", "billing", "group"),
            acl("User:alice", "DescribeConfigs", "orders"),
        ]
    )
    consumer = KafkaConsumer(
        "orders", bootstrap_servers=broker.kafka_address, group_id="billing", **sasl("alice")
    )
    try:
        consumer.poll(2000)
        consumer.commit({TopicPartition("orders", 0): OffsetAndMetadata(0, "", -1)})
    finally:
        consumer.close()

    def admin(user: str) -> KafkaAdminClient:
        return KafkaAdminClient(bootstrap_servers=broker.kafka_address, **sasl(user))

    alice, bob = admin("alice"), admin("bob")
    try:
        assert alice.list_groups() == [{"group_id": "billing", "protocol_type": "consumer"}]
        assert bob.list_groups() == []  # bob may not Describe the group: it is not listed
        with pytest.raises(TopicAuthorizationFailedError):
            alice.delete_topics(["orders"])
        resource = [ConfigResource(ConfigResourceType.TOPIC, "orders")]
        assert "retention.ms" in alice.describe_configs(resource, config_filter="all")["topic"]["orders"]
        assert bob.describe_configs(resource, config_filter="all") == {"topic": {"orders": {}}}  # refused
    finally:
        alice.close()
        bob.close()


def test_producer_ids_belong_to_their_principal_across_both_listeners(
    secured: Callable[..., EmbeddedBroker],
) -> None:
    import grpc
    from logstore.wire.logstore.v1 import produce_pb2, produce_pb2_grpc

    from logstore.records import build_batch
    from tests.auth_helpers import as_user
    from tests.test_kafka_data_path import produce_request

    broker = secured([acl("User:*", "Write", "orders")])
    with grpc.insecure_channel(broker.address) as channel:
        stub = produce_pb2_grpc.ProduceServiceStub(channel)
        alices = stub.InitProducerId(
            produce_pb2.InitProducerIdRequest(), metadata=as_user("alice")
        ).producer_id
    batch = build_batch([b"x"], producer_id=alices, producer_epoch=0, base_sequence=0)
    for user, expected in (("bob", 31), ("alice", 0)):  # CLUSTER_AUTHORIZATION_FAILED for bob
        with kafka_socket(broker) as sock:
            assert _plain_login(sock, user, USERS[user]).error_code == 0
            send_request(sock, produce_request("orders", batch, -1, 0), 3)
            answer = ProduceResponse.decode(receive(sock)[1], version=7).responses[0].partition_responses[0]
            assert answer.error_code == expected, user


def test_aiokafka_produces_and_reads_over_sasl_scram(secured: Callable[..., EmbeddedBroker]) -> None:
    import asyncio

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka import TopicPartition as AioPartition

    broker = secured([acl("User:alice", "Write", "orders"), acl("User:alice", "Read", "orders")])
    options = sasl("alice", "SCRAM-SHA-256")

    async def round_trip() -> list[bytes]:
        producer = AIOKafkaProducer(bootstrap_servers=broker.kafka_address, **options)
        await producer.start()
        try:
            await producer.send_and_wait("orders", b"async hello")
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.kafka_address, **options)
        await consumer.start()
        try:
            consumer.assign([AioPartition("orders", 0)])
            consumer.seek(AioPartition("orders", 0), 0)
            batch = await consumer.getmany(timeout_ms=10_000)
        finally:
            await consumer.stop()
        return [r.value for records in batch.values() for r in records]

    assert asyncio.run(round_trip()) == [b"async hello"]


def _raw_exchange(sock: Any, token: bytes) -> bytes:
    sock.sendall(len(token).to_bytes(4, "big") + token)
    size = int.from_bytes(read_exactly(sock, 4), "big")
    return read_exactly(sock, size)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256"])
def test_a_v0_handshake_takes_bare_tokens_as_older_clients_send_them(
    secured: Callable[..., EmbeddedBroker], mechanism: str
) -> None:
    from kafka.net.sasl.scram import ScramClient

    broker = secured([acl("User:alice", "Describe", "orders")])
    for password, works in ((USERS["alice"], True), ("wrong", False)):
        with kafka_socket(broker) as sock:
            send_request(sock, SaslHandshakeRequest(version=0, mechanism=mechanism), 1)
            assert decode_response(SaslHandshakeResponse, receive(sock)[1], 0).error_code == 0
            try:
                if mechanism == "PLAIN":
                    assert _raw_exchange(sock, f"\0alice\0{password}".encode()) == b""
                else:
                    client = ScramClient("alice", password, mechanism)
                    client.process_server_first_message(_raw_exchange(sock, client.first_message()))
                    client.process_server_final_message(_raw_exchange(sock, client.final_message()))
            except ConnectionError:
                assert not works
                continue
            assert works
            send_request(sock, MetadataRequest(version=1, topics=None), 2)
            metadata = decode_response(MetadataResponse, receive(sock)[1], 1)
            assert [t[1] for t in metadata.topics] == ["orders"]
