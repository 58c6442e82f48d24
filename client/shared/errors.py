"""The client's exception tree: one registry of error classes by wire code, and the one place that maps
wire errors onto it.

Every error the client raises on purpose is a ``ClientError``. Each class says whether retrying the same
request later may succeed (``retriable``); the producer retries only those, and applications can use the
flag the same way. A class that stands for a ``logstore.v1.ErrorCode`` carries it as ``code`` (the
aiokafka habit), set by ``@wire_code``; ``for_code(code)`` is the one lookup. Every code of the wire enum
but ERROR_CODE_NONE has exactly one class, consumer-group codes included (a test checks it).

Per-partition error codes and whole-call failures are both turned into these classes here, so nothing else
in the client looks at them. A failed call names its code in the trailing metadata entry
``logstore-error-code``; only failures that never reached the broker's handlers (the network, gRPC's own
limits) are classified by their gRPC status. Never by the words of a message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, TypeVar

import grpc
from logstore.wire.logstore.v1 import common_pb2

ERROR_CODE_KEY = "logstore-error-code"
"""The trailing metadata key in which the broker names a failed call's ``ErrorCode`` (see proto/README.md)."""

_REGISTRY: dict[int, type[ClientError]] = {}
_E = TypeVar("_E", bound="type[ClientError]")


def wire_code(code: int) -> Callable[[_E], _E]:
    """Class decorator: ``cls`` is the client's error for ``code``; each code has exactly one class."""

    def register(cls: _E) -> _E:
        taken = _REGISTRY.get(code)
        if taken is not None:
            raise TypeError(
                f"{common_pb2.ErrorCode.Name(code)} is {taken.__name__} already, not {cls.__name__}"
            )
        cls.code = code
        _REGISTRY[code] = cls
        return cls

    return register


def for_code(code: int) -> type[ClientError]:
    """The error class of a wire ``ErrorCode`` (``UnknownBrokerError`` for a code this client does not know)."""
    return _REGISTRY.get(code, UnknownBrokerError)


def registry() -> dict[int, type[ClientError]]:
    """A copy of the code -> class registry (for tests and tools)."""
    return dict(_REGISTRY)


class ClientError(Exception):
    """Base class of the client's errors."""

    retriable = False
    """True when the same request may succeed if sent again later."""
    code: ClassVar[int | None] = None
    """The ``logstore.v1.ErrorCode`` this class stands for; None for errors of the client's own making."""


# --- retriable: the broker or the network had a moment ------------------------------------------------


class BrokerUnavailableError(ClientError):
    """The broker could not be reached or is shutting down."""

    retriable = True


@wire_code(common_pb2.ERROR_CODE_REQUEST_TIMED_OUT)
class RequestTimedOutError(ClientError):
    """The broker did not answer in time, or appended but could not confirm durability in time."""

    retriable = True


@wire_code(common_pb2.ERROR_CODE_NOT_AVAILABLE)
class NotAvailableError(ClientError):
    """The partition is closing (its topic is being deleted, or the broker is stopping)."""

    retriable = True


@wire_code(common_pb2.ERROR_CODE_STORAGE_ERROR)
class BrokerStorageError(ClientError):
    """The broker could not read or write its disk."""

    retriable = True


@wire_code(common_pb2.ERROR_CODE_UNKNOWN)
class UnknownBrokerError(ClientError):
    """The broker hit something it did not expect; its log has the details."""

    retriable = True


class InvalidMetadataError(ClientError):
    """The broker's answer says the client's picture of the cluster is out of date (a partition's
    leader moved, a coordinator moved): refresh metadata and retry. kafka-python's habit."""

    retriable = True


@wire_code(common_pb2.ERROR_CODE_NOT_LEADER_OR_FOLLOWER)
class NotLeaderOrFollowerError(InvalidMetadataError):
    """The broker asked does not lead the partition; the client refreshes metadata and sends to the leader."""


@wire_code(common_pb2.ERROR_CODE_FENCED_LEADER_EPOCH)
class FencedLeaderEpochError(InvalidMetadataError):
    """The request named an older leader epoch than the leader's: metadata is stale."""


@wire_code(common_pb2.ERROR_CODE_UNKNOWN_LEADER_EPOCH)
class UnknownLeaderEpochError(InvalidMetadataError):
    """The request named a newer leader epoch than the broker knows: it is behind; retry."""


@wire_code(common_pb2.ERROR_CODE_NOT_COORDINATOR)
class NotCoordinatorError(InvalidMetadataError):
    """The broker asked is not the group's coordinator (it moved); find it again and retry."""


@wire_code(common_pb2.ERROR_CODE_NOT_CONTROLLER)
class NotControllerError(InvalidMetadataError):
    """The call reached a broker that is no longer the cluster's controller; retry."""


@wire_code(common_pb2.ERROR_CODE_NOT_ENOUGH_REPLICAS)
class NotEnoughReplicasError(ClientError):
    """acks=all: the partition has fewer in-sync replicas than min.insync.replicas; nothing was written."""

    retriable = True


@wire_code(common_pb2.ERROR_CODE_NOT_ENOUGH_REPLICAS_AFTER_APPEND)
class NotEnoughReplicasAfterAppendError(ClientError):
    """acks=all: written on the leader, but the in-sync replicas fell below min.insync.replicas before
    it was replicated (an idempotent producer's retry is deduplicated)."""

    retriable = True


# --- not retriable: the request must change -------------------------------------------------------------


@wire_code(common_pb2.ERROR_CODE_INVALID_REPLICATION_FACTOR)
class InvalidReplicationFactorError(ClientError):
    """The replication factor is below 1 or above the number of live brokers."""


class UnsupportedVersionError(ClientError):
    """The broker does not know the call (UNIMPLEMENTED: an older broker, or not a logstore broker).
    Raised where the client falls back on not knowing (DescribeCluster: then the broker is alone); other
    UNIMPLEMENTED answers stay ``UnknownBrokerError`` (the producer retries a ProduceStream one unary)."""


class BrokerInternalError(ClientError):
    """The broker failed the whole call with an internal error (a bug); retrying will not help."""


@wire_code(common_pb2.ERROR_CODE_INVALID_REQUEST)
class InvalidRequestError(ClientError):
    """The request is malformed in a way that retrying will not fix."""


@wire_code(common_pb2.ERROR_CODE_INVALID_TOPIC)
class InvalidTopicError(InvalidRequestError):
    """A topic name breaks the naming rules: 1 to 249 characters from [A-Za-z0-9._-], not '.' or '..'."""


@wire_code(common_pb2.ERROR_CODE_INVALID_CONFIG)
class InvalidConfigError(InvalidRequestError):
    """A topic configuration key is unknown or its value is out of range."""


@wire_code(common_pb2.ERROR_CODE_INVALID_PARTITIONS)
class InvalidPartitionsError(InvalidRequestError):
    """A partition count is not positive, or would shrink a topic."""


@wire_code(common_pb2.ERROR_CODE_INVALID_TIMESTAMP)
class InvalidTimestampError(InvalidRequestError):
    """A timestamp is negative or otherwise unusable."""


@wire_code(common_pb2.ERROR_CODE_CORRUPT_RECORD)
class CorruptRecordError(InvalidRequestError):
    """A record batch failed its framing, magic byte, length or CRC check, or its records do not decode.

    Raised by a consumer's poll(), it names the partition (``topic``, ``partition``) and ``offset``, the
    consumer's position, which stays there: every poll raises again until the application seeks past.
    ``next_offset`` is the offset after the bad batch (-1 when unknown: then try ``offset + 1``).
    """

    def __init__(
        self,
        message: str,
        *,
        topic: str | None = None,
        partition: int | None = None,
        offset: int = -1,
        next_offset: int = -1,
    ) -> None:
        super().__init__(message)
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.next_offset = next_offset

    def copy(self) -> CorruptRecordError:
        """The same error, fresh: a consumer keeps one to raise on every poll, and raises copies, so the
        kept one never holds a traceback (whose frames would tie the consumer into a reference cycle)."""
        return CorruptRecordError(
            str(self),
            topic=self.topic,
            partition=self.partition,
            offset=self.offset,
            next_offset=self.next_offset,
        )


@wire_code(common_pb2.ERROR_CODE_RECORD_TOO_LARGE)
class RecordTooLargeError(InvalidRequestError):
    """A record (or batch, or request) is larger than a limit allows."""


@wire_code(common_pb2.ERROR_CODE_UNKNOWN_TOPIC)
class UnknownTopicError(ClientError):
    """No topic of that name exists."""


@wire_code(common_pb2.ERROR_CODE_UNKNOWN_PARTITION)
class UnknownPartitionError(ClientError):
    """The topic exists but has no partition with that number."""


@wire_code(common_pb2.ERROR_CODE_TOPIC_ALREADY_EXISTS)
class TopicExistsError(ClientError):
    """A topic of that name exists already."""


@wire_code(common_pb2.ERROR_CODE_OFFSET_OUT_OF_RANGE)
class OffsetOutOfRangeError(ClientError):
    """An offset lies outside the partition's log; ``log_start_offset`` and ``high_watermark`` say where
    the log is now (-1 when unknown)."""

    def __init__(self, message: str, *, log_start_offset: int = -1, high_watermark: int = -1) -> None:
        super().__init__(message)
        self.log_start_offset = log_start_offset
        self.high_watermark = high_watermark


@wire_code(common_pb2.ERROR_CODE_OUT_OF_ORDER_SEQUENCE)
class OutOfOrderSequenceError(ClientError):
    """An idempotent producer's batch did not continue its partition's sequence; nothing was appended."""


@wire_code(common_pb2.ERROR_CODE_DUPLICATE_SEQUENCE_NUMBER)
class DuplicateSequenceNumberError(ClientError):
    """The broker holds another batch under this idempotent producer's id, epoch and sequence numbers (two
    producers may share the id): this batch was refused, nothing of it was appended."""


@wire_code(common_pb2.ERROR_CODE_INVALID_PRODUCER_EPOCH)
class ProducerFencedError(ClientError):
    """A newer instance of this idempotent producer has taken over (its epoch is higher)."""


# --- raised by the client itself ------------------------------------------------------------------------


class DeliveryTimeoutError(ClientError):
    """A record was not acknowledged within ``delivery_timeout_ms``. Unless the error is also an
    ``UnknownDeliveryError``, no attempt to send it can have been written."""


class UnknownDeliveryError(ClientError):
    """The record may or may not have been written (librdkafka's "possibly persisted"): an attempt to send
    it got no answer, and the producer had to give up before learning its fate. Sending it again may write
    it twice; read the partition to find out. Any other delivery error means it was not written."""


class UnknownDeliveryTimeoutError(DeliveryTimeoutError, UnknownDeliveryError):
    """Not acknowledged within ``delivery_timeout_ms``, after an attempt whose answer was lost: the record
    may or may not have been written."""


class BufferExhaustedError(ClientError):
    """``send()`` waited ``max_block_ms`` for buffer memory (or for topic metadata) and gave up."""


class ClosedError(ClientError):
    """The producer, consumer or admin client has been closed."""


class IllegalStateError(ClientError):
    """The call does not fit the client's current state (for example a partition that is not assigned)."""


class NoOffsetForPartitionError(ClientError):
    """A partition has no position and ``auto_offset_reset`` is "none"."""


class SerializationError(ClientError):
    """A serializer or deserializer failed on a key or value."""


# --- consumer groups ---------------------------------------------------------------------------------------


class GroupError(ClientError):
    """Base of the consumer-group errors. A ``fatal`` one ends the consumer's membership: poll() raises it
    and the configuration or the code must change."""

    fatal = False


class CommitFailedError(GroupError):
    """A commit was refused because this consumer is no longer the group member that owned the partitions
    (its session timed out or its epoch is stale): they were reassigned, and the new owner's offsets win."""


class MemberLostError(GroupError):
    """The broker no longer knows this member or its epoch: its partitions are lost and it rejoins."""

    retriable = True


@wire_code(common_pb2.ERROR_CODE_UNKNOWN_MEMBER_ID)
class UnknownMemberIdError(MemberLostError):
    """The member id is not (or no longer) in the group: it left, its session timed out, or the broker
    restarted. The consumer gives up its partitions without committing and rejoins."""


@wire_code(common_pb2.ERROR_CODE_FENCED_MEMBER_EPOCH)
class FencedMemberEpochError(MemberLostError):
    """The member epoch sent is not the member's current one (a zombie, or answers were missed). The
    consumer gives up its partitions without committing and rejoins."""


@wire_code(common_pb2.ERROR_CODE_FENCED_INSTANCE_ID)
class FencedInstanceIdError(GroupError):
    """Another consumer joined with the same ``group_instance_id``; this one must stop (fatal)."""

    fatal = True


@wire_code(common_pb2.ERROR_CODE_INVALID_GROUP_REQUEST)
class InvalidGroupRequestError(InvalidRequestError, GroupError):
    """The broker refused a group request as malformed (fatal): the message says what is allowed."""

    fatal = True


@wire_code(common_pb2.ERROR_CODE_UNSUPPORTED_ASSIGNOR)
class UnsupportedAssignorError(InvalidGroupRequestError):
    """The ``server_assignor`` is not one the broker knows ("uniform" or "range")."""


@wire_code(common_pb2.ERROR_CODE_INVALID_REGULAR_EXPRESSION)
class InvalidRegularExpressionError(InvalidGroupRequestError):
    """The subscription's pattern is not a valid Python regular expression."""


@wire_code(common_pb2.ERROR_CODE_GROUP_ID_NOT_FOUND)
class GroupIdNotFoundError(GroupError):
    """No group of that id exists (it has neither members nor committed offsets)."""


@wire_code(common_pb2.ERROR_CODE_NON_EMPTY_GROUP)
class NonEmptyGroupError(GroupError):
    """The operation needs a group without members (delete, reset offsets, commit from outside)."""

    retriable = True


# --- share groups ------------------------------------------------------------------------------------------


@wire_code(common_pb2.ERROR_CODE_INVALID_RECORD_STATE)
class InvalidRecordStateError(ClientError):
    """An acknowledged range holds an offset this share-group member does not hold (never acquired, held
    by another member, its lock expired, or acknowledged already): nothing in that range changed."""


@wire_code(common_pb2.ERROR_CODE_INCONSISTENT_GROUP_PROTOCOL)
class InconsistentGroupProtocolError(GroupError):
    """The group id belongs to a group of the other kind (a consumer group's id used for a share group,
    or the reverse); use another id."""

    fatal = True


# --- authentication and authorization (Kafka's names) ------------------------------------------------------


class AuthorizationError(ClientError):
    """The broker knows who you are, but no ACL allows what you asked (or one denies it)."""


@wire_code(common_pb2.ERROR_CODE_TOPIC_AUTHORIZATION_FAILED)
class TopicAuthorizationFailedError(AuthorizationError):
    """The operation on the topic is not allowed for your principal; the message names both."""


@wire_code(common_pb2.ERROR_CODE_GROUP_AUTHORIZATION_FAILED)
class GroupAuthorizationFailedError(AuthorizationError):
    """The operation on the group is not allowed for your principal."""


@wire_code(common_pb2.ERROR_CODE_CLUSTER_AUTHORIZATION_FAILED)
class ClusterAuthorizationFailedError(AuthorizationError):
    """The operation needs a super-user, or writes under another principal's producer id."""


@wire_code(common_pb2.ERROR_CODE_SASL_AUTHENTICATION_FAILED)
class AuthenticationFailedError(ClientError):
    """No credentials were sent, or they do not check out (the broker never says which)."""


@wire_code(common_pb2.ERROR_CODE_RESOURCE_NOT_FOUND)
class ResourceNotFoundError(ClientError):
    """The user named does not exist."""


@wire_code(common_pb2.ERROR_CODE_DUPLICATE_RESOURCE)
class DuplicateResourceError(ClientError):
    """A user of that name exists already."""


# --- from the wire ------------------------------------------------------------------------------------------

_BY_STATUS: dict[grpc.StatusCode, type[ClientError]] = {
    # Only for failures that carry no ``logstore-error-code``: the call never reached a broker handler.
    grpc.StatusCode.UNAVAILABLE: BrokerUnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: RequestTimedOutError,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidRequestError,
    grpc.StatusCode.NOT_FOUND: UnknownTopicError,
    grpc.StatusCode.ALREADY_EXISTS: TopicExistsError,
    grpc.StatusCode.FAILED_PRECONDITION: InvalidRequestError,
    grpc.StatusCode.OUT_OF_RANGE: OffsetOutOfRangeError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: RecordTooLargeError,
    grpc.StatusCode.INTERNAL: BrokerInternalError,
    grpc.StatusCode.UNKNOWN: UnknownBrokerError,
    grpc.StatusCode.CANCELLED: BrokerUnavailableError,
    grpc.StatusCode.UNAUTHENTICATED: AuthenticationFailedError,
    grpc.StatusCode.PERMISSION_DENIED: AuthorizationError,
}

# Whole-call failures after which the client cannot know whether the broker acted on the request.
UNCERTAIN_STATUSES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.INTERNAL,
    }
)


def _code_name(code: int) -> str:
    return common_pb2.ErrorCode.Name(code) if code in common_pb2.ErrorCode.values() else str(code)


def error_from_code(
    code: int, message: str, *, where: str = "", log_start_offset: int = -1, high_watermark: int = -1
) -> ClientError:
    """The exception for a per-partition error code; ``where`` (e.g. "orders-3") prefixes the message."""
    cls = for_code(code)
    text = message or f"the broker answered error code {_code_name(code)}"
    if where and not text.startswith(where):
        text = f"{where}: {text}"
    if cls is OffsetOutOfRangeError:
        return OffsetOutOfRangeError(text, log_start_offset=log_start_offset, high_watermark=high_watermark)
    return cls(text)


def group_error(code: int, message: str, group_id: str) -> GroupError:
    """The exception for a group error code answered in a Heartbeat or CommitOffsets response."""
    error = error_from_code(code, message, where=f"group {group_id!r}")
    return error if isinstance(error, GroupError) else GroupError(str(error))


def trailer_code(error: grpc.RpcError) -> int | None:
    """The ``ErrorCode`` a failed call names in its trailing metadata, or None (no broker handler ran)."""
    trailing = getattr(error, "trailing_metadata", None)
    for key, value in (trailing() if callable(trailing) else None) or ():
        if key == ERROR_CODE_KEY:
            try:
                return int(value)
            except (TypeError, ValueError):
                return None
    return None


def error_from_rpc(error: grpc.RpcError, what: str) -> ClientError:
    """The exception for a failed gRPC call; ``what`` names the call for the message (e.g. "Produce").

    The class comes from the call's ``logstore-error-code`` trailer; a broker bug (ERROR_CODE_UNKNOWN) and
    failures without the trailer go by their gRPC status."""
    status = error.code() if hasattr(error, "code") else None
    details = error.details() if hasattr(error, "details") else None
    code = trailer_code(error)
    if code is not None and code != common_pb2.ERROR_CODE_UNKNOWN:
        cls = for_code(code)
    elif status is not None:
        cls = _BY_STATUS.get(status, UnknownBrokerError)
    else:
        cls = BrokerUnavailableError
    status_name = status.name if status is not None else "no status"
    text = f"{what} failed ({status_name}): {details or 'no details from the broker'}"
    if status is grpc.StatusCode.UNAVAILABLE and code is None:
        if details and "handshake failed" in details.lower():  # a hint only: the class stays the status's
            text += (
                "; the TLS handshake with the broker failed: ssl_cafile must be the CA that signed the "
                "broker's certificate, the bootstrap host one the certificate names, and ssl_certfile and "
                "ssl_keyfile a pair the broker's --tls-client-ca signed when it requires client certificates"
            )
        else:
            text += (
                "; is the broker running and reachable at the bootstrap address? (A TLS broker closes the "
                "connection of a plaintext client, and one requiring client certificates that of a client "
                "without one it trusts: security_protocol='SSL', ssl_cafile, ssl_certfile, ssl_keyfile)"
            )
    elif (
        status is grpc.StatusCode.RESOURCE_EXHAUSTED
        and code is None
        and details
        and "larger than max" in details
    ):
        # gRPC's own limit on the broker's side: its max_request_bytes, not a topic's max.message.bytes.
        text += (
            "; the broker refuses requests over its max_request_bytes (logstore serve --max-request-bytes)"
        )
    return cls(text)


def is_uncertain(error: grpc.RpcError) -> bool:
    """True when a failed call may still have been carried out by the broker."""
    return not hasattr(error, "code") or error.code() in UNCERTAIN_STATUSES


class LocalUnavailable(grpc.RpcError):
    """An RpcError the client raises itself (no broker answered, a stream given up): status UNAVAILABLE,
    so callers retry it as they retry the transport's own, with details that say why."""

    def __init__(self, details: str) -> None:
        super().__init__(details)
        self._details = details

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> tuple[()]:
        return ()
