"""FetchService: batched long-polling reads, subscriptions, offset lookups, and plain-record reads."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence

import grpc
from logstore.broker.domain.core import BrokerCore
from logstore.broker.domain.values import (
    FetchSpec,
    OffsetQuery,
    OffsetSpec,
    PartitionRead,
    StartFrom,
    SubscribeStart,
)
from logstore.broker.errors import partition_error
from logstore.broker.observability import DISABLED, BrokerMetrics
from logstore.broker.service.answers import AnswerBudget, Lease, call_lease
from logstore.broker.service.calls import check_not_negative, check_partition_count, require, streaming, unary
from logstore.broker.service.fetch_records import RecordReader
from logstore.wire.logstore.v1 import fetch_pb2 as pb
from logstore.wire.logstore.v1 import fetch_pb2_grpc

DEFAULT_PARTITION_MAX_BYTES = 1024 * 1024
START_FROM = {
    pb.START_FROM_EARLIEST: StartFrom.EARLIEST,
    pb.START_FROM_LATEST: StartFrom.LATEST,
    pb.START_FROM_OFFSET: StartFrom.OFFSET,
    pb.START_FROM_TIMESTAMP: StartFrom.TIMESTAMP,
}
OFFSET_SPEC = {
    pb.OFFSET_SPEC_EARLIEST: OffsetSpec.EARLIEST,
    pb.OFFSET_SPEC_LATEST: OffsetSpec.LATEST,
    pb.OFFSET_SPEC_TIMESTAMP: OffsetSpec.TIMESTAMP,
}


def partition_records(reads: Iterable[PartitionRead]) -> list[pb.PartitionRecords]:
    results = []
    for read in reads:
        code, message = partition_error(read.error)
        results.append(
            pb.PartitionRecords(
                topic=read.topic,
                partition=read.partition,
                error_code=code,
                error_message=message,
                high_watermark=read.high_watermark,
                log_start_offset=read.log_start_offset,
                records=read.records,
            )
        )
    return results


def _records_bytes(reads: Sequence[PartitionRead]) -> int:
    return sum(len(read.records) for read in reads)


class FetchService(fetch_pb2_grpc.FetchServiceServicer):
    def __init__(
        self,
        core: BrokerCore,
        fetch_max_bytes: int,
        answers: AnswerBudget | None = None,
        metrics: BrokerMetrics = DISABLED,
    ) -> None:
        self._core = core
        self._metrics = metrics
        self._fetch_max_bytes = fetch_max_bytes
        self._answers = answers or AnswerBudget(2**62, 2**62)
        self._records = RecordReader(core)

    def _max_bytes(self, requested: int) -> int:
        check_not_negative(requested, "max_bytes")
        return min(requested, self._fetch_max_bytes) if requested else self._fetch_max_bytes

    @unary
    async def Fetch(self, request: pb.FetchRequest, context: grpc.aio.ServicerContext) -> bytes:
        """The answer goes out serialized (see `calls.passing_bytes`): while a slow client has not taken
        it, gRPC holds its bytes twice (here and in its core), not three times."""
        check_partition_count(request.partitions, "fetch")
        check_not_negative(request.min_bytes, "min_bytes")
        check_not_negative(request.max_wait_ms, "max_wait_ms")
        max_bytes = self._max_bytes(request.max_bytes)
        specs = [
            FetchSpec(p.topic, p.partition, p.offset, p.max_bytes or DEFAULT_PARTITION_MAX_BYTES)
            for p in request.partitions
        ]
        lease = call_lease(self._answers, context)
        reads = await self._read_now(specs, max_bytes, lease)
        enough = _records_bytes(reads) >= request.min_bytes or any(read.error for read in reads)
        if not enough and request.max_wait_ms and not self._core.shutting_down:
            # Long-poll holding no budget: wait for min_bytes to be there (reading at most about that
            # much each time it looks), then read for real within the room left at that moment.
            del reads
            lease.release_all()
            reads = await self._core.fetch(
                specs,
                min_bytes=request.min_bytes,
                max_wait_s=request.max_wait_ms / 1000,
                max_bytes=max(1, min(request.min_bytes, max_bytes)),
            )
            if self._core.shutting_down:  # answer with what is there, as every long-poll does at stop
                lease.charge(_records_bytes(reads))
            else:
                reads = await self._read_now(specs, max_bytes, lease)
        self._metrics.fetched("grpc", reads)
        return pb.FetchResponse(results=partition_records(reads)).SerializeToString()

    async def _read_now(
        self, specs: Sequence[FetchSpec], max_bytes: int, lease: Lease
    ) -> list[PartitionRead]:
        """Read at once within the room the budget leaves (waiting for some), and charge what was read.

        Reading and charging happen with no await in between, so concurrent calls cannot all take the
        same room."""
        room = await lease.wait_for_room()
        reads = await self._core.fetch(
            specs, min_bytes=0, max_wait_s=0, max_bytes=max(1, min(max_bytes, room))
        )
        lease.charge(_records_bytes(reads))
        return reads

    @streaming
    async def Subscribe(
        self, request: pb.SubscribeRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        check_partition_count(request.partitions, "subscribe")
        max_bytes = self._max_bytes(request.max_bytes) if request.max_bytes else DEFAULT_PARTITION_MAX_BYTES
        starts = []
        for p in request.partitions:
            start_from = START_FROM.get(p.start_from)
            require(
                start_from is not None,
                f"{p.topic}-{p.partition}: start_from must be START_FROM_EARLIEST, _LATEST, _OFFSET or "
                f"_TIMESTAMP, not {p.start_from}",
            )
            starts.append(SubscribeStart(p.topic, p.partition, start_from, p.offset, p.timestamp_ms))  # type: ignore[arg-type]
        lease = call_lease(self._answers, context)
        try:
            async for reads in self._core.subscribe(starts, max_bytes, lease.wait_for_room):
                lease.charge(_records_bytes(reads))
                self._metrics.fetched("grpc", reads)
                message = pb.SubscribeResponse(partitions=partition_records(reads)).SerializeToString()
                reads.clear()  # the batches now live in `message` only (the domain's list is this one)
                yield message
                # gRPC resumes this generator once the message has been sent: it no longer holds it.
                lease.release_all()
        finally:
            lease.release_all()

    @unary
    async def ListOffsets(
        self, request: pb.ListOffsetsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListOffsetsResponse:
        check_partition_count(request.partitions, "list-offsets")
        queries = [
            OffsetQuery(p.topic, p.partition, OFFSET_SPEC.get(p.spec), p.timestamp_ms)
            for p in request.partitions
        ]
        results = []
        for answer in self._core.list_offsets(queries):
            code, message = partition_error(answer.error)
            results.append(
                pb.ListOffsetsPartitionResult(
                    topic=answer.topic,
                    partition=answer.partition,
                    error_code=code,
                    error_message=message,
                    offset=answer.offset,
                    timestamp_ms=answer.timestamp_ms,
                )
            )
        return pb.ListOffsetsResponse(results=results)

    @unary
    async def FetchRecords(
        self, request: pb.FetchRecordsRequest, context: grpc.aio.ServicerContext
    ) -> pb.FetchRecordsResponse:
        """One partition as plain records, decoded by the broker (see `fetch_records`)."""
        lease = call_lease(self._answers, context)
        response = await self._records.fetch(request, lease)
        if self._metrics.enabled and response.records:
            size = sum(
                len(r.key) + len(r.value) + sum(len(h.key) + len(h.value) for h in r.headers)
                for r in response.records
            )
            self._metrics.records_fetched("grpc", request.topic, len(response.records), size)
        return response
