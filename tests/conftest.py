"""Shared fixtures: real brokers on 127.0.0.1 port 0 over temporary data directories, and stubs to call them."""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from logstore.broker.embedded import EmbeddedBroker
from logstore.wire.logstore.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    fetch_pb2,
    fetch_pb2_grpc,
    produce_pb2,
    produce_pb2_grpc,
)

from logstore.records import iter_records
from tests.etcd_support import EtcdServer

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
        self, topic: str, partition: int, records: bytes, acks: produce_pb2.Acks = produce_pb2.ACKS_ALL
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


# --- the integration marker ------------------------------------------------------------------------------

# A test is `integration` (so `pytest -m "not integration"` skips it) if it needs one of these fixtures
# (directly or through another fixture), or if its code, or a test helper it calls, names one of the
# things that start a broker or a process.
BROKER_FIXTURES = frozenset({"start_broker", "connect", "etcd"})
STARTS_SOMETHING = frozenset(
    {"EmbeddedBroker", "BrokerProcess", "subprocess", "Popen", "executable", "multiprocessing"}
)
TESTS_DIR = Path(__file__).parent


def _in_tests(helper: object) -> bool:
    """Whether ``helper`` is a function or class defined under tests/ (whatever its module is named)."""
    if not (inspect.isfunction(helper) or inspect.isclass(helper)):
        return False
    try:
        return Path(inspect.getfile(helper)).is_relative_to(TESTS_DIR)
    except TypeError:  # a built-in
        return False


def _names(code: types.CodeType) -> set[str]:
    """The global and attribute names a code object uses, nested functions and lambdas included."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


def _starts_something(function: object, seen: set[int]) -> bool:
    """Whether ``function`` names a broker or process starter, itself or via a helper in tests/."""
    if id(function) in seen:
        return False
    seen.add(id(function))
    if inspect.isclass(function):
        return any(_starts_something(member, seen) for member in vars(function).values())
    function = inspect.unwrap(function) if callable(function) else function
    code = getattr(function, "__code__", None)
    if not isinstance(code, types.CodeType):
        return False
    names = _names(code)
    if names & STARTS_SOMETHING:
        return True
    scope: dict[str, Any] = getattr(function, "__globals__", {})
    for name in names:
        helper = scope.get(name)
        if _in_tests(helper) and _starts_something(helper, seen):
            return True
    return False


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    integration = pytest.mark.integration
    for item in items:
        if not isinstance(item, pytest.Function):
            continue
        if BROKER_FIXTURES & set(item.fixturenames) or _starts_something(item.function, set()):
            item.add_marker(integration)


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


# --- consumer groups -------------------------------------------------------------------------------------

from collections.abc import Iterable  # noqa: E402

from logstore.wire.logstore.v1 import common_pb2, group_pb2, group_pb2_grpc  # noqa: E402


def group_stub(stubs: Stubs) -> group_pb2_grpc.GroupServiceStub:
    """A GroupService stub over an open channel."""
    return group_pb2_grpc.GroupServiceStub(stubs.channel)


def partition_set(partitions: Iterable[tuple[str, int]]) -> list[group_pb2.TopicPartitions]:
    by_topic: dict[str, list[int]] = {}
    for topic, partition in partitions:
        by_topic.setdefault(topic, []).append(partition)
    return [group_pb2.TopicPartitions(topic=t, partitions=sorted(p)) for t, p in sorted(by_topic.items())]


def flatten(entries: Iterable[group_pb2.TopicPartitions]) -> frozenset[tuple[str, int]]:
    return frozenset((entry.topic, p) for entry in entries for p in entry.partitions)


class GroupMember:
    """A consumer-group member driven through the raw GroupService stub, the way a careful client would:
    it owns exactly what its last answer assigned (it releases revoked partitions at once) and reports
    that in every heartbeat."""

    def __init__(
        self,
        stub: group_pb2_grpc.GroupServiceStub,
        group_id: str,
        topics: Iterable[str] = (),
        regex: str = "",
        **join_fields: Any,
    ) -> None:
        self.stub = stub
        self.group_id = group_id
        self.subscription = group_pb2.Subscription(topic_names=list(topics), topic_regex=regex)
        self.join_fields = join_fields
        self.member_id = ""
        self.epoch = 0
        self.assignment: frozenset[tuple[str, int]] = frozenset()
        self.last: group_pb2.HeartbeatResponse | None = None

    def heartbeat(self, **fields: Any) -> group_pb2.HeartbeatResponse:
        """One heartbeat (a join while the epoch is 0); on success, adopt the answer's assignment."""
        request = group_pb2.HeartbeatRequest(
            group_id=self.group_id, member_id=self.member_id, member_epoch=self.epoch
        )
        if self.epoch == 0:
            request.subscription.CopyFrom(self.subscription)
            for name, value in self.join_fields.items():
                setattr(request, name, value)
        else:
            request.owned_partitions.topics.extend(partition_set(self.assignment))
        for name, value in fields.items():
            setattr(request, name, value)
        answer = self.stub.Heartbeat(request)
        self.last = answer
        if answer.error_code == common_pb2.ERROR_CODE_NONE:
            self.member_id, self.epoch = answer.member_id, answer.member_epoch
            self.assignment = flatten(answer.assignment)
        return answer

    def leave(self) -> group_pb2.HeartbeatResponse:
        answer = self.heartbeat(member_epoch=-1)
        self.epoch, self.assignment = 0, frozenset()
        return answer

    def commit(
        self, offsets: dict[tuple[str, int], int], epoch: int | None = None, metadata: str = ""
    ) -> group_pb2.CommitOffsetsResponse:
        """Commit as this member (with its current epoch unless told otherwise)."""
        return self.stub.CommitOffsets(
            group_pb2.CommitOffsetsRequest(
                group_id=self.group_id,
                member_id=self.member_id,
                member_epoch=self.epoch if epoch is None else epoch,
                offsets=[
                    group_pb2.OffsetCommit(topic=t, partition=p, offset=o, metadata=metadata)
                    for (t, p), o in offsets.items()
                ],
            )
        )


def committed_offsets(
    stub: group_pb2_grpc.GroupServiceStub, group_id: str, partitions: Iterable[tuple[str, int]] = ()
) -> dict[tuple[str, int], int]:
    """FetchOffsets as {(topic, partition): offset}; -1 where nothing is committed."""
    answer = stub.FetchOffsets(
        group_pb2.FetchOffsetsRequest(group_id=group_id, partitions=partition_set(partitions))
    )
    return {(c.topic, c.partition): c.offset for c in answer.offsets}


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[EtcdServer]:
    """A real etcd (Debian's etcd-server) on free loopback ports with its own data directory."""
    with EtcdServer(tmp_path / "etcd") as server:
        yield server
