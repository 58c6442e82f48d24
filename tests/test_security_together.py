"""TLS and authentication together, as a broker beyond loopback runs: kafka-python over SASL_SSL with
SCRAM, and a client certificate's subject authorized by ACLs on both listeners."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer
from kafka.errors import TopicAuthorizationFailedError as KafkaTopicAuthorizationFailed
from logstore.broker.embedded import EmbeddedBroker
from logstore.client import Admin, Producer
from logstore.client.shared.errors import TopicAuthorizationFailedError

from tests.auth_helpers import USERS, acl, credentials, make_users
from tests.conftest import StartBroker
from tests.test_tls import ALICE_PRINCIPAL, Pki, make_pki


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path)


def secured_tls(
    start_broker: StartBroker, tmp_path: Path, pki: Pki, acls: list[Any], mutual: bool
) -> EmbeddedBroker:
    make_users(tmp_path / "data", acls)
    broker = start_broker(
        kafka_port=0, require_auth=True, super_users="User:admin", **pki.broker_settings(mutual=mutual)
    )
    admin_options = credentials("admin") | {"security_protocol": "SASL_SSL", "ssl_cafile": pki.cafile}
    if mutual:
        admin_options |= {"ssl_certfile": str(pki.alice.cert), "ssl_keyfile": str(pki.alice.key)}
    with Admin(broker.address, **admin_options) as admin:
        admin.create_topic("orders", 1)
        admin.create_topic("secret", 1)
    return broker


def kafka_python_sasl_ssl(broker: EmbeddedBroker, pki: Pki, user: str) -> KafkaProducer:
    return KafkaProducer(
        bootstrap_servers=broker.kafka_address,
        security_protocol="SASL_SSL",
        ssl_cafile=pki.cafile,
        sasl_mechanism="SCRAM-SHA-256",
        sasl_plain_username=user,
        sasl_plain_password=USERS[user],
        max_block_ms=10_000,
        retries=0,
    )


def test_kafka_python_over_sasl_ssl_with_scram_writes_what_its_acls_allow(
    start_broker: StartBroker, tmp_path: Path, pki: Pki
) -> None:
    broker = secured_tls(start_broker, tmp_path, pki, [acl("User:alice", "Write", "orders")], mutual=False)
    producer = kafka_python_sasl_ssl(broker, pki, "alice")
    try:
        assert producer.send("orders", b"over tls").get(15).offset == 0
        with pytest.raises(KafkaTopicAuthorizationFailed):
            producer.send("secret", b"not allowed").get(15)
    finally:
        producer.close(5)


def test_a_client_certificate_is_the_principal_acls_name_on_both_listeners(
    start_broker: StartBroker, tmp_path: Path, pki: Pki
) -> None:
    broker = secured_tls(start_broker, tmp_path, pki, [acl(ALICE_PRINCIPAL, "Write", "orders")], mutual=True)
    with Producer(broker.address, **pki.alice_options()) as producer:  # SSL: no password, the certificate
        assert producer.send("orders", b"by certificate").get(timeout=30).offset == 0
        with pytest.raises(TopicAuthorizationFailedError):
            producer.send("secret", b"not allowed").get(timeout=30)
    kafka = KafkaProducer(
        bootstrap_servers=broker.kafka_address,
        security_protocol="SSL",
        ssl_cafile=pki.cafile,
        ssl_certfile=str(pki.alice.cert),
        ssl_keyfile=str(pki.alice.key),
        max_block_ms=10_000,
        retries=0,
    )
    try:
        assert kafka.send("orders", b"by certificate, kafka").get(15).offset == 1
        with pytest.raises(KafkaTopicAuthorizationFailed):
            kafka.send("secret", b"not allowed").get(15)
    finally:
        kafka.close(5)
