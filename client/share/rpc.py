"""The ShareService messages a share consumer sends and reads, as plain values in and out."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from logstore.client.share.acks import AckRange
from logstore.client.shared.connection import Connection
from logstore.client.shared.errors import ClientError, error_from_code
from logstore.client.shared.types import TopicPartition
from logstore.wire.logstore.v1 import share_pb2, share_pb2_grpc

Pending = Mapping[TopicPartition, list[tuple[int, int, int]]]
"""Acknowledgements to send: per partition, (first, last, outcome) ranges (see ``acks.outcome``)."""


def share_stub(connection: Connection) -> share_pb2_grpc.ShareServiceStub:
    # The Connection carries stubs for the topic services only; share groups go over the same channel.
    return share_pb2_grpc.ShareServiceStub(connection.calls)  # with the interceptors


def acknowledgements(pending: Pending) -> list[share_pb2.PartitionAcknowledgements]:
    out = []
    for tp, ranges in pending.items():
        if not ranges:
            continue
        entry = share_pb2.PartitionAcknowledgements(topic=tp.topic, partition=tp.partition)
        add = entry.ranges.add
        for first, last, code in ranges:
            if code & ~7:
                add(
                    first_offset=first,
                    last_offset=last,
                    type=code & 7,
                    delay_ms=code >> 4,
                    not_an_attempt=bool(code & 8),
                )
            else:
                add(first_offset=first, last_offset=last, type=code)
        out.append(entry)
    return out


def failures(
    results: Iterable[share_pb2.PartitionAcknowledgementResults],
) -> dict[TopicPartition, list[tuple[AckRange | None, ClientError]]]:
    """The refused parts of acknowledgement results: per partition, the range (None for the whole
    partition) and its error."""
    out: dict[TopicPartition, list[tuple[AckRange | None, ClientError]]] = {}
    for result in results:
        where = f"{result.topic}-{result.partition}"
        tp = TopicPartition(result.topic, result.partition)
        if result.error_code:
            out.setdefault(tp, []).append(
                (None, error_from_code(result.error_code, result.error_message, where=where))
            )
            continue
        for r in result.results:
            if r.error_code:
                error = error_from_code(
                    r.error_code, r.error_message, where=f"{where} offsets {r.first_offset}..{r.last_offset}"
                )
                out.setdefault(tp, []).append((None, error))
    return out
