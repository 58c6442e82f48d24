"""The server's lifecycle: health checking, reflection, clean shutdown with calls in flight, logging."""

from __future__ import annotations

import logging
import platform

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from logstore.broker.embedded import EmbeddedBroker
from logstore.broker.malloc import keep_large_buffers
from logstore.broker.server import BindError
from logstore.wire.logstore.v1 import admin_pb2, fetch_pb2, produce_pb2

from logstore.manager import CLEAN_SHUTDOWN_MARKER
from logstore.records import build_batch, iter_records
from tests.waiting import broker_waiters, wait_until


def test_standard_health_checking_reports_serving(broker, stubs) -> None:
    health = health_pb2_grpc.HealthStub(stubs.channel)
    for service in ("", "logstore.v1.ProduceService", "logstore.v1.FetchService", "logstore.v1.AdminService"):
        response = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_the_services(stubs) -> None:
    reflection = reflection_pb2_grpc.ServerReflectionStub(stubs.channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    (response,) = list(reflection.ServerReflectionInfo(iter([request]), timeout=10))
    names = {service.name for service in response.list_services_response.service}
    assert {"logstore.v1.AdminService", "logstore.v1.ProduceService", "logstore.v1.FetchService"} <= names
    assert "grpc.health.v1.Health" in names


def test_stop_answers_long_polls_ends_subscriptions_and_marks_a_clean_shutdown(tmp_path, connect) -> None:
    broker = EmbeddedBroker.on(tmp_path / "data").start()
    stubs = connect(broker)
    stubs.create_topic("t")
    stubs.produce_one("t", 0, build_batch([b"kept"]))
    stubs.produce.Produce(
        produce_pb2.ProduceRequest(
            acks=produce_pb2.ACKS_NONE,
            partitions=[
                produce_pb2.ProducePartitionData(topic="t", partition=0, records=build_batch([b"acks=0"]))
            ],
        )
    )
    poll = stubs.fetch.Fetch.future(
        fetch_pb2.FetchRequest(
            partitions=[fetch_pb2.FetchPartition(topic="t", partition=0, offset=2)],
            min_bytes=1,
            max_wait_ms=600_000,
        ),
        timeout=60,
    )
    start = fetch_pb2.SubscribePartition(topic="t", partition=0, start_from=fetch_pb2.START_FROM_LATEST)
    stream = stubs.fetch.Subscribe(fetch_pb2.SubscribeRequest(partitions=[start]), timeout=60)
    wait_until(lambda: broker_waiters(broker) >= 2, "the long-poll and the subscription wait")
    assert not poll.done()

    broker.stop()
    assert poll.result().results[0].records == b""
    with pytest.raises(grpc.RpcError) as raised:
        next(stream)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "shutting down" in str(raised.value.details())
    assert (tmp_path / "data" / CLEAN_SHUTDOWN_MARKER).exists()

    with EmbeddedBroker.on(tmp_path / "data") as again:
        values = [r.value for r in iter_records(connect(again).fetch_one("t", 0, 0).records)]
        assert values == [b"kept", b"acks=0"]


def test_a_second_broker_on_the_same_port_or_data_dir_fails_to_start(broker, tmp_path) -> None:
    port = int(broker.address.rsplit(":", 1)[1])
    with pytest.raises(BindError, match="cannot listen"):
        EmbeddedBroker.on(tmp_path / "other", port=port).start()
    with pytest.raises(Exception, match="in use by another broker"):
        EmbeddedBroker.on(tmp_path / "data").start()


def test_the_log_tells_an_operator_what_happened_without_per_request_noise(tmp_path, connect, caplog) -> None:
    caplog.set_level(logging.INFO)
    with EmbeddedBroker.on(tmp_path / "data") as broker:
        stubs = connect(broker)
        for _ in range(20):
            stubs.produce_one("auto", 0, build_batch([b"v"]))
            stubs.produce_one("../bad", 0, build_batch([b"v"]))
            stubs.fetch_one("auto", 0, 0)
    messages = [record.getMessage() for record in caplog.records if record.levelno >= logging.INFO]
    assert any("opened" in m and "0 topics" in m for m in messages)
    assert any("listening on 127.0.0.1:" in m for m in messages)
    assert any("auto-created topic auto" in m for m in messages)
    assert any("stopped cleanly" in m for m in messages)
    assert len(messages) < 12, messages


def test_the_allocator_is_tuned_where_the_c_library_allows_it() -> None:
    assert keep_large_buffers() == (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")


def test_a_broker_bug_is_internal_points_to_the_log_and_the_broker_carries_on(broker, stubs, caplog) -> None:
    def broken() -> list:
        raise ZeroDivisionError("a bug")

    original = broker.server.core.topics.list
    broker.run(setattr, broker.server.core.topics, "list", broken)
    with pytest.raises(grpc.RpcError) as raised:
        stubs.admin.ListTopics(admin_pb2.ListTopicsRequest())
    assert raised.value.code() == grpc.StatusCode.INTERNAL
    assert "ZeroDivisionError" in str(raised.value.details()) and "log" in str(raised.value.details())
    assert any(record.exc_info and "ListTopics" in record.getMessage() for record in caplog.records)
    broker.run(setattr, broker.server.core.topics, "list", original)
    stubs.create_topic("t")
    assert [t.name for t in stubs.admin.ListTopics(admin_pb2.ListTopicsRequest()).topics] == ["t"]
