"""Raw Kafka protocol over a socket, with kafka-python's spec-driven classes as the codec (the oracle the
listener is checked against, since the listener itself uses kio)."""

from __future__ import annotations

import socket
import struct
from typing import Any

from logstore.broker.embedded import EmbeddedBroker


def kafka_socket(broker: EmbeddedBroker, timeout_s: float = 10.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", broker.kafka_port), timeout=timeout_s)


def send_request(sock: socket.socket, request: Any, correlation_id: int) -> None:
    request.with_header(correlation_id=correlation_id, client_id="logstore-tests")
    sock.sendall(bytes(request.encode(header=True, framed=True)))


def read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError(f"closed after {len(data)} of {size} bytes")
        data += chunk
    return data


def receive(sock: socket.socket) -> tuple[int, bytes]:
    """One answer: its correlation id and the body after the (v0) response header."""
    (size,) = struct.unpack(">i", read_exactly(sock, 4))
    frame = read_exactly(sock, size)
    (correlation_id,) = struct.unpack(">i", frame[:4])
    return correlation_id, frame[4:]


def decode_response(response_class: Any, body: bytes, version: int) -> Any:
    """A response body after the correlation id: flexible versions other than ApiVersions' carry
    response header v1, whose tagged fields (none from this broker: one 0 byte) come first."""
    if response_class.flexible_version_q(version) and response_class.API_KEY != 18:
        assert body[0] == 0, f"response header v1 with tagged fields {body[:1]!r}"
        body = body[1:]
    return response_class.decode(body, version=version)


def is_closed(sock: socket.socket) -> bool:
    """Whether the broker closed the connection (reads end, or the connection was reset)."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
