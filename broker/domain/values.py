"""Plain values passed between the service layer and the domain: no grpc, no generated types."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Acks(enum.Enum):
    """When a produce call is answered."""

    NONE = 0
    """At once, before appending; failures are only logged."""
    LEADER = 1
    """After the append (page cache)."""
    ALL = -1
    """After the append is fsynced."""


class StartFrom(enum.Enum):
    """Where a subscription starts reading a partition."""

    EARLIEST = "earliest"
    LATEST = "latest"
    OFFSET = "offset"
    TIMESTAMP = "timestamp"


class OffsetSpec(enum.Enum):
    """What a list-offsets lookup asks for."""

    EARLIEST = "earliest"
    LATEST = "latest"
    TIMESTAMP = "timestamp"


@dataclass(frozen=True, slots=True)
class ProduceEntry:
    """Raw record batches for one partition."""

    topic: str
    partition: int
    records: bytes


@dataclass(frozen=True, slots=True)
class AppendOutcome:
    """What became of one ProduceEntry: offsets, or the error that kept it out of the log."""

    topic: str
    partition: int
    base_offset: int = -1
    log_append_time_ms: int = -1
    log_start_offset: int = -1
    error: Exception | None = None
    record_count: int = 0
    """Records appended (0 for a retried batch answered from memory): what the metrics count."""


@dataclass(frozen=True, slots=True)
class FetchSpec:
    """Read one partition from `offset`, at most `max_bytes` (but at least one whole batch)."""

    topic: str
    partition: int
    offset: int
    max_bytes: int


@dataclass(frozen=True, slots=True)
class PartitionRead:
    """Batches read from one partition, with its offsets at the time; or the error that stopped the read."""

    topic: str
    partition: int
    records: bytes = b""
    high_watermark: int = -1
    log_start_offset: int = -1
    error: Exception | None = None


@dataclass(frozen=True, slots=True)
class SubscribeStart:
    """One partition a subscription follows, and where it starts."""

    topic: str
    partition: int
    start_from: StartFrom
    offset: int = -1
    timestamp_ms: int = -1


@dataclass(frozen=True, slots=True)
class OffsetQuery:
    """One list-offsets lookup; `spec` is None when the client did not say what it wants."""

    topic: str
    partition: int
    spec: OffsetSpec | None
    timestamp_ms: int = -1


@dataclass(frozen=True, slots=True)
class OffsetAnswer:
    """The offset found (-1 for none) and, for a timestamp lookup, the batch timestamp found."""

    topic: str
    partition: int
    offset: int = -1
    timestamp_ms: int = -1
    error: Exception | None = None


@dataclass(frozen=True, slots=True)
class PartitionOffsets:
    """A partition's log start and end offsets at the moment it was described."""

    partition: int
    log_start_offset: int
    log_end_offset: int


@dataclass(frozen=True, slots=True)
class TopicView:
    """A topic as admin calls report it: effective config (dotted names, strings) and its partitions."""

    name: str
    config: dict[str, str]
    partitions: list[PartitionOffsets]
    topic_id: str = ""
    """The topic's id (32 hex digits), made at creation and never reused: a topic deleted and created
    again under its name has a new one."""


@dataclass(frozen=True, slots=True)
class TopicSummary:
    name: str
    partitions: int
