"""A cluster's dead letters: archived records of a share group copied to its dead-letter topic.

On a single broker `broker/domain/share/dlq.py` reads the archived records from the local log and
appends the dead letters to the local dead-letter topic. In a cluster both partitions are usually led by
other brokers, so this reads the records from the source partition's leader with the consumer Fetch and
produces the dead letters to each dead-letter partition's leader with acks=all, both over the
inter-broker gRPC channels (the same calls any client makes, and refused the same way by a broker that
no longer leads: then the leader is looked up again). A dead-letter topic that does not exist yet is
created through the controller with one partition. The batches are built by the same pure
`dead_letter_batches` as on a single broker, so the headers are the same.

Each `send` gives up after `SEND_TIMEOUT_S` (RequestTimedOutError); the `DeadLetterGate` logs and drops
what could not be sent, so an unreachable topic does not stall the group.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import grpc
from logstore.broker.domain.errors import RequestTimedOutError
from logstore.broker.domain.share.dlq import DeadLetterTarget, batches_end, dead_letter_batches
from logstore.broker.replication.remote_reads import leader_channel
from logstore.broker.share_machine.model import Archived
from logstore.wire.logstore.v1 import common_pb2, fetch_pb2, fetch_pb2_grpc, produce_pb2, produce_pb2_grpc

from logstore.errors import LogStoreError, TopicExistsError
from logstore.records import Record, iter_records

T = TypeVar("T")

SEND_TIMEOUT_S = 30.0
RETRY_S = 0.2
CALL_TIMEOUT_S = 10.0
READ_BYTES = 1 << 20
_RETRIED = frozenset(
    {
        common_pb2.ERROR_CODE_NOT_LEADER_OR_FOLLOWER,
        common_pb2.ERROR_CODE_UNKNOWN_TOPIC,
        common_pb2.ERROR_CODE_NOT_ENOUGH_REPLICAS,
        common_pb2.ERROR_CODE_NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        common_pb2.ERROR_CODE_REQUEST_TIMED_OUT,
    }
)
"""Answers that a moment (and a fresh look at who leads) can mend."""


class ClusterDeadLetters:
    """The `RemoteDeadLetters` of a broker in a cluster. Not thread-safe: the broker's loop."""

    def __init__(
        self,
        leader_of: Callable[[str, int], int | None],
        partitions_of: Callable[[str], int | None],
        channel_to: Callable[[int], grpc.aio.Channel | None],
        create_topic: Callable[[str], Awaitable[None]],
    ) -> None:
        self._leader_of = leader_of
        self._partitions_of = partitions_of
        self._channel_to = channel_to
        self._create_topic = create_topic

    async def send(
        self, target: DeadLetterTarget, topic: str, partition: int, archived: Sequence[Archived]
    ) -> None:
        deadline = asyncio.get_running_loop().time() + SEND_TIMEOUT_S
        spans = [(span, await self._records(topic, partition, span, deadline)) for span in archived]
        partitions = await self._dead_letter_partitions(target.topic, deadline)
        for number, batch in dead_letter_batches(target, topic, partition, spans, partitions):
            await self._produce(target.topic, number, batch, deadline)

    async def _records(self, topic: str, partition: int, span: Archived, deadline: float) -> list[Record]:
        """The records of the span still in the partition (retention or compaction may have taken some)."""
        found: list[Record] = []
        offset = span.first_offset
        while offset <= span.last_offset:
            wanted = fetch_pb2.FetchPartition(
                topic=topic, partition=partition, offset=offset, max_bytes=READ_BYTES
            )
            request = fetch_pb2.FetchRequest(partitions=[wanted], max_bytes=READ_BYTES)
            result = (await self._call(topic, partition, deadline, _fetch(request))).results[0]
            if (
                result.error_code == common_pb2.ERROR_CODE_OFFSET_OUT_OF_RANGE
                and offset < result.log_start_offset
            ):
                offset = result.log_start_offset  # retention removed the start: go on from what is left
                continue
            if result.error_code in _RETRIED:
                await _pause(deadline, f"reading {topic}-{partition}: {result.error_message}")
                continue
            if result.error_code != common_pb2.ERROR_CODE_NONE or not result.records:
                return found  # past the log's end, or gone: nothing more to copy
            found += [r for r in iter_records(result.records) if offset <= r.offset <= span.last_offset]
            offset = max(offset + 1, batches_end(result.records))
        return found

    async def _dead_letter_partitions(self, name: str, deadline: float) -> int:
        partitions = self._partitions_of(name)
        while partitions is None:
            with contextlib.suppress(TopicExistsError):  # another broker made it meanwhile
                await self._create_topic(name)
            partitions = self._partitions_of(name)
            if partitions is None:
                await _pause(deadline, f"creating dead-letter topic {name}")
        return partitions

    async def _produce(self, name: str, number: int, batch: bytes, deadline: float) -> None:
        data = produce_pb2.ProducePartitionData(topic=name, partition=number, records=batch)
        request = produce_pb2.ProduceRequest(acks=produce_pb2.ACKS_ALL, partitions=[data])
        while True:
            result = (await self._call(name, number, deadline, _produce(request))).results[0]
            if result.error_code == common_pb2.ERROR_CODE_NONE:
                return
            if result.error_code not in _RETRIED:
                raise LogStoreError(f"{name}-{number} refused dead letters: {result.error_message}")
            await _pause(deadline, f"producing to {name}-{number}: {result.error_message}")

    async def _call(
        self, topic: str, partition: int, deadline: float, call: Callable[[grpc.aio.Channel], Awaitable[T]]
    ) -> T:
        """One call to the partition's leader as the view says now, retried while it cannot be reached."""
        while True:
            leader, channel = leader_channel(self._leader_of, self._channel_to, topic, partition)
            if channel is not None:
                try:
                    return await call(channel)
                except grpc.aio.AioRpcError as exc:
                    await _pause(deadline, f"{topic}-{partition} on broker {leader}: {exc.details()}")
                    continue
            await _pause(deadline, f"{topic}-{partition} has no leader")


def _fetch(
    request: fetch_pb2.FetchRequest,
) -> Callable[[grpc.aio.Channel], Awaitable[fetch_pb2.FetchResponse]]:
    return lambda channel: fetch_pb2_grpc.FetchServiceStub(channel).Fetch(request, timeout=CALL_TIMEOUT_S)


def _produce(
    request: produce_pb2.ProduceRequest,
) -> Callable[[grpc.aio.Channel], Awaitable[produce_pb2.ProduceResponse]]:
    return lambda channel: produce_pb2_grpc.ProduceServiceStub(channel).Produce(
        request, timeout=CALL_TIMEOUT_S
    )


async def _pause(deadline: float, why: str) -> None:
    if asyncio.get_running_loop().time() + RETRY_S > deadline:
        raise RequestTimedOutError(f"dead letters not sent within {SEND_TIMEOUT_S:.0f} s: {why}")
    await asyncio.sleep(RETRY_S)
