"""The ShareService messages a share consumer sends and reads, as plain values in and out."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast

from logstore.client.groups.coordinator import CoordinatorStub
from logstore.client.share.acks import AckRange
from logstore.client.shared.connection import Connection
from logstore.client.shared.errors import ClientError, error_from_code
from logstore.client.shared.types import TopicPartition
from logstore.wire.logstore.v1 import share_pb2, share_pb2_grpc

Pending = Mapping[TopicPartition, list[tuple[int, int, int]]]
"""Acknowledgements to send: per partition, (first, last, outcome) ranges (see ``acks.outcome``)."""


SHARE_KIND = "share"
"""FindCoordinator's kind for a share group (coordinated by the leader of its ``__share_group_state``
partition)."""


def share_coordinator(connection: Connection, group_id: str, timeout_s: float) -> CoordinatorStub:
    """A ShareService stub, as far as calls go, for one share group: each call on its coordinator's
    channel (with the interceptors), found with FindCoordinator and found again when it moves."""
    return CoordinatorStub(
        connection, share_pb2_grpc.ShareServiceStub, group_id, kind=SHARE_KIND, timeout_s=timeout_s
    )


def share_stub(connection: Connection, group_id: str, timeout_s: float) -> share_pb2_grpc.ShareServiceStub:
    """``share_coordinator``, typed as the stub it stands for."""
    stub: Any = share_coordinator(connection, group_id, timeout_s)
    return cast(share_pb2_grpc.ShareServiceStub, stub)


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
