"""A broker with --require-auth over gRPC: who may call, what each call needs, and what is refused."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from logstore.broker.embedded import EmbeddedBroker
from logstore.client import AclBinding, Admin
from logstore.client.shared.errors import ClusterAuthorizationFailedError
from logstore.wire.logstore.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    common_pb2,
    fetch_pb2,
    fetch_pb2_grpc,
    group_pb2,
    group_pb2_grpc,
    produce_pb2,
    produce_pb2_grpc,
)

from logstore.records import build_batch
from tests.auth_helpers import USERS, acl, as_user, basic, credentials, make_users
from tests.conftest import StartBroker
from tests.test_broker_metrics import scrape, value

Metadata = tuple[tuple[str, str], ...]


class Calls:
    """Raw stubs over one channel; each call names the metadata it sends."""

    def __init__(self, address: str) -> None:
        self.channel = grpc.insecure_channel(address)
        self.admin = admin_pb2_grpc.AdminServiceStub(self.channel)
        self.produce_stub = produce_pb2_grpc.ProduceServiceStub(self.channel)
        self.fetch_stub = fetch_pb2_grpc.FetchServiceStub(self.channel)
        self.groups = group_pb2_grpc.GroupServiceStub(self.channel)

    def produce(self, metadata: Metadata, topic: str = "orders", records: bytes | None = None) -> Any:
        data = produce_pb2.ProducePartitionData(
            topic=topic, partition=0, records=records or build_batch([b"x"])
        )
        request = produce_pb2.ProduceRequest(acks=produce_pb2.ACKS_ALL, partitions=[data])
        return self.produce_stub.Produce(request, metadata=metadata).results[0]

    def fetch(self, metadata: Metadata, topic: str = "orders") -> Any:
        request = fetch_pb2.FetchRequest(
            partitions=[fetch_pb2.FetchPartition(topic=topic, partition=0, offset=0)], max_wait_ms=0
        )
        return self.fetch_stub.Fetch(request, metadata=metadata).results[0]

    def commit(self, metadata: Metadata, group: str = "billing", topic: str = "orders") -> Any:
        request = group_pb2.CommitOffsetsRequest(
            group_id=group,
            member_epoch=-1,
            offsets=[group_pb2.OffsetCommit(topic=topic, partition=0, offset=0)],
        )
        return self.groups.CommitOffsets(request, metadata=metadata)

    def create(self, metadata: Metadata, name: str = "fresh") -> Any:
        return self.admin.CreateTopic(
            admin_pb2.CreateTopicRequest(name=name, partitions=1), metadata=metadata
        )

    def delete(self, metadata: Metadata, name: str = "orders") -> Any:
        return self.admin.DeleteTopic(admin_pb2.DeleteTopicRequest(name=name), metadata=metadata)

    def describe(self, metadata: Metadata, name: str = "orders") -> Any:
        return self.admin.DescribeTopic(admin_pb2.DescribeTopicRequest(name=name), metadata=metadata)

    def list_topics(self, metadata: Metadata) -> list[str]:
        return [
            t.name for t in self.admin.ListTopics(admin_pb2.ListTopicsRequest(), metadata=metadata).topics
        ]


@pytest.fixture
def secured(start_broker: StartBroker, tmp_path: Path) -> Callable[..., EmbeddedBroker]:
    """A broker with auth on, users made offline first, and topic `orders` created by the admin."""

    def start(acls: list = (), **settings: Any) -> EmbeddedBroker:  # type: ignore[assignment]
        make_users(tmp_path / "data", list(acls))
        broker = start_broker(require_auth=True, super_users="User:admin", **settings)
        calls = Calls(broker.address)
        calls.create(as_user("admin"), "orders")
        calls.channel.close()
        return broker

    return start


@pytest.fixture
def calls(secured: Callable[..., EmbeddedBroker]) -> Calls:
    broker = secured()
    c = Calls(broker.address)
    c.broker = broker  # type: ignore[attr-defined]
    return c


def refused(call: Callable[[], Any], status: grpc.StatusCode) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    assert caught.value.code() == status, caught.value.details()
    return caught.value


def trailer_code(error: grpc.RpcError) -> int:
    metadata: Any = error.trailing_metadata()
    return int(dict(metadata)["logstore-error-code"])


def details(error: grpc.RpcError) -> str:
    return str(error.details())


def test_a_call_without_credentials_is_unauthenticated(calls: Calls) -> None:
    for call in (lambda: calls.produce(()), lambda: calls.list_topics(()), lambda: calls.fetch(())):
        error = refused(call, grpc.StatusCode.UNAUTHENTICATED)
        assert "authentication is required" in details(error)
        assert trailer_code(error) == common_pb2.ERROR_CODE_SASL_AUTHENTICATION_FAILED
    garbled = (("authorization", "Basic !!!"),)
    refused(lambda: calls.list_topics(garbled), grpc.StatusCode.UNAUTHENTICATED)
    refused(lambda: calls.list_topics((("authorization", "Bearer abc"),)), grpc.StatusCode.UNAUTHENTICATED)


def test_a_wrong_password_and_an_unknown_user_are_refused_alike_and_counted(
    calls: Calls, caplog: pytest.LogCaptureFixture
) -> None:
    security = calls.broker.server.security  # type: ignore[attr-defined]
    before = security.failures["grpc"]
    wrong = refused(lambda: calls.list_topics(basic("alice", "guess")), grpc.StatusCode.UNAUTHENTICATED)
    unknown = refused(lambda: calls.list_topics(basic("mallory", "guess")), grpc.StatusCode.UNAUTHENTICATED)
    assert details(wrong) == details(unknown) == "authentication failed: wrong user name or password"
    assert security.failures["grpc"] == before + 2
    refused(lambda: calls.list_topics(()), grpc.StatusCode.UNAUTHENTICATED)
    samples = scrape(calls.broker)  # type: ignore[attr-defined]
    assert value(samples, "logstore_authentication_failures_total", listener="grpc", mechanism="basic") == 2
    assert value(samples, "logstore_authentication_failures_total", listener="grpc", mechanism="none") == 1
    lines = [r.getMessage() for r in caplog.records if r.name == "logstore.broker.auth"]
    assert any("failed log-in over grpc from" in line and "127.0.0.1" in line for line in lines), lines
    assert not any("guess" in line for line in lines)
    assert calls.list_topics(as_user("alice")) == []  # the right password still works afterwards


def test_a_user_without_acls_is_refused_every_call_naming_operation_and_resource(calls: Calls) -> None:
    alice = as_user("alice")
    cases = {
        "produce": (lambda: calls.produce(alice), "Write topic 'orders'", "TOPIC"),
        "fetch": (lambda: calls.fetch(alice), "Read topic 'orders'", "TOPIC"),
        "commit": (lambda: calls.commit(alice), "Read group 'billing'", "GROUP"),
        "create": (lambda: calls.create(alice), "Create topic 'fresh'", "TOPIC"),
        "delete": (lambda: calls.delete(alice), "Delete topic 'orders'", "TOPIC"),
        "describe": (lambda: calls.describe(alice), "Describe topic 'orders'", "TOPIC"),
    }
    for name, (call, words, kind) in cases.items():
        error = refused(call, grpc.StatusCode.PERMISSION_DENIED)
        assert f"User:alice is not authorized to {words}" in details(error), name
        assert trailer_code(error) == getattr(common_pb2, f"ERROR_CODE_{kind}_AUTHORIZATION_FAILED"), name
    assert calls.list_topics(alice) == []  # a topic alice may not describe is not listed
    assert calls.list_topics(as_user("admin")) == ["orders"]


def test_with_the_acls_every_call_works(secured: Callable[..., EmbeddedBroker]) -> None:
    acls = [
        acl("User:alice", "Write", "orders"),
        acl("User:alice", "Read", "orders"),
        acl("User:alice", "Read", "billing", "group"),
        acl("User:alice", "Create", "fresh"),
        acl("User:alice", "Delete", "fresh"),
    ]
    calls = Calls(secured(acls).address)
    alice = as_user("alice")
    assert calls.produce(alice).error_code == common_pb2.ERROR_CODE_NONE
    assert calls.fetch(alice).error_code == common_pb2.ERROR_CODE_NONE
    assert calls.commit(alice).error_code == common_pb2.ERROR_CODE_NONE
    assert calls.describe(alice).topic.name == "orders"  # Read and Write imply Describe
    assert calls.create(alice).topic.name == "fresh"
    assert calls.list_topics(alice) == ["fresh", "orders"]
    calls.delete(alice, "fresh")
    assert calls.list_topics(alice) == ["orders"]
    refused(lambda: calls.delete(alice, "orders"), grpc.StatusCode.PERMISSION_DENIED)


def test_deny_beats_allow(secured: Callable[..., EmbeddedBroker]) -> None:
    acls = [
        acl("User:*", "All", "orders"),
        acl("User:alice", "Write", "orders", permission="deny"),
    ]
    calls = Calls(secured(acls).address)
    refused(lambda: calls.produce(as_user("alice")), grpc.StatusCode.PERMISSION_DENIED)
    assert calls.fetch(as_user("alice")).error_code == common_pb2.ERROR_CODE_NONE
    assert calls.produce(as_user("bob")).error_code == common_pb2.ERROR_CODE_NONE


def test_prefixed_acls_cover_the_names_under_the_prefix(secured: Callable[..., EmbeddedBroker]) -> None:
    calls = Calls(secured([acl("User:alice", "All", "team-a.", pattern="prefixed")]).address)
    admin, alice = as_user("admin"), as_user("alice")
    for name in ("team-a.orders", "team-b.orders"):
        calls.create(admin, name)
    assert calls.produce(alice, "team-a.orders").error_code == common_pb2.ERROR_CODE_NONE
    refused(lambda: calls.produce(alice, "team-b.orders"), grpc.StatusCode.PERMISSION_DENIED)
    assert calls.list_topics(alice) == ["team-a.orders"]
    assert calls.create(alice, "team-a.new").topic.name == "team-a.new"


def test_a_write_to_a_missing_topic_needs_create_too(secured: Callable[..., EmbeddedBroker]) -> None:
    calls = Calls(secured([acl("User:alice", "Write", "*")]).address)
    error = refused(lambda: calls.produce(as_user("alice"), "newtopic"), grpc.StatusCode.PERMISSION_DENIED)
    assert "Create topic 'newtopic'" in details(error)
    assert calls.list_topics(as_user("admin")) == ["orders"]


def test_internal_topics_are_never_writable_even_by_a_super_user(calls: Calls) -> None:
    result = calls.produce(as_user("admin"), "__consumer_offsets")
    assert result.error_code == common_pb2.ERROR_CODE_INVALID_TOPIC


def test_a_batch_under_another_principals_producer_id_is_refused(
    secured: Callable[..., EmbeddedBroker],
) -> None:
    calls = Calls(secured([acl("User:*", "Write", "orders")]).address)
    request = produce_pb2.InitProducerIdRequest()
    mine = calls.produce_stub.InitProducerId(request, metadata=as_user("alice")).producer_id
    batch = build_batch([b"x"], producer_id=mine, producer_epoch=0, base_sequence=0)
    error = refused(lambda: calls.produce(as_user("bob"), records=batch), grpc.StatusCode.PERMISSION_DENIED)
    assert f"producer id {mine}" in details(error)
    assert calls.produce(as_user("alice"), records=batch).error_code == common_pb2.ERROR_CODE_NONE


def test_users_and_acls_are_managed_by_super_users_only_through_admin(calls: Calls) -> None:
    address = calls.broker.address  # type: ignore[attr-defined]
    with Admin(address, **credentials("admin")) as admin:
        admin.create_user("carol", "carol-secret")
        assert {u.name for u in admin.list_users()} == {*USERS, "carol"}
        admin.create_acls([AclBinding("User:carol", "Write", "topic", "orders")])
        assert admin.describe_acls() == [
            AclBinding("User:carol", "Write", "topic", "orders", "literal", "allow")
        ]
    assert calls.produce(basic("carol", "carol-secret")).error_code == common_pb2.ERROR_CODE_NONE
    with Admin(address, **credentials("alice")) as alice:
        for action in (
            lambda: alice.list_users(),
            lambda: alice.create_user("eve", "x"),
            lambda: alice.create_acls([AclBinding("User:alice", "All", "topic", "*")]),
            lambda: alice.describe_acls(),
        ):
            with pytest.raises(ClusterAuthorizationFailedError, match="only super-users"):
                action()
    with Admin(address, **credentials("admin")) as admin:
        admin.alter_user("carol", "new-secret")
        refused(lambda: calls.produce(basic("carol", "carol-secret")), grpc.StatusCode.UNAUTHENTICATED)
        assert calls.produce(basic("carol", "new-secret")).error_code == common_pb2.ERROR_CODE_NONE
        removed = admin.delete_acls([AclBinding("User:carol", "Write", "topic", "orders")])
        assert [a.principal for a in removed] == ["User:carol"]
        refused(lambda: calls.produce(basic("carol", "new-secret")), grpc.StatusCode.PERMISSION_DENIED)
        admin.delete_user("carol")
        refused(lambda: calls.produce(basic("carol", "new-secret")), grpc.StatusCode.UNAUTHENTICATED)


def test_users_and_acls_survive_a_restart(start_broker: StartBroker, tmp_path: Path) -> None:
    make_users(tmp_path / "data")
    broker = start_broker(require_auth=True, super_users="User:admin")
    with Admin(broker.address, **credentials("admin")) as admin:
        admin.create_topic("orders", 1)
        admin.create_acls([AclBinding("User:alice", "Write", "topic", "orders")])
        admin.create_user("dave", "dave-secret")
    broker.stop()
    broker = start_broker(require_auth=True, super_users="User:admin")
    calls = Calls(broker.address)
    assert calls.produce(as_user("alice")).error_code == common_pb2.ERROR_CODE_NONE
    refused(lambda: calls.produce(basic("dave", "dave-secret")), grpc.StatusCode.PERMISSION_DENIED)


def test_streams_groups_and_listings_follow_the_acls(secured: Callable[..., EmbeddedBroker]) -> None:
    calls = Calls(secured([acl("User:alice", "Read", "billing", "group")]).address)
    admin, alice = as_user("admin"), as_user("alice")
    for group in ("billing", "audit"):
        assert calls.commit(admin, group).error_code == common_pb2.ERROR_CODE_NONE
    listed = calls.groups.ListGroups(group_pb2.ListGroupsRequest(), metadata=alice).groups
    assert [g.group_id for g in listed] == ["billing"]  # Read implies Describe; audit is not listed
    offsets = group_pb2.FetchOffsetsRequest(group_id="billing")
    assert [o.topic for o in calls.groups.FetchOffsets(offsets, metadata=admin).offsets] == ["orders"]
    assert list(calls.groups.FetchOffsets(offsets, metadata=alice).offsets) == []  # orders: no Describe
    error = refused(
        lambda: calls.groups.DescribeGroup(group_pb2.DescribeGroupRequest(group_id="audit"), metadata=alice),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    assert "Describe group 'audit'" in details(error)
    heartbeat = group_pb2.HeartbeatRequest(
        group_id="billing", member_epoch=0, subscription=group_pb2.Subscription(topic_names=["orders"])
    )
    error = refused(
        lambda: calls.groups.Heartbeat(heartbeat, metadata=alice), grpc.StatusCode.PERMISSION_DENIED
    )
    assert "Describe topic 'orders'" in details(error)
    subscribe = fetch_pb2.SubscribeRequest(
        partitions=[fetch_pb2.SubscribePartition(topic="orders", partition=0)]
    )
    stream = calls.fetch_stub.Subscribe(subscribe, metadata=alice)
    error = refused(lambda: next(iter(stream)), grpc.StatusCode.PERMISSION_DENIED)
    assert "Read topic 'orders'" in details(error)
    refused(lambda: next(iter(calls.fetch_stub.Subscribe(subscribe))), grpc.StatusCode.UNAUTHENTICATED)


def test_the_principal_of_a_client_certificate_is_its_subject() -> None:
    from logstore.broker.service.principal import principal_from_auth_context

    assert principal_from_auth_context({"x509_subject": [b"CN=alice,O=acme"]}) == "User:CN=alice,O=acme"
    assert principal_from_auth_context({"transport_security_type": [b"ssl"]}) is None


def test_a_share_group_needs_read_on_the_group_and_its_topics(secured: Callable[..., EmbeddedBroker]) -> None:
    from logstore.wire.logstore.v1 import share_pb2, share_pb2_grpc

    calls = Calls(secured([acl("User:alice", "Read", "workers", "group")]).address)
    stub = share_pb2_grpc.ShareServiceStub(calls.channel)
    request = share_pb2.ShareHeartbeatRequest(
        group_id="workers", member_id="m1", member_epoch=0, topic_names=["orders"]
    )
    error = refused(
        lambda: stub.ShareHeartbeat(request, metadata=as_user("alice")), grpc.StatusCode.PERMISSION_DENIED
    )
    assert "Read topic 'orders'" in details(error)
    request.group_id = "others"
    error = refused(
        lambda: stub.ShareHeartbeat(request, metadata=as_user("alice")), grpc.StatusCode.PERMISSION_DENIED
    )
    assert "Read group 'others'" in details(error)
    request.group_id = "workers"
    answer = stub.ShareHeartbeat(request, metadata=as_user("admin"))
    assert answer.error_code == common_pb2.ERROR_CODE_NONE


def test_every_call_has_an_authorization_rule() -> None:
    from logstore.broker.service import ADMIN, FETCH, GROUP, PRODUCE, REPLICATION, SHARE
    from logstore.broker.service.guard import RULES

    services = (ADMIN, PRODUCE, FETCH, GROUP, SHARE, REPLICATION)
    wanted = {(s.full_name, m.name) for s in services for m in s.methods}
    have = {(service, method) for service, rules in RULES.items() for method in rules}
    assert wanted - have == set(), "give these a Rule in broker/service/guard.py"
    assert have - wanted == set(), "these rules name no call"


def test_the_python_producer_and_a_group_consumer_work_with_exactly_their_acls(
    secured: Callable[..., EmbeddedBroker],
) -> None:
    from logstore.client import Consumer, Producer

    broker = secured(
        [
            acl("User:alice", "Write", "orders"),
            acl("User:bob", "Read", "orders"),
            acl("User:bob", "Read", "billing", "group"),
        ]
    )
    with Producer(broker.address, **credentials("alice")) as producer:
        for i in range(10):
            producer.send("orders", b"%d" % i)
        producer.flush()
    with Consumer(
        "orders",
        bootstrap=broker.address,
        group_id="billing",
        auto_offset_reset="earliest",
        **credentials("bob"),
    ) as consumer:
        values: list[bytes | None] = []
        while len(values) < 10:
            for records in consumer.poll(timeout_ms=10_000).values():
                values.extend(r.value for r in records)
        consumer.commit()
    assert values == [b"%d" % i for i in range(10)]
    calls = Calls(broker.address)
    answer = calls.groups.FetchOffsets(
        group_pb2.FetchOffsetsRequest(group_id="billing"), metadata=as_user("admin")
    )
    assert [(o.topic, o.offset) for o in answer.offsets] == [("orders", 10)]


def test_a_produce_stream_is_authenticated_and_each_request_on_it_checked_as_a_produce(
    secured: Callable[..., EmbeddedBroker],
) -> None:
    broker = secured([acl("User:alice", "Write", "orders")])
    calls = Calls(broker.address)
    calls.create(as_user("admin"), "secret")

    def request(request_id: int, topic: str) -> produce_pb2.ProduceStreamRequest:
        data = produce_pb2.ProducePartitionData(topic=topic, partition=0, records=build_batch([b"x"]))
        return produce_pb2.ProduceStreamRequest(
            request_id=request_id,
            request=produce_pb2.ProduceRequest(acks=produce_pb2.ACKS_ALL, partitions=[data]),
        )

    answers = list(
        calls.produce_stub.ProduceStream(
            iter([request(1, "orders"), request(2, "secret"), request(3, "orders")]),
            metadata=as_user("alice"),
        )
    )
    assert [a.request_id for a in answers] == [1, 2, 3]
    assert [a.response.results[0].error_code for a in (answers[0], answers[2])] == [0, 0]
    refused_in_place = answers[1]
    assert common_pb2.ERROR_CODE_TOPIC_AUTHORIZATION_FAILED in (
        refused_in_place.error_code,
        *(r.error_code for r in refused_in_place.response.results),
    )
    assert [r.base_offset for r in (answers[0].response.results[0], answers[2].response.results[0])] == [0, 1]
    no_one = calls.produce_stub.ProduceStream(iter([request(1, "orders")]))
    refused(lambda: list(no_one), grpc.StatusCode.UNAUTHENTICATED)
    calls.channel.close()


def test_a_producer_without_credentials_is_told_so_at_once_not_after_retrying(
    secured: Callable[..., EmbeddedBroker],
) -> None:
    from logstore.client import Producer
    from logstore.client.shared.errors import AuthenticationFailedError

    broker = secured()
    for transport in ("stream", "unary"):
        with (
            Producer(broker.address, produce_transport=transport) as producer,
            pytest.raises(AuthenticationFailedError),  # its first look at the topic is refused
        ):
            producer.send("orders", b"x").get(timeout=30)
