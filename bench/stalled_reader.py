"""A client that sends gRPC calls and then never reads: the slow reader a broker must not be hurt by.

It speaks just enough HTTP/2 by hand (connection preface, SETTINGS and its ACK, one HEADERS and one DATA
frame per call) over a plain socket, and never reads the socket afterwards: it sends no WINDOW_UPDATE
and answers no PING, so the broker can send at most the first 64 KiB of each answer and must hold the
rest, or close the connection. gRPC's own clients cannot stall this way (their core reads the socket
whatever the application does), which is why this is not done through grpc.
"""

from __future__ import annotations

import socket
import struct

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
FRAME_DATA = 0x0
FRAME_HEADERS = 0x1
FRAME_SETTINGS = 0x4
FLAG_END_STREAM = 0x1
FLAG_END_HEADERS = 0x4
FLAG_ACK = 0x1


def _frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def _hpack_length(value: int) -> bytes:
    """An HPACK integer with a 7-bit prefix and the Huffman bit clear."""
    if value < 127:
        return bytes([value])
    out = bytearray([127])
    value -= 127
    while value >= 128:
        out.append((value & 127) | 128)
        value >>= 7
    out.append(value)
    return bytes(out)


def _literal(name: str, value: str) -> bytes:
    """A header as 'literal without indexing, new name': needs no HPACK table on either side."""
    raw_name, raw_value = name.encode(), value.encode()
    return b"\x00" + _hpack_length(len(raw_name)) + raw_name + _hpack_length(len(raw_value)) + raw_value


class StalledReader:
    """One TCP connection carrying calls whose answers are never read; `close()` ends it."""

    def __init__(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        self.authority = address
        self._socket = socket.create_connection((host.strip("[]"), int(port)))
        # A small receive buffer, so the kernel does not quietly read much on our behalf.
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        self._next_stream = 1
        self._socket.sendall(PREFACE + _frame(FRAME_SETTINGS, 0, 0, b""))
        # Acknowledge the server's SETTINGS blindly (it always sends them first) so the connection is
        # set up properly; from then on nothing is read.
        self._socket.sendall(_frame(FRAME_SETTINGS, FLAG_ACK, 0, b""))

    def call(self, method: str, request: bytes) -> int:
        """Start a unary or server-streaming call of `method` ("/pkg.Service/Method"); returns its stream id."""
        stream = self._next_stream
        self._next_stream += 2
        headers = b"".join(
            _literal(name, value)
            for name, value in (
                (":method", "POST"),
                (":scheme", "http"),
                (":path", method),
                (":authority", self.authority),
                ("content-type", "application/grpc"),
                ("te", "trailers"),
            )
        )
        message = b"\x00" + struct.pack(">I", len(request)) + request
        self._socket.sendall(
            _frame(FRAME_HEADERS, FLAG_END_HEADERS, stream, headers)
            + _frame(FRAME_DATA, FLAG_END_STREAM, stream, message)
        )
        return stream

    @property
    def peer(self) -> str:
        """How the broker names this connection (gRPC's peer string)."""
        host, port = self._socket.getsockname()[:2]
        return f"ipv4:{host}:{port}" if ":" not in host else f"ipv6:[{host}]:{port}"

    def wait_closed_by_peer(self, timeout_s: float) -> bool:
        """Read (at last) until the broker closes the connection; False if it is still open after `timeout_s`."""
        self._socket.settimeout(timeout_s)
        try:
            while self._socket.recv(1 << 16):
                pass
        except ConnectionResetError:
            pass
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        self._socket.close()

    def __enter__(self) -> StalledReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
