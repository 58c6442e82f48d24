"""ShareFetch checks Read on the member's topics at every fetch, over both listeners: an ACL removed after
the member joined stops its deliveries at its next fetch (TOPIC_AUTHORIZATION_FAILED)."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from kafka import KafkaProducer
from logstore.broker.embedded import EmbeddedBroker
from logstore.client import AclBinding, Admin
from logstore.wire.logstore.v1 import share_pb2, share_pb2_grpc

from tests.auth_helpers import USERS, acl, as_user, credentials, make_users
from tests.conftest import StartBroker
from tests.kafka_wire import kafka_socket
from tests.test_kafka_auth import _plain_login
from tests.test_kafka_share_wire import fetch_topic, join, share_fetch, topic_id

TOPIC_AUTHORIZATION_FAILED = 29
READ_JOBS = AclBinding("User:alice", "Read", "topic", "jobs")


@pytest.fixture
def secured(start_broker: StartBroker, tmp_path: Path) -> EmbeddedBroker:
    make_users(
        tmp_path / "data", [acl("User:alice", "Read", "g", "group"), acl("User:alice", "Read", "jobs")]
    )
    broker = start_broker(kafka_port=0, require_auth=True, super_users="User:admin")
    with Admin(broker.address, **credentials("admin")) as admin:
        admin.create_topic("jobs", 1)
    return broker


def produce(broker: EmbeddedBroker, value: bytes) -> None:
    producer = KafkaProducer(
        bootstrap_servers=broker.kafka_address,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_plain_username="admin",
        sasl_plain_password=USERS["admin"],
    )
    try:
        producer.send("jobs", value).get(15)
    finally:
        producer.close(5)


def revoke(broker: EmbeddedBroker) -> None:
    with Admin(broker.address, **credentials("admin")) as admin:
        assert admin.delete_acls([READ_JOBS]) == [READ_JOBS]


def test_kafka_share_fetch_is_refused_for_a_topic_whose_read_acl_went_after_the_join(
    secured: EmbeddedBroker,
) -> None:
    with kafka_socket(secured) as sock:
        assert _plain_login(sock, "alice", USERS["alice"]).error_code == 0
        jobs = topic_id(sock, "jobs")
        assert join(sock, "g", "m1").error_code == 0
        opened = share_fetch(sock, "g", "m1", 0, (fetch_topic(jobs, 0),))
        assert opened.error_code == 0 and opened.responses[0].partitions[0].error_code == 0
        produce(secured, b"one")
        first = share_fetch(sock, "g", "m1", 1)
        [partition] = first.responses[0].partitions
        assert partition.error_code == 0 and partition.acquired_records, first
        offset = partition.acquired_records[0].first_offset
        revoke(secured)
        produce(secured, b"two")
        refused = share_fetch(sock, "g", "m1", 2, (fetch_topic(jobs, 0, ((offset, offset, (1,)),)),))
        [partition] = refused.responses[0].partitions
        assert partition.error_code == TOPIC_AUTHORIZATION_FAILED, refused
        assert partition.acknowledge_error_code == TOPIC_AUTHORIZATION_FAILED, refused  # the accept too
        assert not partition.acquired_records and not partition.records


def test_grpc_share_fetch_is_refused_once_the_read_acl_is_gone(secured: EmbeddedBroker) -> None:
    alice = as_user("alice")
    with grpc.insecure_channel(secured.address) as channel:
        share = share_pb2_grpc.ShareServiceStub(channel)
        joined = share.ShareHeartbeat(
            share_pb2.ShareHeartbeatRequest(group_id="g", member_epoch=0, topic_names=["jobs"]),
            metadata=alice,
        )
        assert joined.error_code == 0 and joined.member_id
        request = share_pb2.ShareFetchRequest(group_id="g", member_id=joined.member_id, max_wait_ms=5000)
        first = share_pb2.ShareFetchRequest(group_id="g", member_id=joined.member_id, max_wait_ms=0)
        assert share.ShareFetch(first, metadata=alice).error_code == 0  # the share-partition starts here
        produce(secured, b"one")
        fetched = share.ShareFetch(request, metadata=alice)
        assert fetched.error_code == 0 and [p.topic for p in fetched.partitions] == ["jobs"], fetched
        revoke(secured)
        produce(secured, b"two")
        with pytest.raises(grpc.RpcError) as refused:
            share.ShareFetch(request, metadata=alice)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "not authorized to Read topic 'jobs'" in str(refused.value.details())
