"""ProduceService: raw batches in, per-partition offsets or error codes out."""

from __future__ import annotations

import grpc
from logstore.broker.domain.core import BrokerCore
from logstore.broker.domain.values import Acks, ProduceEntry
from logstore.broker.errors import partition_error
from logstore.broker.service.calls import check_not_negative, check_partition_count, require, unary
from logstore.wire.logstore.v1 import produce_pb2 as pb
from logstore.wire.logstore.v1 import produce_pb2_grpc

ACKS = {
    pb.ACKS_UNSPECIFIED: Acks.ALL,
    pb.ACKS_NONE: Acks.NONE,
    pb.ACKS_LEADER: Acks.LEADER,
    pb.ACKS_ALL: Acks.ALL,
}


class ProduceService(produce_pb2_grpc.ProduceServiceServicer):
    def __init__(self, core: BrokerCore, default_timeout_ms: int) -> None:
        self._core = core
        self._default_timeout_ms = default_timeout_ms

    @unary
    async def Produce(
        self, request: pb.ProduceRequest, context: grpc.aio.ServicerContext
    ) -> pb.ProduceResponse:
        acks = ACKS.get(request.acks)
        require(
            acks is not None,
            f"acks must be ACKS_NONE (1), ACKS_LEADER (2) or ACKS_ALL (3), not {request.acks}",
        )
        check_not_negative(request.timeout_ms, "timeout_ms")
        check_partition_count(request.partitions, "produce")
        entries = [ProduceEntry(p.topic, p.partition, p.records) for p in request.partitions]
        timeout_s = (request.timeout_ms or self._default_timeout_ms) / 1000
        outcomes = await self._core.produce(entries, acks, timeout_s)  # type: ignore[arg-type]
        results = []
        for outcome in outcomes:
            code, message = partition_error(outcome.error)
            results.append(
                pb.ProducePartitionResult(
                    topic=outcome.topic,
                    partition=outcome.partition,
                    error_code=code,
                    error_message=message,
                    base_offset=outcome.base_offset,
                    log_append_time_ms=outcome.log_append_time_ms,
                    log_start_offset=outcome.log_start_offset,
                )
            )
        return pb.ProduceResponse(results=results)

    @unary
    async def InitProducerId(
        self, request: pb.InitProducerIdRequest, context: grpc.aio.ServicerContext
    ) -> pb.InitProducerIdResponse:
        producer_id, epoch = self._core.init_producer_id()
        return pb.InitProducerIdResponse(producer_id=producer_id, producer_epoch=epoch)
