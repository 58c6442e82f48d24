"""Producer-id bindings (the principal that owns each idempotent producer id): kept in the data
directory across restarts, bounded, and enforced by a restarted broker."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest
from kafka.protocol.producer import ProduceResponse
from logstore.broker.auth.producer_owners import FILE_NAME, ProducerOwners
from logstore.broker.domain.errors import SecurityStoreError
from logstore.wire.logstore.v1 import produce_pb2, produce_pb2_grpc

from logstore.records import build_batch
from tests.auth_helpers import USERS, acl, as_user, make_users
from tests.conftest import StartBroker
from tests.kafka_wire import kafka_socket, receive, send_request
from tests.test_kafka_auth import _plain_login
from tests.test_kafka_data_path import produce_request


def test_bindings_survive_a_reopen_and_the_file_is_the_owners_only(tmp_path: Path) -> None:
    owners = ProducerOwners(tmp_path)
    assert owners.bind(7, "User:alice") == "User:alice"
    assert owners.bind(7, "User:bob") == "User:alice"  # the first holder keeps it
    again = ProducerOwners(tmp_path)
    assert again.owner(7) == "User:alice" and again.bind(7, "User:bob") == "User:alice"
    assert (tmp_path / FILE_NAME).stat().st_mode & 0o777 == 0o600


def test_at_most_limit_bindings_are_kept_the_one_unused_longest_goes(tmp_path: Path) -> None:
    owners = ProducerOwners(tmp_path, limit=3)
    for producer_id in range(3):
        owners.bind(producer_id, f"User:u{producer_id}")
    owners.bind(0, "User:someone")  # used: 0 is now the most recent
    owners.bind(3, "User:u3")
    assert [owners.owner(i) for i in range(4)] == ["User:u0", None, "User:u2", "User:u3"]
    for producer_id in range(4, 20):  # the journal is compacted as it grows past 2 x limit
        owners.bind(producer_id, f"User:u{producer_id}")
    assert len(owners) == 3
    lines = (tmp_path / FILE_NAME).read_text().splitlines()
    assert len(lines) <= 6
    reopened = ProducerOwners(tmp_path, limit=3)
    assert [reopened.owner(i) for i in (17, 18, 19)] == ["User:u17", "User:u18", "User:u19"]
    assert reopened.owner(16) is None


def test_a_last_line_cut_short_is_dropped_and_a_damaged_one_refuses_the_start(tmp_path: Path) -> None:
    path = tmp_path / FILE_NAME
    path.write_text(json.dumps([1, "User:alice"]) + "\n" + '[2, "User:b')
    owners = ProducerOwners(tmp_path)
    assert owners.owner(1) == "User:alice" and owners.owner(2) is None
    assert path.read_text() == '[1,"User:alice"]\n'  # compacted without the torn line
    path.write_text("nonsense\n" + json.dumps([1, "User:alice"]) + "\n")
    with pytest.raises(SecurityStoreError, match="line 1 is not a producer id binding"):
        ProducerOwners(tmp_path)


def test_a_restarted_broker_still_refuses_another_principals_batch_under_a_bound_id(
    start_broker: StartBroker, tmp_path: Path
) -> None:
    make_users(tmp_path / "data", [acl("User:*", "Write", "orders")])
    settings = {"kafka_port": 0, "require_auth": True, "super_users": "User:admin"}
    broker = start_broker(**settings)
    with grpc.insecure_channel(broker.address) as channel:
        from logstore.wire.logstore.v1 import admin_pb2, admin_pb2_grpc

        admin_pb2_grpc.AdminServiceStub(channel).CreateTopic(
            admin_pb2.CreateTopicRequest(name="orders", partitions=1), metadata=as_user("admin")
        )
        alices = (
            produce_pb2_grpc.ProduceServiceStub(channel)
            .InitProducerId(produce_pb2.InitProducerIdRequest(), metadata=as_user("alice"))
            .producer_id
        )
    broker.stop()
    broker = start_broker(**settings)  # the same data directory
    batch = build_batch([b"x"], producer_id=alices, producer_epoch=0, base_sequence=0)
    for user, expected in (("bob", 31), ("alice", 0)):  # bob first: CLUSTER_AUTHORIZATION_FAILED
        with kafka_socket(broker) as sock:
            assert _plain_login(sock, user, USERS[user]).error_code == 0
            send_request(sock, produce_request("orders", batch, -1, 0), 3)
            answer = ProduceResponse.decode(receive(sock)[1], version=7).responses[0].partition_responses[0]
            assert answer.error_code == expected, user
