"""Shared fixtures: real brokers on 127.0.0.1 port 0 over temporary data directories, and stubs to call them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from broker.embedded import EmbeddedBroker
from logstore.records import iter_records
from wire.logstore.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    fetch_pb2,
    fetch_pb2_grpc,
    produce_pb2,
    produce_pb2_grpc,
)

CLIENT_OPTIONS = [
    ("grpc.max_receive_message_length", 256 * 1024 * 1024),
    ("grpc.max_send_message_length", 256 * 1024 * 1024),
]


@dataclass
class Stubs:
    """A channel to one broker and a stub per logstore.v1 service."""

    channel: grpc.Channel
    admin: admin_pb2_grpc.AdminServiceStub
    produce: produce_pb2_grpc.ProduceServiceStub
    fetch: fetch_pb2_grpc.FetchServiceStub

    @classmethod
    def connect(cls, address: str) -> Stubs:
        channel = grpc.insecure_channel(address, options=CLIENT_OPTIONS)
        return cls(
            channel,
            admin_pb2_grpc.AdminServiceStub(channel),
            produce_pb2_grpc.ProduceServiceStub(channel),
            fetch_pb2_grpc.FetchServiceStub(channel),
        )

    def create_topic(self, name: str, partitions: int = 1, **config: str) -> admin_pb2.TopicDescription:
        request = admin_pb2.CreateTopicRequest(name=name, partitions=partitions, config=config)
        return self.admin.CreateTopic(request).topic

    def produce_one(
        self, topic: str, partition: int, records: bytes, acks: int = produce_pb2.ACKS_ALL
    ) -> produce_pb2.ProducePartitionResult:
        data = produce_pb2.ProducePartitionData(topic=topic, partition=partition, records=records)
        return self.produce.Produce(produce_pb2.ProduceRequest(acks=acks, partitions=[data])).results[0]

    def fetch_one(
        self, topic: str, partition: int, offset: int, **request: int
    ) -> fetch_pb2.PartitionRecords:
        wanted = fetch_pb2.FetchPartition(topic=topic, partition=partition, offset=offset)
        return self.fetch.Fetch(fetch_pb2.FetchRequest(partitions=[wanted], **request)).results[0]

    def values(self, topic: str, partition: int, offset: int = 0) -> list[bytes | None]:
        """Every record value from `offset` to the end of the partition, in order."""
        values: list[bytes | None] = []
        while True:
            result = self.fetch_one(topic, partition, offset)
            assert result.error_code == 0, result.error_message
            records = [r for r in iter_records(result.records) if r.offset >= offset]
            if not records:
                return values
            values.extend(r.value for r in records)
            offset = records[-1].offset + 1


StartBroker = Callable[..., EmbeddedBroker]


@pytest.fixture
def start_broker(tmp_path: Path) -> Iterator[StartBroker]:
    """Start brokers with chosen settings (`start_broker(auto_create_topics=False)`); all stop at teardown.

    Each call uses `tmp_path / "data"` unless given `data_dir`, so a second call after `stop()` restarts
    the broker over the same data.
    """
    started: list[EmbeddedBroker] = []

    def start(**overrides: Any) -> EmbeddedBroker:
        overrides.setdefault("data_dir", tmp_path / "data")
        broker = EmbeddedBroker.on(**overrides).start()
        started.append(broker)
        return broker

    yield start
    for broker in reversed(started):
        broker.stop()


@pytest.fixture
def broker(start_broker: StartBroker) -> EmbeddedBroker:
    """A broker with the default settings over a fresh data directory."""
    return start_broker()


@pytest.fixture
def connect() -> Iterator[Callable[[EmbeddedBroker], Stubs]]:
    """Open channels to brokers; all are closed at teardown."""
    opened: list[Stubs] = []

    def open_stubs(broker: EmbeddedBroker) -> Stubs:
        stubs = Stubs.connect(broker.address)
        opened.append(stubs)
        return stubs

    yield open_stubs
    for stubs in opened:
        stubs.channel.close()


@pytest.fixture
def stubs(broker: EmbeddedBroker, connect: Callable[[EmbeddedBroker], Stubs]) -> Stubs:
    """Stubs connected to the default `broker`."""
    return connect(broker)
