"""The asyncio share consumer against a real broker: delivery, acknowledgements, redelivery, two members,
and a cancelled consumer task that leaves nothing half-done."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable
from typing import Any, TypeVar

import pytest
from logstore.broker.embedded import EmbeddedBroker
from logstore.client import AcknowledgeType, Admin, Producer, ShareRecord, TopicPartition
from logstore.client.aio import AsyncShareConsumer
from logstore.client.shared.errors import ClosedError, IllegalStateError

T = TypeVar("T")
GUARD_S = 60.0
"""A hang guard only (a stuck task fails the test instead of the whole run); nothing is timed."""


def run(coroutine: Awaitable[T]) -> T:
    async def guarded() -> T:
        return await asyncio.wait_for(coroutine, GUARD_S)

    return asyncio.run(guarded())


def setup(broker: EmbeddedBroker, topic: str, group: str, count: int, partitions: int = 1) -> None:
    """``count`` records ``b"0"``, ``b"1"``, ... in ``topic``, and ``group`` reading from the earliest."""
    with Admin(broker.address) as admin:
        admin.create_topic(topic, partitions)
        admin.alter_group_config(group, {"share.auto.offset.reset": "earliest"})
    produce(broker, count, topic)


def produce(broker: EmbeddedBroker, count: int, topic: str = "tasks") -> None:
    with Producer(broker.address, linger_ms=1) as producer:
        for i in range(count):
            producer.send(topic, b"%d" % i, key=b"k%d" % i)
        producer.flush()


def consumer(broker: EmbeddedBroker, group: str = "g", **options: Any) -> AsyncShareConsumer:
    return AsyncShareConsumer("tasks", group_id=group, bootstrap_servers=broker.address, **options)


async def take(c: AsyncShareConsumer, count: int) -> list[ShareRecord]:
    got: list[ShareRecord] = []
    async for record in c:
        got.append(record)
        if len(got) == count:
            break
    return got


def values(records: list[ShareRecord]) -> list[int]:
    return sorted(int(r.value or b"") for r in records)


async def drain(c: AsyncShareConsumer) -> list[ShareRecord]:
    """Every record the group has for ``c`` now: polls until one comes back empty."""
    got: list[ShareRecord] = []
    while chunk := await c.getmany(timeout_ms=500):
        for records in chunk.values():
            got.extend(records)
    return got


async def nothing_left(c: AsyncShareConsumer) -> None:
    """The group has nothing more for ``c`` (a long poll that comes back empty)."""
    assert await c.getmany(timeout_ms=300) == {}


def test_records_are_delivered_and_implicitly_accepted_once(broker: EmbeddedBroker) -> None:
    setup(broker, "tasks", "g", 300, partitions=3)

    async def main() -> list[ShareRecord]:
        async with consumer(broker, max_poll_records=50) as first:
            got = await take(first, 300)
        async with consumer(broker) as second:  # everything was accepted: nothing comes back
            await nothing_left(second)
        return got

    got = run(main())
    assert values(got) == list(range(300))
    assert {r.delivery_count for r in got} == {1}


def test_released_records_come_back_with_their_delivery_count_and_rejected_ones_do_not(
    broker: EmbeddedBroker,
) -> None:
    setup(broker, "tasks", "g", 10)

    async def main() -> tuple[list[ShareRecord], list[ShareRecord]]:
        async with consumer(broker, acknowledgement_mode="explicit") as c:
            first = await take(c, 10)
            for record in first:
                kind = {0: AcknowledgeType.RELEASE, 1: AcknowledgeType.REJECT}.get(
                    int(record.value or b"") % 3, AcknowledgeType.ACCEPT
                )
                await c.acknowledge(record, kind)
            assert await c.commit() == {}
            again = await take(c, 4)  # 0, 3, 6, 9 released
            for record in again:
                await c.acknowledge(record)
            with pytest.raises(IllegalStateError, match="acknowledged"):
                await c.acknowledge(again[0], AcknowledgeType.REJECT)
            assert await c.commit() == {}
            await nothing_left(c)
            return first, again

    first, again = run(main())
    assert values(first) == list(range(10))
    assert values(again) == [0, 3, 6, 9]
    assert {r.delivery_count for r in again} == {2}


def test_explicit_mode_refuses_to_fetch_while_a_handed_out_record_is_undecided(
    broker: EmbeddedBroker,
) -> None:
    setup(broker, "tasks", "g", 5)

    async def main() -> None:
        async with consumer(broker, acknowledgement_mode="explicit") as c:
            got = await take(c, 5)
            for record in got[:4]:
                await c.acknowledge(record)
            with pytest.raises(IllegalStateError, match="1 not acknowledged"):
                await c.getmany(timeout_ms=0)
            await c.acknowledge(got[4])
            await nothing_left(c)

    run(main())


def test_two_async_members_share_a_topic_without_duplicates(broker: EmbeddedBroker) -> None:
    setup(broker, "tasks", "g", 0, partitions=2)

    async def member(c: AsyncShareConsumer, got: list[ShareRecord], done: asyncio.Event) -> None:
        async for record in c:
            got.append(record)
            await asyncio.sleep(0)  # the other member's task runs between records
            if done.is_set():
                break

    async def main() -> tuple[list[ShareRecord], list[ShareRecord]]:
        a: list[ShareRecord] = []
        b: list[ShareRecord] = []
        done = asyncio.Event()
        options: dict[str, Any] = {"max_poll_records": 100, "share_acquire_mode": "record_limit"}
        async with consumer(broker, **options) as ca, consumer(broker, **options) as cb:
            tasks = [asyncio.create_task(member(ca, a, done)), asyncio.create_task(member(cb, b, done))]
            while not (ca._member.joined and cb._member.joined):  # both in the group before any record
                await asyncio.sleep(0.01)
            await asyncio.to_thread(produce, broker, 2000)
            while len(a) + len(b) < 2000:
                await asyncio.sleep(0.01)
            done.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return a, b

    a, b = run(main())
    assert a and b, "both members got records"
    assert values(a + b) == list(range(2000)), "every record once, none twice"


def test_a_cancelled_consumer_task_accepts_what_it_handled_and_gives_back_the_rest(
    broker: EmbeddedBroker,
) -> None:
    setup(broker, "tasks", "g", 200)

    async def main() -> tuple[list[ShareRecord], list[ShareRecord]]:
        handled: list[ShareRecord] = []
        fifteen = asyncio.Event()

        async def worker() -> None:
            async with consumer(broker, max_poll_records=100) as c:
                async for record in c:
                    handled.append(record)
                    if len(handled) == 15:
                        fifteen.set()
                        await asyncio.sleep(3600)  # cancelled here, in the middle of a fetch's records

        task = asyncio.create_task(worker())
        await fifteen.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with consumer(broker) as other:
            rest = await drain(other)
        return handled, rest

    handled, rest = run(main())
    assert len(handled) == 15
    assert values(handled + rest) == list(range(200)), "each record once: handled ones accepted, others back"
    assert {r.delivery_count for r in rest} == {1}, "given back without counting a delivery attempt"


def test_a_task_cancelled_while_waiting_for_records_loses_none(broker: EmbeddedBroker) -> None:
    setup(broker, "tasks", "g", 0)

    async def main() -> list[ShareRecord]:
        async with consumer(broker, fetch_max_wait_ms=5000) as c:
            waiting = asyncio.create_task(c.getone())
            while c._fetch is None:  # joined, and the fetch is long-polling on the broker
                await asyncio.sleep(0.01)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            await asyncio.to_thread(produce, broker, 5)
            got = await take(c, 5)  # the same fetch, taken by the next call
            await nothing_left(c)
        with pytest.raises(ClosedError):
            await c.getone()
        return got

    assert values(run(main())) == list(range(5))


def test_a_consumer_must_be_started_and_options_are_checked(broker: EmbeddedBroker) -> None:
    async def main() -> None:
        c = consumer(broker)
        with pytest.raises(IllegalStateError, match="not started"):
            await c.getmany()
        await c.stop()

    run(main())
    with pytest.raises(ValueError, match="acknowledgement_mode"):
        consumer(broker, acknowledgement_mode="sometimes")
    with pytest.raises(ValueError, match="topic names"):
        AsyncShareConsumer(group_id="g", bootstrap_servers=broker.address)


def test_the_commit_callback_hears_of_each_acknowledged_offset_on_the_loop(broker: EmbeddedBroker) -> None:
    setup(broker, "tasks", "g", 6)
    heard: list[tuple[dict[TopicPartition, set[int]], Exception | None, int]] = []

    async def main() -> None:
        async with consumer(broker) as c:
            c.set_acknowledgement_commit_callback(
                lambda offsets, error: heard.append((offsets, error, threading.get_ident()))
            )
            got = await take(c, 6)
            await c.acknowledge(got[0], AcknowledgeType.REJECT)
            assert await c.commit() == {}
            assert threading.get_ident() == loop_thread

    loop_thread = threading.get_ident()  # asyncio.run runs the loop in this thread
    run(main())
    assert heard == [({TopicPartition("tasks", 0): set(range(6))}, None, loop_thread)]
