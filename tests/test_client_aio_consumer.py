"""The asyncio consumer against a real broker, with the asyncio producer: one loop, groups, cancels, errors."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable
from typing import TypeVar

import pytest
from logstore.broker.embedded import EmbeddedBroker
from logstore.client import Admin, ConsumerRecord, TopicPartition
from logstore.client.aio import AsyncConsumer, AsyncProducer
from logstore.client.groups.driver import ConsumerRebalanceListener
from logstore.client.shared.errors import ClosedError, IllegalStateError, UnknownTopicError

T = TypeVar("T")
GUARD_S = 60.0
"""A hang guard only (a stuck task fails the test instead of the whole run); nothing is timed."""


def run(coroutine: Awaitable[T]) -> T:
    async def guarded() -> T:
        return await asyncio.wait_for(coroutine, GUARD_S)

    return asyncio.run(guarded())


def create(broker: EmbeddedBroker, name: str, partitions: int) -> None:
    with Admin(broker.address) as admin:
        admin.create_topic(name, partitions)


async def produce(address: str, topic: str, count: int, start: int = 0) -> None:
    async with AsyncProducer(address, linger_ms=1) as producer:
        await producer.partitions_for(topic)
        for i in range(start, start + count):
            producer.send_nowait(topic, b"%d" % i, key=b"k%d" % i)
        await producer.flush()


@pytest.fixture
def address(start_broker) -> str:
    return start_broker(group_session_timeout_ms=1500, group_heartbeat_interval_ms=50).address


def test_ten_thousand_records_produced_and_consumed_in_one_loop(broker: EmbeddedBroker) -> None:
    create(broker, "bulk", 3)

    async def main() -> list[ConsumerRecord]:
        async with AsyncConsumer(
            "bulk", bootstrap_servers=broker.address, auto_offset_reset="earliest"
        ) as consumer:
            writer = asyncio.create_task(produce(broker.address, "bulk", 10_000))
            got: list[ConsumerRecord] = []
            async for record in consumer:
                got.append(record)
                if len(got) == 10_000:
                    break
            await writer
            assert await consumer.getmany(timeout_ms=100) == {}
            for partition in range(3):
                tp = TopicPartition("bulk", partition)
                assert await consumer.position(tp) == sum(1 for r in got if r.partition == partition)
            return got

    got = run(main())
    assert sorted(int(r.value or b"") for r in got) == list(range(10_000))
    for partition in range(3):
        offsets = [r.offset for r in got if r.partition == partition]
        assert offsets == list(range(len(offsets)))


def test_assign_seek_and_seek_to_beginning_and_end(broker: EmbeddedBroker) -> None:
    create(broker, "s", 1)
    tp = TopicPartition("s", 0)

    async def main() -> None:
        await produce(broker.address, "s", 10)
        async with AsyncConsumer(bootstrap_servers=broker.address) as consumer:
            consumer.assign([tp])
            assert await consumer.position(tp) == 10  # auto_offset_reset="latest"
            consumer.seek(tp, 7)
            assert [r.offset for r in (await consumer.getmany(timeout_ms=10_000))[tp]] == [7, 8, 9]
            await consumer.seek_to_beginning(tp)
            first = await consumer.getone()
            assert (first.offset, first.value) == (0, b"0")
            await consumer.seek_to_end()
            assert await consumer.position(tp) == 10
            await produce(broker.address, "s", 1, start=10)
            last = await consumer.getone()
            assert (last.offset, last.value) == (10, b"10")

    run(main())


def test_two_async_members_share_the_partitions_with_no_record_twice(address: str) -> None:
    with Admin(address) as admin:
        admin.create_topic("orders", 4)

    owned: dict[str, set[TopicPartition]] = {"a": set(), "b": set()}
    got: dict[str, list[ConsumerRecord]] = {"a": [], "b": []}

    async def member(name: str, done: asyncio.Event) -> set[TopicPartition]:
        async with AsyncConsumer(
            "orders", bootstrap_servers=address, group_id="g", auto_offset_reset="earliest"
        ) as consumer:
            while not done.is_set():
                for chunk in (await consumer.getmany(timeout_ms=50)).values():
                    got[name].extend(chunk)
                owned[name] = consumer.assignment()
                if sum(len(v) for v in got.values()) >= 400:
                    done.set()
            return consumer.assignment()

    async def main() -> list[set[TopicPartition]]:
        done = asyncio.Event()
        first = asyncio.create_task(member("a", done))
        await produce(address, "orders", 200)
        while len(got["a"]) < 50:
            await asyncio.sleep(0.01)
        second = asyncio.create_task(member("b", done))
        while not (owned["b"] and len(owned["a"]) == 2):  # the rebalance is complete: two each
            await asyncio.sleep(0.01)
        split = [set(owned["a"]), set(owned["b"])]
        await produce(address, "orders", 200, start=200)
        await asyncio.gather(first, second)
        return split

    assignments = run(main())
    seen = [(r.partition, r.offset) for r in got["a"] + got["b"]]
    assert len(seen) == len(set(seen)) == 400, "every record exactly once across the two members"
    assert got["a"] and got["b"], "each member read some"
    assert sorted(int(r.value or b"") for r in got["a"] + got["b"]) == list(range(400))
    assert not (assignments[0] & assignments[1]) and len(assignments[0] | assignments[1]) == 4


class AsyncListener(ConsumerRebalanceListener):
    """aiokafka's habit: ``async def`` callbacks, awaited by the consumer on its loop."""

    def __init__(self) -> None:
        self.events: list[tuple[str, set[TopicPartition]]] = []

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:  # type: ignore[override]
        await asyncio.sleep(0)
        self.events.append(("assigned", assigned))

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:  # type: ignore[override]
        await asyncio.sleep(0)
        self.events.append(("revoked", revoked))


def test_the_membership_lives_on_the_loop_past_the_session_timeout_with_no_heartbeat_thread(
    address: str,
) -> None:
    """Idle for longer than the session timeout (1.5 s) between polls, the member keeps its partitions:
    its heartbeats are a task on the loop, not a thread (there is none); commits go on grpc.aio, and
    ``async def`` listener methods are awaited."""
    with Admin(address) as admin:
        admin.create_topic("idle", 2)
    every = {TopicPartition("idle", 0), TopicPartition("idle", 1)}
    listener = AsyncListener()

    async def main() -> set[str]:
        async with AsyncConsumer(
            bootstrap_servers=address, group_id="i", auto_offset_reset="earliest", enable_auto_commit=False
        ) as consumer:
            consumer.subscribe(["idle"], listener=listener)
            while consumer.assignment() != every:
                await consumer.getmany(timeout_ms=50)
            threads = {t.name for t in threading.enumerate()}
            await produce(address, "idle", 10)
            await asyncio.sleep(2.0)  # no poll for longer than the session: only the heartbeat task runs
            got: list[ConsumerRecord] = []
            while len(got) < 10:
                got.extend(r for chunk in (await consumer.getmany(timeout_ms=100)).values() for r in chunk)
            assert consumer.assignment() == every
            await consumer.commit()
            committed = await consumer.committed(TopicPartition("idle", 0))
            assert committed == sum(1 for r in got if r.partition == 0)
        return threads

    threads = run(main())
    assert "logstore-heartbeat" not in threads
    assert listener.events == [("assigned", every), ("revoked", every)], "assigned once: never lost"


def test_a_cancelled_consumer_task_loses_nothing_and_commits_only_what_it_handed_out(address: str) -> None:
    with Admin(address) as admin:
        admin.create_topic("jobs", 1)
    tp = TopicPartition("jobs", 0)

    async def main() -> tuple[list[ConsumerRecord], int | None]:
        got: list[ConsumerRecord] = []
        async with AsyncConsumer(
            "jobs",
            bootstrap_servers=address,
            group_id="w",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            max_poll_records=7,
        ) as consumer:
            await produce(address, "jobs", 30)

            async def work() -> None:
                async for record in consumer:
                    got.append(record)
                    if len(got) == 10:
                        await asyncio.Event().wait()  # stuck in the handler: cancelled here

            task = asyncio.create_task(work())
            while len(got) < 10:
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await consumer.commit()
            committed = await consumer.committed(tp)
            while len(got) < 30:  # the rest comes, none twice, none skipped
                got.append(await consumer.getone())
        return got, committed

    got, committed = run(main())
    assert committed == 10, "the commit covers what was handed out, not what was fetched"
    assert [r.offset for r in got] == list(range(30))


def test_stop_auto_commits_only_what_was_handed_out_after_a_cancelled_wait(address: str) -> None:
    """A member cancelled while its group poll waits in a worker thread, then stopped: the auto-commit at
    stop covers the records handed out, not those fetched and buffered."""
    with Admin(address) as admin:
        admin.create_topic("tasks", 1)
    tp = TopicPartition("tasks", 0)

    def member() -> AsyncConsumer:
        return AsyncConsumer(
            "tasks", bootstrap_servers=address, group_id="m", auto_offset_reset="earliest", max_poll_records=7
        )

    async def main() -> tuple[list[int], int | None, list[int]]:
        async with member() as consumer:
            waiting = asyncio.create_task(consumer.getone())
            while not consumer.assignment():
                await asyncio.sleep(0.01)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            await produce(address, "tasks", 30)
            handed = [(await consumer.getone()).offset for _ in range(10)]
        async with member() as successor:
            committed = await successor.committed(tp)
            rest = [(await successor.getone()).offset for _ in range(20)]
        return handed, committed, rest

    handed, committed, rest = run(main())
    assert handed == list(range(10))
    assert committed == 10
    assert rest == list(range(10, 30))


def test_cancelling_getmany_while_waiting_leaves_the_consumer_usable(broker: EmbeddedBroker) -> None:
    create(broker, "w", 1)
    tp = TopicPartition("w", 0)

    async def main() -> None:
        async with AsyncConsumer(bootstrap_servers=broker.address, auto_offset_reset="earliest") as consumer:
            consumer.assign([tp])
            waiting = asyncio.create_task(consumer.getmany(timeout_ms=60_000))
            await asyncio.sleep(0)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            await produce(broker.address, "w", 3)
            got: list[ConsumerRecord] = []
            while len(got) < 3:
                got.append(await consumer.getone())
            assert [r.offset for r in got] == [0, 1, 2]
        with pytest.raises(ClosedError):
            await consumer.getone()

    run(main())


def test_errors_are_the_threaded_clients(broker: EmbeddedBroker) -> None:
    async def main() -> None:
        async with AsyncConsumer(bootstrap_servers=broker.address) as consumer:
            with pytest.raises(IllegalStateError):
                await consumer.getmany()
            with pytest.raises(IllegalStateError):
                await consumer.commit()
            consumer.assign([TopicPartition("missing", 0)])
            with pytest.raises(UnknownTopicError):
                await consumer.getmany(timeout_ms=10_000)

    run(main())
