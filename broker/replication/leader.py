"""One partition led by this broker: its ISR tracker, its leader epoch, and the acks=all writes waiting
for the high watermark. The rules are `broker/cluster/isr.py`'s; this adds the waiting.

No I/O: the replica manager feeds it appends, follower fetches and the controller's ISR decisions with
`now_ms`, and writes the high watermark it returns to the log.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools

from logstore.broker.cluster.isr import AcksAll, IsrTracker
from logstore.broker.cluster.metadata import IsrRequest, PartitionState
from logstore.broker.domain.errors import (
    NotEnoughReplicasAfterAppendError,
    NotEnoughReplicasError,
    NotLeaderOrFollowerError,
)


class LeaderReplica:
    """Leader-side state of one partition at one leader epoch. Not thread-safe: the broker's loop."""

    def __init__(
        self,
        topic: str,
        partition: int,
        broker_id: int,
        state: PartitionState,
        *,
        log_end_offset: int,
        high_watermark: int,
        now_ms: int,
        min_insync_replicas: int,
        replica_lag_time_max_ms: int,
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.leader_epoch = state.leader_epoch
        self.partition_epoch = state.partition_epoch
        self.tracker = IsrTracker(
            leader=broker_id,
            replicas=state.replicas,
            isr=state.isr,
            leader_end_offset=log_end_offset,
            high_watermark=min(high_watermark, log_end_offset),
            epoch_start_offset=log_end_offset,
            now_ms=now_ms,
            min_insync_replicas=min_insync_replicas,
            replica_lag_time_max_ms=replica_lag_time_max_ms,
        )
        self.pending_since_ms: int | None = None
        """When the ISR change in flight was proposed (None: none is)."""
        self.request_seen = False
        """Whether the pending request has shown up in the cluster view (so its absence is an answer)."""
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self.closed = False

    @property
    def high_watermark(self) -> int:
        return self.tracker.high_watermark

    @property
    def name(self) -> str:
        return f"{self.topic}-{self.partition}"

    # --- inputs ------------------------------------------------------------------------------------

    def appended(self, end_offset: int) -> bool:
        """The leader's log ends at `end_offset` now; whether the high watermark moved."""
        before = self.tracker.high_watermark
        self.tracker.on_leader_append(end_offset)
        return self._moved(before)

    def follower_fetched(self, replica: int, fetch_offset: int, now_ms: int) -> bool:
        """A follower fetched from `fetch_offset`; whether the high watermark moved."""
        before = self.tracker.high_watermark
        self.tracker.on_follower_fetch(replica, fetch_offset, now_ms)
        return self._moved(before)

    def state_changed(self, state: PartitionState, *, request_pending: bool, now_ms: int) -> bool:
        """The controller's state of the partition, at this leader epoch; whether the high watermark moved.

        A new partition epoch commits whatever ISR the controller wrote (ours or its own, after a follower
        died). The request key gone with the partition epoch unchanged means refused."""
        before = self.tracker.high_watermark
        if request_pending:
            self.request_seen = True
        if state.partition_epoch != self.partition_epoch:
            self.partition_epoch = state.partition_epoch
            if tuple(state.replicas) != self.tracker.replicas:
                self.tracker.on_replicas_changed(state.replicas, state.isr, now_ms)
            else:
                self.tracker.on_isr_committed(state.isr)
            self.pending_since_ms = None
            self.request_seen = False
        elif self.pending_since_ms is not None and self.request_seen and not request_pending:
            self.tracker.on_isr_refused()
            self.pending_since_ms = None
            self.request_seen = False
        moved = self._moved(before)
        self._wake_all()  # an ISR change can also decide acks=all waits (too few replicas now)
        return moved

    def isr_proposal(self, now_ms: int, give_up_after_ms: int) -> IsrRequest | None:
        """The ISR change to ask the controller for now, if any (one at a time)."""
        if self.pending_since_ms is not None:
            if now_ms - self.pending_since_ms < give_up_after_ms:
                return None
            self.tracker.on_isr_refused()  # never answered (the controller moved?): decide again
            self.pending_since_ms = None
            self.request_seen = False
        proposal = self.tracker.proposal(now_ms)
        if proposal is None:
            return None
        self.pending_since_ms = now_ms
        isr = tuple(r for r in self.tracker.replicas if r in proposal)
        return IsrRequest(self.tracker.leader, self.leader_epoch, self.partition_epoch, isr)

    # --- acks=all -----------------------------------------------------------------------------------

    def check_acks_all(self) -> None:
        if self.tracker.check_acks_all() is AcksAll.NOT_ENOUGH_REPLICAS:
            raise NotEnoughReplicasError(
                f"{self.name}: {len(self.tracker.isr)} in-sync replicas {sorted(self.tracker.isr)}, "
                f"min.insync.replicas is {self.tracker.min_insync_replicas}; nothing was written. "
                "Retry once a replica catches up, or produce with acks=1"
            )

    async def replicated(self, end_offset: int) -> None:
        """Wait until the high watermark reaches `end_offset` (the caller bounds the wait)."""
        while True:
            if self.closed:
                raise NotLeaderOrFollowerError(
                    f"{self.name}: this broker stopped leading it (epoch {self.leader_epoch}) before the "
                    "write was replicated; retry on the new leader (an idempotent retry is deduplicated)"
                )
            status = self.tracker.acks_all(end_offset)
            if status is AcksAll.DONE:
                return
            if status is AcksAll.NOT_ENOUGH_REPLICAS_AFTER_APPEND:
                raise NotEnoughReplicasAfterAppendError(
                    f"{self.name}: written, but the in-sync replicas {sorted(self.tracker.isr)} fell below "
                    f"min.insync.replicas {self.tracker.min_insync_replicas} before it was replicated"
                )
            future = asyncio.get_running_loop().create_future()
            heapq.heappush(self._waiting, (end_offset, next(self._order), future))
            await future

    def close(self) -> None:
        """Leadership ended: every acks=all wait is answered NOT_LEADER_OR_FOLLOWER."""
        self.closed = True
        self._wake_all()

    def _moved(self, before: int) -> bool:
        hw = self.tracker.high_watermark
        if hw == before:
            return False
        while self._waiting and self._waiting[0][0] <= hw:
            _, _, future = heapq.heappop(self._waiting)
            if not future.done():
                future.set_result(None)
        return True

    def _wake_all(self) -> None:
        waiting, self._waiting = self._waiting, []
        for _, _, future in waiting:
            if not future.done():
                future.set_result(None)
