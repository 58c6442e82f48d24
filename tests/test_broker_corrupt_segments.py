"""A real broker over a data directory damaged while it was stopped: it never serves a batch whose CRC does
not match (CORRUPT_RECORD for that offset, a WARNING naming the file) and refuses to load committed
offsets past a bad batch of `__consumer_offsets`, naming the file."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from logstore.wire.logstore.v1 import common_pb2 as common

from logstore.errors import CorruptRecordError
from logstore.records import build_batch, iter_records
from tests.conftest import GroupMember, group_stub


def flip_last_byte_of_batch(segment: Path, batch_index: int) -> int:
    """Flip the last byte of the `batch_index`-th batch (a payload byte the CRC covers); return its offset."""
    data = bytearray(segment.read_bytes())
    position = 0
    for _ in range(batch_index):
        position += int.from_bytes(data[position + 8 : position + 12], "big") + 12
    base_offset = int.from_bytes(data[position : position + 8], "big")
    end = position + int.from_bytes(data[position + 8 : position + 12], "big") + 12
    data[end - 1] ^= 0x01
    segment.write_bytes(bytes(data))
    return base_offset


def test_a_batch_whose_crc_no_longer_matches_is_answered_corrupt_record_naming_the_file(
    start_broker, connect, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broker = start_broker()
    stubs = connect(broker)
    stubs.create_topic("t")
    for n in range(3):
        assert stubs.produce_one("t", 0, build_batch([f"v{n}".encode()])).error_code == 0
    broker.stop()
    segment = tmp_path / "data" / "t-0" / f"{0:020d}.log"
    assert flip_last_byte_of_batch(segment, 1) == 1

    stubs = connect(start_broker())
    with caplog.at_level(logging.WARNING):
        bad = stubs.fetch_one("t", 0, 1)
    assert bad.error_code == common.ERROR_CODE_CORRUPT_RECORD
    assert str(segment) in bad.error_message and bad.records == b""
    assert str(segment) in caplog.text and "offset 1" in caplog.text
    # Before and after the damaged batch, records are served as ever (a read stops short of it).
    before = stubs.fetch_one("t", 0, 0)
    assert before.error_code == 0 and [r.value for r in iter_records(before.records)] == [b"v0"]
    after = stubs.fetch_one("t", 0, 2)
    assert after.error_code == 0 and [r.value for r in iter_records(after.records)] == [b"v2"]


def test_a_bad_batch_in_consumer_offsets_is_refused_naming_the_file(
    start_broker, connect, tmp_path: Path
) -> None:
    broker = start_broker(offsets_topic_partitions=1)
    stubs = connect(broker)
    stubs.create_topic("orders")
    member = GroupMember(group_stub(stubs), "billing", ["orders"])
    member.heartbeat()
    for offset in (5, 6):
        assert member.commit({("orders", 0): offset}).error_code == common.ERROR_CODE_NONE
    broker.stop()
    segment = tmp_path / "data" / "__consumer_offsets-0" / f"{0:020d}.log"
    flip_last_byte_of_batch(segment, 0)

    with pytest.raises(CorruptRecordError) as refused:
        start_broker(offsets_topic_partitions=1)
    assert str(segment) in str(refused.value)
    assert "committed offsets" in str(refused.value)
