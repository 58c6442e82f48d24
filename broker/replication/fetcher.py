"""The follower's side of replication: one fetcher per leader broker copies every partition this broker
follows there, as Kafka's ReplicaFetcherThread does.

Each partition starts by finding where its log and the leader's agree (OffsetForLeaderEpoch with its
latest leader epoch, KIP-101/KIP-279) and truncating there, so a follower that returns after a failover
drops what the new leader never had instead of serving it. Then it fetches from its log end, which is
also how the leader learns how far it has got, and appends the leader's batches as they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from logstore.wire.logstore.v1 import common_pb2, replication_pb2, replication_pb2_grpc

from logstore.errors import LogStoreError
from logstore.leader_epoch import UNDEFINED_EPOCH, EpochEnd, follower_truncation
from logstore.log import Log
from logstore.records.layout import iter_headers

log = logging.getLogger(__name__)

PartitionKey = tuple[str, int]

FETCH_MAX_WAIT_MS = 500
FETCH_MAX_BYTES = 8 * 1024 * 1024
RETRY_BACKOFF_S = 0.2
PAUSE_S = 1.0
"""How long a partition the leader refused waits before asking again (unless the metadata moves on)."""


@dataclass(slots=True)
class Followed:
    """One partition this broker follows from the fetcher's leader, at the leader epoch it knows."""

    log: Log
    leader_epoch: int
    truncated: bool = False
    """Whether the divergence check is done for this leader epoch (fetching may start)."""
    paused_until: float = 0.0
    """The leader refused (its epoch or view differs from ours): wait until then, or until the
    metadata gives a new epoch (a new `Followed`)."""

    def ready(self, now: float) -> bool:
        return now >= self.paused_until


class ReplicaFetcher:
    """Copies the partitions it is given from one leader. Not thread-safe: the broker's loop."""

    def __init__(
        self,
        broker_id: int,
        leader_id: int,
        channel: grpc.aio.Channel,
        *,
        on_appended: Callable[[Log, int], None],
    ) -> None:
        self.broker_id = broker_id
        self.leader_id = leader_id
        self._channel = channel
        self._stub = replication_pb2_grpc.ReplicationServiceStub(channel)
        self._on_appended = on_appended
        self.partitions: dict[PartitionKey, Followed] = {}
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def follow(self, key: PartitionKey, partition_log: Log, leader_epoch: int) -> None:
        """Follow `key` at `leader_epoch` (again from the divergence check when the epoch is new)."""
        current = self.partitions.get(key)
        if current is not None and current.leader_epoch == leader_epoch and current.log is partition_log:
            return
        self.partitions[key] = Followed(partition_log, leader_epoch)
        self._changed.set()

    def unfollow(self, key: PartitionKey) -> None:
        self.partitions.pop(key, None)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"replica-fetcher-{self.leader_id}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._channel.close()

    async def _run(self) -> None:
        while True:
            now = asyncio.get_running_loop().time()
            if not any(f.ready(now) for f in self.partitions.values()):
                self._changed.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), PAUSE_S)
                continue
            try:
                await self._truncate_where_needed()
                await self._fetch_once()
            except grpc.aio.AioRpcError as exc:
                log.debug("replica fetch from broker %d failed: %s", self.leader_id, exc.details())
                await asyncio.sleep(RETRY_BACKOFF_S)
            except LogStoreError as exc:
                log.warning("replica fetch from broker %d: %s", self.leader_id, exc)
                await asyncio.sleep(RETRY_BACKOFF_S)
            except Exception:  # a bug: keep replicating the other partitions rather than stop for good
                log.exception("replica fetch from broker %d failed; retrying", self.leader_id)
                await asyncio.sleep(RETRY_BACKOFF_S)

    # --- divergence ---------------------------------------------------------------------------------

    async def _truncate_where_needed(self) -> None:
        now = asyncio.get_running_loop().time()
        pending = {k: f for k, f in self.partitions.items() if not f.truncated and f.ready(now)}
        if not pending:
            return
        undefined = {k: f for k, f in pending.items() if f.log.latest_epoch == UNDEFINED_EPOCH}
        for key, followed in undefined.items():
            # No epoch in the log: empty, or written before the cluster; the high watermark is the
            # only point known to be on the leader too (Kafka's rule), the log end if none was kept.
            hw = followed.log.high_watermark
            if hw is not None and hw < followed.log.log_end_offset:
                self._truncate(key, followed, hw, "it holds no leader epoch")
            followed.truncated = True
        asked = {k: f for k, f in pending.items() if k not in undefined}
        if not asked:
            return
        request = replication_pb2.OffsetForLeaderEpochRequest(
            replica_id=self.broker_id,
            partitions=[
                replication_pb2.EpochQuery(
                    topic=t, partition=p, current_leader_epoch=f.leader_epoch, leader_epoch=f.log.latest_epoch
                )
                for (t, p), f in asked.items()
            ],
        )
        answer = await self._stub.OffsetForLeaderEpoch(request, timeout=10)
        for item in answer.partitions:
            key = (item.topic, item.partition)
            asking = asked.get(key)
            if asking is None or self.partitions.get(key) is not asking:
                continue  # unfollowed meanwhile
            if item.error_code != common_pb2.ERROR_CODE_NONE:
                self._refused(key, asking, item.error_code, item.error_message)
                continue
            partition_log = asking.log
            hw = partition_log.high_watermark
            truncation = follower_truncation(
                partition_log.leader_epochs,
                partition_log.log_end_offset,
                partition_log.log_end_offset if hw is None else hw,
                EpochEnd(item.leader_epoch, item.end_offset),
            )
            if truncation.offset < partition_log.log_end_offset:
                self._truncate(
                    key,
                    asking,
                    truncation.offset,
                    f"the leader's epoch {item.leader_epoch} ends at {item.end_offset}",
                )
            asking.truncated = truncation.done

    def _truncate(self, key: PartitionKey, followed: Followed, offset: int, why: str) -> None:
        end = followed.log.log_end_offset
        log.info(
            "%s-%d: truncating from %d to %d before following broker %d (%s)",
            key[0],
            key[1],
            end,
            offset,
            self.leader_id,
            why,
        )
        followed.log.truncate_to(offset)

    # --- fetching -----------------------------------------------------------------------------------

    async def _fetch_once(self) -> None:
        now = asyncio.get_running_loop().time()
        ready = {k: f for k, f in self.partitions.items() if f.truncated and f.ready(now)}
        if not ready:
            return
        request = replication_pb2.ReplicaFetchRequest(
            replica_id=self.broker_id,
            partitions=[
                replication_pb2.ReplicaFetchPartition(
                    topic=t,
                    partition=p,
                    fetch_offset=f.log.log_end_offset,
                    current_leader_epoch=f.leader_epoch,
                )
                for (t, p), f in ready.items()
            ],
            max_wait_ms=FETCH_MAX_WAIT_MS,
            min_bytes=1,
            max_bytes=FETCH_MAX_BYTES,
        )
        answer = await self._stub.ReplicaFetch(request, timeout=FETCH_MAX_WAIT_MS / 1000 + 10)
        for item in answer.partitions:
            key = (item.topic, item.partition)
            followed = ready.get(key)
            if followed is None or self.partitions.get(key) is not followed:
                continue
            if item.error_code == common_pb2.ERROR_CODE_OFFSET_OUT_OF_RANGE:
                self._out_of_range(key, followed, item)
                continue
            if item.error_code != common_pb2.ERROR_CODE_NONE:
                self._refused(key, followed, item.error_code, item.error_message)
                continue
            partition_log = followed.log
            if item.records:
                base = first_base_offset(item.records)
                if partition_log.log_start_offset == partition_log.log_end_offset > base:
                    # Copying afresh from a log start inside a batch: the batch comes whole (Kafka's rule).
                    partition_log.truncate_fully_and_start_at(base)
                partition_log.append_replica(item.records)
            partition_log.set_high_watermark(min(item.high_watermark, partition_log.log_end_offset))
            self._follow_log_start(partition_log, item.log_start_offset)
            self._on_appended(partition_log, len(item.records))

    @staticmethod
    def _follow_log_start(partition_log: Log, leader_start: int) -> None:
        """Records the leader deleted (retention, DeleteRecords) go here too, up to the high watermark."""
        hw = partition_log.high_watermark
        target = min(
            leader_start, partition_log.log_end_offset, partition_log.log_end_offset if hw is None else hw
        )
        if target > partition_log.log_start_offset:
            partition_log.delete_records_before(target)

    def _out_of_range(
        self, key: PartitionKey, followed: Followed, item: replication_pb2.ReplicaFetchResult
    ) -> None:
        partition_log = followed.log
        if partition_log.log_end_offset > item.high_watermark:
            # Ahead of the leader: our tail was never replicated; find the divergence again.
            followed.truncated = False
            return
        if item.log_start_offset <= partition_log.log_end_offset:
            followed.paused_until = asyncio.get_running_loop().time() + PAUSE_S  # a stale answer: ask again
            return
        log.warning(
            "%s-%d: log end %d is below broker %d's log start %d (its retention moved on): copying the "
            "partition afresh from there",
            key[0],
            key[1],
            partition_log.log_end_offset,
            self.leader_id,
            item.log_start_offset,
        )
        partition_log.truncate_fully_and_start_at(item.log_start_offset)

    def _refused(self, key: PartitionKey, followed: Followed, code: int, message: str) -> None:
        name = common_pb2.ErrorCode.Name(code) if code in common_pb2.ErrorCode.values() else str(code)
        if code == common_pb2.ERROR_CODE_UNKNOWN_LEADER_EPOCH:
            return  # the leader has not seen its own election yet: retry
        log.info(
            "%s-%d: broker %d refused to be followed (%s: %s); asking again in %.0f s",
            key[0],
            key[1],
            self.leader_id,
            name,
            message,
            PAUSE_S,
        )
        followed.paused_until = asyncio.get_running_loop().time() + PAUSE_S


def first_base_offset(records: bytes) -> int:
    """The base offset of the first batch of a replica fetch's answer."""
    for _, header in iter_headers(records):
        return header.base_offset
    raise LogStoreError("a replica fetch answered records without a whole batch")
