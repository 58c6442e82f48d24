"""Share groups (Kafka's KIP-932 queues on the log) as a pure core: no I/O, time passed in as ``now_ms``.

- `ShareGroupConfig`, `parse_group_config`: a group's configuration from Kafka's config names.
- `SharePartition`: one (group, topic, partition): which offsets are available, acquired by whom until
  when, acknowledged or archived, kept as spans of offsets (never one object per record).
- `ShareGroups`: the members of every share group and their assignments.

The driver (`logstore.broker.domain.share`) persists `PartitionSnapshot`s, runs the timers and serves the
wire. Errors are in `logstore.broker.share_machine.errors`.
"""

from logstore.broker.share_machine.config import (
    GROUP_CONFIG_NAMES,
    MAX_RELEASE_DELAY_MS,
    ShareGroupConfig,
    config_to_strings,
    parse_group_config,
    reset_duration_ms,
)
from logstore.broker.share_machine.errors import (
    FencedMemberEpochError,
    GroupIdNotFoundError,
    InconsistentGroupProtocolError,
    InvalidGroupRequestError,
    InvalidRecordStateError,
    NonEmptyGroupError,
    UnknownMemberIdError,
)
from logstore.broker.share_machine.model import (
    Acknowledgement,
    AcknowledgeType,
    AckResult,
    AcquiredRange,
    Archived,
    ArchiveReason,
    AssignedTopic,
    MemberGone,
    PartitionCounts,
    PartitionSnapshot,
    PersistedSpan,
    RecordState,
    ShareGroupDescription,
    ShareGroupState,
    ShareHeartbeatAnswer,
    ShareMember,
)
from logstore.broker.share_machine.partition import SharePartition

__all__ = [
    "GROUP_CONFIG_NAMES",
    "MAX_RELEASE_DELAY_MS",
    "AckResult",
    "AcknowledgeType",
    "Acknowledgement",
    "AcquiredRange",
    "ArchiveReason",
    "Archived",
    "AssignedTopic",
    "FencedMemberEpochError",
    "GroupIdNotFoundError",
    "InconsistentGroupProtocolError",
    "InvalidGroupRequestError",
    "InvalidRecordStateError",
    "MemberGone",
    "NonEmptyGroupError",
    "PartitionCounts",
    "PartitionSnapshot",
    "PersistedSpan",
    "RecordState",
    "ShareGroupConfig",
    "ShareGroupDescription",
    "ShareGroupState",
    "ShareHeartbeatAnswer",
    "ShareMember",
    "SharePartition",
    "UnknownMemberIdError",
    "config_to_strings",
    "parse_group_config",
    "reset_duration_ms",
]
