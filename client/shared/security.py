"""How a client secures its channel: kafka-python's option names, checked once, turned into gRPC
channel credentials and per-call metadata in one place.

``security_protocol`` is one of Kafka's four: PLAINTEXT (the default), SSL (TLS; ``ssl_cafile`` is the
CA that signed the broker's certificate, ``ssl_certfile`` and ``ssl_keyfile`` the client's own pair when
the broker requires one), SASL_PLAINTEXT and SASL_SSL (the same, plus a user name and password). A ready
``grpc.ChannelCredentials`` (``channel_credentials``) replaces the ``ssl_*`` files.

With a SASL protocol every call carries ``authorization: Basic base64(username:password)`` (RFC 7617),
whatever ``sasl_mechanism`` says: PLAIN and SCRAM-SHA-256/512 differ in how Kafka clients prove the
password to the Kafka listener, while a gRPC call carries it to the broker over the channel, which checks
it against the user's stored credentials. proto/README.md ("Authentication") is the contract.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
AUTHORIZATION = "authorization"
"""The metadata key of a call's credentials (lower case, as gRPC requires)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SecurityOptions:
    """The security options every client takes, kafka-python's names (keyword-only): the fields of
    `Security`, and of each client's config, which builds its `Security` from them (`security_of`)."""

    security_protocol: str = "PLAINTEXT"
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    channel_credentials: grpc.ChannelCredentials | None = None
    sasl_mechanism: str | None = None
    sasl_plain_username: str | None = None
    sasl_plain_password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Security(SecurityOptions):
    """A client's security options, checked; immutable, so safe to share between threads.

    ``credentials`` (derived) is the channel's transport security, None for plaintext;
    ``metadata`` (derived) the entries every call carries, empty without SASL."""

    credentials: grpc.ChannelCredentials | None = field(init=False, repr=False)
    metadata: tuple[tuple[str, str], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        protocol = str(self.security_protocol).upper()
        if protocol not in SECURITY_PROTOCOLS:
            raise ValueError(
                f"security_protocol must be one of {', '.join(SECURITY_PROTOCOLS)}, got {self.security_protocol!r}"
            )
        put = object.__setattr__  # frozen: only here, while it is being built
        put(self, "security_protocol", protocol)
        tls = protocol in ("SSL", "SASL_SSL")
        given = [n for n in ("ssl_cafile", "ssl_certfile", "ssl_keyfile") if getattr(self, n) is not None]
        if self.channel_credentials is not None:
            given.append("channel_credentials")
        if given and not tls:
            raise ValueError(
                f"{' and '.join(given)} {_need(given)} security_protocol='SSL' or 'SASL_SSL', not {protocol!r}"
            )
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError(
                "ssl_certfile and ssl_keyfile go together: give the client's certificate and its key"
            )
        if self.channel_credentials is not None and len(given) > 1:
            raise ValueError("give channel_credentials or the ssl_* files, not both")
        put(self, "credentials", self._transport_credentials() if tls else None)
        put(self, "metadata", self._call_metadata(protocol.startswith("SASL_")))

    @property
    def tls(self) -> bool:
        return self.credentials is not None

    def _transport_credentials(self) -> grpc.ChannelCredentials:
        if self.channel_credentials is not None:
            return self.channel_credentials
        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.ssl_cafile, "ssl_cafile"),
            private_key=_read(self.ssl_keyfile, "ssl_keyfile"),
            certificate_chain=_read(self.ssl_certfile, "ssl_certfile"),
        )

    def _call_metadata(self, sasl: bool) -> tuple[tuple[str, str], ...]:
        named = [
            n for n in ("sasl_mechanism", "sasl_plain_username", "sasl_plain_password") if getattr(self, n)
        ]
        if not sasl:
            if named:
                raise ValueError(
                    f"{' and '.join(named)} {_need(named)} security_protocol='SASL_PLAINTEXT' or 'SASL_SSL', "
                    f"not {self.security_protocol!r}"
                )
            return ()
        mechanism = str(self.sasl_mechanism or "PLAIN").upper()
        if mechanism not in SASL_MECHANISMS:
            raise ValueError(
                f"sasl_mechanism must be one of {', '.join(SASL_MECHANISMS)}, got {self.sasl_mechanism!r}"
            )
        object.__setattr__(self, "sasl_mechanism", mechanism)
        user, password = self.sasl_plain_username, self.sasl_plain_password
        if not user or password is None:
            raise ValueError(
                f"security_protocol={self.security_protocol!r} needs sasl_plain_username and sasl_plain_password"
            )
        if ":" in user:
            raise ValueError(f"sasl_plain_username must not contain ':' (Basic credentials), got {user!r}")
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        return ((AUTHORIZATION, "Basic " + token),)

    # --- channels --------------------------------------------------------------------------------------

    def channel(self, address: str, options: list[tuple[str, Any]]) -> grpc.Channel:
        """A threaded channel to ``address`` with this transport security (calls not yet credentialed:
        see ``intercept``)."""
        if self.credentials is None:
            return grpc.insecure_channel(address, options=options)
        return grpc.secure_channel(address, self.credentials, options=options)

    def aio_channel(self, address: str, options: list[tuple[str, Any]]) -> grpc.aio.Channel:
        """The same for ``grpc.aio``, with the call metadata added to every call."""
        interceptors = [_AioMetadata(self.metadata)] if self.metadata else None
        if self.credentials is None:
            return grpc.aio.insecure_channel(address, options=options, interceptors=interceptors)
        return grpc.aio.secure_channel(address, self.credentials, options=options, interceptors=interceptors)

    def intercept(self, channel: grpc.Channel) -> grpc.Channel:
        """``channel`` with the call metadata added to every call (itself without SASL)."""
        if not self.metadata:
            return channel
        return grpc.intercept_channel(channel, _Metadata(self.metadata))


PLAINTEXT = Security()


def _need(names: list[str]) -> str:
    return "need" if len(names) > 1 else "needs"


def _read(path: str | None, option: str) -> bytes | None:
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"{option} {path}: cannot read it ({exc.strerror})") from None


class _Metadata(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds fixed metadata (the credentials) to every call of a threaded channel. Stateless, so
    thread-safe."""

    def __init__(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self._extra = metadata

    def intercept_unary_unary(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return continuation(_ClientCallDetails.of(details, self._extra), request)

    def intercept_unary_stream(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return continuation(_ClientCallDetails.of(details, self._extra), request)

    def intercept_stream_unary(
        self, continuation: Callable[..., Any], details: Any, requests: Iterator[Any]
    ) -> Any:
        return continuation(_ClientCallDetails.of(details, self._extra), requests)

    def intercept_stream_stream(
        self, continuation: Callable[..., Any], details: Any, requests: Iterator[Any]
    ) -> Any:
        return continuation(_ClientCallDetails.of(details, self._extra), requests)


class _ClientCallDetails(grpc.ClientCallDetails):
    """grpc.ClientCallDetails is an abstract class with attributes; the threaded interceptors need an
    instance of it with the metadata replaced."""

    def __init__(
        self,
        method: str,
        timeout: Any,
        metadata: Any,
        credentials: Any,
        wait_for_ready: Any,
        compression: Any,
    ) -> None:
        self.method = method
        self.timeout = timeout
        self.metadata = metadata
        self.credentials = credentials
        self.wait_for_ready = wait_for_ready
        self.compression = compression

    @classmethod
    def of(cls, details: Any, extra: tuple[tuple[str, str], ...]) -> _ClientCallDetails:
        return cls(
            details.method,
            details.timeout,
            tuple(details.metadata or ()) + extra,
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )


class _AioMetadata(
    grpc.aio.UnaryUnaryClientInterceptor,
    grpc.aio.UnaryStreamClientInterceptor,
    grpc.aio.StreamUnaryClientInterceptor,
    grpc.aio.StreamStreamClientInterceptor,
):
    """The same for ``grpc.aio`` channels. Not thread-safe, nor need it be: stateless, on one loop."""

    def __init__(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self._extra = metadata

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(_aio_details(details, self._extra), request)

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(_aio_details(details, self._extra), request)

    async def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(_aio_details(details, self._extra), requests)

    async def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(_aio_details(details, self._extra), requests)


def _aio_details(details: Any, extra: tuple[tuple[str, str], ...]) -> Any:
    metadata = grpc.aio.Metadata(*tuple(details.metadata or ()), *extra)
    return details._replace(metadata=metadata)


SECURITY_OPTIONS = tuple(f.name for f in fields(SecurityOptions))
"""The options every client takes (and its config keeps) under these names."""


def security_of(options: object) -> Security:
    """The ``Security`` of an object with the ``SECURITY_OPTIONS`` attributes (a client's config)."""
    return Security(**{name: getattr(options, name) for name in SECURITY_OPTIONS})
