"""A ShareService double for the share consumer's tests without the broker's share groups: one topic of
in-memory batches, per-offset states, and a log of every acknowledgement range received, so a test can
see exactly what the client sent and when. Semantics follow proto/logstore/v1/share.proto, simplified
(no lock expiry, no delivery limit)."""

from __future__ import annotations

import threading
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from logstore.wire.logstore.v1 import common_pb2, share_pb2, share_pb2_grpc

from logstore.records import build_batch


@dataclass
class Ack:
    rpc: str  # "fetch" or "ack"
    partition: int
    first: int
    last: int
    type: int
    delay_ms: int
    not_an_attempt: bool


@dataclass
class FakePartition:
    batches: list[tuple[int, int, bytes]] = field(default_factory=list)  # (base, last, bytes)
    end: int = 0
    state: dict[int, str] = field(default_factory=dict)  # offset -> "acquired:<member>" | "done"
    count: dict[int, int] = field(default_factory=dict)

    def append(self, values: list[bytes], skip: int = 0) -> None:
        """A batch of ``values`` at the end; ``skip`` offsets first left without a record (compaction)."""
        self.end += skip
        data = build_batch(values, base_offset=self.end)
        self.batches.append((self.end, self.end + len(values) - 1, data))
        self.end += len(values)


class FakeShareService(share_pb2_grpc.ShareServiceServicer):
    def __init__(self, partitions: int = 1, topic: str = "tasks") -> None:
        self.topic = topic
        self.partitions = [FakePartition() for _ in range(partitions)]
        self.acks: list[Ack] = []
        self.fetches: list[share_pb2.ShareFetchRequest] = []
        self.members: dict[str, int] = {}
        self.left: list[str] = []
        self.changed = threading.Condition()
        self.heartbeat_error: common_pb2.ErrorCode = common_pb2.ERROR_CODE_NONE
        self._next_member = 0

    # --- helpers for tests -----------------------------------------------------------------------------

    def produce(self, partition: int, values: list[bytes], skip: int = 0) -> None:
        with self.changed:
            self.partitions[partition].append(values, skip)
            self.changed.notify_all()

    def done(self, partition: int = 0) -> set[int]:
        with self.changed:
            return {o for o, s in self.partitions[partition].state.items() if s == "done"}

    def held(self, partition: int = 0) -> set[int]:
        with self.changed:
            return {o for o, s in self.partitions[partition].state.items() if s.startswith("acquired")}

    # --- the service ----------------------------------------------------------------------------------------

    def ShareHeartbeat(self, request: Any, context: Any) -> share_pb2.ShareHeartbeatResponse:
        with self.changed:
            if self.heartbeat_error:
                return share_pb2.ShareHeartbeatResponse(error_code=self.heartbeat_error, error_message="no")
            if request.member_epoch == -1:
                self.members.pop(request.member_id, None)
                self.left.append(request.member_id)
                for p in self.partitions:
                    for o, s in list(p.state.items()):
                        if s == f"acquired:{request.member_id}":
                            del p.state[o]
                self.changed.notify_all()
                return share_pb2.ShareHeartbeatResponse(member_id=request.member_id, member_epoch=-1)
            member_id = request.member_id
            if request.member_epoch == 0:
                self._next_member += 1
                member_id = f"member-{self._next_member}"
                self.members[member_id] = 1
            return share_pb2.ShareHeartbeatResponse(
                member_id=member_id, member_epoch=1, heartbeat_interval_ms=100, session_timeout_ms=5000
            )

    def _apply(self, rpc: str, member_id: str, acks: Any) -> list[share_pb2.PartitionAcknowledgementResults]:
        out = []
        for entry in acks:
            p = self.partitions[entry.partition]
            results = []
            for r in entry.ranges:
                self.acks.append(
                    Ack(
                        rpc,
                        entry.partition,
                        r.first_offset,
                        r.last_offset,
                        r.type,
                        r.delay_ms,
                        r.not_an_attempt,
                    )
                )
                offsets = range(r.first_offset, r.last_offset + 1)
                if any(p.state.get(o) != f"acquired:{member_id}" for o in offsets):
                    results.append(
                        share_pb2.AcknowledgementResult(
                            first_offset=r.first_offset,
                            last_offset=r.last_offset,
                            error_code=common_pb2.ERROR_CODE_INVALID_RECORD_STATE,
                            error_message="not held",
                        )
                    )
                    continue
                for o in offsets:
                    if r.type in (1, 3):
                        p.state[o] = "done"
                    elif r.type == 2:
                        del p.state[o]
                        if r.not_an_attempt:
                            p.count[o] -= 1
                results.append(
                    share_pb2.AcknowledgementResult(first_offset=r.first_offset, last_offset=r.last_offset)
                )
            out.append(
                share_pb2.PartitionAcknowledgementResults(
                    topic=entry.topic, partition=entry.partition, results=results
                )
            )
        self.changed.notify_all()
        return out

    def _acquire(self, member_id: str, max_records: int) -> list[share_pb2.SharePartitionRecords]:
        """Available offsets in order (gaps without a record too, as a broker does), whole batches."""
        out = []
        room = max_records or 500
        for number, p in enumerate(self.partitions):
            ranges: list[share_pb2.AcquiredRange] = []
            chosen: dict[int, bytes] = {}
            for o in range(p.end):
                if room <= 0:
                    break
                if o in p.state:
                    continue
                batch = next(((base, data) for base, last, data in p.batches if base <= o <= last), None)
                if batch is not None:
                    chosen[batch[0]] = batch[1]
                    room -= 1
                elif not ranges or ranges[-1].last_offset != o - 1:
                    continue  # a gap is acquired only inside a range that reaches past it
                p.state[o] = f"acquired:{member_id}"
                p.count[o] = p.count.get(o, 0) + 1
                if ranges and ranges[-1].last_offset == o - 1 and ranges[-1].delivery_count == p.count[o]:
                    ranges[-1].last_offset = o
                else:
                    ranges.append(
                        share_pb2.AcquiredRange(first_offset=o, last_offset=o, delivery_count=p.count[o])
                    )
            if ranges:
                out.append(
                    share_pb2.SharePartitionRecords(
                        topic=self.topic,
                        partition=number,
                        records=b"".join(chosen[base] for base in sorted(chosen)),
                        acquired_ranges=ranges,
                    )
                )
        return out

    def ShareFetch(self, request: Any, context: Any) -> share_pb2.ShareFetchResponse:
        with self.changed:
            self.fetches.append(request)
            if request.member_id not in self.members:
                return share_pb2.ShareFetchResponse(error_code=common_pb2.ERROR_CODE_UNKNOWN_MEMBER_ID)
            results = self._apply("fetch", request.member_id, request.acknowledgements)
            if request.acknowledge_only:
                return share_pb2.ShareFetchResponse(acknowledgement_results=results)
            found = self._acquire(request.member_id, request.max_records)
            if not found:
                self.changed.wait_for(lambda: self._available(), request.max_wait_ms / 1000.0)
                found = self._acquire(request.member_id, request.max_records)
            return share_pb2.ShareFetchResponse(
                partitions=found, acknowledgement_results=results, lock_duration_ms=30_000
            )

    def _available(self) -> bool:
        return any(
            o not in p.state
            for p in self.partitions
            for first, last, _ in p.batches
            for o in range(first, last + 1)
        )

    def ShareAcknowledge(self, request: Any, context: Any) -> share_pb2.ShareAcknowledgeResponse:
        with self.changed:
            if request.member_id not in self.members:
                return share_pb2.ShareAcknowledgeResponse(error_code=common_pb2.ERROR_CODE_UNKNOWN_MEMBER_ID)
            return share_pb2.ShareAcknowledgeResponse(
                results=self._apply("ack", request.member_id, request.acknowledgements)
            )


def serve(service: FakeShareService) -> tuple[grpc.Server, str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    share_pb2_grpc.add_ShareServiceServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"
