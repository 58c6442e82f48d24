"""The one table from error classes to gRPC status codes (whole calls) and wire error codes (partitions).

Every error the engine or the broker raises on purpose is a class in this table; the most specific class
of an exception decides. Anything else is a bug: INTERNAL / ERROR_CODE_UNKNOWN, logged with its traceback.

A whole call that fails carries its `ErrorCode` too, in the trailing metadata entry `ERROR_CODE_KEY`
(the code's number in decimal), so a client picks its error class by code, never by the message's words.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from logstore.broker.cluster import errors as cluster
from logstore.broker.domain import errors as broker
from logstore.broker.group_machine import errors as groups
from logstore.broker.share_machine import errors as shares
from logstore.wire.logstore.v1 import common_pb2 as common

from logstore import errors as engine

Status = grpc.StatusCode


@dataclass(frozen=True)
class ErrorMapping:
    """How one error class travels on the wire."""

    status: grpc.StatusCode
    """The gRPC status that ends a call when the error concerns the whole request."""
    code: common.ErrorCode
    """The `logstore.v1.ErrorCode` value when the error concerns one partition of a batched call."""


TABLE: dict[type[BaseException], ErrorMapping] = {
    # bad input: nothing was written, retrying as is will fail again
    engine.InvalidRequestError: ErrorMapping(Status.INVALID_ARGUMENT, common.ERROR_CODE_INVALID_REQUEST),
    engine.InvalidTopicError: ErrorMapping(Status.INVALID_ARGUMENT, common.ERROR_CODE_INVALID_TOPIC),
    engine.InvalidConfigError: ErrorMapping(Status.INVALID_ARGUMENT, common.ERROR_CODE_INVALID_CONFIG),
    engine.InvalidPartitionCountError: ErrorMapping(
        Status.INVALID_ARGUMENT, common.ERROR_CODE_INVALID_PARTITIONS
    ),
    engine.CorruptRecordError: ErrorMapping(Status.INVALID_ARGUMENT, common.ERROR_CODE_CORRUPT_RECORD),
    engine.RecordTooLargeError: ErrorMapping(Status.RESOURCE_EXHAUSTED, common.ERROR_CODE_RECORD_TOO_LARGE),
    engine.InvalidTimestampError: ErrorMapping(Status.INVALID_ARGUMENT, common.ERROR_CODE_INVALID_TIMESTAMP),
    # state: the thing asked for does not exist, exists already, or conflicts with what exists
    engine.UnknownTopicError: ErrorMapping(Status.NOT_FOUND, common.ERROR_CODE_UNKNOWN_TOPIC),
    engine.UnknownPartitionError: ErrorMapping(Status.NOT_FOUND, common.ERROR_CODE_UNKNOWN_PARTITION),
    engine.TopicExistsError: ErrorMapping(Status.ALREADY_EXISTS, common.ERROR_CODE_TOPIC_ALREADY_EXISTS),
    engine.OffsetOutOfRangeError: ErrorMapping(Status.OUT_OF_RANGE, common.ERROR_CODE_OFFSET_OUT_OF_RANGE),
    broker.CannotShrinkTopicError: ErrorMapping(
        Status.FAILED_PRECONDITION, common.ERROR_CODE_INVALID_PARTITIONS
    ),
    broker.InternalTopicError: ErrorMapping(Status.INVALID_ARGUMENT, common.ERROR_CODE_INVALID_TOPIC),
    # idempotent producers
    engine.OutOfOrderSequenceError: ErrorMapping(
        Status.FAILED_PRECONDITION, common.ERROR_CODE_OUT_OF_ORDER_SEQUENCE
    ),
    engine.DuplicateSequenceNumberError: ErrorMapping(
        Status.FAILED_PRECONDITION, common.ERROR_CODE_DUPLICATE_SEQUENCE_NUMBER
    ),
    engine.InvalidProducerEpochError: ErrorMapping(
        Status.FAILED_PRECONDITION, common.ERROR_CODE_INVALID_PRODUCER_EPOCH
    ),
    # consumer groups: membership and fencing, then group state, then malformed group requests
    groups.UnknownMemberIdError: ErrorMapping(
        Status.FAILED_PRECONDITION, common.ERROR_CODE_UNKNOWN_MEMBER_ID
    ),
    groups.FencedMemberEpochError: ErrorMapping(
        Status.FAILED_PRECONDITION, common.ERROR_CODE_FENCED_MEMBER_EPOCH
    ),
    groups.FencedInstanceIdError: ErrorMapping(
        Status.FAILED_PRECONDITION, common.ERROR_CODE_FENCED_INSTANCE_ID
    ),
    groups.GroupIdNotFoundError: ErrorMapping(Status.NOT_FOUND, common.ERROR_CODE_GROUP_ID_NOT_FOUND),
    groups.NonEmptyGroupError: ErrorMapping(Status.FAILED_PRECONDITION, common.ERROR_CODE_NON_EMPTY_GROUP),
    groups.InvalidGroupRequestError: ErrorMapping(
        Status.INVALID_ARGUMENT, common.ERROR_CODE_INVALID_GROUP_REQUEST
    ),
    groups.UnsupportedAssignorError: ErrorMapping(
        Status.INVALID_ARGUMENT, common.ERROR_CODE_UNSUPPORTED_ASSIGNOR
    ),
    groups.InvalidRegularExpressionError: ErrorMapping(
        Status.INVALID_ARGUMENT, common.ERROR_CODE_INVALID_REGULAR_EXPRESSION
    ),
    # share groups: a range the member does not hold, a group id of the other kind
    shares.InvalidRecordStateError: ErrorMapping(
        Status.FAILED_PRECONDITION, common.ERROR_CODE_INVALID_RECORD_STATE
    ),
    shares.InconsistentGroupProtocolError: ErrorMapping(
        Status.FAILED_PRECONDITION, common.ERROR_CODE_INCONSISTENT_GROUP_PROTOCOL
    ),
    # authentication and authorization (Kafka's codes)
    broker.AuthenticationFailedError: ErrorMapping(
        Status.UNAUTHENTICATED, common.ERROR_CODE_SASL_AUTHENTICATION_FAILED
    ),
    broker.AuthorizationError: ErrorMapping(
        Status.PERMISSION_DENIED, common.ERROR_CODE_CLUSTER_AUTHORIZATION_FAILED
    ),
    broker.TopicAuthorizationError: ErrorMapping(
        Status.PERMISSION_DENIED, common.ERROR_CODE_TOPIC_AUTHORIZATION_FAILED
    ),
    broker.GroupAuthorizationError: ErrorMapping(
        Status.PERMISSION_DENIED, common.ERROR_CODE_GROUP_AUTHORIZATION_FAILED
    ),
    broker.ClusterAuthorizationError: ErrorMapping(
        Status.PERMISSION_DENIED, common.ERROR_CODE_CLUSTER_AUTHORIZATION_FAILED
    ),
    broker.UnknownUserError: ErrorMapping(Status.NOT_FOUND, common.ERROR_CODE_RESOURCE_NOT_FOUND),
    broker.UserExistsError: ErrorMapping(Status.ALREADY_EXISTS, common.ERROR_CODE_DUPLICATE_RESOURCE),
    broker.SecurityStoreError: ErrorMapping(Status.UNAVAILABLE, common.ERROR_CODE_STORAGE_ERROR),  # start-up
    # a cluster: the request reached a broker that does not lead, or the replicas are too few
    broker.NotLeaderOrFollowerError: ErrorMapping(
        Status.FAILED_PRECONDITION, common.ERROR_CODE_NOT_LEADER_OR_FOLLOWER
    ),
    broker.NotEnoughReplicasError: ErrorMapping(Status.UNAVAILABLE, common.ERROR_CODE_NOT_ENOUGH_REPLICAS),
    broker.NotEnoughReplicasAfterAppendError: ErrorMapping(
        Status.UNAVAILABLE, common.ERROR_CODE_NOT_ENOUGH_REPLICAS_AFTER_APPEND
    ),
    broker.FencedLeaderEpochError: ErrorMapping(
        Status.FAILED_PRECONDITION, common.ERROR_CODE_FENCED_LEADER_EPOCH
    ),
    broker.UnknownLeaderEpochError: ErrorMapping(Status.UNAVAILABLE, common.ERROR_CODE_UNKNOWN_LEADER_EPOCH),
    broker.NotCoordinatorError: ErrorMapping(Status.FAILED_PRECONDITION, common.ERROR_CODE_NOT_COORDINATOR),
    cluster.NotControllerError: ErrorMapping(Status.UNAVAILABLE, common.ERROR_CODE_NOT_CONTROLLER),
    cluster.InvalidReplicationFactorError: ErrorMapping(
        Status.INVALID_ARGUMENT, common.ERROR_CODE_INVALID_REPLICATION_FACTOR
    ),
    cluster.ClusterMetadataError: ErrorMapping(Status.UNAVAILABLE, common.ERROR_CODE_NOT_AVAILABLE),
    cluster.StalePartitionStateError: ErrorMapping(
        Status.FAILED_PRECONDITION, common.ERROR_CODE_FENCED_LEADER_EPOCH
    ),
    # the broker or its disk: retrying later may work
    broker.RequestTimedOutError: ErrorMapping(Status.DEADLINE_EXCEEDED, common.ERROR_CODE_REQUEST_TIMED_OUT),
    broker.ShuttingDownError: ErrorMapping(Status.UNAVAILABLE, common.ERROR_CODE_NOT_AVAILABLE),
    engine.LogClosedError: ErrorMapping(Status.UNAVAILABLE, common.ERROR_CODE_NOT_AVAILABLE),
    engine.StorageError: ErrorMapping(Status.UNAVAILABLE, common.ERROR_CODE_STORAGE_ERROR),
    engine.MetadataError: ErrorMapping(Status.UNAVAILABLE, common.ERROR_CODE_STORAGE_ERROR),  # start-up only
    # Kafka's KAFKA_STORAGE_ERROR: the partition's disk failed a write; it is offline until a restart
    engine.PartitionOfflineError: ErrorMapping(Status.UNAVAILABLE, common.ERROR_CODE_STORAGE_ERROR),
    # a stored batch failed its check when read: the caller did nothing wrong, the disk did
    engine.CorruptSegmentError: ErrorMapping(Status.DATA_LOSS, common.ERROR_CODE_CORRUPT_RECORD),
}

UNEXPECTED = ErrorMapping(Status.INTERNAL, common.ERROR_CODE_UNKNOWN)

ERROR_CODE_KEY = "logstore-error-code"
"""The trailing metadata key of a failed call's `logstore.v1.ErrorCode` (documented in proto/README.md)."""


def error_code_trailer(code: int) -> tuple[tuple[str, str], ...]:
    """The trailing metadata that tells a client which `ErrorCode` ended its call."""
    return ((ERROR_CODE_KEY, str(code)),)


def mapping_for(error: BaseException) -> ErrorMapping:
    """The table entry of the most specific class of `error` (UNEXPECTED for classes not in it)."""
    for cls in type(error).__mro__:
        found = TABLE.get(cls)
        if found is not None:
            return found
    return UNEXPECTED


def is_expected(error: BaseException) -> bool:
    """Whether `error` was raised on purpose (else it is a bug worth a traceback in the log)."""
    return mapping_for(error) is not UNEXPECTED


def describe(error: BaseException) -> str:
    """The message a person reads: the error's own words, or a pointer to the log for a bug."""
    if is_expected(error):
        return str(error) or type(error).__name__
    return f"internal error ({type(error).__name__}); the broker's log has the details"


def partition_error(error: BaseException | None) -> tuple[common.ErrorCode, str]:
    """(`ErrorCode` value, message) for one partition's result; (ERROR_CODE_NONE, "") when all went well."""
    if error is None:
        return common.ERROR_CODE_NONE, ""
    return mapping_for(error).code, describe(error)


def _by_code() -> dict[int, type[BaseException]]:
    """The table read backwards, for answers of another broker (a forwarded call): per code the most
    general class listed for it (the one every other class of that code derives from), else the first
    of the engine's, else the first listed. Any class of a code maps forward to that code again, so an
    answer passed on keeps its code."""
    classes: dict[int, list[type[BaseException]]] = {}
    for cls, mapping in TABLE.items():
        classes.setdefault(mapping.code, []).append(cls)

    def pick(listed: list[type[BaseException]]) -> type[BaseException]:
        general = [c for c in listed if all(issubclass(o, c) for o in listed)]
        engines = [c for c in listed if c.__module__ == engine.__name__]
        return (general or engines or listed)[0]

    return {code: pick(listed) for code, listed in classes.items()}


CLASS_BY_CODE = _by_code()
_REQUIRED_FIELDS: dict[type[BaseException], dict[str, int]] = {
    engine.OffsetOutOfRangeError: {"log_start_offset": -1, "log_end_offset": -1},  # not on the wire
}


def error_from_code(code: int, message: str) -> engine.LogStoreError:
    """The error another broker answered with `code` (an `ErrorCode`) and `message`, as this broker's
    domain would raise it; a code this table does not know (ERROR_CODE_UNKNOWN: the other broker's bug)
    is a plain LogStoreError, which maps to UNEXPECTED again."""
    cls = CLASS_BY_CODE.get(code)
    if cls is None:
        return engine.LogStoreError(message)
    error = cls(message, **_REQUIRED_FIELDS.get(cls, {}))
    assert isinstance(error, engine.LogStoreError)
    return error
