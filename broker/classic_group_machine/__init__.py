"""Kafka's classic consumer-group protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup with client-side
assignment), as a pure state machine: plain values and `now` in, decisions out, no I/O.

    coordinator = ClassicGroupCoordinator(ClassicConfig())
    member_id, done = coordinator.join(JoinRequest(...), now_ms)   # done.joins: answered JoinGroups
    done = coordinator.sync(group_id, generation, member_id, None, assignments, now_ms)
    done = coordinator.tick(now_ms)                                # at next_deadline_ms()
"""

from logstore.broker.classic_group_machine.coordinator import ClassicGroupCoordinator
from logstore.broker.classic_group_machine.model import (
    ClassicConfig,
    ClassicGroupDescription,
    ClassicGroupListing,
    ClassicGroupState,
    Completions,
    JoinRequest,
    JoinResult,
    SyncResult,
)

__all__ = [
    "ClassicConfig",
    "ClassicGroupCoordinator",
    "ClassicGroupDescription",
    "ClassicGroupListing",
    "ClassicGroupState",
    "Completions",
    "JoinRequest",
    "JoinResult",
    "SyncResult",
]
