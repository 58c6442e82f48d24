"""Classic consumer groups over Kafka's protocol: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup.

Translation only: the rebalance rounds, fencing and timeouts are `ClassicGroups`' (the domain); errors map
through the one table in `errors`. A single broker is every group's coordinator; in a cluster a group's
coordinator is the leader of its `__consumer_offsets` partition (`ClusterInfo.coordinator`), and the
domain answers NOT_COORDINATOR on any other broker.
"""

from __future__ import annotations

from typing import Any

from kio.schema.errors import ErrorCode
from logstore.broker.auth.acl import Operation, ResourceType
from logstore.broker.classic_group_machine.errors import MemberIdRequiredError
from logstore.broker.classic_group_machine.model import JoinRequest
from logstore.broker.domain.cluster_info import CoordinatorKind
from logstore.broker.domain.groups.offset_store import OFFSETS_TOPIC
from logstore.broker.domain.share.state_store import STATE_TOPIC
from logstore.broker.kafka import cluster_answers, sasl
from logstore.broker.kafka.api_versions import NO_THROTTLE
from logstore.broker.kafka.codec import build, element, response_type
from logstore.broker.kafka.context import RequestContext
from logstore.broker.kafka.errors import error_code
from logstore.broker.kafka.versions import FIND_COORDINATOR, HEARTBEAT, JOIN_GROUP, LEAVE_GROUP, SYNC_GROUP

from logstore.errors import LogStoreError

GROUP_KEY = 0
"""FindCoordinator's key type for a group (1 is a transactional id, not supported)."""
SHARE_KEY = 2
"""FindCoordinator's key type for a share-partition's state (KIP-932): Kafka's key is
"groupId:topicId:partition"; here all of a share group's state lives with its coordinator, so the key
names the group (a plain group id is taken as well)."""
KINDS = {GROUP_KEY: CoordinatorKind.GROUP, SHARE_KEY: CoordinatorKind.SHARE}
TOPIC_ID_CHARS = 22
"""A Kafka topic id (Uuid) as text: 16 bytes in URL-safe base64 without padding."""
JOIN_WITH_MEMBER_ID_VERSION = 4
"""From JoinGroup v4 a new member is first given its id (KIP-394)."""


def client_host(ctx: RequestContext) -> str:
    """The member's address as Kafka shows it ("/127.0.0.1")."""
    peer = ctx.connection.removeprefix("kafka:")
    return "/" + peer.rsplit(":", 1)[0].strip("[]")


def find_coordinator(request: Any, version: int, ctx: RequestContext) -> Any:
    """One key (v0-3) or several of one type (v4+, KIP-699), each answered on its own."""
    cls = response_type(FIND_COORDINATOR, version)
    key_type = getattr(request, "key_type", GROUP_KEY)
    keys = getattr(request, "coordinator_keys", None)
    if keys is None:
        return build(cls, throttle_time=NO_THROTTLE, **_coordinator(key_type, request.key, ctx))
    coordinator_cls = element(cls, "coordinators")
    coordinators = tuple(build(coordinator_cls, key=key, **_coordinator(key_type, key, ctx)) for key in keys)
    return build(cls, throttle_time=NO_THROTTLE, coordinators=coordinators)


def _coordinator(key_type: int, key: str, ctx: RequestContext) -> dict[str, Any]:
    """The fields of one key's answer: the coordinator's node, or the error that there is none."""
    kind = KINDS.get(key_type)
    if kind is None:
        return _no_coordinator(
            ErrorCode.coordinator_not_available,
            "this broker has no transaction coordinator: transactions are not supported",
        )
    group_id = share_state_group(key) if kind is CoordinatorKind.SHARE else key
    refused = sasl.refusal(ctx.auth, Operation.DESCRIBE, ResourceType.GROUP, group_id)
    if refused is not None:
        return _no_coordinator(error_code(refused), str(refused))
    cluster = ctx.core.cluster
    broker_id = cluster.coordinator(kind, group_id)
    found = cluster_answers.node(cluster, ctx.endpoint, broker_id)
    if found is None:
        topic = OFFSETS_TOPIC if kind is CoordinatorKind.GROUP else STATE_TOPIC
        return _no_coordinator(
            ErrorCode.coordinator_not_available,
            f"group {group_id!r} has no coordinator right now (its {topic} partition has no live "
            "leader); retry shortly",
        )
    return {
        "error_code": ErrorCode.none,
        "error_message": None,
        "node_id": found.node_id,
        "host": found.host,
        "port": found.port,
    }


def share_state_group(key: str) -> str:
    """The group of a SHARE key: "groupId:topicId:partition" (a topic id is 22 characters of base64)
    gives groupId; anything else is taken as a group id itself."""
    parts = key.rsplit(":", 2)
    if len(parts) == 3 and len(parts[1]) == TOPIC_ID_CHARS and parts[2].isdigit():
        return parts[0]
    return key


def _no_coordinator(code: ErrorCode, message: str) -> dict[str, Any]:
    return {"error_code": code, "error_message": message, "node_id": -1, "host": "", "port": -1}


async def join_group(request: Any, version: int, ctx: RequestContext) -> Any:
    cls = response_type(JOIN_GROUP, version)
    member_cls = element(cls, "members")
    session_ms = int(request.session_timeout.total_seconds() * 1000)
    rebalance = getattr(request, "rebalance_timeout", None)
    join = JoinRequest(
        group_id=request.group_id,
        member_id=request.member_id,
        instance_id=getattr(request, "group_instance_id", None),
        client_id=ctx.client_id or "",
        client_host=client_host(ctx),
        session_timeout_ms=session_ms,
        rebalance_timeout_ms=session_ms if rebalance is None else int(rebalance.total_seconds() * 1000),
        protocol_type=request.protocol_type,
        protocols=tuple((p.name, p.metadata) for p in request.protocols),
        require_known_member_id=version >= JOIN_WITH_MEMBER_ID_VERSION,
    )
    try:
        sasl.require(ctx.auth, Operation.READ, ResourceType.GROUP, request.group_id)
        joined = await ctx.core.classic_groups.join(join)
    except LogStoreError as exc:
        member_id = exc.member_id if isinstance(exc, MemberIdRequiredError) else request.member_id
        return build(
            cls,
            throttle_time=NO_THROTTLE,
            error_code=error_code(exc),
            generation_id=-1,
            protocol_name="",
            leader="",
            member_id=member_id,
            members=(),
        )
    return build(
        cls,
        throttle_time=NO_THROTTLE,
        error_code=ErrorCode.none,
        generation_id=joined.generation_id,
        protocol_name=joined.protocol_name or "",
        leader=joined.leader_id,
        member_id=joined.member_id,
        members=tuple(
            build(member_cls, member_id=m.member_id, group_instance_id=m.instance_id, metadata=m.metadata)
            for m in joined.members
        ),
    )


async def sync_group(request: Any, version: int, ctx: RequestContext) -> Any:
    cls = response_type(SYNC_GROUP, version)
    try:
        sasl.require(ctx.auth, Operation.READ, ResourceType.GROUP, request.group_id)
        synced = await ctx.core.classic_groups.sync(
            request.group_id,
            request.generation_id,
            request.member_id,
            getattr(request, "group_instance_id", None),
            {a.member_id: a.assignment for a in request.assignments},
        )
    except LogStoreError as exc:
        return build(cls, throttle_time=NO_THROTTLE, error_code=error_code(exc), assignment=b"")
    return build(cls, throttle_time=NO_THROTTLE, error_code=ErrorCode.none, assignment=synced.assignment)


def heartbeat(request: Any, version: int, ctx: RequestContext) -> Any:
    cls = response_type(HEARTBEAT, version)
    try:
        sasl.require(ctx.auth, Operation.READ, ResourceType.GROUP, request.group_id)
        ctx.core.classic_groups.heartbeat(
            request.group_id,
            request.generation_id,
            request.member_id,
            getattr(request, "group_instance_id", None),
        )
        code = ErrorCode.none
    except LogStoreError as exc:
        code = error_code(exc)
    return build(cls, throttle_time=NO_THROTTLE, error_code=code)


def leave_group(request: Any, version: int, ctx: RequestContext) -> Any:
    cls = response_type(LEAVE_GROUP, version)
    batch = hasattr(request, "members")  # v3 (KIP-345): several members, static ones by instance id
    leaving: list[tuple[str, str | None]] = (
        [(m.member_id, m.group_instance_id) for m in request.members]
        if batch
        else [(request.member_id, None)]
    )
    try:
        sasl.require(ctx.auth, Operation.READ, ResourceType.GROUP, request.group_id)
        errors = ctx.core.classic_groups.leave(request.group_id, leaving)
    except LogStoreError as exc:
        return build(cls, throttle_time=NO_THROTTLE, error_code=error_code(exc), members=())
    if not batch:
        return build(cls, throttle_time=NO_THROTTLE, error_code=error_code(errors[0]))
    member_cls = element(cls, "members")
    members = tuple(
        build(member_cls, member_id=member_id, group_instance_id=instance_id, error_code=error_code(error))
        for (member_id, instance_id), error in zip(leaving, errors, strict=True)
    )
    return build(cls, throttle_time=NO_THROTTLE, error_code=ErrorCode.none, members=members)
