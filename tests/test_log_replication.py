"""The engine's side of replication on real files: leader epochs stamped on append, a follower's byte-for-byte
append_replica, the leader-epoch cache kept in step with the log and on disk, reads bounded by the high
watermark, and the high watermark itself."""

from __future__ import annotations

import logging
import os
import struct
from pathlib import Path
from typing import Any

import pytest

from logstore.config import TopicConfig
from logstore.errors import CorruptRecordError, InvalidRequestError, OffsetOutOfRangeError
from logstore.leader_epoch import CHECKPOINT_NAME, UNDEFINED, UNDEFINED_EPOCH, EpochEnd, EpochEntry
from logstore.log import HIGH_WATERMARK_FILE, AppendResult, Log
from logstore.records import (
    LOG_APPEND_TIME,
    Record,
    build_batch,
    check_batch,
    iter_headers,
    iter_records,
    parse_header,
)
from logstore.records.layout import PARTITION_LEADER_EPOCH_OFFSET

TS = 1_700_000_000_000
KIB = 1024
PID = 4242


def batch(count: int = 3, *, tag: str = "v", **kwargs: Any) -> bytes:
    records = [Record(0, TS + i, key=b"k%d" % i, value=f"{tag}{i}".encode()) for i in range(count)]
    return build_batch(records, **kwargs)


def idempotent(base_sequence: int, count: int = 2, *, epoch: int = 0) -> bytes:
    values = [f"s{base_sequence + i}".encode() for i in range(count)]
    records = [Record(0, TS, value=value) for value in values]
    return build_batch(records, producer_id=PID, producer_epoch=epoch, base_sequence=base_sequence)


def open_log(
    directory: Path,
    name: str = "t-0",
    *,
    clock: int = TS,
    clean_shutdown: bool = True,
    recovery_point: int | None = None,
    **config: Any,
) -> Log:
    config.setdefault("segment_bytes", 64 * KIB)
    return Log(
        directory / name,
        "t",
        0,
        TopicConfig(**config),
        clock_ms=lambda: clock,
        clean_shutdown=clean_shutdown,
        recovery_point=recovery_point,
    )


def everything(log: Log) -> bytes:
    """The whole log as stored, read one segment at a time as a follower's fetches would."""
    chunks, offset = [], log.log_start_offset
    while offset < log.log_end_offset:
        data = log.read(offset, 10**9).data
        chunks.append(data)
        offset = list(iter_headers(data))[-1][1].last_offset + 1
    return b"".join(chunks)


def segment_bytes(log: Log) -> list[bytes]:
    return [segment.read_all() for segment in log.segments]


def files(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


def checkpoint(log: Log) -> str:
    return (log.directory / CHECKPOINT_NAME).read_text()


def abandon(log: Log) -> None:
    """A killed process: release maps and descriptors, write nothing (no close, no checkpoints)."""
    for segment in log.segments:
        if segment._map is not None:
            segment._map.close()
        os.close(segment._fd)
        segment.offset_index._release()
        segment.time_index._release()


def epochs_on_disk(log: Log) -> list[tuple[int, int]]:
    """(base offset, partition leader epoch) of every stored batch, straight from the segment files."""
    found = []
    for data in segment_bytes(log):
        for position, header in iter_headers(data):
            stored = struct.unpack_from(">i", data, position + PARTITION_LEADER_EPOCH_OFFSET)[0]
            assert stored == header.partition_leader_epoch
            check_batch(data, position)  # the CRC still verifies
            found.append((header.base_offset, stored))
    return found


# --- the leader: stamping and the cache -------------------------------------------------------------------


@pytest.mark.parametrize("timestamp_type", ["CreateTime", "LogAppendTime"])
def test_append_with_a_leader_epoch_stamps_every_batch_and_keeps_the_crc(
    tmp_path: Path, timestamp_type: str
) -> None:
    log = open_log(tmp_path, message_timestamp_type=timestamp_type)
    sent = [batch(3, tag="a"), batch(2, tag="b")]
    log.append(sent[0] + sent[1], leader_epoch=7)
    stored = everything(log)
    assert epochs_on_disk(log) == [(0, 7), (3, 7)]
    for (position, header), original in zip(iter_headers(stored), sent, strict=True):
        check_batch(stored, position)
        assert header.partition_leader_epoch == 7
        if timestamp_type == "CreateTime":
            # Only the base offset and the epoch differ from the producer's bytes; the CRC is the producer's.
            raw = stored[position : position + header.size]
            assert raw[16:] == original[16:] and header.crc == parse_header(original).crc
            assert raw[8:12] == original[8:12]
        else:
            assert header.timestamp_type == LOG_APPEND_TIME and header.max_timestamp == TS
    assert [r.value for r in iter_records(stored)] == [b"a0", b"a1", b"a2", b"b0", b"b1"]
    assert [r.offset for r in iter_records(stored)] == [0, 1, 2, 3, 4]
    log.close()


def test_append_without_a_leader_epoch_keeps_the_producers_field_and_no_epochs(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    log.append(batch(2))
    log.append(batch(1, partition_leader_epoch=4))  # whatever the producer wrote is left alone
    assert epochs_on_disk(log) == [(0, -1), (2, 4)]
    assert log.leader_epochs.entries == () and log.latest_epoch == UNDEFINED_EPOCH
    assert not (log.directory / CHECKPOINT_NAME).exists()  # nothing changed, nothing written per append
    log.close()
    assert checkpoint(log) == "0\n0\n"


def test_a_new_epoch_is_assigned_from_its_first_offset_and_written_at_once(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    log.append(batch(3), leader_epoch=1)
    assert checkpoint(log) == "0\n1\n1 0\n"
    log.append(batch(2), leader_epoch=1)
    assert log.leader_epochs.entries == (EpochEntry(1, 0),)
    log.append(batch(4), leader_epoch=3)
    assert log.leader_epochs.entries == (EpochEntry(1, 0), EpochEntry(3, 5))
    assert log.latest_epoch == 3
    assert checkpoint(log) == "0\n2\n1 0\n3 5\n"  # on disk before close
    log.close()


def test_an_append_at_an_older_epoch_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    log.append(batch(2), leader_epoch=5)
    before = files(log.directory)
    with pytest.raises(InvalidRequestError, match=r"leader epoch 4, but epoch 5 already wrote .* offset 0"):
        log.append(batch(2), leader_epoch=4)
    assert files(log.directory) == before and log.log_end_offset == 2
    assert log.leader_epochs.entries == (EpochEntry(5, 0),)
    log.close()


def test_a_retried_idempotent_batch_at_a_new_epoch_assigns_nothing(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    log.append(idempotent(0), leader_epoch=1)
    assert log.append(idempotent(0), leader_epoch=2) == AppendResult(0, 1, -1, 0, True)
    assert log.leader_epochs.entries == (EpochEntry(1, 0),)
    log.close()


def test_end_offset_for_epoch_answers_as_kafkas_leader(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    assert log.end_offset_for_epoch(0) == UNDEFINED  # no epochs yet
    log.append(batch(3), leader_epoch=1)  # 0..2
    log.append(batch(3), leader_epoch=3)  # 3..5
    log.append(batch(3), leader_epoch=5)  # 6..8
    assert log.end_offset_for_epoch(5) == EpochEnd(5, 9)  # the latest ends at the log end
    assert log.end_offset_for_epoch(3) == EpochEnd(3, 6)
    assert log.end_offset_for_epoch(4) == EpochEnd(3, 6)  # unknown: the largest epoch below it
    assert log.end_offset_for_epoch(0) == EpochEnd(0, 0)  # below every epoch: the first one's start
    assert log.end_offset_for_epoch(6) == UNDEFINED
    assert log.end_offset_for_epoch(-1) == UNDEFINED
    log.close()


# --- the follower: append_replica -----------------------------------------------------------------------


def leader_log(tmp_path: Path, **config: Any) -> Log:
    """A leader that wrote in epochs 0, 2 and 3, with an idempotent producer and rolled segments."""
    leader = open_log(tmp_path, "leader-0", segment_bytes=1 * KIB, **config)
    leader.append(batch(3, tag="x"), leader_epoch=0)
    leader.append(idempotent(0), leader_epoch=0)
    for n in range(6):
        leader.append(batch(4, tag=f"y{n}-" + "." * 60), leader_epoch=2)
    leader.append(idempotent(2), leader_epoch=3)
    leader.append(batch(2, tag="z"), leader_epoch=3)
    assert len(leader.segments) > 1
    return leader


def replicate(leader: Log, follower: Log, max_bytes: int = 700) -> None:
    """A replica fetcher's loop: read from the follower's log end, append what came back as it is."""
    while follower.log_end_offset < leader.log_end_offset:
        follower.append_replica(leader.read(follower.log_end_offset, max_bytes).data)


@pytest.mark.parametrize("timestamp_type", ["CreateTime", "LogAppendTime"])
def test_append_replica_keeps_offsets_epochs_and_timestamps_byte_for_byte(
    tmp_path: Path, timestamp_type: str
) -> None:
    leader = leader_log(tmp_path, message_timestamp_type=timestamp_type)
    # The follower's clock is far from the leader's: LogAppendTime batches must keep the leader's stamp.
    follower = open_log(tmp_path, "follower-0", clock=TS + 10**9, message_timestamp_type=timestamp_type)
    replicate(leader, follower)
    assert everything(follower) == everything(leader)
    assert follower.leader_epochs.entries == leader.leader_epochs.entries
    assert follower.leader_epochs.entries == (EpochEntry(0, 0), EpochEntry(2, 5), EpochEntry(3, 29))
    assert checkpoint(follower) == checkpoint(leader)
    stamps = {h.max_timestamp for _, h in iter_headers(everything(follower))}
    assert stamps == ({TS} if timestamp_type == "LogAppendTime" else {TS, TS + 1, TS + 2, TS + 3})
    for offset in (0, 7, 29, 32):  # the indexes find every offset, as on the leader
        assert follower.read(offset, 1).data == leader.read(offset, 1).data
    assert follower.offset_for_timestamp(TS + 2) == leader.offset_for_timestamp(TS + 2)
    leader.close()
    follower.close()


def test_append_replica_reports_what_it_appended_and_the_flush_policy(tmp_path: Path) -> None:
    leader = open_log(tmp_path, "leader-0")
    leader.append(batch(3) + batch(2), leader_epoch=1)
    follower = open_log(tmp_path, "follower-0", flush_interval_messages=5)
    result = follower.append_replica(leader.read(0, 10**6).data)
    assert result == AppendResult(0, 4, -1, 5, False, True)
    assert follower.flushed_offset == 0  # never fsyncs itself; the caller flushes
    follower.flush()
    assert follower.flushed_offset == 5
    leader.close()
    follower.close()


@pytest.mark.parametrize(
    ("first_base", "second_base", "message"),
    [
        (4, None, r"batch 0 starts at offset 4, but the log end offset is 3"),
        (2, None, r"batch 0 starts at offset 2, but the log end offset is 3"),
        (3, 7, r"batch 1 starts at offset 7, but the end of batch 0 in the request is 5"),
        (3, 4, r"batch 1 starts at offset 4, but the end of batch 0 in the request is 5"),
    ],
    ids=["a gap at the log end", "overlapping the log end", "a gap between batches", "overlapping batches"],
)
def test_append_replica_refuses_batches_that_do_not_carry_on_from_the_log_end(
    tmp_path: Path, first_base: int, second_base: int | None, message: str
) -> None:
    follower = open_log(tmp_path)
    follower.append_replica(batch(3, partition_leader_epoch=1))
    request = batch(2, base_offset=first_base, partition_leader_epoch=2)
    if second_base is not None:
        request += batch(2, base_offset=second_base, partition_leader_epoch=2)
    before = files(follower.directory)
    with pytest.raises(InvalidRequestError, match=message):
        follower.append_replica(request)
    assert files(follower.directory) == before
    assert follower.log_end_offset == 3 and follower.leader_epochs.entries == (EpochEntry(1, 0),)
    follower.close()


def test_a_compacted_topic_replica_may_skip_offsets_the_cleaner_removed(tmp_path: Path) -> None:
    follower = open_log(tmp_path, cleanup_policy="compact")
    follower.append_replica(batch(3))
    follower.append_replica(batch(2, base_offset=10) + batch(1, base_offset=20))
    assert [r.offset for r in iter_records(everything(follower))] == [0, 1, 2, 10, 11, 20]
    with pytest.raises(InvalidRequestError, match="starts at offset 5, but the log end offset is 21"):
        follower.append_replica(batch(1, base_offset=5))  # never backwards
    follower.close()


def test_append_replica_checks_the_crc_and_writes_nothing_on_a_bad_batch(tmp_path: Path) -> None:
    follower = open_log(tmp_path)
    good = batch(2)
    bad = bytearray(batch(2, base_offset=2))
    bad[-1] ^= 0xFF
    before = files(follower.directory)
    with pytest.raises(CorruptRecordError, match="CRC"):
        follower.append_replica(good + bytes(bad))
    with pytest.raises(CorruptRecordError):
        follower.append_replica(b"")
    assert files(follower.directory) == before and follower.log_end_offset == 0
    follower.close()


@pytest.mark.parametrize("timestamp_type", ["CreateTime", "LogAppendTime"])
def test_a_follower_that_becomes_leader_deduplicates_the_producers_retry(
    tmp_path: Path, timestamp_type: str
) -> None:
    leader = open_log(tmp_path, "leader-0", message_timestamp_type=timestamp_type)
    leader.append(idempotent(0), leader_epoch=1)
    leader.append(batch(1), leader_epoch=1)
    leader.append(idempotent(2), leader_epoch=1)
    follower = open_log(tmp_path, "follower-0", message_timestamp_type=timestamp_type)
    replicate(leader, follower)
    # The old leader dies before the producer hears back; it retries on the new leader, at epoch 2.
    on_leader = leader.append(idempotent(2))
    assert on_leader.duplicate
    assert follower.append(idempotent(2), leader_epoch=2) == on_leader == AppendResult(3, 4, -1, 0, True)
    assert follower.append(idempotent(0), leader_epoch=2).duplicate  # still one of the last five
    assert follower.log_end_offset == 5 and follower.latest_epoch == 1
    assert follower.append(idempotent(4), leader_epoch=2).base_offset == 5  # the next sequence goes on
    assert follower.leader_epochs.entries == (EpochEntry(1, 0), EpochEntry(2, 5))
    leader.close()
    follower.close()


def test_append_replica_takes_producer_state_without_refusing_sequences(tmp_path: Path) -> None:
    # A leader's log can hold sequences this replica never saw begin (retention took the start).
    follower = open_log(tmp_path)
    follower.append_replica(idempotent(40))
    assert follower.append(idempotent(40)).duplicate
    follower.close()


def test_replica_epochs_survive_an_unclean_restart_whose_checkpoint_was_lost(tmp_path: Path) -> None:
    follower = open_log(tmp_path)
    follower.append_replica(batch(2, partition_leader_epoch=1))
    follower.flush()
    stale = checkpoint(follower)
    follower.append_replica(batch(2, base_offset=2, partition_leader_epoch=4))
    follower.flush()
    (follower.directory / CHECKPOINT_NAME).write_text(stale)  # the crash lost the checkpoint's rewrite
    abandon(follower)
    again = open_log(tmp_path, clean_shutdown=False, recovery_point=2)
    assert again.leader_epochs.entries == (EpochEntry(1, 0), EpochEntry(4, 2))
    assert checkpoint(again) == "0\n2\n1 0\n4 2\n"
    again.close()


# --- the cache on disk, recovery, retention ------------------------------------------------------------


def test_the_epoch_cache_persists_across_close_and_reopen(tmp_path: Path, caplog: Any) -> None:
    log = open_log(tmp_path)
    log.append(batch(2), leader_epoch=2)
    log.append(batch(2), leader_epoch=6)
    log.close()
    with caplog.at_level(logging.WARNING):
        again = open_log(tmp_path)
    assert again.leader_epochs.entries == (EpochEntry(2, 0), EpochEntry(6, 2))
    assert not caplog.records
    again.append(batch(1), leader_epoch=6)
    assert again.end_offset_for_epoch(2) == EpochEnd(2, 2)
    again.close()


def test_an_unclean_stop_with_a_torn_tail_truncates_the_cache(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    log.append(batch(3), leader_epoch=1)  # 0..2
    log.append(batch(3), leader_epoch=2)  # 3..5
    log.append(batch(3), leader_epoch=3)  # 6..8, torn below
    log.flush()
    log.set_high_watermark(9)
    log.write_checkpoints()
    assert checkpoint(log) == "0\n3\n1 0\n2 3\n3 6\n"
    segment = log.segments[-1]
    last = list(iter_headers(segment.read_all()))[-1][0]
    abandon(log)
    with open(segment.log_path, "r+b") as f:  # the last batch only half reached the disk
        f.seek(last + 30)
        f.write(b"\x00" * 40)
    again = open_log(tmp_path, clean_shutdown=False, recovery_point=0)
    assert again.log_end_offset == 6
    assert again.leader_epochs.entries == (EpochEntry(1, 0), EpochEntry(2, 3))
    assert checkpoint(again) == "0\n2\n1 0\n2 3\n"
    assert again.high_watermark == 6  # the stored 9 is past the recovered end
    assert again.end_offset_for_epoch(2) == EpochEnd(2, 6)
    again.close()


@pytest.mark.parametrize(
    "damage",
    [b"0\n3\n1 0\n", b"garbage\x00", None, "a folder"],
    ids=["wrong entry count", "garbage", "missing", "unreadable"],
)
def test_a_damaged_or_missing_checkpoint_is_rebuilt_from_the_headers_with_a_warning(
    tmp_path: Path, damage: bytes | str | None, caplog: Any
) -> None:
    log = open_log(tmp_path)
    log.append(batch(2), leader_epoch=1)
    log.append(batch(2), leader_epoch=4)
    log.close()
    path = log.directory / CHECKPOINT_NAME
    path.unlink()
    if isinstance(damage, bytes):
        path.write_bytes(damage)
    elif damage == "a folder":
        path.mkdir()
    with caplog.at_level(logging.WARNING, logger="logstore.leader_epoch"):
        again = open_log(tmp_path)
    assert again.leader_epochs.entries == (EpochEntry(1, 0), EpochEntry(4, 2))
    (warning,) = [r.getMessage() for r in caplog.records]
    assert str(path) in warning and "rebuilt" in warning
    if damage == "a folder":
        path.rmdir()  # the folder is in the way of the rewrite (a person would move it)
    again.close()
    assert checkpoint(again) == "0\n2\n1 0\n4 2\n"


def test_a_single_broker_log_without_a_checkpoint_opens_quietly(tmp_path: Path, caplog: Any) -> None:
    log = open_log(tmp_path)
    log.append(batch(2))
    log.close()
    (log.directory / CHECKPOINT_NAME).unlink()  # a data directory from before leader epochs
    with caplog.at_level(logging.WARNING):
        again = open_log(tmp_path)
    assert not caplog.records and again.leader_epochs.entries == ()
    again.close()


def test_delete_records_moves_the_cache_start(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    log.append(batch(5), leader_epoch=1)  # 0..4
    log.append(batch(5), leader_epoch=2)  # 5..9
    log.append(batch(5), leader_epoch=3)  # 10..14
    log.delete_records_before(7)
    assert log.leader_epochs.entries == (EpochEntry(2, 7), EpochEntry(3, 10))
    assert checkpoint(log) == "0\n2\n2 7\n3 10\n"
    log.close()
    again = open_log(tmp_path)
    assert again.log_start_offset == 7 and again.leader_epochs.entries == (
        EpochEntry(2, 7),
        EpochEntry(3, 10),
    )
    again.close()


def test_retention_moves_the_cache_start_to_the_new_log_start(tmp_path: Path) -> None:
    log = open_log(tmp_path, segment_bytes=1 * KIB)
    for epoch in (1, 2, 3):
        for _ in range(4):
            log.append(batch(4, tag="r" * 40), leader_epoch=epoch)
    assert len(log.segments) >= 3
    bases = [s.base_offset for s in log.segments]
    assert log.delete_oldest_segments(2) == 2
    start = log.log_start_offset
    assert start == bases[2]
    assert log.leader_epochs.entries[0].start_offset == start
    assert log.end_offset_for_epoch(3) == EpochEnd(3, log.log_end_offset)
    assert checkpoint(log).splitlines()[2] == f"{log.leader_epochs.entries[0].epoch} {start}"
    log.close()


def test_truncate_to_truncates_the_cache_and_clamps_the_high_watermark(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    log.append(batch(3), leader_epoch=1)  # 0..2
    log.append(batch(3), leader_epoch=2)  # 3..5
    log.append(batch(3), leader_epoch=3)  # 6..8
    log.set_high_watermark(8)
    log.truncate_to(4)  # inside epoch 2's batch: the whole batch goes
    assert log.log_end_offset == 3
    assert log.leader_epochs.entries == (EpochEntry(1, 0),)
    assert checkpoint(log) == "0\n1\n1 0\n"
    assert log.high_watermark == 3
    log.append_replica(batch(2, base_offset=3, partition_leader_epoch=4))  # the new leader's history
    assert log.leader_epochs.entries == (EpochEntry(1, 0), EpochEntry(4, 3))
    log.close()


# --- reads below the high watermark -------------------------------------------------------------------


def test_read_with_max_offset_returns_only_whole_batches_below_it(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    for _ in range(4):
        log.append(batch(3))  # batches 0..2, 3..5, 6..8, 9..11
    below = log.read(0, 10**6, max_offset=6)
    assert [r.offset for r in iter_records(below.data)] == [0, 1, 2, 3, 4, 5]
    assert below.high_watermark == 6 and below.log_start_offset == 0
    inside = log.read(0, 10**6, max_offset=7)  # 7 is inside the batch 6..8: that batch is held back
    assert [r.offset for r in iter_records(inside.data)] == [0, 1, 2, 3, 4, 5]
    assert inside.high_watermark == 7
    assert log.read(6, 10**6, max_offset=7).data == b""  # the batch holding 6 also holds 7
    assert log.read(9, 10**6, max_offset=9) == log.read(12, 10**6, max_offset=9)
    assert log.read(9, 10**6, max_offset=9).data == b""  # at the high watermark: nothing yet, no error
    assert log.read(0, 1, max_offset=6).data == log.read(0, 1).data  # at least one batch still
    assert log.read(0, 10**6, max_offset=12).data == log.read(0, 10**6).data
    assert log.read(0, 10**6, max_offset=99).high_watermark == 12  # never past the log end
    with pytest.raises(OffsetOutOfRangeError):
        log.read(13, 10**6, max_offset=6)
    log.close()


def test_read_with_max_offset_across_segments(tmp_path: Path) -> None:
    log = open_log(tmp_path, segment_bytes=1 * KIB)
    for _ in range(12):
        log.append(batch(4, tag="m" * 40))
    bases = [s.base_offset for s in log.segments]
    assert len(bases) >= 3
    hw = bases[1]  # a segment's first offset
    assert log.read(hw, 10**6, max_offset=hw).data == b""
    data = log.read(0, 10**6, max_offset=hw).data
    assert list(iter_headers(data))[-1][1].last_offset == hw - 1
    later = log.read(hw, 10**6, max_offset=hw + 4).data
    assert [r.offset for r in iter_records(later)] == [hw, hw + 1, hw + 2, hw + 3]
    log.close()


# --- the high watermark ----------------------------------------------------------------------------------


def test_the_high_watermark_is_none_until_set_and_clamped_to_the_log(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    assert log.high_watermark is None
    log.append(batch(5))
    assert log.set_high_watermark(3) == 3 and log.high_watermark == 3
    assert log.set_high_watermark(50) == 5
    log.delete_records_before(2)
    assert log.set_high_watermark(0) == 2  # never below the log start
    log.close()


def test_the_high_watermark_is_written_with_the_checkpoints_not_per_call(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    log.append(batch(5))
    log.set_high_watermark(4)
    path = log.directory / HIGH_WATERMARK_FILE
    assert not path.exists()
    log.write_checkpoints()
    assert path.read_text() == "4\n"
    log.set_high_watermark(5)
    assert path.read_text() == "4\n"
    log.close()
    assert path.read_text() == "5\n"
    again = open_log(tmp_path)
    assert again.high_watermark == 5
    again.close()


def test_the_high_watermark_holds_back_retention_and_delete_records(tmp_path: Path) -> None:
    log = open_log(tmp_path, segment_bytes=1 * KIB)
    for _ in range(12):
        log.append(batch(4, tag="h" * 40))
    bases = [s.base_offset for s in log.segments]
    log.set_high_watermark(bases[1])
    # Only the first segment is wholly below the high watermark: only it may go.
    assert log.delete_oldest_segments(3) == 1
    assert log.log_start_offset == bases[1]
    with pytest.raises(OffsetOutOfRangeError, match=f"above the high watermark {bases[1]}"):
        log.delete_records_before(bases[1] + 1)
    log.close()


def test_the_manager_writes_high_watermarks_with_its_checkpoints(tmp_path: Path) -> None:
    from logstore.manager import LogManager

    with LogManager(tmp_path / "data", background=False, clock_ms=lambda: TS) as manager:
        manager.create_topic("t", 1)
        partition = manager.log("t", 0)
        partition.append(batch(3), leader_epoch=0)
        partition.set_high_watermark(2)
        manager.write_checkpoints()
        assert (partition.directory / HIGH_WATERMARK_FILE).read_text() == "2\n"
        partition.set_high_watermark(3)
    with LogManager(tmp_path / "data", background=False) as manager:
        assert manager.log("t", 0).high_watermark == 3
        assert manager.log("t", 0).leader_epochs.entries == (EpochEntry(0, 0),)


# --- a follower left behind by the leader's retention -----------------------------------------------------


def test_truncate_fully_and_start_at_copies_afresh_from_the_leaders_log_start(tmp_path: Path) -> None:
    leader = leader_log(tmp_path)
    leader.delete_records_before(20)
    follower = open_log(tmp_path, "follower-0", segment_bytes=1 * KIB)
    follower.append_replica(leader_log(tmp_path / "old").read(0, 700).data)  # an old copy, ending early
    assert follower.log_end_offset < leader.log_start_offset
    follower.set_high_watermark(follower.log_end_offset)
    follower.truncate_fully_and_start_at(leader.log_start_offset)
    assert (follower.log_start_offset, follower.log_end_offset) == (20, 20)
    assert follower.leader_epochs.entries == ()
    assert follower.high_watermark == 20
    assert follower.producer_state.producers == {}
    # The leader serves the whole batch holding offset 20: the follower starts at that batch's base, as
    # Kafka's does, then takes the leader's log start from the fetch answers.
    served = leader.read(follower.log_end_offset, 700).data
    base = next(iter_headers(served))[1].base_offset
    assert base <= 20
    follower.truncate_fully_and_start_at(base)
    follower.append_replica(served)
    replicate(leader, follower)
    follower.set_high_watermark(follower.log_end_offset)
    assert follower.delete_records_before(leader.log_start_offset) == 20
    assert everything(follower)[-200:] == everything(leader)[-200:]
    assert follower.leader_epochs.latest_epoch == leader.leader_epochs.latest_epoch
    follower.close()
    reopened = open_log(tmp_path, "follower-0", segment_bytes=1 * KIB)
    assert (reopened.log_start_offset, reopened.log_end_offset) == (20, leader.log_end_offset)


def test_a_crash_right_after_truncating_fully_recovers_to_the_new_start(tmp_path: Path) -> None:
    follower = open_log(tmp_path, segment_bytes=1 * KIB)
    for n in range(8):
        follower.append(batch(4, tag=f"n{n}-" + "." * 60), leader_epoch=1)
    follower.truncate_fully_and_start_at(500)
    abandon(follower)
    recovered = open_log(tmp_path, segment_bytes=1 * KIB, clean_shutdown=False)
    assert (recovered.log_start_offset, recovered.log_end_offset) == (500, 500)
    assert recovered.leader_epochs.entries == ()
    recovered.append(batch(1), leader_epoch=2)
    assert list(iter_records(recovered.read(500, 10**6).data))[0].offset == 500
