"""The broker's identity and permission state: who is calling (`authenticate_*`), and may they
(`require`, `permitted`).

One object per broker, over the `SecurityStore`; used from the broker's event loop by both listeners.
Passwords checked with PBKDF2 (Basic over gRPC, PLAIN over Kafka) are slow on purpose, so a success is
remembered, keyed by an HMAC of (user, password) under a per-process secret, in a bounded table that is
emptied whenever users change. An unknown user is checked against a dummy credential, so it costs what
a wrong password does. Failed log-ins are counted and logged (rate-limited) with the peer's address,
never the secret.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
import secrets
import struct
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Sequence

from logstore.broker.auth.acl import (
    CLUSTER_NAME,
    AclBinding,
    AclFilter,
    Authorizer,
    Operation,
    ResourceType,
    check_principal,
    user_principal,
)
from logstore.broker.auth.producer_owners import DEFAULT_LIMIT as DEFAULT_PRODUCER_LIMIT
from logstore.broker.auth.producer_owners import ProducerOwners
from logstore.broker.auth.scram import (
    DEFAULT_ITERATIONS,
    SALT_BYTES,
    Mechanism,
    ScramCredential,
    ScramServer,
    verify_password,
)
from logstore.broker.auth.store import SecurityStore, UserListing
from logstore.broker.domain.errors import (
    AuthenticationFailedError,
    AuthorizationError,
    ClusterAuthorizationError,
    GroupAuthorizationError,
    TopicAuthorizationError,
)

from logstore.records.layout import LENGTH_FIELD_END, LENGTH_OFFSET, PRODUCER_ID_OFFSET

log = logging.getLogger("logstore.broker.auth")
_I64 = struct.Struct(">q")
_I32 = struct.Struct(">i")

VERIFIED_CACHE_SIZE = 1024
"""Successful password checks remembered (an entry is 32 bytes of HMAC and a user name)."""
FAILURE_LOG_INTERVAL_S = 10.0
"""At most one failed-log-in line per peer address in this many seconds."""
_PASSWORD_PREFERENCE = (Mechanism.SCRAM_SHA_256, Mechanism.SCRAM_SHA_512)

_REFUSALS: dict[ResourceType, type[AuthorizationError]] = {
    ResourceType.TOPIC: TopicAuthorizationError,
    ResourceType.GROUP: GroupAuthorizationError,
    ResourceType.CLUSTER: ClusterAuthorizationError,
    ResourceType.TRANSACTIONAL_ID: AuthorizationError,
}


def parse_basic(header: str) -> tuple[str, str]:
    """``Basic base64(username:password)`` -> (username, password); AuthenticationFailedError otherwise."""
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic" or not token:
        raise AuthenticationFailedError(
            "the authorization metadata must be 'Basic base64(username:password)'"
        )
    try:
        text = base64.b64decode(token.strip(), validate=True).decode()
    except (binascii.Error, ValueError):
        raise AuthenticationFailedError("the Basic credentials are not base64 of UTF-8") from None
    username, sep, password = text.partition(":")
    if not sep or not username:
        raise AuthenticationFailedError("the Basic credentials are not username:password")
    return username, password


def producer_ids(records: bytes) -> set[int]:
    """The producer ids of the batches laid end to end in `records` (the framing is checked later, by
    the produce path; a short tail is left to it)."""
    if len(records) > PRODUCER_ID_OFFSET + 8 and _I32.unpack_from(records, LENGTH_OFFSET)[
        0
    ] + LENGTH_FIELD_END == len(records):  # one batch, the common case
        producer_id: int = _I64.unpack_from(records, PRODUCER_ID_OFFSET)[0]
        return set() if producer_id == -1 else {producer_id}
    found: set[int] = set()
    view = memoryview(records)
    position = 0
    while position + PRODUCER_ID_OFFSET + 8 <= len(view):
        found.add(_I64.unpack_from(view, position + PRODUCER_ID_OFFSET)[0])
        length = _I32.unpack_from(view, position + LENGTH_OFFSET)[0]
        if length <= 0:
            break
        position += LENGTH_FIELD_END + length
    found.discard(-1)
    return found


class Security:
    """Users, ACLs, super-users and the decisions over them, for one broker.

    Not thread-safe: used from the broker's event loop only (both listeners run there).
    """

    def __init__(
        self,
        store: SecurityStore,
        super_users: Iterable[str],
        *,
        clock: Callable[[], float] = time.monotonic,
        producer_limit: int = DEFAULT_PRODUCER_LIMIT,
    ) -> None:
        self.store = store
        self.super_users = frozenset(check_principal(p) for p in super_users)
        self.authorizer = Authorizer(store.bindings, self.super_users)
        self._secret = secrets.token_bytes(32)
        self._verified: OrderedDict[bytes, str] = OrderedDict()
        self._verified_generation = store.generation
        self._headers: dict[bytes, str] = {}
        """HMAC of an authorization header that checked out -> its principal (bounded, oldest out)."""
        self._headers_generation = store.generation
        self.producers = ProducerOwners(store.data_dir, producer_limit)
        """Which principal owns each idempotent producer id (durable, bounded)."""
        self._clock = clock
        self._failure_log_due: dict[str, float] = {}
        self.failures: Counter[str] = Counter()
        """Failed log-ins by listener ("grpc", "kafka")."""
        self.on_failure: Callable[[str, str], None] | None = None
        """Called with the listener's name at each failed log-in (the metrics' counter hooks in here)."""

    # --- authentication ---------------------------------------------------------------------------------

    def dummy_credential(self, username: str, mechanism: Mechanism) -> ScramCredential:
        """A credential no password matches, stable per name (its salt is an HMAC of the name), so an
        unknown user's exchange looks like a known one's."""
        salt = hmac.new(self._secret, f"{mechanism.value}\0{username}".encode(), hashlib.sha256).digest()
        return ScramCredential(
            mechanism=mechanism,
            salt=salt[:SALT_BYTES],
            iterations=DEFAULT_ITERATIONS,
            stored_key=secrets.token_bytes(len(hashlib.new(mechanism.hash_name).digest())),
            server_key=secrets.token_bytes(len(hashlib.new(mechanism.hash_name).digest())),
        )

    def scram_server(self, mechanism: Mechanism) -> ScramServer:
        return ScramServer(mechanism, self.store.credential, self.dummy_credential, secrets.token_urlsafe(24))

    async def check_password(self, username: str, password: str) -> bool:
        """Whether (username, password) is a user's (SASL PLAIN); successes are remembered (see the
        module), and the PBKDF2 of one not seen before runs in a worker thread."""
        if self._verified_generation != self.store.generation:
            self._verified.clear()
            self._verified_generation = self.store.generation
        key = hmac.digest(self._secret, f"{username}\0{password}".encode(), "sha256")
        cached = self._verified.get(key)
        if cached is not None and hmac.compare_digest(cached, username):
            self._verified.move_to_end(key)
            return True
        generation = self.store.generation
        credential = self._password_credential(username)
        checked = credential or self.dummy_credential(username, Mechanism.SCRAM_SHA_256)
        ok = await asyncio.to_thread(verify_password, checked, password)
        if ok and credential is not None and generation == self.store.generation:
            self._verified[key] = username
            if len(self._verified) > VERIFIED_CACHE_SIZE:
                self._verified.popitem(last=False)
            return True
        return False

    def known_header(self, header: str) -> str | None:
        """The principal of an ``authorization`` header that checked out before, recognised by its HMAC
        alone (one keyed hash and a dict look-up per call), until the users change."""
        if self._headers_generation != self.store.generation:
            self._headers.clear()
            self._headers_generation = self.store.generation
        return self._headers.get(hmac.digest(self._secret, header.encode(), "sha256"))

    async def authenticate_basic(self, header: str | None, peer: str, listener: str = "grpc") -> str:
        """The principal of a call's ``authorization`` metadata, or AuthenticationFailedError.

        The PBKDF2 of a header not seen before runs in a worker thread (hashlib lets go of the GIL), so a
        flood of wrong passwords does not stall the event loop; everything else runs on the loop."""
        if header is not None:
            known = self.known_header(header)
            if known is not None:
                return known
        if header is None:
            self.login_failed(listener, peer, None, "no credentials")
            raise AuthenticationFailedError(
                "authentication is required: send 'authorization: Basic base64(username:password)' metadata "
                "(the client's sasl_plain_username and sasl_plain_password) or a client certificate"
            )
        try:
            username, password = parse_basic(header)
        except AuthenticationFailedError as exc:
            self.login_failed(listener, peer, None, str(exc), mechanism="basic")
            raise
        generation = self.store.generation
        credential = self._password_credential(username)
        checked = credential or self.dummy_credential(username, Mechanism.SCRAM_SHA_256)
        ok = await asyncio.to_thread(verify_password, checked, password)
        if not (ok and credential is not None and generation == self.store.generation):
            self.login_failed(listener, peer, username, "wrong user name or password", mechanism="basic")
            raise AuthenticationFailedError("authentication failed: wrong user name or password")
        principal = user_principal(username)
        if len(self._headers) >= VERIFIED_CACHE_SIZE:
            del self._headers[next(iter(self._headers))]
        self._headers[hmac.digest(self._secret, header.encode(), "sha256")] = principal
        return principal

    def _password_credential(self, username: str) -> ScramCredential | None:
        credentials = self.store.users.get(username, {})
        return next((credentials[m] for m in _PASSWORD_PREFERENCE if m in credentials), None)

    def login_failed(
        self, listener: str, peer: str, username: str | None, reason: str, *, mechanism: str = "none"
    ) -> None:
        """Count a failed log-in and log it (at most one line per peer every FAILURE_LOG_INTERVAL_S);
        `mechanism` is the SASL mechanism tried ("basic" for gRPC's Basic credentials, "none")."""
        self.failures[listener] += 1
        if self.on_failure is not None:
            self.on_failure(listener, mechanism)
        now = self._clock()
        if now < self._failure_log_due.get(peer, 0.0):
            return
        if len(self._failure_log_due) > 10_000:
            self._failure_log_due.clear()
        self._failure_log_due[peer] = now + FAILURE_LOG_INTERVAL_S
        who = f" as user {username!r}" if username is not None else ""
        log.warning("failed log-in over %s from %s%s: %s", listener, peer, who, reason)

    # --- authorization ----------------------------------------------------------------------------------

    def _refresh(self) -> None:
        if self.authorizer.bindings != tuple(dict.fromkeys(self.store.bindings)):
            self.authorizer = self.authorizer.with_bindings(self.store.bindings)

    def is_super_user(self, principal: str) -> bool:
        return principal in self.super_users

    def permitted(self, principal: str, operation: Operation, resource_type: ResourceType, name: str) -> bool:
        return self.authorizer.authorize(principal, operation, resource_type, name)

    def require(self, principal: str, operation: Operation, resource_type: ResourceType, name: str) -> None:
        """Raise the resource type's AuthorizationError unless `principal` may do `operation` on it."""
        if not self.authorizer.authorize(principal, operation, resource_type, name):
            what = (
                "the cluster" if resource_type is ResourceType.CLUSTER else f"{resource_type.value} {name!r}"
            )
            raise _REFUSALS[resource_type](
                f"{principal} is not authorized to {operation.value} {what} (no ACL allows it, or one denies it)"
            )

    def require_super_user(self, principal: str, what: str) -> None:
        if principal not in self.super_users:
            raise ClusterAuthorizationError(
                f"{principal} is not authorized to {what}: only super-users (--super-users) may"
            )

    def require_cluster(self, principal: str, operation: Operation) -> None:
        self.require(principal, operation, ResourceType.CLUSTER, CLUSTER_NAME)

    # --- idempotent producers ---------------------------------------------------------------------------

    def bind_producer(self, producer_id: int, principal: str) -> None:
        """Producer ids never repeat, so the first principal to hold one keeps it (across restarts)."""
        self.producers.bind(producer_id, principal)

    def require_producer(self, producer_id: int, principal: str) -> None:
        """Refuse a batch under a producer id another principal was given (an id the broker holds no
        binding for, given out before bindings were kept or evicted since, is taken by the first
        principal that uses it: see `broker.auth.producer_owners`)."""
        owner = self.producers.bind(producer_id, principal)
        if owner != principal:
            raise ClusterAuthorizationError(
                f"{principal} may not write under producer id {producer_id}: another principal owns it "
                "(get your own with InitProducerId)"
            )

    # --- administration (super-users only; the service layer checks) ------------------------------------

    def set_user(
        self,
        name: str,
        password: str,
        mechanisms: Sequence[Mechanism],
        iterations: int,
        *,
        create: bool,
    ) -> UserListing:
        return self.store.set_user(name, password, mechanisms or tuple(Mechanism), iterations, create=create)

    def delete_user(self, name: str) -> None:
        self.store.delete_user(name)

    def alter_credentials(
        self, upsertions: dict[str, list[ScramCredential]], deletions: dict[str, list[Mechanism]]
    ) -> None:
        self.store.alter_credentials(upsertions, deletions)

    def list_users(self) -> list[UserListing]:
        return self.store.list_users()

    def create_acls(self, bindings: Iterable[AclBinding]) -> None:
        self.store.create_acls(bindings)
        self._refresh()

    def describe_acls(self, filter: AclFilter) -> list[AclBinding]:
        return self.store.describe_acls(filter)

    def delete_acls(self, filters: Iterable[AclFilter]) -> list[AclBinding]:
        removed = self.store.delete_acls(filters)
        self._refresh()
        return removed
