"""How a broker that does not coordinate a share group hands a member's fetch or acknowledgement to the
broker that does (in a cluster).

Kafka's share clients (KIP-932) send ShareFetch and ShareAcknowledge to each partition's leader, while
the group's state lives with its coordinator, the leader of the group's `__share_group_state`
partition. Rather than split one group's state across brokers, the coordinator keeps all of it and any
other broker forwards the call there: one extra hop for a client that sends to the wrong broker, and
no second copy of anything. Heartbeats and administration are not forwarded: they answer
NOT_COORDINATOR, as consumer groups do, and the client finds the coordinator.

A forwarded call is marked as such, and a broker that receives a forwarded call it does not coordinate
answers NOT_COORDINATOR instead of forwarding again (no call travels in circles while leadership moves).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from logstore.broker.domain.share.values import (
    PartitionAckOutcome,
    PartitionAcks,
    ShareFetchAnswer,
    ShareFetchSpec,
    ShareHeartbeat,
    ShareHeartbeatAnswer,
)


class ShareForwarder(Protocol):
    """Implemented by the cluster node over the inter-broker gRPC channels; called on the broker's loop.
    Raises the same `LogStoreError`s the coordinator's domain raised (NotCoordinatorError when it no
    longer coordinates the group, UnknownMemberIdError, ...), and NotCoordinatorError when the
    coordinator cannot be reached."""

    async def fetch(self, coordinator: int, spec: ShareFetchSpec) -> ShareFetchAnswer: ...

    async def acknowledge(
        self, coordinator: int, group_id: str, member_id: str, acks: Sequence[PartitionAcks]
    ) -> list[PartitionAckOutcome]: ...

    async def heartbeat(self, coordinator: int, beat: ShareHeartbeat) -> ShareHeartbeatAnswer: ...
