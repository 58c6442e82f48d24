"""Topic administration in a cluster: what the domain asks the cluster node to do when an admin call
changes a topic. The controller makes every such change (through etcd), so that all brokers apply the
same one; the node asks it and waits until the change is in the cluster metadata.

A single broker has none (`BrokerCore.cluster_admin` is None) and changes its own topics directly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol


class ClusterAdmin(Protocol):
    """Called on the broker's event loop by `BrokerCore`, after it has checked the change locally."""

    async def create_topic(
        self, name: str, partitions: int, config: Mapping[str, str], replication_factor: int, timeout_s: float
    ) -> None:
        """Create a topic (replication factor 0: the cluster's default) and wait for its leaders."""
        ...

    async def delete_topic(self, name: str, timeout_s: float) -> None:
        """Delete a topic everywhere; returns once it is gone from the cluster metadata."""
        ...

    async def add_partitions(self, name: str, total_partitions: int, timeout_s: float) -> None:
        """Grow a topic; returns once the new partitions have leaders."""
        ...

    async def alter_config(self, name: str, changes: Mapping[str, str], timeout_s: float) -> None:
        """Set topic configs (resets already turned into the defaults' values) on every broker."""
        ...

    async def reassign(self, name: str, targets: Mapping[int, Sequence[int]]) -> None:
        """Ask for partitions to move to other replica lists; the controller does it step by step (a new
        replica joins, catches up, then the old ones leave), so this returns before it is done."""
        ...
