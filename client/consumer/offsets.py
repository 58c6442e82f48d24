"""Offset lookups (``ListOffsets``): earliest, latest, or the first offset at or after a time."""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from logstore.client.shared.connection import Connection
from logstore.client.shared.errors import error_from_code, error_from_rpc
from logstore.client.shared.types import OffsetAndTimestamp, TopicPartition
from logstore.wire.logstore.v1 import fetch_pb2

EARLIEST = fetch_pb2.OFFSET_SPEC_EARLIEST
LATEST = fetch_pb2.OFFSET_SPEC_LATEST
TIMESTAMP = fetch_pb2.OFFSET_SPEC_TIMESTAMP
SPECS = {"earliest": EARLIEST, "latest": LATEST}


def list_offsets(
    connection: Connection,
    queries: Iterable[tuple[TopicPartition, fetch_pb2.OffsetSpec, int]],
    timeout_s: float,
) -> dict[TopicPartition, OffsetAndTimestamp | None]:
    """Look up ``(tp, spec, timestamp_ms)`` queries in one call. A timestamp later than every record gives
    None. Raises the first per-partition error (naming the partition) or the call's error."""
    wanted = list(queries)
    if not wanted:
        return {}
    request = fetch_pb2.ListOffsetsRequest(
        partitions=[
            fetch_pb2.ListOffsetsPartition(topic=tp.topic, partition=tp.partition, spec=spec, timestamp_ms=ts)
            for tp, spec, ts in wanted
        ]
    )
    try:
        answer = connection.fetch.ListOffsets(request, timeout=timeout_s)
    except grpc.RpcError as exc:
        raise error_from_rpc(exc, "ListOffsets") from None
    found: dict[TopicPartition, OffsetAndTimestamp | None] = {}
    for (tp, _, _), result in zip(wanted, answer.results, strict=True):
        if result.error_code:
            raise error_from_code(result.error_code, result.error_message, where=str(tp))
        found[tp] = None if result.offset < 0 else OffsetAndTimestamp(result.offset, result.timestamp_ms)
    return found
