"""One gRPC channel to the broker, with a stub per service. Every client object owns one.

Every client's channel is made here (threaded) or by ``Security.aio_channel`` (asyncio), with the
options of ``channel_options`` and the transport security and call credentials of its ``Security``."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from logstore.client.shared.security import PLAINTEXT, Security
from logstore.wire.logstore.v1 import admin_pb2_grpc, fetch_pb2_grpc, produce_pb2_grpc

DEFAULT_BOOTSTRAP = "127.0.0.1:9093"
MESSAGE_HEADROOM = 4 * 1024 * 1024
"""Room in a gRPC message beyond its record bytes (per-partition fields), as the broker keeps."""
_GRPC_MESSAGE_LIMIT = 2**31 - 1

Interceptor = (
    grpc.UnaryUnaryClientInterceptor | grpc.UnaryStreamClientInterceptor | grpc.StreamStreamClientInterceptor
)
"""What ``interceptors`` options take: each wraps the calls of its kind (the producer's ProduceStream is
stream-stream)."""


def parse_bootstrap(bootstrap: str | list[str] | tuple[str, ...]) -> str:
    """The gRPC target for ``"host:port"`` (or the first of a list, or of a comma-separated string).

    One broker serves everything, so further addresses are not used; a port is required.
    """
    if isinstance(bootstrap, list | tuple):
        if not bootstrap:
            raise ValueError("bootstrap is an empty list; give the broker's address as 'host:port'")
        bootstrap = bootstrap[0]
    if not isinstance(bootstrap, str):
        raise TypeError(f"bootstrap must be 'host:port', not {type(bootstrap).__name__}")
    address = bootstrap.split(",")[0].strip()
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"bootstrap {bootstrap!r} is not 'host:port' (for example '127.0.0.1:9093')")
    return address


def channel_options(
    max_send_bytes: int, max_receive_bytes: int, client_id: str | None = None
) -> list[tuple[str, int | str]]:
    """The channel settings every client uses, threaded or asyncio (``logstore.client.aio``)."""
    options: list[tuple[str, int | str]] = [
        ("grpc.max_send_message_length", min(max_send_bytes + MESSAGE_HEADROOM, _GRPC_MESSAGE_LIMIT)),
        (
            "grpc.max_receive_message_length",
            min(max_receive_bytes + MESSAGE_HEADROOM, _GRPC_MESSAGE_LIMIT),
        ),
        # Reconnect soon after a broker restart instead of grpc's default backoff of up to two minutes.
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 1000),
        # A separate subchannel per client object, so one busy producer does not queue behind another.
        ("grpc.use_local_subchannel_pool", 1),
    ]
    if client_id:  # Kafka's client.id: the broker sees it at the front of each call's user-agent
        options.append(("grpc.primary_user_agent", client_id))
    return options


class Connection:
    """A channel to the broker and its three stubs. Thread-safe, as gRPC channels and stubs are.

    ``channel`` carries ``security``'s call credentials (group and share stubs are made over it);
    ``interceptors`` wrap the three stubs' calls only."""

    def __init__(
        self,
        bootstrap: str | list[str],
        *,
        max_send_bytes: int,
        max_receive_bytes: int,
        interceptors: Sequence[Interceptor] = (),
        client_id: str | None = None,
        security: Security = PLAINTEXT,
    ) -> None:
        self.address = parse_bootstrap(bootstrap)
        self.security = security
        options = channel_options(max_send_bytes, max_receive_bytes, client_id)
        self._transport = security.channel(self.address, options)
        self.channel = security.intercept(self._transport)
        # Interceptors (tracing, auth, fault injection in tests) wrap every call made through the stubs.
        calls = grpc.intercept_channel(self.channel, *interceptors) if interceptors else self.channel
        self.calls: grpc.Channel = calls
        """The channel every stub is made on (with the interceptors): the group and share stubs too."""
        self.admin = admin_pb2_grpc.AdminServiceStub(calls)
        self.produce = produce_pb2_grpc.ProduceServiceStub(calls)
        self.fetch = fetch_pb2_grpc.FetchServiceStub(calls)

    def close(self) -> None:
        self._transport.close()
