"""Random requests harm nobody: each is answered or closes its own connection, never with a bug."""

from __future__ import annotations

import logging
import socket
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.protocol.metadata import MetadataRequest, MetadataResponse
from logstore.broker.embedded import EmbeddedBroker
from logstore.broker.kafka.versions import APIS, FETCH

from tests.conftest import StartBroker
from tests.kafka_wire import kafka_socket, receive, send_request

# Fetch is left out: a random body can be a valid long-poll of up to 24 days.
KEYS = st.sampled_from(sorted(set(APIS) - {FETCH})) | st.integers(-(2**15), 2**15 - 1)


def _serves(broker: EmbeddedBroker) -> bool:
    with kafka_socket(broker) as sock:
        send_request(sock, MetadataRequest(version=1, topics=[]), 9)
        correlation_id, body = receive(sock)
    return correlation_id == 9 and MetadataResponse.decode(body, version=1).controller_id == 0


def _answers_until_closed(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_random_requests_are_answered_or_close_their_connection(
    start_broker: StartBroker, caplog: pytest.LogCaptureFixture
) -> None:
    broker = start_broker(kafka_port=0, auto_create_topics=False)

    @settings(max_examples=150, deadline=None)
    @given(api_key=KEYS, version=st.integers(-2, 20), body=st.binary(max_size=120))
    def check(api_key: int, version: int, body: bytes) -> None:
        frame = struct.pack(">hhih", api_key, version, 1, -1) + body
        with kafka_socket(broker) as sock:
            sock.sendall(struct.pack(">i", len(frame)) + frame)
            sock.shutdown(socket.SHUT_WR)  # the broker answers what it read, then closes
            answers = _answers_until_closed(sock)
        if answers:  # exactly one whole answer, to this request
            (size, correlation_id) = struct.unpack(">ii", answers[:8])
            assert (len(answers), correlation_id) == (size + 4, 1)

    with caplog.at_level(logging.WARNING, logger="logstore.broker.kafka"):
        check()
    bugs = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert not bugs, bugs
    assert _serves(broker)
