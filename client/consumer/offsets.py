"""Offset lookups (``ListOffsets``): earliest, latest, or the first offset at or after a time."""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from logstore.client.shared.connection import Connection
from logstore.client.shared.errors import NotLeaderOrFollowerError, error_from_code, error_from_rpc
from logstore.client.shared.metadata import note_failure, route
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
    """Look up ``(tp, spec, timestamp_ms)`` queries in one call per partition leader. A timestamp later than every record gives
    None. Raises the first per-partition error (naming the partition) or the call's error."""
    wanted = list(queries)
    if not wanted:
        return {}
    by_tp = {tp: (spec, ts) for tp, spec, ts in wanted}
    groups, leaderless = route(connection, by_tp, timeout_s)
    if leaderless:
        raise NotLeaderOrFollowerError(
            f"ListOffsets: no leader known for {', '.join(map(str, leaderless))} right now; retry shortly"
        )
    found: dict[TopicPartition, OffsetAndTimestamp | None] = {}
    for broker_id, (channel, tps) in groups.items():  # one call per leader
        request = fetch_pb2.ListOffsetsRequest(
            partitions=[
                fetch_pb2.ListOffsetsPartition(
                    topic=tp.topic, partition=tp.partition, spec=by_tp[tp][0], timestamp_ms=by_tp[tp][1]
                )
                for tp in tps
            ]
        )
        try:
            answer = channel.fetch.ListOffsets(request, timeout=timeout_s)
        except grpc.RpcError as exc:
            error = error_from_rpc(exc, "ListOffsets")
            note_failure(connection, broker_id, tps, error)
            raise error from None
        for tp, result in zip(tps, answer.results, strict=True):
            if result.error_code:
                error = error_from_code(result.error_code, result.error_message, where=str(tp))
                note_failure(connection, broker_id, [tp], error)
                raise error
            found[tp] = None if result.offset < 0 else OffsetAndTimestamp(result.offset, result.timestamp_ms)
    return {tp: found[tp] for tp, _, _ in wanted}
