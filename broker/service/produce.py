"""ProduceService: raw batches (Produce, or ProduceStream's requests in order on one stream) or plain
records (PublishRecords) in, per-partition offsets or error codes out."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import grpc
from logstore.broker.domain.core import BrokerCore
from logstore.broker.domain.values import Acks, ProduceEntry
from logstore.broker.observability import DISABLED, BrokerMetrics
from logstore.broker.service.calls import (
    check_not_negative,
    check_partition_count,
    require,
    streaming,
    unary,
)
from logstore.broker.service.guard import check_produce, check_producers
from logstore.broker.service.produce_stream import ProduceStreamCall
from logstore.broker.service.publish import Publisher, partition_result
from logstore.wire.logstore.v1 import produce_pb2 as pb
from logstore.wire.logstore.v1 import produce_pb2_grpc

ACKS = {
    pb.ACKS_UNSPECIFIED: Acks.ALL,
    pb.ACKS_NONE: Acks.NONE,
    pb.ACKS_LEADER: Acks.LEADER,
    pb.ACKS_ALL: Acks.ALL,
}


def acks_of(value: int) -> Acks:
    """The request's acks, or INVALID_ARGUMENT for a value the enum does not have."""
    acks = ACKS.get(value)  # type: ignore[call-overload]
    require(acks is not None, f"acks must be ACKS_NONE (1), ACKS_LEADER (2) or ACKS_ALL (3), not {value}")
    assert acks is not None
    return acks


class ProduceService(produce_pb2_grpc.ProduceServiceServicer):
    def __init__(self, core: BrokerCore, default_timeout_ms: int, metrics: BrokerMetrics = DISABLED) -> None:
        self._core = core
        self._default_timeout_ms = default_timeout_ms
        self._metrics = metrics
        self._publisher = Publisher(core, default_timeout_ms, metrics)

    @unary
    async def Produce(
        self, request: pb.ProduceRequest, context: grpc.aio.ServicerContext
    ) -> pb.ProduceResponse:
        return await self.produce(request)

    @streaming
    async def ProduceStream(
        self, requests: AsyncIterator[pb.ProduceStreamRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ProduceStreamResponse]:
        """Produce requests in order on one stream, answered in order (see `produce_stream`)."""
        async for answer in ProduceStreamCall(self._stream_produce, self._core.when_shutting_down).run(
            requests
        ):
            yield answer

    async def _stream_produce(self, request: pb.ProduceRequest) -> pb.ProduceResponse:
        check_produce(request)  # a unary Produce's rule runs in the guard, before its handler
        return await self.produce(request)

    async def produce(self, request: pb.ProduceRequest) -> pb.ProduceResponse:
        """One Produce request, checked and carried out: what Produce and each ProduceStream request do."""
        acks = acks_of(request.acks)
        check_not_negative(request.timeout_ms, "timeout_ms")
        check_partition_count(request.partitions, "produce")
        entries = [ProduceEntry(p.topic, p.partition, p.records) for p in request.partitions]
        check_producers(e.records for e in entries)
        timeout_s = (request.timeout_ms or self._default_timeout_ms) / 1000
        outcomes = await self._core.produce(entries, acks, timeout_s)
        self._metrics.produced("grpc", entries, outcomes)
        return pb.ProduceResponse(results=[partition_result(outcome) for outcome in outcomes])

    @unary
    async def PublishRecords(
        self, request: pb.PublishRecordsRequest, context: grpc.aio.ServicerContext
    ) -> pb.PublishRecordsResponse:
        """Plain records, partitioned and batched by the broker (see `publish`)."""
        return await self._publisher.publish(request, acks_of(request.acks), time.time_ns() // 1_000_000)

    @unary
    async def InitProducerId(
        self, request: pb.InitProducerIdRequest, context: grpc.aio.ServicerContext
    ) -> pb.InitProducerIdResponse:
        producer_id, epoch = self._core.init_producer_id()
        return pb.InitProducerIdResponse(producer_id=producer_id, producer_epoch=epoch)
