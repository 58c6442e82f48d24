"""Consumer groups in the broker: the driver around the pure coordinator (`logstore.broker.group_machine`) and the
offset store, with plain values in and out."""

from logstore.broker.domain.groups.driver import MAX_METADATA_BYTES, GroupDomain
from logstore.broker.domain.groups.values import (
    CommitOutcome,
    Committed,
    GroupView,
    OffsetCommitEntry,
    PartitionProgress,
    PartitionScope,
    ResetMode,
    ResetOutcome,
    ResetSpec,
)

__all__ = [
    "MAX_METADATA_BYTES",
    "CommitOutcome",
    "Committed",
    "GroupDomain",
    "GroupView",
    "OffsetCommitEntry",
    "PartitionProgress",
    "PartitionScope",
    "ResetMode",
    "ResetOutcome",
    "ResetSpec",
]
