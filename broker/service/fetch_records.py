"""FetchRecords: one partition read as plain Record messages, decoded by the broker with the one codec
(`logstore.records`), so a client in any language can consume with nothing but its gRPC stubs.

`plain_records` is the pure part (batches in, messages out); `RecordReader` reads and long-polls through
the same domain calls and answer budget as Fetch.
"""

from __future__ import annotations

from logstore.broker.domain.core import BrokerCore
from logstore.broker.domain.values import FetchSpec, PartitionRead
from logstore.broker.errors import partition_error
from logstore.broker.service.answers import Lease
from logstore.broker.service.calls import check_not_negative
from logstore.wire.logstore.v1 import common_pb2
from logstore.wire.logstore.v1 import fetch_pb2 as pb

from logstore.records import decode_batch, iter_headers

DEFAULT_MAX_RECORDS = 500
"""Records per answer when the request leaves max_records at 0 (Kafka's max.poll.records)."""
READ_BYTES = 1024 * 1024
"""Bytes of batches read per call: an answer holds the records of at most about this much."""


def plain_records(
    batches: bytes, offset: int, max_records: int
) -> tuple[list[common_pb2.Record], int | None]:
    """The records at or after `offset` in `batches` (at most `max_records`), and the offset after the
    last batch read (None without batches): where to go on when every record read was skipped, as on a
    compacted topic. Control batches (transaction markers) are not records and are left out."""
    records: list[common_pb2.Record] = []
    Record = common_pb2.Record
    Header = common_pb2.RecordHeader
    after: int | None = None
    for pos, header in iter_headers(batches):
        after = header.last_offset + 1
        if header.is_control or after <= offset:
            continue
        for record in decode_batch(batches, pos):
            if record.offset < offset:
                continue
            message = Record(offset=record.offset, timestamp_ms=record.timestamp)
            if record.key is not None:
                message.key = record.key
            if record.value is not None:
                message.value = record.value
            headers = record.headers
            if headers:
                message.headers.extend(
                    Header(key=key) if value is None else Header(key=key, value=value)
                    for key, value in headers
                )
            records.append(message)
            if len(records) == max_records:
                return records, record.offset + 1
    return records, after


def answer(read: PartitionRead, offset: int, max_records: int) -> pb.FetchRecordsResponse:
    code, message = partition_error(read.error)
    records, after = plain_records(read.records, offset, max_records) if read.error is None else ([], None)
    next_offset = records[-1].offset + 1 if records else max(offset, after or offset)
    return pb.FetchRecordsResponse(
        records=records,
        high_watermark=read.high_watermark,
        log_start_offset=read.log_start_offset,
        error_code=code,
        error_message=message,
        next_offset=next_offset,
    )


class RecordReader:
    """Serves FetchRecords: read now; with nothing at the offset, long-poll (holding no answer budget)
    until an append wakes the call or max_wait_ms has passed, then read again."""

    def __init__(self, core: BrokerCore) -> None:
        self._core = core

    async def fetch(self, request: pb.FetchRecordsRequest, lease: Lease) -> pb.FetchRecordsResponse:
        check_not_negative(request.max_records, "max_records")
        check_not_negative(request.max_wait_ms, "max_wait_ms")
        max_records = request.max_records or DEFAULT_MAX_RECORDS
        spec = FetchSpec(request.topic, request.partition, request.offset, READ_BYTES)
        response = answer(await self._read_now(spec, lease), request.offset, max_records)
        if response.records or response.error_code or not request.max_wait_ms or self._core.shutting_down:
            return response
        lease.release_all()
        (woken,) = await self._core.fetch(
            [FetchSpec(request.topic, request.partition, response.next_offset, 1)],
            min_bytes=1,
            max_wait_s=request.max_wait_ms / 1000,
            max_bytes=1,
        )
        if self._core.shutting_down or woken.error is not None or not woken.records:
            return answer(woken, request.offset, max_records) if woken.error is not None else response
        return answer(await self._read_now(spec, lease), request.offset, max_records)

    async def _read_now(self, spec: FetchSpec, lease: Lease) -> PartitionRead:
        """Read within the room the answer budget leaves, and charge what was read (no await between)."""
        room = await lease.wait_for_room()
        (read,) = await self._core.fetch(
            [spec], min_bytes=0, max_wait_s=0, max_bytes=max(1, min(READ_BYTES, room))
        )
        lease.charge(len(read.records))
        return read
