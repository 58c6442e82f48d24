"""The produce and fetch paths' hooks into replication: which leader epoch to stamp on an append, how far
clients may read (the high watermark), and when an acks=all write is replicated enough to answer.

`NotReplicated` is a single broker: no epoch, clients read to the log end, acks=all waits for the fsync
only. With `--etcd` the cluster node's replica manager (`broker/replication/replica_manager.py`) answers
them from each partition's leader state.
"""

from __future__ import annotations

from typing import Protocol


class Replicas(Protocol):
    """Called on the broker's event loop by the domain's data path."""

    def leader_epoch(self, topic: str, partition: int) -> int | None:
        """The epoch to stamp on batches appended now (this broker leads), None when not replicated."""
        ...

    def appended(self, topic: str, partition: int, end_offset: int) -> None:
        """The leader's log of the partition now ends at `end_offset` (an ISR of one moves the high
        watermark at once)."""
        ...

    def visible_end(self, topic: str, partition: int) -> int | None:
        """The offset clients may read up to (exclusive; the high watermark), None: the log end."""
        ...

    def check_acks_all(self, topic: str, partition: int) -> None:
        """Before an acks=all append: raise NotEnoughReplicasError when the ISR is below the minimum."""
        ...

    async def replicated(self, topic: str, partition: int, end_offset: int, timeout_s: float) -> None:
        """Wait until every in-sync replica holds the partition up to `end_offset`; raises
        NotEnoughReplicasAfterAppendError, NotLeaderOrFollowerError (leadership moved meanwhile) or
        RequestTimedOutError."""
        ...


class NotReplicated:
    """A single broker's answers: nothing to wait for. Stateless."""

    def leader_epoch(self, topic: str, partition: int) -> int | None:
        return None

    def appended(self, topic: str, partition: int, end_offset: int) -> None:
        return None

    def visible_end(self, topic: str, partition: int) -> int | None:
        return None

    def check_acks_all(self, topic: str, partition: int) -> None:
        return None

    async def replicated(self, topic: str, partition: int, end_offset: int, timeout_s: float) -> None:
        return None
