"""Data partitions another broker leads, read for the share groups this broker coordinates.

A share group's coordinator (the leader of its `__share_group_state` partition) hands out records of
every partition its members read, and most of them are led elsewhere. For each such partition in use
it keeps one reader task that asks the leader with the ordinary consumer Fetch call (so it reads only up
to the high watermark, and is refused by a broker that no longer leads) and keeps the last few answers:
the driver acquires from them (`RemotePartition` is a `PartitionSource`). A read the chunks do not hold
(a released record far behind, say) makes the task fetch there next. When nothing is wanted the task
long-polls at the high watermark, so new records wake the share groups' long-polls as a local append
does (through the broker's `AppendWaiters`, under the partition's own key).

Bounded: at most `MAX_CHUNKS` answers of at most `CHUNK_BYTES` each per partition and `MAX_TOTAL_BYTES`
over all of them (the oldest answers go first), one call in flight per partition, and a partition nobody
read for `IDLE_MS` is dropped with its task.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from logstore.broker.domain.share.sources import SourceNotReady
from logstore.broker.domain.waiters import AppendWaiters
from logstore.wire.logstore.v1 import common_pb2, fetch_pb2, fetch_pb2_grpc

from logstore.errors import OffsetOutOfRangeError
from logstore.records import iter_headers

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
"""Most bytes one Fetch answer brings (and one kept chunk holds)."""
MAX_CHUNKS = 4
"""Fetch answers kept per partition: what was read lately, for releases and lagging groups."""
LONG_POLL_MS = 500
"""How long a Fetch at the high watermark waits for new records (a read elsewhere cuts it short)."""
RETRY_MS = 200
"""After a refusal (not the leader, leader unknown, unreachable): ask again this much later."""
MAX_TOTAL_BYTES = 64 << 20
"""Most bytes of kept answers over every remote partition: a share group reading a thousand partitions
costs this much, not a thousand times 4 MiB; a read of an evicted answer fetches it again."""
IDLE_MS = 60_000
"""A partition nobody read for this long is dropped with its task."""
TIMESTAMP_ANSWER_MS = 5_000
"""A timestamp lookup answers lookups for up to this much later a time (the share-partition asks once,
at its start, with the wall clock of each attempt)."""
CALL_MARGIN_S = 5.0
"""A call's deadline beyond its own wait."""

PartitionKey = tuple[str, int]


@dataclass(frozen=True, slots=True, eq=False)
class _Chunk:
    """One Fetch answer: whole batches covering offsets [base, end)."""

    base: int
    end: int
    data: bytes


class RemotePartition:
    """A partition as last fetched from its leader. Not thread-safe: the broker's loop."""

    def __init__(self, key: PartitionKey, now_ms: int) -> None:
        self.key = key
        self.ready = False
        """Whether the leader has told the log start and high watermark once."""
        self.start = 0
        self.high_watermark = 0
        self.chunks: list[_Chunk] = []
        self.newest: _Chunk | None = None
        """The answer `answered` kept last, until the reader accounts for it."""
        self.wanted: int | None = None
        """An offset a read could not answer: fetched next."""
        self.used_ms = now_ms
        self.timestamp_query: int | None = None
        self.timestamp_answer: tuple[int, int | None] | None = None
        """(timestamp asked, the first offset at or after it below the high watermark, or None)."""
        self.wake = asyncio.Event()

    # --- PartitionSource ------------------------------------------------------------------------------

    @property
    def log_start_offset(self) -> int:
        return self.start

    @property
    def log_end_offset(self) -> int:
        return self.high_watermark

    def read(self, offset: int, max_bytes: int) -> bytes:
        if offset < self.start:
            raise OffsetOutOfRangeError(
                f"offset {offset} is below the log start {self.start} of {self.key[0]}-{self.key[1]}",
                log_start_offset=self.start,
                log_end_offset=self.high_watermark,
            )
        for chunk in self.chunks:
            if chunk.base <= offset < chunk.end:
                return _from(chunk, offset, max_bytes)
        if offset < self.high_watermark:
            self._want(offset)
        return b""

    def offset_for_timestamp(self, timestamp_ms: int) -> int | None:
        answer = self.timestamp_answer
        if answer is not None and answer[0] <= timestamp_ms <= answer[0] + TIMESTAMP_ANSWER_MS:
            return answer[1]
        self.timestamp_query = timestamp_ms
        self.wake.set()
        raise SourceNotReady(f"{self.key[0]}-{self.key[1]}: asking its leader for an offset by timestamp")

    # --- the reader task's side -----------------------------------------------------------------------

    def _want(self, offset: int) -> None:
        if self.wanted != offset:
            self.wanted = offset
            self.wake.set()

    def next_offset(self) -> int:
        """Where the next Fetch reads: the wanted offset, else the high watermark (a long-poll)."""
        return self.high_watermark if self.wanted is None else self.wanted

    def answered(self, start: int, high_watermark: int, asked: int, data: bytes) -> bool:
        """Keep a Fetch answer; True if it brought something new (records or a moved window)."""
        changed = not self.ready or start != self.start or high_watermark != self.high_watermark
        self.ready = True
        self.start = start
        self.high_watermark = high_watermark
        if self.wanted == asked:
            self.wanted = None
        if data:
            base = end = -1
            for _, header in iter_headers(data):
                if base < 0:
                    base = header.base_offset
                end = header.last_offset + 1
            if 0 <= asked < base:  # compaction removed [asked, base): the chunk answers for them too
                base = asked
            if base >= 0:
                self.chunks = [c for c in self.chunks if c.end <= base or c.base >= end][-(MAX_CHUNKS - 1) :]
                self.newest = _Chunk(base, end, data)
                self.chunks.append(self.newest)
                changed = True
        self.chunks = [c for c in self.chunks if c.end > start]
        return changed


def leader_channel(
    leader_of: Callable[[str, int], int | None],
    channel_to: Callable[[int], grpc.aio.Channel | None],
    topic: str,
    partition: int,
) -> tuple[int | None, grpc.aio.Channel | None]:
    """The partition's leader as the view says now, and the channel to it (None: no leader, or not
    registered yet)."""
    leader = leader_of(topic, partition)
    channel = None if leader is None or leader < 0 else channel_to(leader)
    return leader, channel


async def _answer(call: grpc.aio.UnaryUnaryCall) -> fetch_pb2.FetchResponse:
    response: fetch_pb2.FetchResponse = await call
    return response


def _from(chunk: _Chunk, offset: int, max_bytes: int) -> bytes:
    """The batches of `chunk` from the one holding `offset`, about `max_bytes` of them (at least one)."""
    begin = stop = -1
    for position, header in iter_headers(chunk.data):
        if begin < 0 and header.last_offset >= offset:
            begin = position
        elif begin >= 0 and position - begin >= max_bytes:
            stop = position
            break
    if begin < 0:
        return b""
    return chunk.data[begin:] if stop < 0 else chunk.data[begin:stop]


class RemoteReads:
    """The remote partitions in use, each with its reader task (the domain's `RemoteSources`)."""

    def __init__(
        self,
        leader_of: Callable[[str, int], int | None],
        channel_to: Callable[[int], grpc.aio.Channel | None],
        waiters: AppendWaiters,
        clock_ms: Callable[[], int],
    ) -> None:
        self._leader_of = leader_of
        self._channel_to = channel_to
        self._waiters = waiters
        self._clock_ms = clock_ms
        self._partitions: dict[PartitionKey, RemotePartition] = {}
        self._tasks: dict[PartitionKey, asyncio.Task[None]] = {}
        self._kept: collections.deque[tuple[RemotePartition, _Chunk]] = collections.deque()
        """Every kept answer, oldest first (some may have left their partition already)."""
        self._kept_bytes = 0
        self._closed = False

    def source(self, topic: str, partition: int) -> RemotePartition | None:
        key = (topic, partition)
        remote = self._partitions.get(key)
        now = self._clock_ms()
        if remote is None:
            if self._closed:
                return None
            remote = self._partitions[key] = RemotePartition(key, now)
            self._tasks[key] = asyncio.ensure_future(self._run(remote))
        remote.used_ms = now
        return remote if remote.ready else None

    def forget_topic(self, topic: str) -> None:
        for key in [key for key in self._partitions if key[0] == topic]:
            del self._partitions[key]
            task = self._tasks.pop(key, None)
            if task is not None:
                task.cancel()

    async def close(self) -> None:
        self._closed = True
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._partitions.clear()

    async def _run(self, remote: RemotePartition) -> None:
        key = remote.key
        try:
            while self._clock_ms() - remote.used_ms < IDLE_MS:
                stub = self._stub(key)
                if stub is None:
                    await asyncio.sleep(RETRY_MS / 1000)
                    continue
                try:
                    if remote.timestamp_query is not None or not remote.ready:
                        changed = await self._list_offsets(stub, remote)
                    else:
                        changed = await self._fetch(stub, remote)
                except grpc.aio.AioRpcError as exc:
                    log.debug("reading %s-%d from its leader: %s", key[0], key[1], exc.details())
                    changed = False
                    await asyncio.sleep(RETRY_MS / 1000)
                if changed:
                    self._keep_within_budget(remote)
                    self._waiters.notify(key)
        except Exception:  # a bug: drop the partition; the next read starts a new task
            log.exception("reading %s-%d from its leader failed", key[0], key[1])
        finally:
            if self._partitions.get(key) is remote:
                del self._partitions[key]
                self._tasks.pop(key, None)

    def _keep_within_budget(self, remote: RemotePartition) -> None:
        """Account the partition's newest answer, then drop the oldest answers over MAX_TOTAL_BYTES
        (an answer its partition already let go of just stops counting)."""
        newest, remote.newest = remote.newest, None
        if newest is not None:
            self._kept.append((remote, newest))
            self._kept_bytes += len(newest.data)
        while self._kept_bytes > MAX_TOTAL_BYTES and len(self._kept) > 1:
            owner, chunk = self._kept.popleft()
            self._kept_bytes -= len(chunk.data)
            owner.chunks = [c for c in owner.chunks if c is not chunk]

    def _stub(self, key: PartitionKey) -> fetch_pb2_grpc.FetchServiceStub | None:
        _, channel = leader_channel(self._leader_of, self._channel_to, *key)
        return None if channel is None else fetch_pb2_grpc.FetchServiceStub(channel)

    async def _list_offsets(self, stub: fetch_pb2_grpc.FetchServiceStub, remote: RemotePartition) -> bool:
        topic, partition = remote.key
        asked = remote.timestamp_query
        queries = [
            fetch_pb2.ListOffsetsPartition(
                topic=topic, partition=partition, spec=fetch_pb2.OFFSET_SPEC_EARLIEST
            ),
            fetch_pb2.ListOffsetsPartition(
                topic=topic, partition=partition, spec=fetch_pb2.OFFSET_SPEC_LATEST
            ),
        ]
        if asked is not None:
            queries.append(
                fetch_pb2.ListOffsetsPartition(
                    topic=topic, partition=partition, spec=fetch_pb2.OFFSET_SPEC_TIMESTAMP, timestamp_ms=asked
                )
            )
        response = await stub.ListOffsets(
            fetch_pb2.ListOffsetsRequest(partitions=queries), timeout=CALL_MARGIN_S
        )
        results = list(response.results)
        if any(r.error_code != common_pb2.ERROR_CODE_NONE for r in results) or len(results) != len(queries):
            await asyncio.sleep(RETRY_MS / 1000)
            return False
        changed = remote.answered(results[0].offset, results[1].offset, -1, b"")
        if asked is not None:
            found = results[2].offset
            committed = 0 <= found < remote.high_watermark
            remote.timestamp_answer = (asked, found if committed else None)
            remote.timestamp_query = None
            changed = True  # the share-partition waiting for it can start now
        return changed

    async def _fetch(self, stub: fetch_pb2_grpc.FetchServiceStub, remote: RemotePartition) -> bool:
        """One Fetch at `next_offset`; a long-poll at the high watermark is cut short when a read
        wants another offset."""
        topic, partition = remote.key
        offset = remote.next_offset()
        wait_ms = LONG_POLL_MS if remote.wanted is None else 0
        request = fetch_pb2.FetchRequest(
            partitions=[
                fetch_pb2.FetchPartition(
                    topic=topic, partition=partition, offset=offset, max_bytes=CHUNK_BYTES
                )
            ],
            min_bytes=1,
            max_wait_ms=wait_ms,
            max_bytes=CHUNK_BYTES,
        )
        remote.wake.clear()
        call = stub.Fetch(request, timeout=wait_ms / 1000 + CALL_MARGIN_S)
        if wait_ms == 0:  # a wanted offset: not cut short, or two reads far apart would cancel each other
            response = await call
        else:
            answer = asyncio.ensure_future(_answer(call))
            woken = asyncio.ensure_future(remote.wake.wait())
            try:
                await asyncio.wait({answer, woken}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                woken.cancel()
                if not answer.done():  # a read wants an offset, or a timestamp, or we stop
                    call.cancel()
                    answer.cancel()
            if answer.cancelled() or not answer.done():
                return False
            response = answer.result()
        result = response.results[0]
        if result.error_code == common_pb2.ERROR_CODE_OFFSET_OUT_OF_RANGE and result.log_start_offset >= 0:
            remote.wanted = None  # retention moved the start past it: the driver follows the new start
            return remote.answered(result.log_start_offset, result.high_watermark, offset, b"")
        if result.error_code != common_pb2.ERROR_CODE_NONE:
            log.debug("reading %s-%d from its leader: %s", topic, partition, result.error_message)
            await asyncio.sleep(RETRY_MS / 1000)
            return False
        return remote.answered(result.log_start_offset, result.high_watermark, offset, result.records)
