"""Plain values between the share-group driver and the service layer (no grpc, no generated types)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from logstore.broker.share_machine.model import AcquiredRange

from logstore.errors import LogStoreError

DEFAULT_MAX_RECORDS = 500
"""Records acquired by a fetch that does not say (Kafka's max.poll.records default)."""


@dataclass(frozen=True, slots=True)
class AckRange:
    """One acknowledged range as sent. `type` is the wire number (1 ACCEPT .. 4 RENEW); any other is
    refused for this range only, with INVALID_REQUEST."""

    first_offset: int
    last_offset: int
    type: int
    delay_ms: int = 0
    not_an_attempt: bool = False


@dataclass(frozen=True, slots=True)
class PartitionAcks:
    topic: str
    partition: int
    ranges: Sequence[AckRange]


@dataclass(frozen=True, slots=True)
class RangeOutcome:
    first_offset: int
    last_offset: int
    error: LogStoreError | None = None


@dataclass(frozen=True, slots=True)
class PartitionAckOutcome:
    """The outcome of one partition's acknowledgements: an error of the whole partition (no range
    applied, `results` empty), or one outcome per range in request order."""

    topic: str
    partition: int
    error: LogStoreError | None = None
    results: Sequence[RangeOutcome] = ()


@dataclass(frozen=True, slots=True)
class ShareFetchSpec:
    group_id: str
    member_id: str
    acks: Sequence[PartitionAcks] = ()
    max_wait_ms: int = 0
    max_records: int = DEFAULT_MAX_RECORDS
    max_bytes: int = 1 << 20
    priority: bool = False
    acknowledge_only: bool = False
    record_limit: bool = False
    """Kafka's share.acquire.mode=record_limit: max_records and the record-lock limit are hard. By
    default (batch_optimized) a batch they cut is acquired to its end."""
    partitions: frozenset[tuple[str, int]] | None = None
    """Only these of the member's assigned partitions (a Kafka share session's); None for all of them."""


@dataclass(frozen=True, slots=True)
class AcquiredRecords:
    """Whole batches of one partition and the ranges of them the member acquired."""

    topic: str
    partition: int
    records: bytes
    ranges: Sequence[AcquiredRange]


@dataclass(frozen=True, slots=True)
class ShareFetchAnswer:
    partitions: Sequence[AcquiredRecords] = ()
    acks: Sequence[PartitionAckOutcome] = ()
    lock_duration_ms: int = 0


@dataclass(frozen=True, slots=True)
class ShareHeartbeat:
    group_id: str
    member_id: str
    member_epoch: int
    topic_names: Sequence[str] = ()
    client_id: str = ""
    client_host: str = ""


@dataclass(frozen=True, slots=True)
class ShareHeartbeatAnswer:
    member_id: str
    member_epoch: int
    heartbeat_interval_ms: int
    session_timeout_ms: int
    assignment: Sequence[tuple[str, Sequence[int]]] = ()
    """Topics in subscription order, each with its partitions ascending."""


@dataclass(frozen=True, slots=True)
class ShareMemberView:
    member_id: str
    member_epoch: int
    client_id: str
    client_host: str
    topic_names: Sequence[str]
    acquired_records: int


@dataclass(frozen=True, slots=True)
class SharePartitionView:
    topic: str
    partition: int
    start_offset: int
    end_offset: int
    log_end_offset: int
    in_flight_records: int
    acquired_records: int
    archived_records: int
    lag: int
    delivery_counts: tuple[tuple[int, int], ...] = ()
    """(times delivered, records) of the records in flight (`PartitionCounts.delivery_counts`)."""


@dataclass(frozen=True, slots=True)
class ShareGroupView:
    group_id: str
    stable: bool
    """True with members (STABLE), False without (EMPTY)."""
    group_epoch: int
    members: Sequence[ShareMemberView] = ()
    partitions: Sequence[SharePartitionView] = ()
    dead_letter_topic: str = ""


@dataclass(frozen=True, slots=True)
class ConfigEntry:
    name: str
    value: str
    is_group_value: bool


@dataclass(frozen=True, slots=True)
class ConfigChange:
    """An AlterGroupConfig request: names to set and names to remove (all or nothing)."""

    group_id: str
    set: dict[str, str] = field(default_factory=dict)
    delete: Sequence[str] = ()
