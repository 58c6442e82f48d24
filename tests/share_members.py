"""A share-group member driven through the raw ShareService stub, for the broker-side share tests."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import grpc
from logstore.wire.logstore.v1 import common_pb2 as common
from logstore.wire.logstore.v1 import share_pb2 as pb
from logstore.wire.logstore.v1 import share_pb2_grpc

from logstore.records import Record, iter_records

ACCEPT = pb.ACKNOWLEDGE_TYPE_ACCEPT
RELEASE = pb.ACKNOWLEDGE_TYPE_RELEASE
REJECT = pb.ACKNOWLEDGE_TYPE_REJECT
RENEW = pb.ACKNOWLEDGE_TYPE_RENEW


def share_stub(channel: grpc.Channel) -> share_pb2_grpc.ShareServiceStub:
    return share_pb2_grpc.ShareServiceStub(channel)


def acks(
    topic: str, partition: int, *ranges: tuple[int, int, int] | pb.ShareAcknowledgement
) -> pb.PartitionAcknowledgements:
    """Acknowledgements of one partition from (first, last, type) triples or ready messages."""
    messages = [
        r
        if isinstance(r, pb.ShareAcknowledgement)
        else pb.ShareAcknowledgement(first_offset=r[0], last_offset=r[1], type=r[2])  # type: ignore[arg-type]
        for r in ranges
    ]
    return pb.PartitionAcknowledgements(topic=topic, partition=partition, ranges=messages)


def owned(response: pb.ShareFetchResponse) -> list[tuple[str, int, int, int, bytes | None]]:
    """(topic, partition, offset, delivery count, value) of every record the member acquired, in order."""
    found = []
    for part in response.partitions:
        records: dict[int, Record] = {r.offset: r for r in iter_records(part.records)}
        for acquired in part.acquired_ranges:
            for offset in range(acquired.first_offset, acquired.last_offset + 1):
                if offset in records:
                    found.append(
                        (part.topic, part.partition, offset, acquired.delivery_count, records[offset].value)
                    )
    return found


def ranges_of(response: pb.ShareFetchResponse) -> list[tuple[str, int, int, int, int]]:
    """(topic, partition, first, last, delivery count) of every acquired range."""
    return [
        (p.topic, p.partition, r.first_offset, r.last_offset, r.delivery_count)
        for p in response.partitions
        for r in p.acquired_ranges
    ]


def result_codes(
    results: Iterable[pb.PartitionAcknowledgementResults],
) -> list[tuple[str, int, int, int, int]]:
    """(topic, partition, first, last, error code) of every acknowledged range's result."""
    return [
        (p.topic, p.partition, r.first_offset, r.last_offset, r.error_code)
        for p in results
        for r in p.results
    ]


class ShareMember:
    """Joins with member epoch 0, heartbeats with the epoch of the last answer, fetches and acknowledges."""

    def __init__(self, stub: share_pb2_grpc.ShareServiceStub, group_id: str, topics: Sequence[str]) -> None:
        self.stub = stub
        self.group_id = group_id
        self.topics = list(topics)
        self.member_id = ""
        self.epoch = 0

    def heartbeat(self, **fields: Any) -> pb.ShareHeartbeatResponse:
        request = pb.ShareHeartbeatRequest(
            group_id=self.group_id, member_id=self.member_id, member_epoch=self.epoch
        )
        if self.epoch == 0:
            request.topic_names.extend(self.topics)
        for name, value in fields.items():
            setattr(request, name, value)
        answer = self.stub.ShareHeartbeat(request)
        if answer.error_code == common.ERROR_CODE_NONE:
            self.member_id, self.epoch = answer.member_id, answer.member_epoch
        return answer

    def join(self) -> ShareMember:
        answer = self.heartbeat()
        assert answer.error_code == common.ERROR_CODE_NONE, answer.error_message
        return self

    def leave(self) -> pb.ShareHeartbeatResponse:
        answer = self.heartbeat(member_epoch=-1)
        self.epoch = 0
        return answer

    def fetch(
        self, *acknowledgements: pb.PartitionAcknowledgements, timeout: float = 30, **fields: Any
    ) -> pb.ShareFetchResponse:
        request = pb.ShareFetchRequest(
            group_id=self.group_id,
            member_id=self.member_id,
            acknowledgements=list(acknowledgements),
            **fields,
        )
        return self.stub.ShareFetch(request, timeout=timeout)

    def acknowledge(self, *acknowledgements: pb.PartitionAcknowledgements) -> pb.ShareAcknowledgeResponse:
        request = pb.ShareAcknowledgeRequest(
            group_id=self.group_id, member_id=self.member_id, acknowledgements=list(acknowledgements)
        )
        return self.stub.ShareAcknowledge(request)


def alter_config(stub: share_pb2_grpc.ShareServiceStub, group_id: str, **values: str) -> None:
    """Set group configs; keyword names use "_" for "." (share_record_lock_duration_ms=...)."""
    stub.AlterGroupConfig(
        pb.AlterGroupConfigRequest(group_id=group_id, set={k.replace("_", "."): v for k, v in values.items()})
    )


def describe(stub: share_pb2_grpc.ShareServiceStub, group_id: str) -> pb.ShareGroupDescription:
    return stub.DescribeShareGroup(pb.DescribeShareGroupRequest(group_id=group_id)).group
