"""Authentication and authorization at the entry of every logstore.v1 call (`--require-auth`).

`Guard.wrap` puts a check in front of each handler registered by `calls.add_servicer`: it finds the
caller's principal (``authorization: Basic base64(user:password)`` metadata, else the verified mTLS
certificate's subject), then runs the call's rule, which names the operation and resource each part of
the request needs (Kafka's mapping: produce is Write on the topic, fetch Read, commit Read on the group
and the topic, and so on) and may filter the answer (a topic or group the principal may not Describe is
not listed). A refusal ends the call through the one error table: UNAUTHENTICATED, or PERMISSION_DENIED
naming the operation and the resource. Handlers stay unaware of it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import grpc
from logstore.broker.auth.acl import CLUSTER_NAME, Operation, ResourceType
from logstore.broker.auth.security import Security, producer_ids
from logstore.broker.service.calls import MalformedRequest, abort
from logstore.broker.service.principal import peer_principal

READ, WRITE, CREATE, DELETE = Operation.READ, Operation.WRITE, Operation.CREATE, Operation.DELETE
ALTER, DESCRIBE = Operation.ALTER, Operation.DESCRIBE
TOPIC, GROUP, CLUSTER = ResourceType.TOPIC, ResourceType.GROUP, ResourceType.CLUSTER
AUTHORIZATION_KEY = "authorization"
PRINCIPAL: ContextVar[Checks | None] = ContextVar("logstore_principal", default=None)
"""The checks of the call being handled (set by the guard, in the handler's own task)."""


def check_producers(records: Iterable[bytes]) -> None:
    """Refuse batches under a producer id another principal holds (a no-op without auth)."""
    checks = PRINCIPAL.get()
    if checks is None:
        return
    for data in records:
        for producer_id in producer_ids(data):
            checks.security.require_producer(producer_id, checks.principal)


def authorizing() -> bool:
    """Whether the call being handled was admitted by the guard (auth is on)."""
    return PRINCIPAL.get() is not None


def check_reads(topics: Iterable[str]) -> None:
    """Read on each topic for the call being handled (a no-op without auth): ShareFetch checks its
    member's topics at every fetch, not only when the heartbeat subscribed to them."""
    checks = PRINCIPAL.get()
    if checks is not None:
        checks.topics(READ, topics)


def check_produce(request: Any) -> None:
    """The Produce rule for one request inside a ProduceStream (a no-op without auth): the guard admits
    the stream itself (who is calling), and each request on it is checked as a unary Produce would be,
    so a refused one is answered in place with its error code and the stream carries on."""
    checks = PRINCIPAL.get()
    if checks is not None:
        _produce(checks, request)


class Checks:
    """The checks of one call, for one principal; `Rule`s call these."""

    __slots__ = ("exists", "principal", "security")

    def __init__(self, security: Security, principal: str, exists: Callable[[str], bool]) -> None:
        self.security = security
        self.principal = principal
        self.exists = exists

    def may(self, operation: Operation, resource_type: ResourceType, name: str) -> bool:
        return self.security.permitted(self.principal, operation, resource_type, name)

    def need(self, operation: Operation, resource_type: ResourceType, name: str) -> None:
        self.security.require(self.principal, operation, resource_type, name)

    def topics(self, operation: Operation, names: Iterable[str]) -> None:
        for name in dict.fromkeys(names):
            self.need(operation, TOPIC, name)

    def may_create(self, topic: str) -> bool:
        """Kafka's rule: Create on the cluster, or on the topic."""
        return self.may(CREATE, CLUSTER, CLUSTER_NAME) or self.may(CREATE, TOPIC, topic)

    def writes(self, topic: str) -> None:
        """Write on the topic, and Create too when the write would auto-create it."""
        self.need(WRITE, TOPIC, topic)
        if not self.exists(topic) and not self.may_create(topic):
            self.need(CREATE, TOPIC, topic)

    def super_user(self, what: str) -> None:
        self.security.require_super_user(self.principal, what)


Check = Callable[[Checks, Any], None]
After = Callable[[Checks, Any], Any]


@dataclass(frozen=True)
class Rule:
    check: Check
    after: After | None = None
    """Run on the answer (filters listings, binds producer ids); returns the answer to send."""


def _produce(c: Checks, r: Any) -> None:
    """Write on each topic; the batches' producer ids are checked by the handler (`check_producers`),
    which reads the records anyway (each read of a bytes field copies it)."""
    checked = None
    for p in r.partitions:
        if p.topic != checked:  # a request's partitions come grouped by topic
            c.writes(p.topic)
            checked = p.topic


def _create_topic(c: Checks, r: Any) -> None:
    if not c.may_create(r.name):
        c.need(CREATE, TOPIC, r.name)


def _describe_topic(c: Checks, r: Any) -> None:
    c.need(DESCRIBE, TOPIC, r.name)
    if r.allow_auto_create and not c.may_create(r.name):
        r.allow_auto_create = False  # answered NOT_FOUND if it does not exist, as Kafka does


def _listing(field: str, resource_type: ResourceType, key: str) -> After:
    """An answer filter: keep the entries of `field` the principal may Describe (by their `key`)."""

    def keep_described(c: Checks, answer: Any) -> Any:
        entries = getattr(answer, field)
        keep = [e for e in entries if c.may(DESCRIBE, resource_type, getattr(e, key))]
        if len(keep) != len(entries):
            del entries[:]
            entries.extend(keep)
        return answer

    return keep_described


def _bind_producer(c: Checks, answer: Any) -> Any:
    c.security.bind_producer(answer.producer_id, c.principal)
    return answer


def _commit(c: Checks, r: Any) -> None:
    c.need(READ, GROUP, r.group_id)
    c.topics(READ, (o.topic for o in r.offsets))


def _reset(c: Checks, r: Any) -> None:
    c.need(READ, GROUP, r.group_id)
    c.topics(READ, (p.topic for p in r.partitions))


def _heartbeat(c: Checks, r: Any) -> None:
    """Read on the group, and Describe on each topic subscribed by name (KIP-848's rule), so a member
    cannot take partitions it may not read from the others."""
    c.need(READ, GROUP, r.group_id)
    c.topics(DESCRIBE, r.subscription.topic_names)


def _share_heartbeat(c: Checks, r: Any) -> None:
    c.need(READ, GROUP, r.group_id)
    c.topics(READ, r.topic_names)


def _share_fetch(c: Checks, r: Any) -> None:
    c.need(READ, GROUP, r.group_id)
    c.topics(READ, (a.topic for a in r.acknowledgements))


def _group(operation: Operation) -> Check:
    return lambda c, r: c.need(operation, GROUP, r.group_id)


def _topic(operation: Operation) -> Check:
    return lambda c, r: c.need(operation, TOPIC, r.name)


def _super_user(what: str) -> Check:
    return lambda c, r: c.super_user(what)


def _nothing(c: Checks, r: Any) -> None:
    """Any authenticated principal (InitProducerId: the id is bound to it; its writes are checked)."""


RULES: dict[str, dict[str, Rule]] = {
    "logstore.v1.AdminService": {
        "CreateTopic": Rule(_create_topic),
        "DeleteTopic": Rule(_topic(DELETE)),
        "ListTopics": Rule(_nothing, _listing("topics", TOPIC, "name")),
        "DescribeTopic": Rule(_describe_topic),
        "CreatePartitions": Rule(_topic(ALTER)),
        "AlterTopicConfig": Rule(_topic(Operation.ALTER_CONFIGS)),
        "DescribeCluster": Rule(_nothing),  # as Kafka's Metadata: brokers and controller for anyone
        "FindCoordinator": Rule(lambda c, r: c.need(DESCRIBE, GROUP, r.key)),
        "ReassignPartitions": Rule(lambda c, r: c.need(ALTER, CLUSTER, CLUSTER_NAME)),
        "CreateUser": Rule(_super_user("create users")),
        "AlterUser": Rule(_super_user("change users")),
        "DeleteUser": Rule(_super_user("delete users")),
        "ListUsers": Rule(_super_user("list users")),
        "CreateAcls": Rule(_super_user("create ACLs")),
        "DescribeAcls": Rule(_super_user("describe ACLs")),
        "DeleteAcls": Rule(_super_user("delete ACLs")),
    },
    "logstore.v1.ProduceService": {
        "Produce": Rule(_produce),
        "ProduceStream": Rule(_nothing),  # authenticated here; each request by `check_produce`
        "InitProducerId": Rule(_nothing, _bind_producer),
        "PublishRecords": Rule(lambda c, r: c.writes(r.topic)),
    },
    "logstore.v1.FetchService": {
        "Fetch": Rule(lambda c, r: c.topics(READ, (p.topic for p in r.partitions))),
        "Subscribe": Rule(lambda c, r: c.topics(READ, (p.topic for p in r.partitions))),
        "ListOffsets": Rule(lambda c, r: c.topics(DESCRIBE, (p.topic for p in r.partitions))),
        "FetchRecords": Rule(lambda c, r: c.need(READ, TOPIC, r.topic)),
    },
    "logstore.v1.GroupService": {
        "Heartbeat": Rule(_heartbeat),
        "CommitOffsets": Rule(_commit),
        "FetchOffsets": Rule(_group(DESCRIBE), _listing("offsets", TOPIC, "topic")),
        "ListGroups": Rule(_nothing, _listing("groups", GROUP, "group_id")),
        "DescribeGroup": Rule(_group(DESCRIBE)),
        "DeleteGroup": Rule(_group(DELETE)),
        "ResetOffsets": Rule(_reset),
    },
    "logstore.v1.ShareService": {
        "ShareHeartbeat": Rule(_share_heartbeat),
        "ShareFetch": Rule(_share_fetch),
        "ShareAcknowledge": Rule(_share_fetch),
        "DescribeShareGroup": Rule(_group(DESCRIBE)),
        "AlterGroupConfig": Rule(_group(Operation.ALTER_CONFIGS)),
        "DescribeGroupConfig": Rule(_group(Operation.DESCRIBE_CONFIGS)),
        "DeleteShareGroup": Rule(_group(DELETE)),
    },
    "logstore.v1.ReplicationService": {  # brokers only: Kafka's ClusterAction on the cluster
        "ReplicaFetch": Rule(_super_user("fetch as a replica")),
        "OffsetForLeaderEpoch": Rule(_super_user("ask leader epochs as a replica")),
    },
}
"""Every call's rule; a call without one is refused at start-up (`Guard.wrap` raises), never let through."""


class Guard:
    """Wraps handlers with the authentication and the call's rule. Not thread-safe: the broker's loop."""

    def __init__(self, security: Security, exists: Callable[[str], bool]) -> None:
        self.security = security
        self._exists = exists

    def known_principal(self, context: grpc.aio.ServicerContext) -> tuple[str | None, str | None]:
        """(principal, None) when it is known at once (a header seen before, or a client certificate),
        else (None, the header to check, or None for none)."""
        header = None
        for key, value in context.invocation_metadata() or ():
            if key == AUTHORIZATION_KEY:
                header = value if isinstance(value, str) else value.decode(errors="replace")
                break
        if header is None:
            return peer_principal(context), None
        return self.security.known_header(header), header

    def wrap(self, service: str, method: str, behavior: Any, streaming: bool) -> Any:
        rule = RULES.get(service, {}).get(method)
        if rule is None:
            raise LookupError(f"{service}/{method} has no authorization rule in broker/service/guard.py")

        async def admit(request: Any, context: grpc.aio.ServicerContext) -> Checks:
            """The call's checks; raises what refuses it. Suspends only for a password not seen before
            (its PBKDF2 runs in a worker thread)."""
            principal, header = self.known_principal(context)
            if principal is None:
                principal = await self.security.authenticate_basic(header, context.peer())
            checks = Checks(self.security, principal, self._exists)
            if not isinstance(request, MalformedRequest):  # the handler refuses it as it is
                rule.check(checks, request)
            return checks

        if streaming:

            async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                try:
                    checks = await admit(request, context)
                except Exception as error:
                    await abort(context, error, method)
                    return
                PRINCIPAL.set(checks)
                async for message in behavior(request, context):
                    yield message

            return stream

        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                checks = await admit(request, context)
            except Exception as error:
                await abort(context, error, method)
                raise AssertionError("unreachable: abort raises") from error
            PRINCIPAL.set(checks)
            answer = await behavior(request, context)
            if rule.after is not None and not isinstance(answer, bytes | type(None)):
                answer = rule.after(checks, answer)
            return answer

        return unary
