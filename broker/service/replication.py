"""ReplicationService: the leader's side of replica fetches and OffsetForLeaderEpoch (internal; brokers
call it on each other). It translates; the decisions are the replica manager's and the leader epoch
cache's."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import grpc
from logstore.broker.domain.core import BrokerCore
from logstore.broker.domain.errors import NotLeaderOrFollowerError
from logstore.broker.errors import partition_error
from logstore.broker.replication.replica_manager import ReplicaManager
from logstore.broker.service.calls import check_not_negative, check_partition_count, unary
from logstore.wire.logstore.v1 import replication_pb2 as pb
from logstore.wire.logstore.v1 import replication_pb2_grpc

from logstore.errors import LogStoreError, OffsetOutOfRangeError

DEFAULT_MAX_BYTES = 8 * 1024 * 1024


class ReplicationService(replication_pb2_grpc.ReplicationServiceServicer):
    """Not thread-safe: the broker's loop."""

    def __init__(self, core: BrokerCore, replicas: Callable[[], ReplicaManager | None]) -> None:
        self._core = core
        self._replicas = replicas

    def _manager(self) -> ReplicaManager:
        manager = self._replicas()
        if manager is None:
            raise NotLeaderOrFollowerError("this broker is not part of a cluster (started without --etcd)")
        return manager

    @unary
    async def ReplicaFetch(self, request: pb.ReplicaFetchRequest, context: grpc.aio.ServicerContext) -> bytes:
        check_partition_count(request.partitions, "replica fetch")
        check_not_negative(request.max_wait_ms, "max_wait_ms")
        check_not_negative(request.min_bytes, "min_bytes")
        check_not_negative(request.max_bytes, "max_bytes")
        manager = self._manager()
        max_bytes = request.max_bytes or DEFAULT_MAX_BYTES
        # Each partition's position is recorded once: the fetch offset is the follower's log end.
        refused: dict[tuple[str, int], pb.ReplicaFetchResult] = {}
        for p in request.partitions:
            try:
                leader = manager.leader_for_fetch(
                    request.replica_id, p.topic, p.partition, p.current_leader_epoch
                )
                manager.follower_fetched(
                    leader, request.replica_id, p.fetch_offset, self._core.topics.log(p.topic, p.partition)
                )
            except OffsetOutOfRangeError as exc:
                refused[(p.topic, p.partition)] = _result(
                    p.topic, p.partition, exc, exc.log_end_offset, exc.log_start_offset
                )
            except LogStoreError as exc:
                refused[(p.topic, p.partition)] = _result(p.topic, p.partition, exc)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + request.max_wait_ms / 1000
        keys = [(p.topic, p.partition) for p in request.partitions]
        while True:
            results, total = self._read(request, manager, refused, max_bytes)
            remaining = deadline - loop.time()
            if total >= request.min_bytes or refused or remaining <= 0 or self._core.shutting_down:
                return pb.ReplicaFetchResponse(partitions=results).SerializeToString()
            await self._core.waiters.wait(keys, remaining)

    def _read(
        self,
        request: pb.ReplicaFetchRequest,
        manager: ReplicaManager,
        refused: dict[tuple[str, int], pb.ReplicaFetchResult],
        max_bytes: int,
    ) -> tuple[list[pb.ReplicaFetchResult], int]:
        results = []
        total = 0
        for p in request.partitions:
            key = (p.topic, p.partition)
            if key in refused:
                results.append(refused[key])
                continue
            leader = manager.leaders.get(key)
            if leader is None or leader.leader_epoch != p.current_leader_epoch:
                refused[key] = _result(
                    p.topic,
                    p.partition,
                    NotLeaderOrFollowerError(f"{p.topic}-{p.partition}: leadership moved"),
                )
                results.append(refused[key])
                continue
            partition_log = self._core.topics.log(p.topic, p.partition)
            data = b""
            if total < max_bytes and p.fetch_offset < partition_log.log_end_offset:
                data = partition_log.read(p.fetch_offset, max_bytes - total).data
            total += len(data)
            results.append(
                pb.ReplicaFetchResult(
                    topic=p.topic,
                    partition=p.partition,
                    high_watermark=leader.high_watermark,
                    log_start_offset=partition_log.log_start_offset,
                    records=data,
                )
            )
        return results, total

    @unary
    async def OffsetForLeaderEpoch(
        self, request: pb.OffsetForLeaderEpochRequest, context: grpc.aio.ServicerContext
    ) -> pb.OffsetForLeaderEpochResponse:
        check_partition_count(request.partitions, "OffsetForLeaderEpoch")
        manager = self._manager()
        answers = []
        for q in request.partitions:
            try:
                manager.leader_for_fetch(request.replica_id, q.topic, q.partition, q.current_leader_epoch)
                partition_log = self._core.topics.log(q.topic, q.partition)
                end = partition_log.end_offset_for_epoch(q.leader_epoch)
            except LogStoreError as exc:
                code, message = partition_error(exc)
                answers.append(
                    pb.EpochAnswer(
                        topic=q.topic, partition=q.partition, error_code=code, error_message=message
                    )
                )
                continue
            answers.append(
                pb.EpochAnswer(
                    topic=q.topic, partition=q.partition, leader_epoch=end.epoch, end_offset=end.end_offset
                )
            )
        return pb.OffsetForLeaderEpochResponse(partitions=answers)


def _result(
    topic: str, partition: int, error: Exception, high_watermark: int = -1, log_start_offset: int = -1
) -> pb.ReplicaFetchResult:
    code, message = partition_error(error)
    return pb.ReplicaFetchResult(
        topic=topic,
        partition=partition,
        error_code=code,
        error_message=message,
        high_watermark=high_watermark,
        log_start_offset=log_start_offset,
    )
