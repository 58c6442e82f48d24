"""Plain values between the group service and the group domain, beside those of `logstore.broker.group_machine.model`."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from logstore.broker.group_machine.model import GroupDescription

PartitionScope = Sequence[tuple[str, Sequence[int]]]
"""(topic, partition numbers) pairs; an empty tuple of numbers stands for every partition of the topic."""


@dataclass(frozen=True, slots=True)
class OffsetCommitEntry:
    """One offset to commit: the next record to consume in a partition, with free-text metadata."""

    topic: str
    partition: int
    offset: int
    metadata: str = ""


@dataclass(frozen=True, slots=True)
class CommitOutcome:
    """Whether one entry of a commit was stored (error None) or left out."""

    topic: str
    partition: int
    error: Exception | None = None


@dataclass(frozen=True, slots=True)
class Committed:
    """A group's committed offset for one partition; offset -1 when it has none."""

    topic: str
    partition: int
    offset: int = -1
    metadata: str = ""
    commit_timestamp_ms: int = -1


class ResetMode(enum.Enum):
    """Where a reset moves committed offsets (Kafka's kafka-consumer-groups --reset-offsets modes)."""

    EARLIEST = "earliest"
    LATEST = "latest"
    OFFSET = "offset"
    TIMESTAMP = "timestamp"
    SHIFT = "shift"


@dataclass(frozen=True, slots=True)
class ResetSpec:
    """A reset's mode and its argument; `mode` is None when the client did not say."""

    mode: ResetMode | None
    offset: int = 0
    timestamp_ms: int = 0
    shift: int = 0


@dataclass(frozen=True, slots=True)
class ResetOutcome:
    """How one partition's committed offset moved (or would move, in a dry run)."""

    topic: str
    partition: int
    previous_offset: int
    new_offset: int


@dataclass(frozen=True, slots=True)
class PartitionProgress:
    """A group's progress on one partition; -1 stands for "unknown" in every number."""

    topic: str
    partition: int
    committed_offset: int
    metadata: str
    log_end_offset: int
    lag: int
    member_id: str
    """The member holding the partition (assigned or pending revocation); "" if none."""


@dataclass(frozen=True, slots=True)
class GroupView:
    """A described group: the coordinator's view plus committed offsets and lag per partition."""

    description: GroupDescription
    progress: list[PartitionProgress]
