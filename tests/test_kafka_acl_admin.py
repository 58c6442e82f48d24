"""Kafka's ACL and SCRAM-credential admin APIs on the Kafka listener (DescribeAcls, CreateAcls,
DeleteAcls, DescribeUserScramCredentials, AlterUserScramCredentials), driven by confluent-kafka's
AdminClient and kafka-python's KafkaAdminClient against a broker with --require-auth: super-users only,
the same store as `logstore acls` / `logstore users`, and what they make takes effect."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)
from kafka import KafkaProducer
from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    KafkaAdminClient,
    NewTopic,
    ResourcePattern,
    ResourcePatternFilter,
)
from kafka.admin import ResourceType as KpResourceType
from kafka.admin import ScramMechanism as KpScramMechanism
from kafka.admin import UserScramCredentialUpsertion as UserScramCredentialUpsertionKp
from kafka.errors import ClusterAuthorizationFailedError, SecurityDisabledError, TopicAuthorizationFailedError
from logstore.broker.embedded import EmbeddedBroker

from tests.auth_helpers import USERS, make_users
from tests.conftest import StartBroker
from tests.kafka_wire import kafka_socket
from tests.test_cli_security import logstore, ok
from tests.test_kafka_auth import _plain_login

TIMEOUT = 30
ANY_VALUE: Any = None
"""A filter's "any name / principal / host" (confluent-kafka's stubs say str, its code takes None)."""
EVERYTHING = AclBindingFilter(
    ResourceType.ANY,
    ANY_VALUE,
    ResourcePatternType.ANY,
    ANY_VALUE,
    ANY_VALUE,
    AclOperation.ANY,
    AclPermissionType.ANY,
)
"""A filter matching every ACL binding."""


def per_user(futures: Any) -> dict[str, Any]:
    """describe_user_scram_credentials(users)'s futures by user (the stubs' union hides which)."""
    assert isinstance(futures, dict)
    return futures


def sasl(user: str, password: str | None = None, mechanism: str = "SCRAM-SHA-256") -> dict[str, Any]:
    return {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": mechanism,
        "sasl_plain_username": user,
        "sasl_plain_password": USERS[user] if password is None else password,
    }


def confluent(broker: EmbeddedBroker, user: str) -> AdminClient:
    return AdminClient(
        {
            "bootstrap.servers": broker.kafka_address,
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanisms": "SCRAM-SHA-256",
            "sasl.username": user,
            "sasl.password": USERS[user],
        }
    )


@pytest.fixture
def secured(start_broker: StartBroker, tmp_path: Path) -> EmbeddedBroker:
    make_users(tmp_path / "data")
    broker = start_broker(kafka_port=0, require_auth=True, super_users="User:admin")
    admin = KafkaAdminClient(bootstrap_servers=broker.kafka_address, **sasl("admin"))
    try:
        admin.create_topics([NewTopic("orders", 1, 1)])
    finally:
        admin.close()
    return broker


def acls_list(broker: EmbeddedBroker) -> str:
    return ok(
        logstore(
            "acls",
            "list",
            env={
                "LOGSTORE_BOOTSTRAP": broker.address,
                "LOGSTORE_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "LOGSTORE_SASL_MECHANISM": "PLAIN",
                "LOGSTORE_SASL_USERNAME": "admin",
                "LOGSTORE_SASL_PASSWORD": USERS["admin"],
            },
        )
    )


def send(
    broker: EmbeddedBroker, user: str, password: str | None = None, mechanism: str = "SCRAM-SHA-256"
) -> Any:
    producer = KafkaProducer(
        bootstrap_servers=broker.kafka_address,
        max_block_ms=10_000,
        retries=0,
        **sasl(user, password, mechanism),
    )
    try:
        return producer.send("orders", b"hello").get(15)
    finally:
        producer.close(5)


def plain_login(broker: EmbeddedBroker, user: str, password: str) -> int:
    """The error code of a SASL PLAIN log-in over a raw socket (checked against the stored credential)."""
    with kafka_socket(broker) as sock:
        return int(_plain_login(sock, user, password).error_code)


def test_confluent_kafka_creates_describes_and_deletes_acls_in_the_store_logstore_acls_lists(
    secured: EmbeddedBroker,
) -> None:
    admin = confluent(secured, "admin")
    write = AclBinding(
        ResourceType.TOPIC, "orders", ResourcePatternType.LITERAL, "User:alice", "*",
        AclOperation.WRITE, AclPermissionType.ALLOW,
    )  # fmt: skip
    read = AclBinding(
        ResourceType.GROUP, "bill", ResourcePatternType.PREFIXED, "User:bob", "*",
        AclOperation.READ, AclPermissionType.DENY,
    )  # fmt: skip
    for future in admin.create_acls([write, read], request_timeout=TIMEOUT).values():
        assert future.result() is None
    listed = acls_list(secured)
    assert "User:alice allow Write on topic:orders (literal)" in listed, listed
    assert "User:bob deny Read on group:bill (prefixed)" in listed, listed

    assert set(admin.describe_acls(EVERYTHING, request_timeout=TIMEOUT).result()) == {write, read}
    # MATCH: literal and prefixed patterns that cover the name "billing"
    covering = AclBindingFilter(
        ResourceType.GROUP, "billing", ResourcePatternType.MATCH, ANY_VALUE, ANY_VALUE, AclOperation.ANY,
        AclPermissionType.ANY,
    )  # fmt: skip
    assert admin.describe_acls(covering, request_timeout=TIMEOUT).result() == [read]

    only_alice = AclBindingFilter(
        ResourceType.ANY, ANY_VALUE, ResourcePatternType.ANY, "User:alice", ANY_VALUE, AclOperation.ANY,
        AclPermissionType.ANY,
    )  # fmt: skip
    deleted = admin.delete_acls([only_alice], request_timeout=TIMEOUT)[only_alice].result()
    assert deleted == [write]
    listed = acls_list(secured)
    assert "User:alice" not in listed and "User:bob deny Read" in listed, listed

    # a host other than '*' cannot be held: INVALID_REQUEST
    from_host = AclBinding(
        ResourceType.TOPIC, "orders", ResourcePatternType.LITERAL, "User:alice", "10.0.0.1",
        AclOperation.WRITE, AclPermissionType.ALLOW,
    )  # fmt: skip
    with pytest.raises(KafkaException) as refused:
        admin.create_acls([from_host], request_timeout=TIMEOUT)[from_host].result()
    assert refused.value.args[0].code() == 42, refused.value  # INVALID_REQUEST


def test_a_non_super_user_is_refused_cluster_authorization_failed(secured: EmbeddedBroker) -> None:
    admin = confluent(secured, "alice")
    binding = AclBinding(
        ResourceType.TOPIC, "orders", ResourcePatternType.LITERAL, "User:alice", "*",
        AclOperation.WRITE, AclPermissionType.ALLOW,
    )  # fmt: skip
    with pytest.raises(KafkaException) as refused:
        admin.create_acls([binding], request_timeout=TIMEOUT)[binding].result()
    assert refused.value.args[0].code() == 31  # CLUSTER_AUTHORIZATION_FAILED
    # librdkafka drops DescribeAcls's error code (rd_kafka_DescribeAclsResponse_parse returns no error
    # whatever the code): the refusal reaches it as an empty listing; kafka-python below sees the code
    assert admin.describe_acls(EVERYTHING, request_timeout=TIMEOUT).result() == []
    kp = KafkaAdminClient(bootstrap_servers=secured.kafka_address, **sasl("bob"))
    try:
        with pytest.raises(ClusterAuthorizationFailedError):
            kp.describe_acls(
                ACLFilter(
                    None,
                    None,
                    ACLOperation.ANY,
                    ACLPermissionType.ANY,
                    ResourcePatternFilter(KpResourceType.ANY, None, ACLResourcePatternType.ANY),
                )
            )
        # (librdkafka 2.16 frees a bad pointer on a refused DescribeUserScramCredentials, so kafka-python)
        bobs = UserScramCredentialUpsertionKp("bob", KpScramMechanism.SCRAM_SHA_256, "new", iterations=4096)
        refused_alter = kp.alter_user_scram_credentials([bobs])
        assert "only super-users" in refused_alter["bob"], refused_alter
    finally:
        kp.close()
    assert "User:alice" not in acls_list(secured)


def test_an_acl_made_through_kafka_python_lets_alice_produce_and_deleting_it_stops_her(
    secured: EmbeddedBroker,
) -> None:
    with pytest.raises(TopicAuthorizationFailedError):
        send(secured, "alice")
    admin = KafkaAdminClient(bootstrap_servers=secured.kafka_address, **sasl("admin"))
    try:
        write = ACL(
            "User:alice", "*", ACLOperation.WRITE, ACLPermissionType.ALLOW,
            ResourcePattern(KpResourceType.TOPIC, "orders", ACLResourcePatternType.LITERAL),
        )  # fmt: skip
        created = admin.create_acls([write])
        assert created["failed"] == [] and created["succeeded"] == [write]
        assert send(secured, "alice").offset == 0
        everything = ACLFilter(
            None, None, ACLOperation.ANY, ACLPermissionType.ANY,
            ResourcePatternFilter(KpResourceType.ANY, None, ACLResourcePatternType.ANY),
        )  # fmt: skip
        described, error = admin.describe_acls(everything)
        assert described == [write] and error.errno == 0
        [(_, matched, error)] = admin.delete_acls([everything])
        assert matched == [write] and error.errno == 0
    finally:
        admin.close()
    with pytest.raises(TopicAuthorizationFailedError):
        send(secured, "alice")


def test_without_require_auth_acl_apis_answer_security_disabled(start_broker: StartBroker) -> None:
    broker = start_broker(kafka_port=0)
    admin = KafkaAdminClient(bootstrap_servers=broker.kafka_address)
    try:
        with pytest.raises(SecurityDisabledError):
            admin.describe_acls(
                ACLFilter(
                    None,
                    None,
                    ACLOperation.ANY,
                    ACLPermissionType.ANY,
                    ResourcePatternFilter(KpResourceType.ANY, None, ACLResourcePatternType.ANY),
                )
            )
    finally:
        admin.close()


def test_a_user_made_with_alter_user_scram_credentials_logs_in_and_shows_in_logstore_users(
    secured: EmbeddedBroker, start_broker: StartBroker
) -> None:
    admin = confluent(secured, "admin")
    carol = UserScramCredentialUpsertion(
        "carol", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 8192), b"carol-secret"
    )
    assert admin.alter_user_scram_credentials([carol], request_timeout=TIMEOUT)["carol"].result() is None
    described = per_user(admin.describe_user_scram_credentials(["carol"], request_timeout=TIMEOUT))[
        "carol"
    ].result()
    infos = described.scram_credential_infos
    assert [(i.mechanism, i.iterations) for i in infos] == [(ScramMechanism.SCRAM_SHA_256, 8192)]
    with pytest.raises(KafkaException) as unknown:
        per_user(admin.describe_user_scram_credentials(["nobody"], request_timeout=TIMEOUT))[
            "nobody"
        ].result()
    assert unknown.value.args[0].code() == 91  # RESOURCE_NOT_FOUND

    kp = KafkaAdminClient(bootstrap_servers=secured.kafka_address, **sasl("admin"))
    try:
        write = ACL(
            "User:carol", "*", ACLOperation.WRITE, ACLPermissionType.ALLOW,
            ResourcePattern(KpResourceType.TOPIC, "orders", ACLResourcePatternType.LITERAL),
        )  # fmt: skip
        assert kp.create_acls([write])["failed"] == []
    finally:
        kp.close()
    assert send(secured, "carol", "carol-secret").offset == 0
    assert plain_login(secured, "carol", "carol-secret") == 0
    assert plain_login(secured, "carol", "wrong") == 58  # SASL_AUTHENTICATION_FAILED

    too_few = UserScramCredentialUpsertion(
        "dave", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 1000), b"dave-secret"
    )
    with pytest.raises(KafkaException) as refused:
        admin.alter_user_scram_credentials([too_few], request_timeout=TIMEOUT)["dave"].result()
    assert refused.value.args[0].code() == 93  # UNACCEPTABLE_CREDENTIAL

    deletion = UserScramCredentialDeletion("carol", ScramMechanism.SCRAM_SHA_256)
    assert admin.alter_user_scram_credentials([deletion], request_timeout=TIMEOUT)["carol"].result() is None
    with pytest.raises(KafkaException) as gone:
        admin.alter_user_scram_credentials([deletion], request_timeout=TIMEOUT)["carol"].result()
    assert gone.value.args[0].code() == 91  # RESOURCE_NOT_FOUND
    assert plain_login(secured, "carol", "carol-secret") == 58  # no credential left: no user


def test_alter_user_scram_credentials_writes_the_users_file_the_offline_tool_reads(
    secured: EmbeddedBroker, tmp_path: Path
) -> None:
    admin = confluent(secured, "admin")
    erin = UserScramCredentialUpsertion(
        "erin", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), b"erin-secret"
    )
    assert admin.alter_user_scram_credentials([erin], request_timeout=TIMEOUT)["erin"].result() is None
    secured.stop()
    listed = ok(logstore("users", "list", "--data-dir", str(tmp_path / "data")))
    assert "erin\tSCRAM-SHA-512 (iterations 4096)" in listed, listed
    assert "erin-secret" not in (tmp_path / "data" / "users.json").read_text()


def test_over_sasl_ssl_a_scram_user_and_an_acl_made_through_kafka_let_it_produce(
    start_broker: StartBroker, tmp_path: Path
) -> None:
    from tests.test_security_together import secured_tls
    from tests.test_tls import make_pki

    pki = make_pki(tmp_path / "pki")
    broker = secured_tls(start_broker, tmp_path, pki, [], mutual=False)
    admin = AdminClient(
        {
            "bootstrap.servers": broker.kafka_address,
            "security.protocol": "SASL_SSL",
            "ssl.ca.location": pki.cafile,
            "sasl.mechanisms": "SCRAM-SHA-512",
            "sasl.username": "admin",
            "sasl.password": USERS["admin"],
        }
    )
    frank = UserScramCredentialUpsertion(
        "frank", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), USERS["alice"].encode()
    )
    assert admin.alter_user_scram_credentials([frank], request_timeout=TIMEOUT)["frank"].result() is None
    write = AclBinding(
        ResourceType.TOPIC, "ord", ResourcePatternType.PREFIXED, "User:frank", "*",
        AclOperation.WRITE, AclPermissionType.ALLOW,
    )  # fmt: skip
    assert admin.create_acls([write], request_timeout=TIMEOUT)[write].result() is None
    producer = KafkaProducer(
        bootstrap_servers=broker.kafka_address,
        security_protocol="SASL_SSL",
        ssl_cafile=pki.cafile,
        sasl_mechanism="SCRAM-SHA-256",
        sasl_plain_username="frank",
        sasl_plain_password=USERS["alice"],
        max_block_ms=10_000,
        retries=0,
    )
    try:
        assert producer.send("orders", b"over tls").get(15).offset == 0
        with pytest.raises(TopicAuthorizationFailedError):
            producer.send("secret", b"not allowed").get(15)
    finally:
        producer.close(5)


def test_kafka_python_upserts_describes_and_deletes_scram_credentials(secured: EmbeddedBroker) -> None:
    from kafka.admin import UserScramCredentialDeletion as DeletionKp

    admin = KafkaAdminClient(bootstrap_servers=secured.kafka_address, **sasl("admin"))
    try:
        both = [
            UserScramCredentialUpsertionKp(
                "gina", KpScramMechanism.SCRAM_SHA_256, "gina-pw", iterations=4096
            ),
            UserScramCredentialUpsertionKp(
                "gina", KpScramMechanism.SCRAM_SHA_512, "gina-pw", iterations=5000
            ),
        ]
        assert admin.alter_user_scram_credentials(both) == {"gina": None}
        described = admin.describe_user_scram_credentials(["gina"])["gina"]
        assert described == {
            "error": None,
            "credential_infos": [
                {"mechanism": KpScramMechanism.SCRAM_SHA_256, "iterations": 4096},
                {"mechanism": KpScramMechanism.SCRAM_SHA_512, "iterations": 5000},
            ],
        }
        assert set(admin.describe_user_scram_credentials()) == {"admin", "alice", "bob", "gina"}
        twice = admin.alter_user_scram_credentials(
            [both[0], DeletionKp("gina", KpScramMechanism.SCRAM_SHA_256)]
        )
        assert "twice" in str(twice["gina"])  # DUPLICATE_RESOURCE: nothing of gina's changed
        assert admin.alter_user_scram_credentials([DeletionKp("gina", KpScramMechanism.SCRAM_SHA_256)]) == {
            "gina": None
        }
        left = admin.describe_user_scram_credentials(["gina"])["gina"]["credential_infos"]
        assert left == [{"mechanism": KpScramMechanism.SCRAM_SHA_512, "iterations": 5000}]
    finally:
        admin.close()
    assert plain_login(secured, "gina", "gina-pw") == 0  # PLAIN checks against the SCRAM-SHA-512 one
