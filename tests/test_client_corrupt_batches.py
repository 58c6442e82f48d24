"""The consumer's fetcher meeting corrupt batches (issue 9, item 1). No sockets, no threads, no sleeps:
fetch answers are handed to the fetcher as the broker would send them and taken as poll() takes them.

Wanted: the records before a bad batch are delivered; then a CorruptRecordError names the partition and
the offset, the position stays at the bad batch and every take raises again, until a seek moves past.
"""

from __future__ import annotations

import struct
import threading

import pytest
from logstore.client.consumer.fetcher import CompletedFetch, Fetcher
from logstore.client.consumer.subscription import SubscriptionState
from logstore.client.shared.backoff import Backoff
from logstore.client.shared.errors import CorruptRecordError
from logstore.client.shared.types import TopicPartition
from logstore.wire.logstore.v1 import common_pb2, fetch_pb2

from logstore.records import Record, build_batch, crc32c, set_base_offset

TP = TopicPartition("orders", 3)
OTHER = TopicPartition("orders", 4)


def batch(base: int, count: int, width: int = 0) -> bytearray:
    """``count`` records at offsets ``base``.. with values like b"v12" (or zero-padded to ``width``)."""
    data = bytearray(
        build_batch([Record(0, 1000 + i, value=b"v%0*d" % (width, base + i)) for i in range(count)])
    )
    set_base_offset(data, 0, base)
    return data


def fix_crc(data: bytearray) -> bytearray:
    """Recompute the CRC of the batch ``data``: what a buggy producer does over garbage."""
    struct.pack_into(">I", data, 17, crc32c(memoryview(data)[21:]))
    return data


def garbage_records(data: bytearray) -> bytearray:
    """A CRC-valid batch whose records section is garbage."""
    data[61:] = b"\xff" * (len(data) - 61)
    return fix_crc(data)


def crc_mismatch(data: bytearray) -> bytearray:
    data[-2] ^= 0x55
    return data


def answer(
    *parts: bytes | bytearray, code: common_pb2.ErrorCode = common_pb2.ERROR_CODE_NONE, message: str = ""
) -> fetch_pb2.PartitionRecords:
    return fetch_pb2.PartitionRecords(
        topic=TP.topic,
        partition=TP.partition,
        error_code=code,
        error_message=message,
        records=b"".join(parts),
        high_watermark=1000,
        log_start_offset=0,
    )


NO_CONNECTION = object()


@pytest.fixture
def fetcher() -> Fetcher:
    """A fetcher whose thread never runs: the test plays the broker through ``store``."""
    state = SubscriptionState("none")
    state.assign([TP, OTHER])
    state.seek(TP, 0)
    state.seek(OTHER, 0)
    made = Fetcher(
        NO_CONNECTION,  # type: ignore[arg-type]  # the thread, the only user of the connection, never runs
        state,
        threading.Lock(),
        fetch_min_bytes=1,
        fetch_max_wait_ms=0,
        max_partition_fetch_bytes=1 << 20,
        fetch_max_bytes=1 << 20,
        request_timeout_ms=1000,
        retry_backoff=Backoff(1, 1),
    )
    return made


def store(fetcher: Fetcher, result: fetch_pb2.PartitionRecords, tp: TopicPartition = TP) -> None:
    """The broker's answer to a fetch of ``tp`` from its fetch offset (the fetcher thread's part)."""
    partition = fetcher._state.partitions[tp]
    assert partition.fetch_offset is not None
    result.topic, result.partition = tp.topic, tp.partition
    with fetcher.lock:
        fetcher.store([(tp, partition.generation, partition.fetch_offset)], [result])


def take(fetcher: Fetcher, max_records: int) -> dict:
    with fetcher.lock:  # as Consumer.poll calls it
        return fetcher.take(max_records)


def offsets(taken: dict) -> dict[TopicPartition, list[int]]:
    return {tp: [r.offset for r in records] for tp, records in taken.items()}


def position(fetcher: Fetcher, tp: TopicPartition = TP) -> int | None:
    return fetcher._state.partitions[tp].position


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [(garbage_records, "varint"), (crc_mismatch, "CRC mismatch")],
    ids=["garbage-records-with-a-valid-crc", "crc-mismatch"],
)
def test_records_before_a_bad_batch_come_first_then_the_error_stays(fetcher: Fetcher, spoil, reason) -> None:
    store(fetcher, answer(batch(0, 4), spoil(batch(4, 4)), batch(8, 4)))
    assert offsets(take(fetcher, 100)) == {TP: [0, 1, 2, 3]}, "the good records decoded first are delivered"
    assert position(fetcher) == 4
    for _ in range(3):  # every poll raises again; nothing moves
        with pytest.raises(CorruptRecordError) as raised:
            take(fetcher, 100)
        error = raised.value
        assert (error.topic, error.partition, error.offset, error.next_offset) == ("orders", 3, 4, 8)
        assert "orders-3" in str(error) and "offsets 4-7" in str(error) and reason in str(error)
        assert "position stays at offset 4" in str(error) and "seek to offset 8" in str(error)
        assert position(fetcher) == 4
    assert fetcher._state.fetchable(0.0) == [(OTHER, fetcher._state.partitions[OTHER])], "no fetch past it"

    fetcher._state.seek(TP, error.next_offset)  # what Consumer.seek does
    store(fetcher, answer(batch(8, 4)))
    assert offsets(take(fetcher, 100)) == {TP: [8, 9, 10, 11]}
    assert position(fetcher) == 12


def test_seeking_back_to_the_bad_batch_reads_it_again(fetcher: Fetcher) -> None:
    store(fetcher, answer(crc_mismatch(batch(0, 2))))
    with pytest.raises(CorruptRecordError):
        take(fetcher, 100)
    fetcher._state.seek(TP, 0)  # a retry: the broker may serve an intact copy this time
    store(fetcher, answer(batch(0, 2)))
    assert offsets(take(fetcher, 100)) == {TP: [0, 1]}


def test_a_bad_batch_does_not_take_other_partitions_records_with_it(fetcher: Fetcher) -> None:
    store(fetcher, answer(batch(0, 2)), OTHER)
    store(fetcher, answer(batch(0, 3), garbage_records(batch(3, 2))))
    assert offsets(take(fetcher, 100)) == {OTHER: [0, 1], TP: [0, 1, 2]}
    with pytest.raises(CorruptRecordError, match="offsets 3-4"):
        take(fetcher, 100)


def test_data_fetched_past_a_bad_batch_is_dropped(fetcher: Fetcher) -> None:
    store(fetcher, answer(batch(0, 2), crc_mismatch(batch(2, 2))))
    store(fetcher, answer(batch(4, 2)))  # read ahead before the application met the bad batch
    assert offsets(take(fetcher, 100)) == {TP: [0, 1]}
    with pytest.raises(CorruptRecordError):
        take(fetcher, 100)
    assert [c.tp for c in fetcher._buffer] == [TP] and not fetcher._buffered.get(TP)
    fetcher._state.seek(TP, 4)
    assert take(fetcher, 100) == {}, "the failed data went with the seek"


def test_a_bad_record_deep_in_a_large_batch_stops_at_the_first_record_not_handed_out(
    fetcher: Fetcher,
) -> None:
    data = batch(0, 1000, width=6)
    data[data.index(b"v000600") + 7] = 0x7F  # record 600's header count: negative
    store(fetcher, answer(fix_crc(data), batch(1000, 1)))
    first = offsets(take(fetcher, 10_000))[TP]
    assert first == list(range(512)), "whole chunks decoded before the bad record are delivered"
    with pytest.raises(CorruptRecordError) as raised:
        take(fetcher, 10_000)
    assert (raised.value.offset, raised.value.next_offset) == (512, 1000)
    assert position(fetcher) == 512


def test_bytes_that_are_not_a_whole_batch_stop_the_partition_instead_of_a_silent_stall(
    fetcher: Fetcher,
) -> None:
    broken = batch(2, 3)
    struct.pack_into(">i", broken, 8, 7)  # a length field below any batch's: framing lost from here on
    store(fetcher, answer(batch(0, 2), broken))
    assert fetcher._state.fetchable(0.0) == [(OTHER, fetcher._state.partitions[OTHER])]
    assert offsets(take(fetcher, 100)) == {TP: [0, 1]}
    with pytest.raises(CorruptRecordError, match="not a whole record batch") as raised:
        take(fetcher, 100)
    assert raised.value.offset == 2 and position(fetcher) == 2

    # An answer of nothing but such bytes used to be dropped and fetched again at once, forever.
    fetcher._state.seek(TP, 2)
    store(fetcher, answer(broken))
    with pytest.raises(CorruptRecordError, match="position stays at offset 2"):
        take(fetcher, 100)


def test_the_brokers_corrupt_record_answer_stops_the_partition_after_what_came_before(
    fetcher: Fetcher,
) -> None:
    store(fetcher, answer(batch(0, 3)))
    store(fetcher, answer(code=common_pb2.ERROR_CODE_CORRUPT_RECORD, message="CRC mismatch in 0.log"))
    assert offsets(take(fetcher, 100)) == {TP: [0, 1, 2]}
    for _ in range(2):
        with pytest.raises(
            CorruptRecordError, match=r"cannot serve offset 3: CRC mismatch in 0\.log"
        ) as raised:
            take(fetcher, 100)
    assert (raised.value.topic, raised.value.partition, raised.value.offset) == ("orders", 3, 3)
    assert raised.value.next_offset == -1
    assert fetcher._state.fetchable(0.0) == [(OTHER, fetcher._state.partitions[OTHER])]


def test_a_paused_stuck_partition_lets_the_others_through(fetcher: Fetcher) -> None:
    store(fetcher, answer(crc_mismatch(batch(0, 2))))
    with pytest.raises(CorruptRecordError):
        take(fetcher, 100)
    fetcher._state.pause(TP)
    store(fetcher, answer(batch(0, 2)), OTHER)
    assert offsets(take(fetcher, 100)) == {OTHER: [0, 1]}


def control_batch(base: int) -> bytearray:
    data = batch(base, 1)
    data[22] |= 0x20  # the control bit, in the CRC-covered attributes
    return data


@pytest.mark.parametrize("check_crcs", [True, False])
def test_control_batches_are_skipped_and_checked_with_check_crcs(check_crcs: bool) -> None:
    intact = CompletedFetch(TP, 0, bytes(fix_crc(control_batch(0)) + batch(1, 1)), 0, check_crcs=check_crcs)
    assert [r.offset for r in intact.take(10, 0)] == [1]

    flipped = CompletedFetch(TP, 0, bytes(control_batch(0) + batch(1, 1)), 0, check_crcs=check_crcs)
    if check_crcs:  # a data batch whose control bit flipped would otherwise vanish without a word
        with pytest.raises(CorruptRecordError, match="CRC mismatch"):
            flipped.take(10, 0)
    else:
        assert [r.offset for r in flipped.take(10, 0)] == [1]


def test_an_answer_of_only_control_batches_moves_the_fetch_offset(fetcher: Fetcher) -> None:
    store(fetcher, answer(fix_crc(control_batch(0)), fix_crc(control_batch(1))))
    assert fetcher._state.partitions[TP].fetch_offset == 2
    assert take(fetcher, 100) == {} and position(fetcher) == 2
