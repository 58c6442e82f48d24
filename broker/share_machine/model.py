"""Plain values going in and out of the share-group core: acknowledgements, acquired and archived ranges,
the persisted state of a share-partition, and membership answers.

Everything is immutable and built from built-in types, so the driver converts it to and from the wire and
`__share_group_state` without knowing the core's internals. Offset ranges are inclusive on both ends, as
on the wire.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import NamedTuple

from logstore.broker.group_machine.model import RemovalReason

from logstore.errors import LogStoreError


class AcknowledgeType(enum.IntEnum):
    """What a member decides about acquired records; the numbers are the proto's `AcknowledgeType`."""

    ACCEPT = 1
    """Processed: done for the group."""
    RELEASE = 2
    """Given back: available again (after delay_ms), or archived at the delivery limit."""
    REJECT = 3
    """Unprocessable: archived at once."""
    RENEW = 4
    """Still working: the lock is extended by the lock duration from now."""


class RecordState(enum.Enum):
    """Where an offset of a share-partition stands (Kafka's record states)."""

    AVAILABLE = "AVAILABLE"
    ACQUIRED = "ACQUIRED"
    ACKNOWLEDGED = "ACKNOWLEDGED"
    ARCHIVED = "ARCHIVED"


class ArchiveReason(enum.Enum):
    """Why records were archived (the dead-letter header `__dlq.errors.reason`)."""

    REJECTED = "REJECTED"
    DELIVERY_LIMIT = "DELIVERY_LIMIT"


@dataclass(frozen=True, slots=True)
class AcquiredRange:
    """Offsets a member acquired by one `acquire` call, all with the same delivery count (1 the first time)."""

    first_offset: int
    last_offset: int
    delivery_count: int


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """One acknowledged range. ``delay_ms`` and ``not_an_attempt`` count for RELEASE only."""

    first_offset: int
    last_offset: int
    type: AcknowledgeType
    delay_ms: int = 0
    not_an_attempt: bool = False


@dataclass(frozen=True, slots=True)
class Archived:
    """Offsets that became ARCHIVED in one call, with their delivery count and why: for the dead-letter topic."""

    first_offset: int
    last_offset: int
    delivery_count: int
    reason: ArchiveReason


@dataclass(frozen=True, slots=True)
class PersistedSpan:
    """A run of offsets with one state and delivery count, as kept in `__share_group_state`.

    ``state`` is AVAILABLE, ACKNOWLEDGED or ARCHIVED: acquired records are persisted as AVAILABLE (after a
    restart nobody holds them) with their delivery count kept."""

    first_offset: int
    last_offset: int
    state: RecordState
    delivery_count: int


@dataclass(frozen=True, slots=True)
class PartitionSnapshot:
    """What `__share_group_state` keeps of one share-partition, replayed by `SharePartition.restore`.

    ``spans`` cover [start_offset, end_offset) exactly, in order, without gaps. Delays of delayed releases
    are not kept: after a restart those records are available at once."""

    start_offset: int
    end_offset: int
    spans: tuple[PersistedSpan, ...]
    archived_total: int


@dataclass(frozen=True, slots=True)
class PartitionCounts:
    """A share-partition at a glance, for DescribeShareGroup (lag = log end - start_offset - done_in_window)."""

    start_offset: int
    """Every offset below is done for the group."""
    end_offset: int
    """The first offset never delivered to the group."""
    in_flight: int
    """Offsets in the window not done yet (available or acquired)."""
    acquired: int
    """Of those, held by a member under a lock that has not expired."""
    archived_total: int
    """Offsets archived since the group first read the partition."""
    done_in_window: int
    """Offsets in the window already acknowledged or archived."""
    delivery_counts: tuple[tuple[int, int], ...] = ()
    """(times delivered, records) of the offsets in flight, by delivery count: 0 not delivered yet (or given
    back unprocessed: a release does not count), 2 and more redelivered (what a queue's operator watches
    before records reach the delivery limit)."""


@dataclass(frozen=True, slots=True)
class AckResult:
    """The outcome of one `Acknowledgement`, in request order: ``error`` is None when it was applied."""

    first_offset: int
    last_offset: int
    error: LogStoreError | None


# Membership


class AssignedTopic(NamedTuple):
    """One topic of a member's assignment: every partition of it, ascending."""

    topic: str
    partitions: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class MemberGone:
    """A member removed from a share group: the driver releases what it holds (`release_member`)."""

    group_id: str
    member_id: str
    reason: RemovalReason
    """LEFT (heartbeat with epoch -1) or SESSION_TIMEOUT."""


@dataclass(frozen=True, slots=True)
class ShareHeartbeatAnswer:
    """The answer to a share heartbeat. On a leave, ``member_epoch`` is -1, the assignment is empty and
    ``gone`` names the member removed (None when nobody left)."""

    member_id: str
    member_epoch: int
    heartbeat_interval_ms: int
    session_timeout_ms: int
    assignment: tuple[AssignedTopic, ...]
    """Every existing partition of the subscribed topics, topics in subscription order."""
    gone: MemberGone | None = None


@dataclass(frozen=True, slots=True)
class ShareMember:
    """One member of a share group as it stands now."""

    member_id: str
    member_epoch: int
    client_id: str
    client_host: str
    topic_names: tuple[str, ...]
    """Subscribed topics in the member's (priority) order; some may not exist yet."""
    assignment: tuple[AssignedTopic, ...]
    session_deadline_ms: int
    """The member is removed when no heartbeat arrives before this time."""


class ShareGroupState(enum.Enum):
    """A share group's state (Kafka's share groups: EMPTY or STABLE)."""

    EMPTY = "Empty"
    STABLE = "Stable"


@dataclass(frozen=True, slots=True)
class ShareGroupDescription:
    """A share group's membership (the driver adds the partitions' counts)."""

    group_id: str
    state: ShareGroupState
    group_epoch: int
    members: tuple[ShareMember, ...]
    """By member id."""
