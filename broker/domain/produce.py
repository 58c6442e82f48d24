"""The produce path: append raw batches per partition, then answer by the request's acks.

Appends run on the event loop: the engine checks and writes a batch with one CRC pass and one `pwritev`
and never fsyncs under its lock, so an append costs less than handing it to a thread would. Only the
fsync for acks=all goes to a worker thread (see `durability`). Each entry is appended on its own and
all-or-nothing, so one bad partition never harms another.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence

from logstore.broker.domain.durability import Flusher
from logstore.broker.domain.errors import RequestTimedOutError
from logstore.broker.domain.topics import Topics
from logstore.broker.domain.values import Acks, AppendOutcome, ProduceEntry
from logstore.broker.domain.waiters import AppendWaiters

from logstore.errors import LogStoreError
from logstore.log import Log

log = logging.getLogger(__name__)

EXPECTED_ERRORS = LogStoreError  # the one root: the broker's own errors (BrokerError) extend it


class Appender:
    """Appends produce requests and decides when each may be answered."""

    def __init__(self, topics: Topics, waiters: AppendWaiters, flusher: Flusher) -> None:
        self._topics = topics
        self._waiters = waiters
        self._flusher = flusher
        self._unacknowledged: deque[Sequence[ProduceEntry]] = deque()
        self._drain_scheduled = False
        self._policy_flushes: set[asyncio.Future[None]] = set()  # held so the loop cannot drop them

    async def produce(
        self, entries: Sequence[ProduceEntry], acks: Acks, timeout_s: float
    ) -> list[AppendOutcome]:
        """Append every entry; with Acks.ALL also wait (up to `timeout_s`) until each is durable."""
        if acks is Acks.NONE:
            self._defer(entries)
            return []
        if self._unacknowledged:  # acks=0 requests that came first are appended first
            self.drain_unacknowledged()
        appended = [self._append(entry, acks is Acks.ALL) for entry in entries]
        outcomes = [outcome for outcome, _, _ in appended]
        if acks is Acks.ALL:
            await self._make_durable(appended, outcomes, timeout_s)
        return outcomes

    def append_now(self, entries: Sequence[ProduceEntry]) -> list[AppendOutcome]:
        """Append every entry now and return the outcomes (acks 0 or 1, whose answer waits for nothing).

        For a caller that answers in order by itself (the Kafka listener): no task, and the long-polls
        the appends wake run before the caller's own answer is written."""
        if self._unacknowledged:
            self.drain_unacknowledged()
        return [self._append(entry)[0] for entry in entries]

    def _append(self, entry: ProduceEntry, acks_all: bool = False) -> tuple[AppendOutcome, Log | None, int]:
        """Append one entry; returns its outcome, and the Log and end offset to flush (if it worked)."""
        replicas = self._topics.replicas
        try:
            partition_log = self._topics.log_for_produce(entry.topic, entry.partition)
            self._topics.cluster.check_leader(entry.topic, entry.partition)
            if acks_all:
                replicas.check_acks_all(entry.topic, entry.partition)
            epoch = replicas.leader_epoch(entry.topic, entry.partition)
            if epoch is None:
                result = partition_log.append(entry.records)
            else:
                result = partition_log.append(entry.records, leader_epoch=epoch)
        except EXPECTED_ERRORS as exc:
            log.debug("produce to %s-%s refused: %s", entry.topic, entry.partition, exc)
            return AppendOutcome(entry.topic, entry.partition, error=exc), None, -1
        except Exception as exc:
            log.exception("unexpected error appending to %s-%s", entry.topic, entry.partition)
            return AppendOutcome(entry.topic, entry.partition, error=exc), None, -1
        if not result.duplicate:
            replicas.appended(entry.topic, entry.partition, result.last_offset + 1)
            self._waiters.notify((entry.topic, entry.partition))
        if result.flush_due:  # the topic's flush.interval.messages: fsync on a worker, not on the loop
            flush = asyncio.ensure_future(self._flusher.flush(partition_log, result.last_offset + 1))
            self._policy_flushes.add(flush)
            flush.add_done_callback(self._policy_flushes.discard)
        outcome = AppendOutcome(
            entry.topic,
            entry.partition,
            base_offset=result.base_offset,
            log_append_time_ms=result.log_append_time_ms,
            log_start_offset=partition_log.log_start_offset,
            record_count=0 if result.duplicate else result.record_count,
        )
        return outcome, partition_log, result.last_offset + 1

    async def _make_durable(
        self,
        appended: list[tuple[AppendOutcome, Log | None, int]],
        outcomes: list[AppendOutcome],
        timeout_s: float,
    ) -> None:
        """Flush every appended partition (and in a cluster wait until the in-sync replicas hold it);
        replace the outcomes of those not durable in time."""
        pending = {
            index: asyncio.ensure_future(self._durable(outcome, partition_log, end, timeout_s))
            for index, (outcome, partition_log, end) in enumerate(appended)
            if partition_log is not None
        }
        if not pending:
            return
        try:
            _, late = await asyncio.wait(pending.values(), timeout=timeout_s)
        except asyncio.CancelledError:  # the caller went away; the fsyncs themselves carry on
            for task in pending.values():
                task.cancel()
            raise
        for task in late:
            task.cancel()
        for index, task in pending.items():
            entry = outcomes[index]
            if task in late:
                error: Exception = RequestTimedOutError(
                    f"{entry.topic}-{entry.partition}: appended at offset {entry.base_offset} but not fsynced "
                    f"within {timeout_s * 1000:.0f} ms; retry (an idempotent producer's retry is deduplicated) "
                    "or raise timeout_ms"
                )
            elif task.exception() is not None:
                error = task.exception()  # type: ignore[assignment]
            else:
                continue
            outcomes[index] = AppendOutcome(entry.topic, entry.partition, error=error)

    async def _durable(self, outcome: AppendOutcome, partition_log: Log, end: int, timeout_s: float) -> None:
        await self._flusher.flush(partition_log, end)
        await self._topics.replicas.replicated(outcome.topic, outcome.partition, end, timeout_s)

    # --- acks=0 -----------------------------------------------------------------------------------------

    def _defer(self, entries: Sequence[ProduceEntry]) -> None:
        """Queue an acks=0 request; it is appended right after the answer goes out, in arrival order."""
        self._unacknowledged.append(entries)
        if not self._drain_scheduled:
            self._drain_scheduled = True
            asyncio.get_running_loop().call_soon(self.drain_unacknowledged)

    def drain_unacknowledged(self) -> None:
        """Append every queued acks=0 request now (also called at shutdown, so none is lost)."""
        self._drain_scheduled = False
        while self._unacknowledged:
            for entry in self._unacknowledged.popleft():
                outcome, _, _ = self._append(entry)
                if outcome.error is not None:
                    log.debug("acks=0 produce to %s-%s lost: %s", entry.topic, entry.partition, outcome.error)
