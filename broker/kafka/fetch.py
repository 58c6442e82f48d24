"""Fetch and ListOffsets: stored batches go out as they are, whole (a fetch offset inside a batch gets
the batch from its start; clients skip the records before the offset they asked for)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from kio.schema.errors import ErrorCode
from logstore.broker.auth.acl import Operation, ResourceType
from logstore.broker.domain.values import FetchSpec, OffsetQuery, OffsetSpec, PartitionRead
from logstore.broker.kafka import cluster_answers, sasl
from logstore.broker.kafka.api_versions import NO_THROTTLE
from logstore.broker.kafka.codec import build, element, response_type
from logstore.broker.kafka.context import Held, Later, RequestContext
from logstore.broker.kafka.errors import error_code
from logstore.broker.kafka.hot_answers import fetch_answer
from logstore.broker.kafka.versions import FETCH, LIST_OFFSETS
from logstore.broker.service.answers import Lease

EARLIEST_TIMESTAMP = -2
LATEST_TIMESTAMP = -1
NO_SESSION = 0


def handle(request: Any, version: int, ctx: RequestContext) -> Any:
    """A full fetch, long-polling up to max_wait until min_bytes are there. Fetch sessions (KIP-227) are
    not kept: every answer says session 0, which tells the client to send full fetches.

    Answered now when data is there; otherwise a `LongPoll` answers from inside the append that brings
    enough (or at max_wait). Only when the connection has no room in the answer budget does a task wait
    for room, as the gRPC FetchService does."""
    cls = response_type(FETCH, version)
    if getattr(request, "session_id", NO_SESSION) != NO_SESSION or getattr(request, "session_epoch", -1) > 0:
        return build(
            cls,
            throttle_time=NO_THROTTLE,
            error_code=ErrorCode.fetch_session_id_not_found,
            session_id=NO_SESSION,
            responses=(),
        )
    specs = [
        FetchSpec(t.topic, p.partition, p.fetch_offset, p.partition_max_bytes)
        for t in request.topics
        for p in t.partitions
    ]
    requested_max = getattr(request, "max_bytes", ctx.fetch_max_bytes)
    max_bytes = max(1, min(requested_max, ctx.fetch_max_bytes))
    min_bytes = max(0, request.min_bytes)
    max_wait_s = request.max_wait.total_seconds()
    lease = ctx.answers.lease(ctx.connection)
    room = lease.room()
    refused = _refused(specs, ctx)
    unread = _fenced(request, ctx)
    if refused:  # a refused Read decides before a fenced epoch, as Kafka authorizes first
        unread.update({(s.topic, s.partition): refused[s.topic] for s in specs if s.topic in refused})
    if unread:  # answered now: the other partitions' data, and Kafka's code for these
        allowed = [spec for spec in specs if (spec.topic, spec.partition) not in unread]
        found = ctx.core.read_now(allowed, max(1, min(max_bytes, room))) if allowed else []
        by_partition = {(r.topic, r.partition): r for r in found}
        reads = [
            by_partition.get((spec.topic, spec.partition))
            or PartitionRead(spec.topic, spec.partition, error=unread[spec.topic, spec.partition])
            for spec in specs
        ]
        lease.charge(_size(reads))
        return Held(fetch_answer(version, reads), lease)
    if room <= 0 or ctx.core.shutting_down:
        return _held(version, _read(specs, max_bytes, min_bytes, max_wait_s, ctx, lease), lease, ctx)
    reads = ctx.core.read_now(specs, max(1, min(max_bytes, room)))
    if _enough(reads, min_bytes) or max_wait_s <= 0:
        lease.charge(_size(reads))
        return Held(_answer(version, reads, ctx), lease)
    del reads
    return LongPoll(version, specs, max_bytes, min_bytes, ctx, lease).start(max_wait_s)


def _refused(specs: list[FetchSpec], ctx: RequestContext) -> dict[str, Exception]:
    """The topics the connection's principal may not Read, with the error to answer for each."""
    if ctx.auth is None or not ctx.auth.required:
        return {}
    refused: dict[str, Exception] = {}
    for topic in {spec.topic for spec in specs}:
        error = sasl.refusal(ctx.auth, Operation.READ, ResourceType.TOPIC, topic)
        if error is not None:
            refused[topic] = error
    return refused


def _fenced(request: Any, ctx: RequestContext) -> dict[tuple[str, int], Exception]:
    """The partitions whose current_leader_epoch (v9+) is not the partition's (KIP-320), with the error
    for each. Nothing to check for a single broker, whose Metadata names no epochs."""
    if not ctx.core.cluster.clustered:
        return {}
    fenced: dict[tuple[str, int], Exception] = {}
    for t in request.topics:
        for p in t.partitions:
            epoch = getattr(p, "current_leader_epoch", cluster_answers.NO_EPOCH)
            error = cluster_answers.epoch_error(ctx.core.cluster, t.topic, p.partition, epoch)
            if error is not None:
                fenced[t.topic, p.partition] = error
    return fenced


class LongPoll:
    """A fetch waiting for data: woken inside the append that may bring it, answered at once if it did,
    else at max_wait with what is there. Holds no budget while it waits."""

    def __init__(
        self,
        version: int,
        specs: list[FetchSpec],
        max_bytes: int,
        min_bytes: int,
        ctx: RequestContext,
        lease: Lease,
    ) -> None:
        self._version = version
        self._specs = specs
        self._max_bytes = max_bytes
        self._min_bytes = min_bytes
        self._ctx = ctx
        self._lease = lease
        self._unwatch: Callable[[], None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._fallback: asyncio.Task[Any] | None = None
        self._later = Later(self._stop)

    def start(self, max_wait_s: float) -> Later:
        self._unwatch = self._ctx.core.watch(self._specs, self._woken)
        self._timer = asyncio.get_running_loop().call_later(max_wait_s, self._expired)
        return self._later

    def _woken(self) -> None:
        if self._later.done:
            return
        try:
            closing = self._ctx.core.shutting_down
            if not self._answer_if(closing):
                self._unwatch = self._ctx.core.watch(self._specs, self._woken)  # not enough yet
        except Exception as exc:
            self._later.fail(exc)

    def _expired(self) -> None:
        self._timer = None
        if self._later.done:
            return
        try:
            self._answer_if(True)
        except Exception as exc:
            self._later.fail(exc)

    def _answer_if(self, always: bool) -> bool:
        """Read within the room there is; answer if that is enough (or `always`). No room at all: a task
        waits for some, then answers."""
        room = self._lease.room()
        if room <= 0:
            self._stop()
            self._fallback = asyncio.ensure_future(
                _read_now(self._specs, self._max_bytes, self._ctx, self._lease)
            )
            self._fallback.add_done_callback(self._fell_back)
            return True
        reads = self._ctx.core.read_now(self._specs, max(1, min(self._max_bytes, room)))
        if not always and not _enough(reads, self._min_bytes):
            return False
        self._lease.charge(_size(reads))
        self._later.resolve(Held(_answer(self._version, reads, self._ctx), self._lease))
        return True

    def _fell_back(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            return
        if task.exception() is not None:
            self._later.fail(task.exception())  # type: ignore[arg-type]
        else:
            self._later.resolve(Held(_answer(self._version, task.result(), self._ctx), self._lease))

    def _stop(self) -> None:
        """Stop waiting; on cancellation also give back what the answer holds."""
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._later.cancelled:
            if self._fallback is not None:
                self._fallback.cancel()
            self._lease.release_all()


def _enough(reads: list[PartitionRead], min_bytes: int) -> bool:
    return _size(reads) >= min_bytes or any(r.error for r in reads)


def _size(reads: list[PartitionRead]) -> int:
    return sum(len(r.records) for r in reads)


def _answer(version: int, reads: list[PartitionRead], ctx: RequestContext) -> Any:
    """The fetch answer, counted in the metrics."""
    ctx.metrics.fetched("kafka", reads)
    return fetch_answer(version, reads)


async def _held(version: int, reading: Any, lease: Lease, ctx: RequestContext) -> Held:
    try:
        return Held(_answer(version, await reading, ctx), lease)
    except BaseException:
        lease.release_all()
        raise


async def _read(
    specs: list[FetchSpec],
    max_bytes: int,
    min_bytes: int,
    max_wait_s: float,
    ctx: RequestContext,
    lease: Lease,
) -> list[PartitionRead]:
    """Read within the room the answer budget leaves, long-polling (holding none of it) for min_bytes.

    The same steps as the gRPC FetchService: a read and its charge have no await between them, so
    concurrent fetches cannot all take the same room."""
    reads = await _read_now(specs, max_bytes, ctx, lease)
    if _enough(reads, min_bytes) or max_wait_s <= 0 or ctx.core.shutting_down:
        return reads
    del reads
    lease.release_all()
    reads = await ctx.core.fetch(
        specs, min_bytes=min_bytes, max_wait_s=max_wait_s, max_bytes=max(1, min(min_bytes, max_bytes))
    )
    if ctx.core.shutting_down:  # answer with what is there, as every long-poll does at stop
        lease.charge(_size(reads))
        return reads
    return await _read_now(specs, max_bytes, ctx, lease)


async def _read_now(
    specs: list[FetchSpec], max_bytes: int, ctx: RequestContext, lease: Lease
) -> list[PartitionRead]:
    room = await lease.wait_for_room()
    reads = await ctx.core.fetch(specs, min_bytes=0, max_wait_s=0, max_bytes=max(1, min(max_bytes, room)))
    lease.charge(_size(reads))
    return reads


def _query(topic: str, partition: int, timestamp: int) -> OffsetQuery:
    if timestamp == EARLIEST_TIMESTAMP:
        return OffsetQuery(topic, partition, OffsetSpec.EARLIEST)
    if timestamp == LATEST_TIMESTAMP:
        return OffsetQuery(topic, partition, OffsetSpec.LATEST)
    # Any other negative value reaches the domain, which refuses it as an invalid timestamp.
    return OffsetQuery(topic, partition, OffsetSpec.TIMESTAMP, timestamp)


def list_offsets(request: Any, version: int, ctx: RequestContext) -> Any:
    """Earliest (-2), latest (-1) or the first offset at or after a time; -1/-1 when none is."""
    cls = response_type(LIST_OFFSETS, version)
    topic_cls = element(cls, "topics")
    partition_cls = element(topic_cls, "partitions")
    queries = [_query(t.name, p.partition_index, p.timestamp) for t in request.topics for p in t.partitions]
    by_topic: dict[str, list[Any]] = {}
    refused: dict[tuple[str, int], Exception] = {}
    for name in {q.topic for q in queries}:
        error = sasl.refusal(ctx.auth, Operation.DESCRIBE, ResourceType.TOPIC, name)
        if error is not None:
            refused.update({(q.topic, q.partition): error for q in queries if q.topic == name})
    if ctx.core.cluster.clustered:  # KIP-320: v4+ say which leader epoch their metadata named
        for t in request.topics:
            for p in t.partitions:
                epoch = getattr(p, "current_leader_epoch", cluster_answers.NO_EPOCH)
                fenced = cluster_answers.epoch_error(ctx.core.cluster, t.name, p.partition_index, epoch)
                if fenced is not None:
                    refused.setdefault((t.name, p.partition_index), fenced)
    for query in queries:
        if (query.topic, query.partition) in refused:
            by_topic.setdefault(query.topic, []).append(
                build(
                    partition_cls,
                    partition_index=query.partition,
                    error_code=error_code(refused[query.topic, query.partition]),
                    timestamp=-1,
                    offset=-1,
                    leader_epoch=-1,
                )
            )
    queries = [q for q in queries if (q.topic, q.partition) not in refused]
    for answer in ctx.core.list_offsets(queries) if queries else ():
        by_topic.setdefault(answer.topic, []).append(
            build(
                partition_cls,
                partition_index=answer.partition,
                error_code=error_code(answer.error),
                timestamp=answer.timestamp_ms,
                offset=answer.offset,
                leader_epoch=-1,
            )
        )
    topics = tuple(build(topic_cls, name=name, partitions=tuple(ps)) for name, ps in by_topic.items())
    return build(cls, throttle_time=NO_THROTTLE, topics=topics)
