"""The client's exception tree, and the one place that maps wire errors onto it.

Every error the client raises on purpose is a ``ClientError``. Each class says whether retrying the same
request later may succeed (``retriable``); the producer retries only those, and applications can use the
flag the same way. Per-partition error codes (``wire.logstore.v1.common_pb2.ErrorCode``) and whole-call
gRPC status codes are both turned into these classes here, so nothing else in the client looks at them.
"""

from __future__ import annotations

import grpc

from wire.logstore.v1 import common_pb2


class ClientError(Exception):
    """Base class of the client's errors."""

    retriable = False
    """True when the same request may succeed if sent again later."""


# --- retriable: the broker or the network had a moment ------------------------------------------------


class BrokerUnavailableError(ClientError):
    """The broker could not be reached or is shutting down."""

    retriable = True


class RequestTimedOutError(ClientError):
    """The broker did not answer in time, or appended but could not confirm durability in time."""

    retriable = True


class NotAvailableError(ClientError):
    """The partition is closing (its topic is being deleted, or the broker is stopping)."""

    retriable = True


class BrokerStorageError(ClientError):
    """The broker could not read or write its disk."""

    retriable = True


class UnknownBrokerError(ClientError):
    """The broker hit something it did not expect; its log has the details."""

    retriable = True


# --- not retriable: the request must change -------------------------------------------------------------


class BrokerInternalError(ClientError):
    """The broker failed the whole call with an internal error (a bug); retrying will not help."""


class InvalidRequestError(ClientError):
    """The request is malformed in a way that retrying will not fix."""


class InvalidTopicError(InvalidRequestError):
    """A topic name breaks the naming rules: 1 to 249 characters from [A-Za-z0-9._-], not '.' or '..'."""


class InvalidConfigError(InvalidRequestError):
    """A topic configuration key is unknown or its value is out of range."""


class InvalidPartitionsError(InvalidRequestError):
    """A partition count is not positive, or would shrink a topic."""


class InvalidTimestampError(InvalidRequestError):
    """A timestamp is negative or otherwise unusable."""


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


class RecordTooLargeError(InvalidRequestError):
    """A record (or batch, or request) is larger than a limit allows."""


class UnknownTopicError(ClientError):
    """No topic of that name exists."""


class UnknownPartitionError(ClientError):
    """The topic exists but has no partition with that number."""


class TopicExistsError(ClientError):
    """A topic of that name exists already."""


class OffsetOutOfRangeError(ClientError):
    """An offset lies outside the partition's log; ``log_start_offset`` and ``high_watermark`` say where
    the log is now (-1 when unknown)."""

    def __init__(self, message: str, *, log_start_offset: int = -1, high_watermark: int = -1) -> None:
        super().__init__(message)
        self.log_start_offset = log_start_offset
        self.high_watermark = high_watermark


class OutOfOrderSequenceError(ClientError):
    """An idempotent producer's batch did not continue its partition's sequence; nothing was appended."""


class DuplicateSequenceNumberError(ClientError):
    """The broker holds another batch under this idempotent producer's id, epoch and sequence numbers (two
    producers may share the id): this batch was refused, nothing of it was appended."""


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


_BY_CODE: dict[int, type[ClientError]] = {
    common_pb2.ERROR_CODE_UNKNOWN: UnknownBrokerError,
    common_pb2.ERROR_CODE_UNKNOWN_TOPIC: UnknownTopicError,
    common_pb2.ERROR_CODE_UNKNOWN_PARTITION: UnknownPartitionError,
    common_pb2.ERROR_CODE_INVALID_TOPIC: InvalidTopicError,
    common_pb2.ERROR_CODE_CORRUPT_RECORD: CorruptRecordError,
    common_pb2.ERROR_CODE_RECORD_TOO_LARGE: RecordTooLargeError,
    common_pb2.ERROR_CODE_OFFSET_OUT_OF_RANGE: OffsetOutOfRangeError,
    common_pb2.ERROR_CODE_OUT_OF_ORDER_SEQUENCE: OutOfOrderSequenceError,
    common_pb2.ERROR_CODE_INVALID_PRODUCER_EPOCH: ProducerFencedError,
    common_pb2.ERROR_CODE_INVALID_REQUEST: InvalidRequestError,
    common_pb2.ERROR_CODE_INVALID_TIMESTAMP: InvalidTimestampError,
    common_pb2.ERROR_CODE_REQUEST_TIMED_OUT: RequestTimedOutError,
    common_pb2.ERROR_CODE_NOT_AVAILABLE: NotAvailableError,
    common_pb2.ERROR_CODE_STORAGE_ERROR: BrokerStorageError,
    common_pb2.ERROR_CODE_TOPIC_ALREADY_EXISTS: TopicExistsError,
    common_pb2.ERROR_CODE_INVALID_CONFIG: InvalidConfigError,
    common_pb2.ERROR_CODE_INVALID_PARTITIONS: InvalidPartitionsError,
    common_pb2.ERROR_CODE_DUPLICATE_SEQUENCE_NUMBER: DuplicateSequenceNumberError,
}

_BY_STATUS: dict[grpc.StatusCode, type[ClientError]] = {
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


def error_from_code(
    code: int, message: str, *, where: str = "", log_start_offset: int = -1, high_watermark: int = -1
) -> ClientError:
    """The exception for a per-partition error code; ``where`` (e.g. "orders-3") prefixes the message."""
    cls = _BY_CODE.get(code, UnknownBrokerError)
    text = (
        message
        or f"the broker answered error code {common_pb2.ErrorCode.Name(code) if code in _BY_CODE else code}"
    )
    if where and not text.startswith(where):
        text = f"{where}: {text}"
    if cls is OffsetOutOfRangeError:
        return OffsetOutOfRangeError(text, log_start_offset=log_start_offset, high_watermark=high_watermark)
    return cls(text)


def error_from_rpc(error: grpc.RpcError, what: str) -> ClientError:
    """The exception for a failed gRPC call; ``what`` names the call for the message (e.g. "Produce")."""
    code = error.code() if hasattr(error, "code") else None
    details = error.details() if hasattr(error, "details") else None
    cls = _BY_STATUS.get(code, UnknownBrokerError) if code is not None else BrokerUnavailableError
    status = code.name if code is not None else "no status"
    text = f"{what} failed ({status}): {details or 'no details from the broker'}"
    if code is grpc.StatusCode.UNAVAILABLE:
        text += "; is the broker running and reachable at the bootstrap address?"
    elif code is grpc.StatusCode.RESOURCE_EXHAUSTED and details and "larger than max" in details:
        # gRPC's own limit on the broker's side: its max_request_bytes, not a topic's max.message.bytes.
        text += (
            "; the broker refuses requests over its max_request_bytes (logstore serve --max-request-bytes)"
        )
    return cls(text)


def is_uncertain(error: grpc.RpcError) -> bool:
    """True when a failed call may still have been carried out by the broker."""
    return not hasattr(error, "code") or error.code() in UNCERTAIN_STATUSES
