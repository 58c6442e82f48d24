"""The gRPC channels of one client object: one per broker, each with a stub per service.

A ``Connection`` starts from the bootstrap addresses (kafka-python's ``bootstrap_servers``: a list, or
a comma-separated string). Calls that any broker can answer (admin calls, metadata) go to the current
broker and move on to the next address when it is unreachable (``call_any``), naming every address that
failed when none answers. In a cluster it learns the brokers' addresses from DescribeCluster and each
partition's leader from DescribeTopic (``ClusterMap``), and keeps one ``BrokerChannel`` per broker, so
produce and fetch requests go to each partition's leader. A broker alone (no --etcd) is broker 0,
reached at the bootstrap address, and leads everything: nothing changes for it.

Every client's channel is made here (threaded) or by ``Security.aio_channel`` (asyncio), with the
options of ``channel_options`` and the transport security and call credentials of its ``Security``."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

import grpc
from logstore.client.shared.cluster import ClusterMap
from logstore.client.shared.errors import LocalUnavailable, trailer_code
from logstore.client.shared.security import PLAINTEXT, Security
from logstore.wire.logstore.v1 import admin_pb2_grpc, common_pb2, fetch_pb2_grpc, produce_pb2_grpc

Answer = TypeVar("Answer")

DEFAULT_BOOTSTRAP = "127.0.0.1:9093"
MESSAGE_HEADROOM = 4 * 1024 * 1024
"""Room in a gRPC message beyond its record bytes (per-partition fields), as the broker keeps."""
_GRPC_MESSAGE_LIMIT = 2**31 - 1

Interceptor = (
    grpc.UnaryUnaryClientInterceptor | grpc.UnaryStreamClientInterceptor | grpc.StreamStreamClientInterceptor
)
"""What ``interceptors`` options take: each wraps the calls of its kind (the producer's ProduceStream is
stream-stream)."""


def parse_bootstrap_list(bootstrap: str | list[str] | tuple[str, ...]) -> list[str]:
    """Every ``"host:port"`` of a list, or of a comma-separated string, in order, without repeats."""
    if isinstance(bootstrap, str):
        items = bootstrap.split(",")
    elif isinstance(bootstrap, list | tuple):
        if not bootstrap:
            raise ValueError("bootstrap is an empty list; give the broker's address as 'host:port'")
        items = []
        for item in bootstrap:
            if not isinstance(item, str):
                raise TypeError(f"bootstrap addresses must be 'host:port' strings, not {type(item).__name__}")
            items.extend(item.split(","))
    else:
        raise TypeError(f"bootstrap must be 'host:port', not {type(bootstrap).__name__}")
    addresses: list[str] = []
    for item in items:
        address = item.strip()
        host, sep, port = address.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"bootstrap {bootstrap!r} is not 'host:port' (for example '127.0.0.1:9093')")
        if address not in addresses:
            addresses.append(address)
    return addresses


def parse_bootstrap(bootstrap: str | list[str] | tuple[str, ...]) -> str:
    """The first bootstrap address (the asyncio clients reach one broker)."""
    return parse_bootstrap_list(bootstrap)[0]


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


class BrokerChannel:
    """A channel to one broker address and its three stubs. Thread-safe, as gRPC channels and stubs are.

    ``channel`` carries ``security``'s call credentials (group and share stubs are made over it);
    ``interceptors`` wrap the three stubs' calls only."""

    def __init__(
        self,
        address: str,
        options: list[tuple[str, int | str]],
        interceptors: Sequence[Interceptor],
        security: Security,
    ) -> None:
        self.address = address
        self.security = security
        self._transport = security.channel(address, options)
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


class Unreachable(LocalUnavailable):
    """No bootstrap address or known broker answered: UNAVAILABLE, naming each address and why."""


def _status(error: grpc.RpcError) -> grpc.StatusCode | None:
    code = getattr(error, "code", None)
    return code() if callable(code) else None


class Connection:
    """The channels of one client object (see the module's docstring). Thread-safe: channels are made
    and the current one changed under a lock; the cluster map has its own.

    ``admin``, ``produce``, ``fetch``, ``calls`` and ``channel`` are the current broker's (any broker
    answers metadata and admin calls); ``for_broker`` and ``leader`` give a particular broker's."""

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
        self.bootstrap = parse_bootstrap_list(bootstrap)
        self.security = security
        self._options = channel_options(max_send_bytes, max_receive_bytes, client_id)
        self._interceptors = tuple(interceptors)
        self._lock = threading.Lock()
        self._channels: dict[str, BrokerChannel] = {}
        self._closed = False
        self.cluster = ClusterMap()
        """Brokers and partition leaders as last learned (``describe_cluster`` and DescribeTopic)."""
        self._current = self._channel(self.bootstrap[0])

    # --- the current broker (any broker answers these) -----------------------------------------------------

    @property
    def current(self) -> BrokerChannel:
        return self._current

    @property
    def address(self) -> str:
        return self._current.address

    @property
    def admin(self) -> admin_pb2_grpc.AdminServiceStub:
        return self._current.admin

    @property
    def produce(self) -> produce_pb2_grpc.ProduceServiceStub:
        return self._current.produce

    @property
    def fetch(self) -> fetch_pb2_grpc.FetchServiceStub:
        return self._current.fetch

    @property
    def calls(self) -> grpc.Channel:
        return self._current.calls

    @property
    def channel(self) -> grpc.Channel:
        return self._current.channel

    def _channel(self, address: str) -> BrokerChannel:
        with self._lock:
            channel = self._channels.get(address)
            if channel is None:
                channel = BrokerChannel(address, self._options, self._interceptors, self.security)
                if self._closed:
                    channel.close()  # a call on it fails at once, as on any closed channel
                self._channels[address] = channel
            return channel

    def candidates(self) -> list[str]:
        """Where to try an any-broker call: the current address, the known brokers', the bootstrap list."""
        order = [self._current.address, *self.cluster.addresses(), *self.bootstrap]
        return list(dict.fromkeys(order))

    def call_any(self, call: Callable[[BrokerChannel], Answer], doing: str) -> Answer:
        """``call`` on the current broker; while a broker is unreachable (UNAVAILABLE without a broker's
        error code), on the next one, which becomes current. Raises ``Unreachable`` naming each address
        tried when none answered; a broker's own answer (even NOT_AVAILABLE from every broker) as is."""
        failures: list[str] = []
        answered: grpc.RpcError | None = None
        for address in self.candidates():
            channel = self._channel(address)
            try:
                answer = call(channel)
            except grpc.RpcError as exc:
                if _status(exc) is not grpc.StatusCode.UNAVAILABLE or _has_error_code(exc):
                    raise
                if trailer_code(exc) is not None:  # it answered: unavailable (stopping, no coordinator)
                    answered = answered or exc
                else:
                    failures.append(f"{address} ({_details(exc)})")
                continue
            if channel is not self._current:
                self._current = channel
            return answer
        if answered is not None:
            raise answered  # what the brokers said, rather than "unreachable"
        raise Unreachable(f"{doing}: no broker answered; unreachable: {', '.join(failures)}")

    # --- particular brokers --------------------------------------------------------------------------------

    def for_broker(self, broker_id: int) -> BrokerChannel | None:
        """The channel to a broker by id: the current one for a broker alone (it is broker 0 at the
        address it was reached at); None for a broker not (or no longer) known."""
        if not self.cluster.clustered:
            return self._current
        address = self.cluster.address_of(broker_id)
        return None if address is None else self._channel(address)

    def leader(self, topic: str, partition: int) -> tuple[int, BrokerChannel] | None:
        """The partition's leader and its channel, None while unknown (refresh the topic's metadata)."""
        if not self.cluster.clustered:
            return 0, self._current
        broker_id = self.cluster.leader_of(topic, partition)
        if broker_id is None:
            return None
        channel = self.for_broker(broker_id)
        return None if channel is None else (broker_id, channel)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            channels = list(self._channels.values())
        for channel in channels:
            channel.close()


def _details(error: grpc.RpcError) -> str:
    details = getattr(error, "details", None)
    text = details() if callable(details) else None
    return text or "no details"


def _has_error_code(error: grpc.RpcError) -> bool:
    """Whether a broker answered with an error code of its own that another broker would repeat (not
    NOT_AVAILABLE: the broker is stopping, and another may well answer)."""
    code = trailer_code(error)
    return code is not None and code != common_pb2.ERROR_CODE_NOT_AVAILABLE
