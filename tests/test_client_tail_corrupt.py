"""A live tail meeting a corrupt batch (issue 10, as the consumer does since issue 9): the records before it
are delivered, then a CorruptRecordError names the partition and offset (not the storage engine's raw
error), and the tail's position stays at the bad batch until the application moves it. No sockets: the
Subscribe messages are handed to the tail as the broker would send them."""

from __future__ import annotations

import pytest
from logstore.client.consumer.tail import Tail
from logstore.client.shared.errors import CorruptRecordError
from logstore.client.shared.types import TopicPartition
from logstore.wire.logstore.v1 import fetch_pb2

from logstore.records import Record, build_batch, set_base_offset

TP = TopicPartition("orders", 0)


def batch(base: int, count: int) -> bytearray:
    data = bytearray(build_batch([Record(0, 1000 + i, value=b"v%d" % (base + i)) for i in range(count)]))
    set_base_offset(data, 0, base)
    return data


def message(*parts: bytes | bytearray) -> fetch_pb2.SubscribeResponse:
    return fetch_pb2.SubscribeResponse(
        partitions=[
            fetch_pb2.PartitionRecords(topic=TP.topic, partition=TP.partition, records=b"".join(parts))
        ]
    )


def bare_tail(position: int) -> Tail:
    """A tail without a connection: only ``_records`` runs."""
    tail = object.__new__(Tail)
    tail.positions = {TP: position}
    tail._key_deserializer = tail._value_deserializer = None
    return tail


def test_records_before_a_corrupt_batch_are_delivered_then_the_error_names_it() -> None:
    bad = batch(3, 2)
    bad[-2] ^= 0x55  # CRC mismatch
    tail = bare_tail(0)
    got = []
    with pytest.raises(CorruptRecordError) as raised:
        for record in tail._records(message(batch(0, 3), bad, batch(5, 1))):
            got.append(record.value)
    assert got == [b"v0", b"v1", b"v2"]
    error = raised.value
    assert (error.topic, error.partition, error.offset, error.next_offset) == ("orders", 0, 3, 5)
    assert "orders-0" in str(error) and "tail.positions" in str(error)
    assert tail.positions[TP] == 3


def test_after_moving_the_position_past_it_the_tail_goes_on() -> None:
    bad = batch(3, 2)
    bad[-2] ^= 0x55
    tail = bare_tail(0)
    with pytest.raises(CorruptRecordError) as raised:
        list(tail._records(message(batch(0, 3), bad)))
    tail.positions[TP] = raised.value.next_offset
    assert [r.offset for r in tail._records(message(batch(5, 2)))] == [5, 6]
    assert tail.positions[TP] == 7
