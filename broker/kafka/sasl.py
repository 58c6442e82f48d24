"""SaslHandshake (v0-1) and SaslAuthenticate (v0-2) with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512, and the
authorization checks the other handlers call (`require`, `permitted`).

Each connection has a `ConnectionAuth`: before it has logged in, a broker with --require-auth answers
only ApiVersions and the two SASL requests (the connection closes on anything else, as Kafka's does). A
failed log-in is answered SASL_AUTHENTICATION_FAILED (the same words for an unknown user and a wrong
password), counted and logged with the peer's address, and the connection closes after that answer.
The tokens travel in SaslAuthenticate requests (KIP-152), or, after a v0 handshake, as bare size-prefixed
frames (`raw_token`), as Kafka's older clients send them.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.primitive import i64Timedelta
from logstore.broker.auth.acl import CLUSTER_NAME, Operation, ResourceType, user_principal
from logstore.broker.auth.scram import Mechanism, ScramError, ScramServer, parse_plain
from logstore.broker.auth.security import Security
from logstore.broker.domain.errors import AuthorizationError
from logstore.broker.kafka.codec import build, response_type
from logstore.broker.kafka.versions import SASL_AUTHENTICATE, SASL_HANDSHAKE

PLAIN = "PLAIN"
MECHANISMS = (PLAIN, Mechanism.SCRAM_SHA_256.value, Mechanism.SCRAM_SHA_512.value)
NO_REAUTHENTICATION = i64Timedelta.parse(datetime.timedelta(0))
LISTENER = "kafka"
FAILED = "authentication failed: wrong user name or password"


@dataclass
class ConnectionAuth:
    """One connection's log-in. Not thread-safe: the connection's, on the broker's loop."""

    security: Security | None
    required: bool
    peer: str
    mechanism: str | None = None
    scram: ScramServer | None = None
    principal: str | None = None
    close_after_answer: bool = False
    """Set by a failed log-in: the connection sends that answer, then closes."""
    raw_tokens: bool = False
    """After a v0 SaslHandshake: the next frames are bare SASL tokens, not Kafka requests."""
    certificate: str | None = None
    """The principal of the verified TLS client certificate (mutual TLS), as Kafka names it."""

    @property
    def who(self) -> str | None:
        """Whom requests act for: the SASL log-in's user, else the client certificate's subject (Kafka's
        SSL listener with client authentication), else nobody yet."""
        return self.principal or self.certificate

    @property
    def admitted(self) -> bool:
        """Whether requests other than ApiVersions and SASL may be handled."""
        return not self.required or self.who is not None


def permitted(
    auth: ConnectionAuth | None, operation: Operation, resource_type: ResourceType, name: str
) -> bool:
    """True when authorization is off, or the connection's principal may do this."""
    if auth is None or not auth.required or auth.security is None:
        return True
    assert auth.who is not None, "a request was handled before its connection logged in"
    return auth.security.permitted(auth.who, operation, resource_type, name)


def require(
    auth: ConnectionAuth | None, operation: Operation, resource_type: ResourceType, name: str
) -> None:
    """Raise the resource's AuthorizationError (Kafka's *_AUTHORIZATION_FAILED) unless `permitted`."""
    if auth is not None and auth.required and auth.security is not None:
        assert auth.who is not None
        auth.security.require(auth.who, operation, resource_type, name)


def refusal(
    auth: ConnectionAuth | None, operation: Operation, resource_type: ResourceType, name: str
) -> AuthorizationError | None:
    """The error to answer for this resource, or None when it is allowed."""
    try:
        require(auth, operation, resource_type, name)
    except AuthorizationError as exc:
        return exc
    return None


def may_create(auth: ConnectionAuth | None, topic: str) -> bool:
    """Kafka's rule: Create on the cluster or on the topic."""
    return permitted(auth, Operation.CREATE, ResourceType.CLUSTER, CLUSTER_NAME) or permitted(
        auth, Operation.CREATE, ResourceType.TOPIC, topic
    )


def sasl_handshake(request: Any, version: int, auth: ConnectionAuth) -> Any:
    cls = response_type(SASL_HANDSHAKE, version)
    if auth.security is None or auth.principal is not None or auth.mechanism is not None:
        return build(cls, error_code=ErrorCode.illegal_sasl_state, mechanisms=MECHANISMS)
    mechanism = str(request.mechanism).upper()
    if mechanism not in MECHANISMS:
        return build(cls, error_code=ErrorCode.unsupported_sasl_mechanism, mechanisms=MECHANISMS)
    auth.mechanism = mechanism
    auth.raw_tokens = version == 0  # v0: the tokens follow as bare size-prefixed frames
    if mechanism != PLAIN:
        auth.scram = auth.security.scram_server(Mechanism(mechanism))
    return build(cls, error_code=ErrorCode.none, mechanisms=MECHANISMS)


def raw_token(token: bytes, auth: ConnectionAuth) -> Any:
    """One bare token after a v0 handshake: the token to send back, a coroutine of it (PLAIN), or None
    for a failed log-in (Kafka then closes the connection: v0 has no error frame)."""
    security = auth.security
    assert security is not None and auth.principal is None
    try:
        if auth.scram is None:
            _, username, password = parse_plain(token)
            return _raw_plain(auth, security, username, password)
        if not auth.scram.started:
            return auth.scram.first(token)
        final = auth.scram.final(token)
    except ScramError as exc:
        security.login_failed(
            LISTENER,
            auth.peer,
            auth.scram.claimed_user if auth.scram else None,
            str(exc),
            mechanism=auth.mechanism or "none",
        )
        return None
    assert auth.scram.username is not None
    auth.principal = user_principal(auth.scram.username)
    return final


async def _raw_plain(auth: ConnectionAuth, security: Security, username: str, password: str) -> bytes | None:
    if not await security.check_password(username, password):
        security.login_failed(
            LISTENER, auth.peer, username, "wrong user name or password", mechanism=auth.mechanism or "none"
        )
        return None
    auth.principal = user_principal(username)
    return b""


def sasl_authenticate(request: Any, version: int, auth: ConnectionAuth) -> Any:
    cls = response_type(SASL_AUTHENTICATE, version)
    security = auth.security
    if security is None or auth.mechanism is None or auth.principal is not None:
        auth.close_after_answer = True
        return _answer(cls, ErrorCode.illegal_sasl_state, "SaslAuthenticate must follow one SaslHandshake")
    token = bytes(request.auth_bytes)
    try:
        if auth.scram is None:  # PLAIN: a coroutine, as its PBKDF2 runs in a worker thread
            _, username, password = parse_plain(token)
            return _plain(cls, auth, security, username, password)
        if not auth.scram.started:
            return _answer(cls, ErrorCode.none, None, auth.scram.first(token))
        final = auth.scram.final(token)
    except ScramError as exc:
        return _failed(cls, auth, auth.scram.claimed_user if auth.scram else None, str(exc))
    assert auth.scram.username is not None
    auth.principal = user_principal(auth.scram.username)
    return _answer(cls, ErrorCode.none, None, final)


async def _plain(
    cls: type[Any], auth: ConnectionAuth, security: Security, username: str, password: str
) -> Any:
    if not await security.check_password(username, password):
        return _failed(cls, auth, username, "wrong user name or password")
    auth.principal = user_principal(username)
    return _answer(cls, ErrorCode.none, None)


def _failed(cls: type[Any], auth: ConnectionAuth, username: str | None, reason: str) -> Any:
    assert auth.security is not None
    auth.security.login_failed(LISTENER, auth.peer, username, reason, mechanism=auth.mechanism or "none")
    auth.close_after_answer = True
    return _answer(cls, ErrorCode.sasl_authentication_failed, FAILED)


def _answer(cls: type[Any], code: ErrorCode, message: str | None, token: bytes = b"") -> Any:
    return build(
        cls, error_code=code, error_message=message, auth_bytes=token, session_lifetime=NO_REAUTHENTICATION
    )
