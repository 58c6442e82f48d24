"""Produce calls from drained batches, and their answers back into the accumulator: pure, shared by the
threaded sender and the asyncio producer, so both put a partition's batches in one entry and read the
answer the same way.

A partition's batches in one call travel as one entry, their bytes joined: the broker appends them all
or none, with consecutive offsets, so a later batch never lands without an earlier one.
"""

from __future__ import annotations

import grpc
from logstore.client.producer.accumulator import Accumulator, Finished, ProducerBatch
from logstore.client.shared.errors import (
    BrokerStorageError,
    NotEnoughReplicasAfterAppendError,
    RequestTimedOutError,
    UnknownBrokerError,
    error_from_code,
    error_from_rpc,
    is_uncertain,
)
from logstore.wire.logstore.v1 import produce_pb2

UNCERTAIN_ERRORS = (
    RequestTimedOutError,
    BrokerStorageError,
    UnknownBrokerError,
    NotEnoughReplicasAfterAppendError,
)
"""Answers after which the batch may or may not be written: retried as a possible duplicate (written on
the leader but not yet on enough replicas counts: a new leader may or may not have it)."""

Acked = list[tuple[ProducerBatch, int, int]]
"""Batches the broker took, each with its base offset and log-append time (-1, -1 for acks=0)."""


def by_partition(batches: list[ProducerBatch]) -> list[list[ProducerBatch]]:
    """The drained batches as one list per partition entry (the drain hands out a partition's together)."""
    groups: list[list[ProducerBatch]] = []
    last: ProducerBatch | None = None
    for batch in batches:
        if last is not None and batch.partition == last.partition and batch.topic == last.topic:
            groups[-1].append(batch)
        else:
            groups.append([batch])
        last = batch
    return groups


def produce_request(
    groups: list[list[ProducerBatch]], producer_id: int, acks: produce_pb2.Acks
) -> produce_pb2.ProduceRequest:
    entries = []
    for group in groups:
        first = group[0]
        data = (
            first.encode(producer_id) if len(group) == 1 else b"".join(b.encode(producer_id) for b in group)
        )
        entries.append(
            produce_pb2.ProducePartitionData(topic=first.topic, partition=first.partition, records=data)
        )
    return produce_pb2.ProduceRequest(acks=acks, partitions=entries)


def _answered_after(accumulator: Accumulator, groups: list[list[ProducerBatch]], now: float) -> None:
    """Count the request and its latency (from the drain that sent its batches) in the producer's metrics."""
    accumulator.metrics.count("request")
    if groups:
        accumulator.metrics.observe("request-latency", (now - groups[0][0].sent_at) * 1000)


def call_failed(
    accumulator: Accumulator,
    groups: list[list[ProducerBatch]],
    exc: grpc.RpcError,
    now: float,
    *,
    uncertain: bool | None = None,
) -> Finished:
    """The call itself failed: every batch of it fails (retried by the accumulator where it may be).

    ``uncertain``: whether the broker may have carried it out anyway; None decides by the status."""
    _answered_after(accumulator, groups, now)
    error = error_from_rpc(exc, f"Produce of {sum(map(len, groups))} batches")
    if uncertain is None:
        uncertain = is_uncertain(exc)
    return [
        done
        for group in groups
        for batch in group
        for done in accumulator.fail(batch, error, now, uncertain=uncertain)
    ]


def stream_answered(
    accumulator: Accumulator,
    groups: list[list[ProducerBatch]],
    answer: produce_pb2.ProduceStreamResponse,
    now: float,
) -> tuple[Finished, Acked]:
    """A ProduceStream answer: a whole-request error fails every batch of it (as a failed Produce call
    would), else the results are read as a Produce answer's."""
    if answer.error_code:
        _answered_after(accumulator, groups, now)
        failure = error_from_code(
            answer.error_code, answer.error_message, where=f"ProduceStream request {answer.request_id}"
        )
        uncertain = isinstance(failure, UNCERTAIN_ERRORS)
        return [
            done
            for group in groups
            for batch in group
            for done in accumulator.fail(batch, failure, now, uncertain=uncertain)
        ], []
    return answered(accumulator, groups, list(answer.response.results), now)


def answered(
    accumulator: Accumulator,
    groups: list[list[ProducerBatch]],
    results: list[produce_pb2.ProducePartitionResult],
    now: float,
) -> tuple[Finished, Acked]:
    """The broker's answer, one result per entry (none for acks=0), fed back batch by batch."""
    _answered_after(accumulator, groups, now)
    finished: Finished = []
    acked: Acked = []
    if not results:  # acks=0: the broker says nothing
        for group in groups:
            for batch in group:
                finished += accumulator.acknowledge(batch, now)
                acked.append((batch, -1, -1))
        return finished, acked
    if len(results) != len(groups):
        error = UnknownBrokerError(f"the broker answered {len(results)} results for {len(groups)} partitions")
        for group in groups[len(results) :]:
            for batch in group:
                finished += accumulator.fail(batch, error, now, uncertain=True)
    for group, result in zip(groups, results, strict=False):
        if result.error_code == 0:
            base_offset = result.base_offset  # the group got consecutive offsets from the first batch's on
            for batch in group:
                finished += accumulator.acknowledge(batch, now)
                acked.append((batch, base_offset, result.log_append_time_ms))
                base_offset += batch.record_count
        else:
            first = group[0]
            failure = error_from_code(
                result.error_code, result.error_message, where=f"{first.topic}-{first.partition}"
            )
            uncertain = isinstance(failure, UNCERTAIN_ERRORS)
            for batch in group:
                finished += accumulator.fail(batch, failure, now, uncertain=uncertain)
    return finished, acked
