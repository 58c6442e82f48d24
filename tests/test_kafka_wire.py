"""The Kafka listener's framing, checked over a raw socket: versions, bad input, answer order."""

from __future__ import annotations

import logging
import struct

import pytest
from kafka.protocol.consumer import FetchRequest, FetchResponse
from kafka.protocol.metadata import ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, MetadataResponse
from logstore.broker.embedded import EmbeddedBroker
from logstore.broker.kafka.versions import APIS

from tests.conftest import StartBroker
from tests.kafka_wire import is_closed, kafka_socket, receive, send_request

UNSUPPORTED_VERSION = 35
UNKNOWN_TOPIC_OR_PARTITION = 3


@pytest.fixture
def kafka_broker(start_broker: StartBroker) -> EmbeddedBroker:
    return start_broker(kafka_port=0)


def _metadata_ok(broker: EmbeddedBroker) -> bool:
    with kafka_socket(broker) as sock:
        send_request(sock, MetadataRequest(version=1, topics=None), 1)
        correlation_id, body = receive(sock)
        response = MetadataResponse.decode(body, version=1)
        return correlation_id == 1 and [b.port for b in response.brokers] == [broker.kafka_port]


def test_api_versions_lists_every_key_with_the_advertised_versions(kafka_broker: EmbeddedBroker) -> None:
    with kafka_socket(kafka_broker) as sock:
        send_request(sock, ApiVersionsRequest(version=2), 7)
        correlation_id, body = receive(sock)
    response = ApiVersionsResponse.decode(body, version=2)
    assert correlation_id == 7 and response.error_code == 0
    assert {k.api_key: (k.min_version, k.max_version) for k in response.api_keys} == {
        key: api.advertised for key, api in APIS.items()
    }
    assert {k.api_key: k.max_version for k in response.api_keys}[0] == 8  # Produce, as Kafka 2.4


def test_an_unsupported_api_versions_version_gets_v0_with_unsupported_version_and_every_key(
    kafka_broker: EmbeddedBroker,
) -> None:
    with kafka_socket(kafka_broker) as sock:
        # v4 is flexible: header v2 and compact strings; the answer must still be v0's layout.
        send_request(
            sock, ApiVersionsRequest(version=4, client_software_name="t", client_software_version="1"), 3
        )
        correlation_id, body = receive(sock)
        response = ApiVersionsResponse.decode(body, version=0)
        assert correlation_id == 3 and response.error_code == UNSUPPORTED_VERSION
        assert {k.api_key for k in response.api_keys} == set(APIS)
        # The connection stays usable: the client retries with a version from the list.
        send_request(sock, ApiVersionsRequest(version=2), 4)
        assert receive(sock)[0] == 4


@pytest.mark.parametrize(
    "garbage",
    [
        struct.pack(">i", 2**31 - 1),  # a size past max_request_bytes
        struct.pack(">i", -5),  # a negative size
        struct.pack(">i", 100) + b"\x00\x03\x00\x01",  # a truncated request, then the end
        struct.pack(">i", 10) + struct.pack(">hhih", 9999, 0, 1, -1),  # an unknown api key
        struct.pack(">i", 10) + struct.pack(">hhih", 3, 99, 1, -1),  # an unserved Metadata version
        struct.pack(">i", 14) + struct.pack(">hhih", 3, 1, 1, -1) + b"\x7f\x00\x00\x00",  # a bad body
    ],
    ids=["too-large", "negative", "truncated", "unknown-key", "unknown-version", "bad-body"],
)
def test_a_malformed_frame_closes_only_its_connection_with_a_log_line_naming_the_peer(
    kafka_broker: EmbeddedBroker, garbage: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    with kafka_socket(kafka_broker) as bystander, kafka_socket(kafka_broker) as sock:
        send_request(bystander, MetadataRequest(version=1, topics=None), 1)  # in flight on another connection
        host, port = sock.getsockname()[:2]
        peer = f"{host}:{port}"
        with caplog.at_level(logging.WARNING, logger="logstore.broker.kafka"):
            sock.sendall(garbage)
            if garbage.endswith(b"\x00\x03\x00\x01"):
                sock.shutdown(1)  # the end of the stream inside the request
            assert is_closed(sock)
        assert any(peer in r.getMessage() for r in caplog.records), [r.getMessage() for r in caplog.records]
        assert receive(bystander)[0] == 1
    assert _metadata_ok(kafka_broker)


def test_answers_go_out_in_request_order_even_when_a_later_one_is_ready_first(
    kafka_broker: EmbeddedBroker,
) -> None:
    topic = FetchRequest.FetchTopic(
        topic="t",
        partitions=[
            FetchRequest.FetchTopic.FetchPartition(partition=0, fetch_offset=0, partition_max_bytes=1 << 20)
        ],
    )
    with kafka_socket(kafka_broker) as sock:
        send_request(
            sock,
            MetadataRequest(
                version=4,
                topics=[MetadataRequest.MetadataRequestTopic(name="t")],
                allow_auto_topic_creation=True,
            ),
            1,
        )
        assert receive(sock)[0] == 1
        # A long-poll on an empty partition (answered after 500 ms), then a metadata request (at once).
        send_request(
            sock,
            FetchRequest(
                version=4, replica_id=-1, max_wait_ms=500, min_bytes=1, max_bytes=1 << 20, topics=[topic]
            ),
            2,
        )
        send_request(sock, MetadataRequest(version=1, topics=None), 3)
        first, body = receive(sock)
        second, _ = receive(sock)
    assert (first, second) == (2, 3)
    fetched = FetchResponse.decode(body, version=4)
    assert fetched.responses[0].partitions[0].error_code == 0


def test_metadata_for_an_unknown_topic_with_auto_create_off_says_unknown_and_creates_nothing(
    start_broker: StartBroker,
) -> None:
    broker = start_broker(kafka_port=0, auto_create_topics=False)
    wanted = [MetadataRequest.MetadataRequestTopic(name="nope")]
    with kafka_socket(broker) as sock:
        for correlation_id, request in enumerate(
            [
                MetadataRequest(version=1, topics=wanted),
                MetadataRequest(version=8, topics=wanted, allow_auto_topic_creation=True),
            ]
        ):
            send_request(sock, request, correlation_id)
            _, body = receive(sock)
            response = MetadataResponse.decode(body, version=request.API_VERSION)
            assert [(t.name, t.error_code) for t in response.topics] == [("nope", UNKNOWN_TOPIC_OR_PARTITION)]
    core = broker.server.core
    assert core is not None
    assert broker.run(lambda: [t.name for t in core.topics.list()]) == []


def test_metadata_names_this_broker_as_leader_and_marks_internal_topics(kafka_broker: EmbeddedBroker) -> None:
    wanted = [MetadataRequest.MetadataRequestTopic(name=n) for n in ("fresh", "__consumer_offsets")]
    with kafka_socket(kafka_broker) as sock:
        send_request(sock, MetadataRequest(version=8, topics=wanted, allow_auto_topic_creation=True), 1)
        response = MetadataResponse.decode(receive(sock)[1], version=8)
    assert [(b.node_id, b.host, b.port) for b in response.brokers] == [
        (0, "127.0.0.1", kafka_broker.kafka_port)
    ]
    assert response.controller_id == 0
    topics = {t.name: t for t in response.topics}
    assert (topics["fresh"].error_code, topics["fresh"].is_internal) == (0, False)  # auto-created
    assert [(p.partition_index, p.leader_id, p.replica_nodes) for p in topics["fresh"].partitions] == [
        (0, 0, [0])
    ]
    assert (topics["__consumer_offsets"].error_code, topics["__consumer_offsets"].is_internal) == (0, True)


def test_an_idle_connection_is_closed_but_one_waiting_for_an_answer_is_not(start_broker: StartBroker) -> None:
    broker = start_broker(kafka_port=0, connections_max_idle_ms=300)
    topic = FetchRequest.FetchTopic(
        topic="t",
        partitions=[
            FetchRequest.FetchTopic.FetchPartition(partition=0, fetch_offset=0, partition_max_bytes=1024)
        ],
    )
    with kafka_socket(broker) as idle, kafka_socket(broker) as waiting:
        send_request(
            waiting, MetadataRequest(version=1, topics=[MetadataRequest.MetadataRequestTopic(name="t")]), 1
        )
        assert receive(waiting)[0] == 1
        # A long-poll three times the idle limit: the connection has an answer owed, so it stays open.
        request = FetchRequest(
            version=4, replica_id=-1, max_wait_ms=900, min_bytes=1, max_bytes=1024, topics=[topic]
        )
        send_request(waiting, request, 2)
        assert is_closed(idle)
        assert receive(waiting)[0] == 2
