"""The partition leader's view of its followers: ISR shrink and expand, the high watermark, acks=all.

Pure; the replica fetcher and the produce path (not wired yet) feed it fetches and appends with `now`.
Kafka's rules, from Partition / Replica:
- A follower is caught up at a fetch that reaches the leader's end offset; a fetch that reaches where the
  leader's end was at the follower's previous fetch proves it was caught up at that previous time. A
  follower whose last caught-up time is more than `replica.lag.time.max.ms` ago leaves the ISR.
- A follower outside the ISR rejoins once, fetching after the last ISR change, its end offset reaches the
  high watermark and the start of the leader's current epoch (Kafka's rule: it then holds every acknowledged record, so the high watermark
  cannot move back; requiring the leader's end offset instead would keep it out forever under load).
- An ISR change is proposed to the controller and holds only when it commits. Meanwhile the high
  watermark counts the "maximal" ISR (committed plus proposed members), so it never runs ahead of a
  follower that may already be counted in sync.
- The high watermark is the smallest end offset over that ISR, the leader's included, and never moves back.
- acks=all: refused at append when the committed ISR is smaller than `min.insync.replicas`; answered once
  the high watermark covers the batch, with NOT_ENOUGH_REPLICAS_AFTER_APPEND if the ISR shrank below the
  minimum meanwhile.
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from dataclasses import dataclass

DEFAULT_REPLICA_LAG_TIME_MAX_MS = 30_000


class AcksAll(enum.Enum):
    DONE = "done"
    WAIT = "wait"
    NOT_ENOUGH_REPLICAS = "not_enough_replicas"
    NOT_ENOUGH_REPLICAS_AFTER_APPEND = "not_enough_replicas_after_append"


@dataclass(slots=True)
class FollowerProgress:
    end_offset: int = 0
    last_caught_up_ms: int = 0
    last_fetch_ms: int = 0
    leader_end_at_last_fetch: int = 0
    fetched_since_isr_change: bool = False
    """Whether it fetched after the last committed ISR change: only such a follower may rejoin, so a
    follower the controller removed because it died is not proposed back on its last position."""


class IsrTracker:
    """One partition's leader-side replication state. Pure; not thread-safe (the partition's driver owns it)."""

    def __init__(
        self,
        *,
        leader: int,
        replicas: Collection[int],
        isr: Collection[int],
        leader_end_offset: int,
        high_watermark: int,
        epoch_start_offset: int,
        now_ms: int,
        min_insync_replicas: int = 1,
        replica_lag_time_max_ms: int = DEFAULT_REPLICA_LAG_TIME_MAX_MS,
    ) -> None:
        if leader not in isr:
            raise ValueError(f"the leader {leader} must be in the ISR {sorted(isr)}")
        self.leader = leader
        self.replicas = tuple(replicas)
        self.isr: frozenset[int] = frozenset(isr)
        self.pending_isr: frozenset[int] | None = None
        self.leader_end_offset = leader_end_offset
        self.high_watermark = high_watermark
        self.epoch_start_offset = epoch_start_offset
        self.min_insync_replicas = min_insync_replicas
        self.max_lag_ms = replica_lag_time_max_ms
        # A new leader gives every follower a full lag period before judging it (as Kafka resets them).
        self.followers = {
            r: FollowerProgress(last_caught_up_ms=now_ms if r in self.isr else 0, last_fetch_ms=now_ms)
            for r in self.replicas
            if r != leader
        }

    @property
    def maximal_isr(self) -> frozenset[int]:
        return self.isr | (self.pending_isr or frozenset())

    def on_leader_append(self, end_offset: int) -> int:
        """The leader's log now ends at `end_offset`; returns the high watermark (an ISR of one moves it)."""
        self.leader_end_offset = end_offset
        return self._advance_high_watermark()

    def on_follower_fetch(self, replica: int, fetch_offset: int, now_ms: int) -> int:
        """A follower fetched from `fetch_offset` (so its log ends there); returns the high watermark."""
        progress = self.followers.get(replica)
        if progress is None:
            raise ValueError(f"broker {replica} is not a follower of this partition ({self.replicas})")
        if fetch_offset >= self.leader_end_offset:
            progress.last_caught_up_ms = max(progress.last_caught_up_ms, now_ms)
        elif fetch_offset >= progress.leader_end_at_last_fetch:
            progress.last_caught_up_ms = max(progress.last_caught_up_ms, progress.last_fetch_ms)
        progress.end_offset = fetch_offset
        progress.leader_end_at_last_fetch = self.leader_end_offset
        progress.last_fetch_ms = now_ms
        progress.fetched_since_isr_change = True
        return self._advance_high_watermark()

    def out_of_sync(self, now_ms: int) -> frozenset[int]:
        """ISR followers that have not been caught up within replica.lag.time.max.ms."""
        return frozenset(
            r
            for r in self.isr - {self.leader}
            if self.followers[r].end_offset < self.leader_end_offset
            and now_ms - self.followers[r].last_caught_up_ms > self.max_lag_ms
        )

    def caught_up(self) -> frozenset[int]:
        """Followers outside the ISR that may rejoin it."""
        return frozenset(
            r
            for r, p in self.followers.items()
            if r not in self.isr
            and p.fetched_since_isr_change
            and p.end_offset >= self.high_watermark
            and p.end_offset >= self.epoch_start_offset
        )

    def proposal(self, now_ms: int) -> frozenset[int] | None:
        """The ISR to propose to the controller now, or None when it should stay as it is.

        One change is in flight at a time (Kafka's rule): nothing is proposed while one is pending.
        """
        if self.pending_isr is not None:
            return None
        new = (self.isr - self.out_of_sync(now_ms)) | self.caught_up()
        if new == self.isr:
            return None
        self.pending_isr = new
        return new

    def on_isr_committed(self, isr: Collection[int]) -> int:
        """The controller committed `isr` (ours or one it chose); returns the high watermark."""
        if frozenset(isr) != self.isr:
            for progress in self.followers.values():
                progress.fetched_since_isr_change = False
        self.isr = frozenset(isr)
        self.pending_isr = None
        return self._advance_high_watermark()

    def on_isr_refused(self) -> None:
        self.pending_isr = None

    def check_acks_all(self) -> AcksAll:
        """At append: may an acks=all batch be written? WAIT means yes (then wait for the high watermark)."""
        if len(self.isr) < self.min_insync_replicas:
            return AcksAll.NOT_ENOUGH_REPLICAS
        return AcksAll.WAIT

    def acks_all(self, required_offset: int) -> AcksAll:
        """After append: is the acks=all batch ending before `required_offset` acknowledged yet?"""
        if self.high_watermark < required_offset:
            return AcksAll.WAIT
        if len(self.isr) < self.min_insync_replicas:
            return AcksAll.NOT_ENOUGH_REPLICAS_AFTER_APPEND
        return AcksAll.DONE

    def _advance_high_watermark(self) -> int:
        ends = [self.leader_end_offset]
        ends += [self.followers[r].end_offset for r in self.maximal_isr if r != self.leader]
        self.high_watermark = max(self.high_watermark, min(ends))
        return self.high_watermark
