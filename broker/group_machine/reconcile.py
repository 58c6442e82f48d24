"""How one member moves from the partitions it has toward its target assignment (KIP-848's
"current assignment builder"), as pure functions.

The rule that keeps a partition from having two owners: a member is only given a partition that no
member holds, where "holds" means assigned to it or pending revocation from it. A member that must give
partitions up is first told its assignment without them and keeps its epoch; only once its heartbeat
no longer lists them among its owned partitions are they released, and only then does the member move
to the target epoch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from logstore.broker.group_machine.model import EMPTY_ASSIGNMENT, Assignment, MemberState, TopicPartition


@dataclass(frozen=True, slots=True)
class Reconciled:
    state: MemberState
    epoch: int
    assigned: Assignment
    pending_revocation: Assignment


def next_assignment(
    epoch: int,
    assigned: Assignment,
    target: Assignment,
    target_epoch: int,
    is_free: Callable[[TopicPartition], bool],
) -> Reconciled:
    """One step from ``assigned`` toward ``target``: revoke first, then take what is free."""
    keep = assigned & target
    revoke = assigned - target
    if revoke:
        return Reconciled(MemberState.UNREVOKED_PARTITIONS, epoch, keep, revoke)
    wanted = target - assigned
    free = frozenset(tp for tp in wanted if is_free(tp))
    state = MemberState.UNRELEASED_PARTITIONS if len(free) < len(wanted) else MemberState.STABLE
    return Reconciled(state, target_epoch, keep | free, EMPTY_ASSIGNMENT)


def reconcile(
    state: MemberState,
    epoch: int,
    assigned: Assignment,
    pending_revocation: Assignment,
    owned: Assignment | None,
    target: Assignment,
    target_epoch: int,
    is_free: Callable[[TopicPartition], bool],
) -> Reconciled | None:
    """Advance a member on its heartbeat; None when nothing changes.

    ``owned`` is what the heartbeat reports the member owns (None: not reported, read as "still owns
    everything"). ``is_free`` must say True for partitions nobody holds and for those pending
    revocation from this very member (they are released here before anything is handed out).
    """
    if state is MemberState.UNREVOKED_PARTITIONS:
        if owned is None or owned & pending_revocation:
            return None
        return next_assignment(epoch, assigned, target, target_epoch, is_free)
    if state is MemberState.UNRELEASED_PARTITIONS or (state is MemberState.STABLE and epoch != target_epoch):
        return next_assignment(epoch, assigned, target, target_epoch, is_free)
    return None
