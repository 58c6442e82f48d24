"""Typed errors raised by the storage engine.

Each error names what went wrong in words a person can act on. The broker maps these classes to gRPC
status codes and per-partition error codes in one table; nothing below the broker knows about gRPC.
"""

from __future__ import annotations


class LogStoreError(Exception):
    """Base class of every error the storage engine raises on purpose.

    Also the one root of the broker's expected errors: the layers above extend it with their own classes.
    """


# --- bad input: the caller sent something wrong, nothing was written ----------------------------------


class InvalidRequestError(LogStoreError):
    """The request is malformed in a way that retrying will not fix."""


class InvalidTopicError(InvalidRequestError):
    """A topic name breaks the naming rules (characters, length, '.' or '..')."""


class InvalidConfigError(InvalidRequestError):
    """A topic configuration key is unknown or its value is out of range."""


class InvalidPartitionCountError(InvalidRequestError):
    """A partition count is not positive, or would shrink a topic."""


class CorruptRecordError(InvalidRequestError):
    """A record batch fails its framing, magic byte, length or CRC check."""


class RecordTooLargeError(InvalidRequestError):
    """A record batch is larger than the topic's max_message_bytes."""


class InvalidTimestampError(InvalidRequestError):
    """A timestamp is negative or otherwise not usable."""


# --- state: the thing asked for does not exist, or exists already ------------------------------------


class UnknownTopicError(LogStoreError):
    """No topic of that name exists."""


class UnknownPartitionError(LogStoreError):
    """The topic exists but has no partition with that number."""


class TopicExistsError(LogStoreError):
    """A topic of that name exists already."""


class OffsetOutOfRangeError(LogStoreError):
    """The offset lies before the log start offset or after the log end offset."""

    def __init__(self, message: str, *, log_start_offset: int, log_end_offset: int) -> None:
        super().__init__(message)
        self.log_start_offset = log_start_offset
        self.log_end_offset = log_end_offset


# --- idempotent producers ----------------------------------------------------------------------------


class OutOfOrderSequenceError(InvalidRequestError):
    """An idempotent producer's batch skips or repeats sequence numbers out of order."""


class DuplicateSequenceNumberError(InvalidRequestError):
    """An idempotent producer's batch has the sequence numbers of a batch already written, but is not that
    batch (its CRC differs): it is refused rather than answered as a retry of the other one."""


class InvalidProducerEpochError(LogStoreError):
    """An idempotent producer's epoch is older than one the log has already seen (a fenced zombie)."""


# --- the engine itself ----------------------------------------------------------------------------------


class LogClosedError(LogStoreError):
    """The log or manager is closed (shutting down, or the topic was deleted)."""


class StorageError(LogStoreError):
    """The disk failed us: an I/O error while reading or writing segment files."""


class MetadataError(LogStoreError):
    """The data directory's topic list (meta.json) is missing, unreadable or does not match what is on
    disk; the manager refuses to open rather than guess, and the message says how to get out."""


class PartitionOfflineError(StorageError):
    """A write or fsync of this partition failed (EMFILE, ENOSPC, EIO...): it is offline until a restart.

    Kafka's KAFKA_STORAGE_ERROR for an offline log directory; the other partitions keep serving.
    """


class CorruptSegmentError(CorruptRecordError):
    """A stored batch fails its check when read: nothing of it is served (CORRUPT_RECORD for that offset).

    Unlike its parent this is no fault of the caller: the bytes on disk changed after they were written.
    `path` is the segment file, `offset` the batch's base offset as stored, `position` its byte.
    """

    def __init__(self, message: str, *, path: object, offset: int, position: int) -> None:
        super().__init__(message)
        self.path = path
        self.offset = offset
        self.position = position
