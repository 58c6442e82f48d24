"""The asyncio producer against a real broker: metadata, send_nowait, flush, cancellation, errors."""

from __future__ import annotations

import asyncio
import threading

import pytest
from logstore.broker.embedded import EmbeddedBroker
from logstore.client import Admin, RecordMetadata
from logstore.client.aio import AsyncProducer
from logstore.client.aio.futures import AsyncRecordFuture
from logstore.client.producer.partitioner import key_partition
from logstore.client.shared.errors import (
    ClosedError,
    RecordTooLargeError,
    UnknownDeliveryError,
    UnknownPartitionError,
    UnknownTopicError,
)

from tests.test_client_support import read_partition, read_topic


def create(broker: EmbeddedBroker, name: str, partitions: int) -> None:
    with Admin(broker.address) as admin:
        admin.create_topic(name, partitions)


def test_send_returns_the_threaded_clients_metadata(broker: EmbeddedBroker) -> None:
    create(broker, "t", 1)

    async def main() -> tuple[RecordMetadata, RecordMetadata]:
        async with AsyncProducer(broker.address) as producer:
            first = await producer.send("t", b"a", headers=[("trace", b"1")], timestamp_ms=1_700_000_000_000)
            second = await producer.send("t", b"b", key=b"k")
        return first, second

    first, second = asyncio.run(main())
    assert first == RecordMetadata("t", 0, 0, 1_700_000_000_000)
    assert (second.partition, second.offset) == (0, 1)
    records = read_partition(broker.address, "t", 0)
    assert [(r.offset, r.key, r.value, r.headers) for r in records] == [
        (0, None, b"a", [("trace", b"1")]),
        (1, b"k", b"b", []),
    ]


def test_send_nowait_futures_flush_and_keys_keep_partition_order(broker: EmbeddedBroker) -> None:
    create(broker, "keyed", 3)
    keys = [f"k{i}".encode() for i in range(6)]

    async def main() -> list[tuple[bytes, AsyncRecordFuture]]:
        async with AsyncProducer(broker.address, linger_ms=1, batch_size=1024) as producer:
            await producer.partitions_for("keyed")
            futures = [
                (key, producer.send_nowait("keyed", str(n).encode(), key=key))
                for n in range(50)
                for key in keys
            ]
            await producer.flush()
            assert all(future.done() for _, future in futures)
        return futures

    futures = asyncio.run(main())
    for key, future in futures:
        assert future.result().partition == key_partition(key, 3)
    seen: dict[bytes, list[int]] = {}
    for records in read_topic(broker.address, "keyed", 3).values():
        for record in records:
            assert record.key is not None and record.value is not None
            seen.setdefault(record.key, []).append(int(record.value))
    assert seen == {key: list(range(50)) for key in keys}


def test_cancelling_a_pending_send_writes_the_record_once(broker: EmbeddedBroker) -> None:
    """A cancelled ``await send()`` stops waiting; the record, already batched, is written exactly once."""
    create(broker, "c", 1)

    async def main() -> None:
        async with AsyncProducer(broker.address, linger_ms=60_000) as producer:
            await producer.partitions_for("c")
            pending = asyncio.create_task(producer.send("c", b"cancelled"))
            await asyncio.sleep(0)  # let it append: linger keeps the batch open until the flush below
            pending.cancel()
            with pytest.raises(asyncio.CancelledError):
                await pending
            await producer.flush()
            last = producer.send_nowait("c", b"last")
            await producer.flush()
            assert (await last).offset == 1

    asyncio.run(main())
    assert [r.value for r in read_partition(broker.address, "c", 0)] == [b"cancelled", b"last"]


def test_errors_are_the_threaded_clients(broker: EmbeddedBroker) -> None:
    create(broker, "e", 2)

    async def main() -> None:
        async with AsyncProducer(broker.address, max_request_size=1024, batch_size=512) as producer:
            with pytest.raises(UnknownPartitionError):
                await producer.send("e", b"x", partition=5)
            with pytest.raises(RecordTooLargeError):
                await producer.send("e", b"x" * 4096)
            with pytest.raises(UnknownPartitionError):
                producer.send_nowait("never-looked-up", b"x")
        with pytest.raises(ClosedError):
            await producer.send("e", b"x")

    asyncio.run(main())


def test_an_unknown_topic_is_the_threaded_clients_error(start_broker) -> None:
    broker = start_broker(auto_create_topics=False)

    async def main() -> None:
        async with AsyncProducer(broker.address, auto_create_topics=False, max_block_ms=2000) as producer:
            with pytest.raises(UnknownTopicError):
                await producer.send("nowhere", b"x")

    asyncio.run(main())


def test_keyless_records_on_the_hot_path_get_their_own_offsets(broker: EmbeddedBroker) -> None:
    create(broker, "fast", 2)

    async def main() -> list[RecordMetadata]:
        async with AsyncProducer(broker.address, batch_size=4096) as producer:
            await producer.partitions_for("fast")
            futures = [producer.send_nowait("fast", b"%d" % i) for i in range(3000)]
            await producer.flush()
            return [future.result() for future in futures]

    metadata = asyncio.run(main())
    stored = {
        (partition, record.offset): record.value
        for partition, records in read_topic(broker.address, "fast", 2).items()
        for record in records
    }
    assert len(stored) == 3000
    assert [stored[(m.partition, m.offset)] for m in metadata] == [b"%d" % i for i in range(3000)]


def test_stop_out_of_time_fails_what_is_unsent_and_leaves_no_task(broker: EmbeddedBroker) -> None:
    """stop(timeout=0) right after a send: every record's future ends, as ClosedError if its batch was
    never sent (then nothing is written), UnknownDeliveryError if it was sent and not answered yet, or
    its metadata; the log holds exactly what was acknowledged or may have been; the loop ends with no
    task of the producer left. (With nothing in flight the batch may already be on its way: adaptive
    batching sends it at once, so each of the three fates can happen.)"""
    create(broker, "late", 1)
    fates: list[str] = []

    async def main() -> None:
        producer = AsyncProducer(broker.address, linger_ms=60_000)
        await producer.start()
        await producer.partitions_for("late")
        futures = [producer.send_nowait("late", b"x") for _ in range(5)]
        await producer.stop(timeout=0)
        for future in futures:
            try:
                await future
            except ClosedError:
                fates.append("unsent")
            except UnknownDeliveryError:
                fates.append("unknown")
            else:
                fates.append("written")
        current = asyncio.current_task()
        assert [task for task in asyncio.all_tasks() if task is not current] == []

    asyncio.run(main())
    assert len(set(fates)) == 1, f"one batch, one fate: {fates}"
    written = len(read_partition(broker.address, "late", 0))
    if fates[0] == "unsent":
        assert written == 0
    elif fates[0] == "written":
        assert written == 5
    else:
        assert written in (0, 5)


def test_record_futures_await_gather_and_survive_a_cancelled_awaiter(broker: EmbeddedBroker) -> None:
    """One future per record, none of them an asyncio.Future: awaited twice at once (one waiter
    cancelled, the other still answered), gathered, and their callbacks run on the loop."""
    create(broker, "aw", 1)

    async def main() -> None:
        async with AsyncProducer(broker.address, linger_ms=60_000) as producer:
            await producer.partitions_for("aw")
            loop_thread = threading.get_ident()
            called: list[tuple[int, int]] = []
            futures = [producer.send_nowait("aw", b"%d" % i) for i in range(100)]
            futures[-1].add_done_callback(lambda f: called.append((threading.get_ident(), f.result().offset)))
            assert not futures[-1].done() and futures[-1].cancel() is False
            with pytest.raises(asyncio.InvalidStateError):
                futures[-1].result()
            first = asyncio.ensure_future(_awaited(futures[-1]))
            second = asyncio.ensure_future(_awaited(futures[-1]))
            await asyncio.sleep(0)  # both wait now
            first.cancel()
            await producer.flush()
            with pytest.raises(asyncio.CancelledError):
                await first
            assert (await second).offset == 99
            assert [m.offset for m in await asyncio.gather(*futures)] == list(range(100))
            assert called == [(loop_thread, 99)]

    asyncio.run(main())


async def _awaited(future: AsyncRecordFuture) -> RecordMetadata:
    return await future


def test_the_asyncio_producer_refuses_the_stream_transport_it_does_not_have() -> None:
    with pytest.raises(ValueError, match="unary Produce calls only"):
        AsyncProducer("127.0.0.1:1", produce_transport="stream")
    assert AsyncProducer("127.0.0.1:1", produce_transport="unary").config.produce_transport == "unary"
    assert AsyncProducer("127.0.0.1:1").config.produce_transport == "unary"
