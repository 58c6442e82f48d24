"""The cluster layer's typed errors (one root, under the engine's LogStoreError like every expected error)."""

from __future__ import annotations

from logstore.errors import LogStoreError


class ClusterError(LogStoreError):
    """Base of the cluster layer's errors."""


class InvalidReplicationFactorError(ClusterError):
    """More replicas asked for than there are live brokers, or fewer than one (Kafka's INVALID_REPLICATION_FACTOR)."""


class ClusterMetadataError(ClusterError):
    """A value read from etcd is not what the layout says it holds; the message names the key."""


class NotControllerError(ClusterError):
    """A guarded write was refused: this broker is no longer the controller (Kafka's NOT_CONTROLLER)."""


class StalePartitionStateError(ClusterError):
    """An ISR change names an old leader epoch or partition epoch (Kafka's FENCED_LEADER_EPOCH /
    INVALID_UPDATE_VERSION), or an ISR the controller may not accept."""
