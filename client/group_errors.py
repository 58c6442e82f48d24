"""Consumer-group errors, and the mapping of group error codes onto them.

They extend the client's exception tree (``client.errors``); they live here so that the group code keeps
its error handling in one place. ``fatal`` errors end a consumer's membership: poll() raises them and the
configuration or the code must change.
"""

from __future__ import annotations

import grpc

from client.errors import ClientError, InvalidRequestError, error_from_rpc
from wire.logstore.v1 import common_pb2


class GroupError(ClientError):
    """Base of the consumer-group errors."""


class CommitFailedError(GroupError):
    """A commit was refused because this consumer is no longer the group member that owned the partitions
    (its session timed out or its epoch is stale): they were reassigned, and the new owner's offsets win."""


class FencedInstanceIdError(GroupError):
    """Another consumer joined with the same ``group_instance_id``; this one must stop (fatal)."""


class InvalidGroupRequestError(InvalidRequestError, GroupError):
    """The broker refused a group request as malformed (fatal): the message says what is allowed."""


class UnsupportedAssignorError(InvalidGroupRequestError):
    """The ``server_assignor`` is not one the broker knows ("uniform" or "range")."""


class InvalidRegularExpressionError(InvalidGroupRequestError):
    """The subscription's pattern is not a valid Python regular expression."""


class GroupIdNotFoundError(GroupError):
    """No group of that id exists (it has neither members nor committed offsets)."""


class NonEmptyGroupError(GroupError):
    """The operation needs a group without members (delete, reset offsets, commit from outside)."""

    retriable = True


class MemberLostError(GroupError):
    """The broker no longer knows this member or its epoch: its partitions are lost and it rejoins."""

    retriable = True


FATAL_CODES: dict[int, type[GroupError]] = {
    common_pb2.ERROR_CODE_FENCED_INSTANCE_ID: FencedInstanceIdError,
    common_pb2.ERROR_CODE_INVALID_GROUP_REQUEST: InvalidGroupRequestError,
    common_pb2.ERROR_CODE_UNSUPPORTED_ASSIGNOR: UnsupportedAssignorError,
    common_pb2.ERROR_CODE_INVALID_REGULAR_EXPRESSION: InvalidRegularExpressionError,
}
LOST_CODES = frozenset({common_pb2.ERROR_CODE_UNKNOWN_MEMBER_ID, common_pb2.ERROR_CODE_FENCED_MEMBER_EPOCH})


def group_error(code: int, message: str, group_id: str) -> GroupError:
    """The exception for a group error code answered in a Heartbeat or CommitOffsets response."""
    name = common_pb2.ErrorCode.Name(code) if code in common_pb2.ErrorCode.values() else str(code)
    text = f"group {group_id!r}: {message or 'the broker answered ' + name}"
    if code in FATAL_CODES:
        return FATAL_CODES[code](text)
    if code in LOST_CODES:
        return MemberLostError(text)
    if code == common_pb2.ERROR_CODE_NON_EMPTY_GROUP:
        return NonEmptyGroupError(text)
    if code == common_pb2.ERROR_CODE_GROUP_ID_NOT_FOUND:
        return GroupIdNotFoundError(text)
    return GroupError(text)


def group_rpc_error(error: grpc.RpcError, what: str) -> ClientError:
    """A failed group call as a client error: NOT_FOUND names a missing group (or topic), and
    FAILED_PRECONDITION a group that still has members."""
    mapped = error_from_rpc(error, what)
    code = error.code() if hasattr(error, "code") else None
    if code is grpc.StatusCode.FAILED_PRECONDITION:
        return NonEmptyGroupError(f"{mapped}; stop the group's consumers (or wait for their session timeout)")
    if (
        code is grpc.StatusCode.NOT_FOUND
        and "group" in str(mapped).lower()
        and "topic" not in str(mapped).lower()
    ):
        return GroupIdNotFoundError(str(mapped))
    return mapped
