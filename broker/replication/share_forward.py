"""`GrpcShareForwarder`: a broker hands a share member's fetch, acknowledgement or (for Kafka clients)
heartbeat to the group's coordinator over the inter-broker gRPC channel (`ShareForwarder`,
broker/domain/share/remote.py, says why).

The call goes to the coordinator's own ShareService marked forwarded (`FORWARDED_KEY`), so the
coordinator serves it or answers NOT_COORDINATOR, and never passes it on. Its answer is turned back into
the domain's values, and its error codes into the same error classes the coordinator's domain raised
(`error_from_code`, the gRPC table read backwards), so this broker answers its client as the coordinator
would have. A coordinator that cannot be reached (no address, UNAVAILABLE, no answer in time) is
NotCoordinatorError: the client finds the coordinator again, as after any coordinator move.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Protocol, TypeVar

import grpc
from google.protobuf.message import Message
from logstore.broker.domain.errors import NotCoordinatorError
from logstore.broker.domain.share.values import (
    AckRange,
    AcquiredRecords,
    PartitionAckOutcome,
    PartitionAcks,
    RangeOutcome,
    ShareFetchAnswer,
    ShareFetchSpec,
    ShareHeartbeat,
    ShareHeartbeatAnswer,
)
from logstore.broker.errors import ERROR_CODE_KEY, error_from_code
from logstore.broker.service.share import FORWARDED_KEY
from logstore.broker.share_machine.model import AcquiredRange
from logstore.wire.logstore.v1 import common_pb2, group_pb2, share_pb2_grpc
from logstore.wire.logstore.v1 import share_pb2 as pb

from logstore.errors import LogStoreError

log = logging.getLogger(__name__)

FORWARD_MARGIN_S = 10.0
"""Added to a fetch's long poll for the coordinator's answer (an acknowledgement waits for its fsync and
the state topic's in-sync replicas); an answer later than that counts as a coordinator gone."""
UNREACHABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
"""Statuses that mean the coordinator did not answer (stopped, killed, cut off), not that it refused."""
FORWARDED_METADATA = ((FORWARDED_KEY, "1"),)


class _Refusable(Protocol):
    """A ShareService answer: an error of the whole request in `error_code`."""

    @property
    def error_code(self) -> int: ...

    @property
    def error_message(self) -> str: ...


Answer = TypeVar("Answer", bound=_Refusable)


class GrpcShareForwarder:
    """Implements `ShareForwarder` (and heartbeats, for the Kafka listener) on the broker's loop.

    `channel_to` is the node's cached insecure channel to a broker's "grpc" endpoint, None when the
    broker's address is not known; the forwarder never closes the channels (the node owns them)."""

    def __init__(
        self, channel_to: Callable[[int], grpc.aio.Channel | None], *, margin_s: float = FORWARD_MARGIN_S
    ) -> None:
        self._channel_to = channel_to
        self._margin_s = margin_s

    async def fetch(self, coordinator: int, spec: ShareFetchSpec) -> ShareFetchAnswer:
        long_poll_s = 0 if spec.acknowledge_only else spec.max_wait_ms / 1000
        response = await self._call(
            coordinator, spec.group_id, lambda stub: stub.ShareFetch, fetch_request(spec), long_poll_s
        )
        return fetch_answer(response)

    async def acknowledge(
        self, coordinator: int, group_id: str, member_id: str, acks: Sequence[PartitionAcks]
    ) -> list[PartitionAckOutcome]:
        request = pb.ShareAcknowledgeRequest(
            group_id=group_id, member_id=member_id, acknowledgements=acknowledgement_requests(acks)
        )
        response = await self._call(coordinator, group_id, lambda stub: stub.ShareAcknowledge, request)
        return ack_outcomes(response.results)

    async def heartbeat(self, coordinator: int, beat: ShareHeartbeat) -> ShareHeartbeatAnswer:
        """A Kafka share consumer's heartbeat: Kafka clients find a share group's coordinator with
        FindCoordinator key type GROUP, which names the consumer-group coordinator of that id; the
        share coordinator may be another broker, so that broker passes the heartbeat on."""
        request = pb.ShareHeartbeatRequest(
            group_id=beat.group_id,
            member_id=beat.member_id,
            member_epoch=beat.member_epoch,
            topic_names=list(beat.topic_names),
            client_id=beat.client_id,
            client_host=beat.client_host,
        )
        response = await self._call(coordinator, beat.group_id, lambda stub: stub.ShareHeartbeat, request)
        return ShareHeartbeatAnswer(
            response.member_id,
            response.member_epoch,
            response.heartbeat_interval_ms,
            response.session_timeout_ms,
            [(t.topic, list(t.partitions)) for t in response.assignment],
        )

    async def _call(
        self,
        coordinator: int,
        group_id: str,
        method: Callable[[share_pb2_grpc.ShareServiceStub], Callable[..., Awaitable[Answer]]],
        request: Message,
        long_poll_s: float = 0.0,
    ) -> Answer:
        """One call to the coordinator's ShareService, marked forwarded; an error of the whole request
        it answered (in `error_code` or as a status) is raised as its domain raised it."""
        stub = self._stub(coordinator, group_id)
        try:
            response = await method(stub)(
                request, timeout=long_poll_s + self._margin_s, metadata=FORWARDED_METADATA
            )
        except grpc.aio.AioRpcError as exc:
            raise _call_failed(exc, coordinator, group_id) from exc
        error = _error(response.error_code, response.error_message)
        if error is not None:
            raise error
        return response

    def _stub(self, coordinator: int, group_id: str) -> share_pb2_grpc.ShareServiceStub:
        channel = self._channel_to(coordinator)
        if channel is None:
            raise NotCoordinatorError(
                f"share group {group_id!r} is coordinated by broker {coordinator}, whose address this "
                "broker does not know; find the coordinator again"
            )
        return share_pb2_grpc.ShareServiceStub(channel)


# --- the domain's values to the wire and back ------------------------------------------------------------


def fetch_request(spec: ShareFetchSpec) -> pb.ShareFetchRequest:
    request = pb.ShareFetchRequest(
        group_id=spec.group_id,
        member_id=spec.member_id,
        acknowledgements=acknowledgement_requests(spec.acks),
        max_wait_ms=spec.max_wait_ms,
        max_records=spec.max_records,
        max_bytes=spec.max_bytes,
        priority=spec.priority,
        acknowledge_only=spec.acknowledge_only,
        acquire_mode=pb.SHARE_ACQUIRE_MODE_RECORD_LIMIT
        if spec.record_limit
        else pb.SHARE_ACQUIRE_MODE_BATCH_OPTIMIZED,
    )
    if spec.partitions is not None:
        by_topic: dict[str, list[int]] = {}
        for topic, partition in sorted(spec.partitions):
            by_topic.setdefault(topic, []).append(partition)
        request.partitions.SetInParent()  # sent, even when empty: "none" differs from "all"
        request.partitions.topics.extend(
            group_pb2.TopicPartitions(topic=topic, partitions=numbers) for topic, numbers in by_topic.items()
        )
    return request


def acknowledgement_requests(acks: Iterable[PartitionAcks]) -> list[pb.PartitionAcknowledgements]:
    return [
        pb.PartitionAcknowledgements(
            topic=entry.topic,
            partition=entry.partition,
            ranges=[_range(r) for r in entry.ranges],
        )
        for entry in acks
    ]


def _range(ack: AckRange) -> pb.ShareAcknowledgement:
    # The wire number as sent: an unknown type stays unknown and the coordinator refuses that range.
    return pb.ShareAcknowledgement(
        first_offset=ack.first_offset,
        last_offset=ack.last_offset,
        type=ack.type,  # type: ignore[arg-type]
        delay_ms=ack.delay_ms,
        not_an_attempt=ack.not_an_attempt,
    )


def fetch_answer(response: pb.ShareFetchResponse) -> ShareFetchAnswer:
    partitions = []
    for entry in response.partitions:
        if entry.error_code != common_pb2.ERROR_CODE_NONE:  # not answered today; never hand out its records
            log.warning(
                "the coordinator answered %s-%d with error %d: %s",
                entry.topic,
                entry.partition,
                entry.error_code,
                entry.error_message,
            )
            continue
        ranges = [
            AcquiredRange(r.first_offset, r.last_offset, r.delivery_count) for r in entry.acquired_ranges
        ]
        partitions.append(AcquiredRecords(entry.topic, entry.partition, entry.records, ranges))
    return ShareFetchAnswer(
        partitions, ack_outcomes(response.acknowledgement_results), response.lock_duration_ms
    )


def ack_outcomes(results: Iterable[pb.PartitionAcknowledgementResults]) -> list[PartitionAckOutcome]:
    return [
        PartitionAckOutcome(
            entry.topic,
            entry.partition,
            _error(entry.error_code, entry.error_message),
            [
                RangeOutcome(r.first_offset, r.last_offset, _error(r.error_code, r.error_message))
                for r in entry.results
            ],
        )
        for entry in results
    ]


def _error(code: int, message: str) -> LogStoreError | None:
    return None if code == common_pb2.ERROR_CODE_NONE else error_from_code(code, message)


def _call_failed(exc: grpc.aio.AioRpcError, coordinator: int, group_id: str) -> LogStoreError:
    if exc.code() in UNREACHABLE:
        return NotCoordinatorError(
            f"share group {group_id!r}: its coordinator, broker {coordinator}, did not answer "
            f"({exc.code().name}: {exc.details()}); find the coordinator again"
        )
    trailer = dict(exc.trailing_metadata() or ()).get(ERROR_CODE_KEY)
    code = int(trailer) if isinstance(trailer, str) and trailer.isdigit() else common_pb2.ERROR_CODE_UNKNOWN
    return error_from_code(code, f"broker {coordinator}, the coordinator, refused: {exc.details()}")
