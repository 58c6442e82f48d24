"""The controller's decisions about one partition's leader and ISR. Pure: states in, states out.

Kafka's rules: a new leader is the first replica (in replica order, so the preferred leader wins when it
can) that is alive and in the ISR, and every leader change bumps the leader epoch, which fences the old
leader's writes and lets followers find where their logs diverged. With no live ISR member the partition
goes offline (leader NO_LEADER, epoch bumped) unless unclean election is on; the ISR then keeps its last
members, so whichever of them returns first can lead without losing an acknowledged record.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace

from logstore.broker.cluster.errors import StalePartitionStateError
from logstore.broker.cluster.metadata import NO_LEADER, PartitionState


def initial_state(replicas: tuple[int, ...], live: Collection[int]) -> PartitionState:
    """A new partition: every live replica is in sync (all logs are empty); the first live one leads."""
    isr = tuple(r for r in replicas if r in live)
    return PartitionState(isr[0] if isr else NO_LEADER, 0, isr or replicas, replicas, 0)


def on_brokers_changed(
    state: PartitionState, live: Collection[int], *, unclean: bool = False
) -> PartitionState:
    """The partition after the live broker set changed (a lease expired, or a broker registered).

    A dead follower leaves the ISR (partition epoch bumped, leader epoch kept). A dead leader, or none,
    is replaced by an in-sync live replica with the leader epoch bumped; without one the partition is
    offline. Returns `state` itself when nothing changes.
    """
    live_isr = tuple(r for r in state.isr if r in live)
    if state.leader != NO_LEADER and state.leader in live:
        if live_isr == state.isr:
            return state
        return replace(state, isr=live_isr, partition_epoch=state.partition_epoch + 1)
    candidates = [r for r in state.replicas if r in live_isr]
    if candidates:
        return _lead(state, candidates[0], live_isr)
    if unclean:
        live_replicas = [r for r in state.replicas if r in live]
        if live_replicas:
            return _lead(state, live_replicas[0], (live_replicas[0],))
    if state.leader == NO_LEADER:
        return state
    # Offline. The ISR keeps its members: every one of them held every acknowledged record.
    return replace(
        state,
        leader=NO_LEADER,
        leader_epoch=state.leader_epoch + 1,
        partition_epoch=state.partition_epoch + 1,
    )


def preferred_leader(state: PartitionState, live: Collection[int]) -> PartitionState:
    """Move leadership back to the first replica when it is alive, in sync and not leading already."""
    preferred = state.replicas[0]
    if state.leader == preferred or preferred not in live or preferred not in state.isr:
        return state
    return _lead(state, preferred, state.isr)


def alter_isr(
    state: PartitionState,
    *,
    leader: int,
    leader_epoch: int,
    partition_epoch: int,
    new_isr: Collection[int],
    live: Collection[int],
) -> PartitionState:
    """Accept a leader's ISR change (Kafka's AlterPartition) or refuse it with StalePartitionStateError.

    The request must come from the current leader at the current leader and partition epochs (else it was
    decided on an old view), keep the leader in the ISR, and name only live replicas.
    """
    if leader != state.leader or leader_epoch != state.leader_epoch:
        raise StalePartitionStateError(
            f"ISR change from broker {leader} at leader epoch {leader_epoch}; the leader is"
            f" {state.leader} at epoch {state.leader_epoch}"
        )
    if partition_epoch != state.partition_epoch:
        raise StalePartitionStateError(
            f"ISR change at partition epoch {partition_epoch}; the partition is at {state.partition_epoch}"
        )
    isr = tuple(r for r in state.replicas if r in set(new_isr))
    if set(isr) != set(new_isr):
        raise StalePartitionStateError(
            f"ISR {sorted(new_isr)} names brokers outside the replicas {state.replicas}"
        )
    if leader not in isr:
        raise StalePartitionStateError(f"ISR {sorted(new_isr)} leaves out the leader {leader}")
    dead = [r for r in isr if r not in live]
    if dead:
        raise StalePartitionStateError(
            f"ISR {sorted(new_isr)} names brokers with no live registration: {dead}"
        )
    if isr == state.isr:
        return state
    return replace(state, isr=isr, partition_epoch=state.partition_epoch + 1)


def reassign(state: PartitionState, target: tuple[int, ...], live: Collection[int]) -> PartitionState:
    """One step of moving a partition to the replica list `target` (Kafka's reassignment, KIP-455).
    Returns `state` itself while there is nothing to do yet.

    1. The new replicas join the replica list (target first, the old ones after), outside the ISR; they
       start fetching and the leader adds them to the ISR once caught up.
    2. Once every target replica is in the ISR, the list becomes `target`: replicas not in it leave the
       ISR, and a leader not in it hands over to the first target replica that is in sync and alive
       (the leader epoch bumped, as for any leader change).
    Nothing acknowledged is lost: the ISR never loses a member before the new ones are in sync.
    """
    if state.replicas == target:
        return state
    adding = tuple(r for r in target if r not in state.replicas)
    if adding:
        replicas = target + tuple(r for r in state.replicas if r not in target)
        return replace(state, replicas=replicas, partition_epoch=state.partition_epoch + 1)
    if not set(target) <= set(state.isr):
        if state.replicas[: len(target)] == target:
            return state  # waiting for the new replicas to catch up
        replicas = target + tuple(r for r in state.replicas if r not in target)
        return replace(state, replicas=replicas, partition_epoch=state.partition_epoch + 1)
    isr = tuple(r for r in target if r in state.isr)
    if state.leader in target and state.leader in live:
        return replace(state, replicas=target, isr=isr, partition_epoch=state.partition_epoch + 1)
    candidates = [r for r in target if r in live]
    if not candidates:
        return state  # no target replica alive: wait (the partition keeps its current leader)
    moved = _lead(state, candidates[0], isr)
    return replace(moved, replicas=target)


def _lead(state: PartitionState, leader: int, isr: tuple[int, ...]) -> PartitionState:
    return replace(
        state,
        leader=leader,
        leader_epoch=state.leader_epoch + 1,
        isr=isr,
        partition_epoch=state.partition_epoch + 1,
    )
