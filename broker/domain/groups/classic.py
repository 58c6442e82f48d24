"""The driver around the classic group coordinator: waiting requests, the clock and timer, offsets.

`ClassicGroupCoordinator` decides; this class holds what it cannot: the JoinGroup and SyncGroup requests
that wait for a rebalance round (one future per member), the clock, one timer at the next session or
rebalance deadline, and committed offsets, which go to the same `__consumer_offsets` store as those of
the groups of the KIP-848 protocol (`GroupDomain`), so a group's position is the same whichever protocol
committed it. A group id is of one protocol at a time: while members of one protocol are in a group,
members of the other (or a share group of that id) are refused with INCONSISTENT_GROUP_PROTOCOL.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from logstore.broker.classic_group_machine.coordinator import ClassicGroupCoordinator
from logstore.broker.classic_group_machine.errors import RebalanceInProgressError
from logstore.broker.classic_group_machine.model import (
    ClassicConfig,
    ClassicGroupDescription,
    ClassicGroupListing,
    Completions,
    JoinRequest,
    JoinResult,
    SyncResult,
)
from logstore.broker.domain.groups.driver import GroupDomain
from logstore.broker.domain.groups.timer import DeadlineTimer, monotonic_ms
from logstore.broker.domain.groups.values import CommitOutcome, OffsetCommitEntry
from logstore.broker.group_machine.errors import GroupIdNotFoundError
from logstore.broker.share_machine.errors import InconsistentGroupProtocolError

log = logging.getLogger(__name__)

RETRY_AFTER_FAILURE_MS = 1000


class ClassicGroups:
    """Classic consumer groups over the broker's offset store. Not thread-safe: one event loop only."""

    def __init__(
        self,
        offsets: GroupDomain,
        config: ClassicConfig,
        *,
        share_group: Callable[[str], bool],
        clock_ms: Callable[[], int] = monotonic_ms,
    ) -> None:
        self._offsets = offsets
        self._share_group = share_group
        self._clock_ms = clock_ms
        self._coordinator = ClassicGroupCoordinator(config)
        self._timer = DeadlineTimer(self._on_deadline, clock_ms)
        self._joins: dict[tuple[str, str], asyncio.Future[JoinResult]] = {}
        self._syncs: dict[tuple[str, str], asyncio.Future[SyncResult]] = {}

    def has_members(self, group_id: str) -> bool:
        return self._coordinator.has_members(group_id)

    # --- the protocol ---------------------------------------------------------------------------------

    async def join(self, request: JoinRequest) -> JoinResult:
        """Join (or rejoin) and wait for the rebalance round to complete; raises the refusals."""
        self._offsets.check_coordinator(request.group_id)
        self._refuse_other_protocols(request.group_id)
        member_id, done = self._coordinator.join(request, self._clock_ms())
        waiting = self._wait(self._joins, request.group_id, member_id)
        self._apply(done)
        return await self._answer(waiting, self._joins, request.group_id, member_id)

    async def sync(
        self,
        group_id: str,
        generation_id: int,
        member_id: str,
        instance_id: str | None,
        assignments: dict[str, bytes],
    ) -> SyncResult:
        """Send (leader) or wait for (everyone) the assignment of this generation."""
        self._offsets.check_coordinator(group_id)
        done = self._coordinator.sync(
            group_id, generation_id, member_id, instance_id, assignments, self._clock_ms()
        )
        waiting = self._wait(self._syncs, group_id, member_id)
        self._apply(done)
        return await self._answer(waiting, self._syncs, group_id, member_id)

    def heartbeat(self, group_id: str, generation_id: int, member_id: str, instance_id: str | None) -> None:
        self._offsets.check_coordinator(group_id)
        self._coordinator.heartbeat(group_id, generation_id, member_id, instance_id, self._clock_ms())
        self._rearm()

    def leave(self, group_id: str, members: list[tuple[str, str | None]]) -> list[Exception | None]:
        self._offsets.check_coordinator(group_id)
        errors, done = self._coordinator.leave(group_id, members, self._clock_ms())
        self._apply(done)
        return errors

    async def commit(
        self,
        group_id: str,
        generation_id: int,
        member_id: str,
        instance_id: str | None,
        entries: Sequence[OffsetCommitEntry],
    ) -> list[CommitOutcome]:
        """Store offsets once the coordinator allows the commit (fencing first, nothing written if not)."""
        self._offsets.check_coordinator(group_id)
        self._coordinator.validate_commit(group_id, generation_id, member_id, instance_id)
        if generation_id < 0:
            self._offsets.validate_outside_commit(group_id)  # nor while KIP-848 members hold it
        self._refuse_share_group(group_id)
        return await self._offsets.store_commits(group_id, entries)

    # --- admin ----------------------------------------------------------------------------------------

    def describe(self, group_id: str) -> ClassicGroupDescription | None:
        self._offsets.check_coordinator(group_id)
        self._tick()
        return self._coordinator.describe(group_id)

    def list_groups(self) -> list[ClassicGroupListing]:
        self._tick()
        return [g for g in self._coordinator.list_groups() if self._offsets.coordinates(g.group_id)]

    async def delete(self, group_id: str) -> None:
        """Forget a classic group without members and delete its committed offsets."""
        self._offsets.check_coordinator(group_id)
        self._tick()
        known = self._coordinator.describe(group_id) is not None
        if known:
            self._coordinator.delete(group_id)  # refuses a group with members
        try:
            await self._offsets.delete_group(group_id)
        except GroupIdNotFoundError:
            if not known:
                raise

    def close(self) -> None:
        self._timer.cancel()
        for join in self._joins.values():
            join.cancel()
        for sync in self._syncs.values():
            sync.cancel()

    # --- the waiting ----------------------------------------------------------------------------------

    def _refuse_share_group(self, group_id: str) -> None:
        if self._share_group(group_id):
            raise InconsistentGroupProtocolError(
                f"group {group_id!r} is a share group; a consumer group needs an id of its own"
            )

    def _refuse_other_protocols(self, group_id: str) -> None:
        self._refuse_share_group(group_id)
        if self._offsets.has_members(group_id):
            raise InconsistentGroupProtocolError(
                f"group {group_id!r} has members of the consumer protocol (KIP-848, logstore's own "
                "clients); consumers of both protocols cannot share one group: use another group id, or "
                "stop those consumers first"
            )

    def _wait(self, table: dict[tuple[str, str], Any], group_id: str, member_id: str) -> Any:
        earlier = table.pop((group_id, member_id), None)
        if earlier is not None and not earlier.done():  # a retry replaces the request it repeats
            earlier.set_exception(
                RebalanceInProgressError("a newer request of this member replaced this one")
            )
        future = table[(group_id, member_id)] = asyncio.get_running_loop().create_future()
        return future

    async def _answer(
        self, waiting: asyncio.Future[Any], table: dict[tuple[str, str], Any], group_id: str, member_id: str
    ) -> Any:
        try:
            return await waiting
        except asyncio.CancelledError:  # the connection closed: nobody will read this answer
            if table.get((group_id, member_id)) is waiting:
                del table[group_id, member_id]
                self._apply(self._coordinator.abandon(group_id, member_id, self._clock_ms()))
            raise

    def _apply(self, done: Completions) -> None:
        for key, joined in done.joins.items():
            if joined.members:  # the leader's answer: a generation began
                log.info(
                    "classic group %s: generation %d with %d member(s), leader %s, protocol %s",
                    key[0],
                    joined.generation_id,
                    len(joined.members),
                    joined.leader_id,
                    joined.protocol_name,
                )
            self._resolve(self._joins, key, joined)
        for key, synced in done.syncs.items():
            self._resolve(self._syncs, key, synced)
        for group, member_id, why in done.removed:
            log.info("classic group %s: removed member %s (%s)", group, member_id, why)
        self._rearm()

    def _resolve(self, table: dict[tuple[str, str], Any], key: tuple[str, str], value: Any) -> None:
        future = table.pop(key, None)
        if future is None or future.done():
            return
        if value.error is not None:
            future.set_exception(value.error)
        else:
            future.set_result(value)

    def _rearm(self) -> None:
        self._timer.arm(self._coordinator.next_deadline_ms())

    def _tick(self, now_ms: int | None = None) -> None:
        self._apply(self._coordinator.tick(self._clock_ms() if now_ms is None else now_ms))

    def _on_deadline(self, now_ms: int) -> None:
        try:
            self._tick(now_ms)
        except Exception:
            log.exception("classic-group timeout handling failed; retrying in %d ms", RETRY_AFTER_FAILURE_MS)
            self._timer.arm(now_ms + RETRY_AFTER_FAILURE_MS)
