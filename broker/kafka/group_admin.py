"""DescribeGroups, ListGroups and DeleteGroups over both kinds of consumer group.

A group id is either a classic group (Kafka's JoinGroup protocol, client-side assignment) or a group of the
consumer protocol (KIP-848, logstore's gRPC clients), and tools see both, as `kafka-consumer-groups` does
against Kafka 4. A KIP-848 member's assignment is shown in the classic ConsumerProtocol encoding, so tools
that decode it (kafka-python's admin client, AKHQ, Kafka UI) read its partitions.
"""

from __future__ import annotations

import struct
from typing import Any

from kio.schema.errors import ErrorCode
from logstore.broker.auth.acl import Operation, ResourceType
from logstore.broker.group_machine.errors import GroupIdNotFoundError
from logstore.broker.group_machine.model import Assignment
from logstore.broker.kafka import sasl
from logstore.broker.kafka.api_versions import NO_THROTTLE
from logstore.broker.kafka.codec import build, element, response_type
from logstore.broker.kafka.context import RequestContext
from logstore.broker.kafka.errors import error_code
from logstore.broker.kafka.versions import DELETE_GROUPS, DESCRIBE_GROUPS, LIST_GROUPS

from logstore.errors import LogStoreError

CONSUMER_PROTOCOL = "consumer"
UNKNOWN_OPERATIONS = -2147483648
"""authorized_operations when the client did not ask for them (Kafka's INT32_MIN)."""


def describe_groups(request: Any, version: int, ctx: RequestContext) -> Any:
    cls = response_type(DESCRIBE_GROUPS, version)
    group_cls = element(cls, "groups")
    member_cls = element(group_cls, "members")
    described = []
    for group_id in request.groups:
        try:
            sasl.require(ctx.auth, Operation.DESCRIBE, ResourceType.GROUP, group_id)
            fields = _describe(group_id, ctx, member_cls)
        except LogStoreError as exc:
            fields = _dead(group_id) | {"error_code": error_code(exc)}
        described.append(build(group_cls, authorized_operations=UNKNOWN_OPERATIONS, **fields))
    return build(cls, throttle_time=NO_THROTTLE, groups=tuple(described))


def _dead(group_id: str) -> dict[str, Any]:
    """An unknown group, as Kafka describes one before v6: state Dead, no error, no members."""
    return {
        "error_code": ErrorCode.none,
        "group_id": group_id,
        "group_state": "Dead",
        "protocol_type": "",
        "protocol_data": "",
        "members": (),
    }


def _describe(group_id: str, ctx: RequestContext, member_cls: type[Any]) -> dict[str, Any]:
    classic = ctx.core.classic_groups.describe(group_id)
    if classic is not None and (classic.members or not ctx.core.groups.has_members(group_id)):
        members = tuple(
            build(
                member_cls,
                member_id=m.member_id,
                group_instance_id=m.instance_id,
                client_id=m.client_id,
                client_host=m.client_host,
                member_metadata=m.metadata,
                member_assignment=m.assignment,
            )
            for m in classic.members
        )
        return {
            "error_code": ErrorCode.none,
            "group_id": group_id,
            "group_state": classic.state.value,
            "protocol_type": classic.protocol_type,
            "protocol_data": classic.protocol_name,
            "members": members,
        }
    try:
        view = ctx.core.groups.describe_group(group_id)
    except GroupIdNotFoundError:
        return _dead(group_id)
    group = view.description
    members = tuple(
        build(
            member_cls,
            member_id=m.member_id,
            group_instance_id=m.instance_id,
            client_id=m.client_id,
            client_host=m.client_host,
            member_metadata=b"",
            member_assignment=consumer_protocol_assignment(m.assigned_partitions),
        )
        for m in group.members
    )
    return {
        "error_code": ErrorCode.none,
        "group_id": group_id,
        "group_state": group.state.value,
        "protocol_type": CONSUMER_PROTOCOL,
        "protocol_data": group.assignor,
        "members": members,
    }


def consumer_protocol_assignment(partitions: Assignment) -> bytes:
    """ConsumerProtocolAssignment v0: version, [topic, [partition]], user data (null)."""
    by_topic: dict[str, list[int]] = {}
    for tp in sorted(partitions):
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    out = bytearray(struct.pack(">hi", 0, len(by_topic)))
    for topic, numbers in by_topic.items():
        name = topic.encode()
        out += struct.pack(">h", len(name)) + name
        out += struct.pack(f">i{len(numbers)}i", len(numbers), *numbers)
    out += struct.pack(">i", -1)
    return bytes(out)


def list_groups(request: Any, version: int, ctx: RequestContext) -> Any:
    cls = response_type(LIST_GROUPS, version)
    listed_cls = element(cls, "groups")
    found: dict[str, str] = {g.group_id: CONSUMER_PROTOCOL for g in ctx.core.groups.list_groups()}
    for classic in ctx.core.classic_groups.list_groups():
        found[classic.group_id] = classic.protocol_type or found.get(classic.group_id, CONSUMER_PROTOCOL)
    groups = tuple(
        build(listed_cls, group_id=g, protocol_type=t)
        for g, t in sorted(found.items())
        if sasl.permitted(ctx.auth, Operation.DESCRIBE, ResourceType.GROUP, g)  # the others are not listed
    )
    return build(cls, throttle_time=NO_THROTTLE, error_code=ErrorCode.none, groups=groups)


async def delete_groups(request: Any, version: int, ctx: RequestContext) -> Any:
    cls = response_type(DELETE_GROUPS, version)
    result_cls = element(cls, "results")
    results = []
    for group_id in request.groups_names:
        try:
            sasl.require(ctx.auth, Operation.DELETE, ResourceType.GROUP, group_id)
            await ctx.core.classic_groups.delete(group_id)
            code = ErrorCode.none
        except LogStoreError as exc:
            code = error_code(exc)
        results.append(build(result_cls, group_id=group_id, error_code=code))
    return build(cls, throttle_time=NO_THROTTLE, results=tuple(results))
