"""Idempotent producers: the pure sequence bookkeeping, and the log's use of it across appends and restarts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from logstore.config import TopicConfig
from logstore.errors import DuplicateSequenceNumberError, InvalidProducerEpochError, OutOfOrderSequenceError
from logstore.log import PRODUCER_SNAPSHOT, AppendResult, Log
from logstore.producer_state import BatchMetadata, ProducerStateManager
from logstore.records import BatchHeader, Record, build_batch, check_batch, iter_records

PID = 4242
INT32_MAX = 2**31 - 1
STAMP = 1_700_000_000_000
"""Every test batch's timestamp: a retry is the same bytes as its first attempt (and so has its CRC)."""


def stamped(values: list[bytes]) -> list[Record]:
    return [Record(0, STAMP, value=value) for value in values]


def duplicate_of(state: ProducerStateManager, batch: BatchHeader) -> BatchMetadata:
    """The original batch that ``batch`` repeats (the test expects it to be a retried duplicate)."""
    original = state.check(batch)
    assert original is not None, "a retried duplicate"
    return original


def header(
    base_sequence: int,
    count: int = 1,
    *,
    epoch: int = 0,
    pid: int = PID,
    base_offset: int = 0,
    value: bytes = b"x",
) -> BatchHeader:
    data = build_batch(
        stamped([value] * count),
        producer_id=pid,
        producer_epoch=epoch,
        base_sequence=base_sequence,
        base_offset=base_offset,
    )
    return check_batch(data)


def idempotent(base_sequence: int, count: int = 1, *, epoch: int = 0, pid: int = PID) -> bytes:
    values = [f"p{pid}-e{epoch}-s{base_sequence + i}".encode() for i in range(count)]
    return build_batch(stamped(values), producer_id=pid, producer_epoch=epoch, base_sequence=base_sequence)


def open_log(tmp_path: Path, **kwargs: Any) -> Log:
    return Log(tmp_path / "t-0", "t", 0, TopicConfig(segment_bytes=64 * 1024), **kwargs)


def abandon(log: Log) -> None:
    """Let go of a log the way a killed process does: release maps and descriptors, write nothing."""
    for segment in log.segments:
        if segment._map is not None:
            segment._map.close()
        os.close(segment._fd)
        segment.offset_index._release()
        segment.time_index._release()


def values(log: Log) -> list[bytes | None]:
    return [r.value for r in iter_records(log.read(0, 10**9).data)]


# --- the pure state ---------------------------------------------------------------------------------------


def test_first_batch_of_an_unknown_producer_must_start_at_zero() -> None:
    state = ProducerStateManager("t-0")
    assert state.check(header(0)) is None
    with pytest.raises(OutOfOrderSequenceError, match=r"unknown here.*starts at sequence 5, not 0"):
        state.check(header(5))


def test_sequences_must_follow_on() -> None:
    state = ProducerStateManager("t-0")
    state.update(header(0, 3, base_offset=10))
    assert state.check(header(3, 2)) is None
    with pytest.raises(OutOfOrderSequenceError, match="sent sequence 4 but 3 was expected"):
        state.check(header(4))
    with pytest.raises(OutOfOrderSequenceError, match="sent sequence 1 but 3 was expected"):
        state.check(header(1, 2))  # overlaps the last batch without being it


def test_a_retried_batch_is_recognised_among_the_last_five() -> None:
    state = ProducerStateManager("t-0")
    for n in range(7):
        state.update(header(2 * n, 2, base_offset=100 + 2 * n))
    original = state.check(header(12, 2))
    assert original is not None
    assert (original.first_seq, original.last_seq, original.first_offset, original.last_offset) == (
        12,
        13,
        112,
        113,
    )
    assert duplicate_of(state, header(4, 2)).first_offset == 104  # the oldest one still remembered
    with pytest.raises(OutOfOrderSequenceError):
        state.check(header(2, 2))  # six batches back: forgotten, so out of order


def test_a_different_batch_under_remembered_sequences_is_refused_not_taken_for_a_retry() -> None:
    state = ProducerStateManager("t-0")
    state.update(header(0, 2, base_offset=10))
    state.update(header(2, 2, base_offset=12))
    with pytest.raises(
        DuplicateSequenceNumberError, match=r"already wrote sequences 2\.\.3 at offsets 12\.\.13"
    ):
        state.check(header(2, 2, value=b"y"))
    with pytest.raises(DuplicateSequenceNumberError):
        state.check(header(0, 2, value=b"y"))  # an older remembered batch too
    assert duplicate_of(state, header(2, 2)).first_offset == 12  # the real retry is still recognised
    assert state.check(header(4, 2, value=b"y")) is None  # what follows on is not affected


def test_a_remembered_batch_of_unknown_crc_matches_any_retry() -> None:
    """Snapshots written before CRCs were kept, and LogAppendTime batches read back from the log (the
    broker recomputed their CRC), remember none: their retries are recognised by sequence numbers alone."""
    state = ProducerStateManager("t-0")
    stamped = header(0, 2, base_offset=5)
    state.replay(stamped._replace(attributes=stamped.attributes | 0x08))
    assert state.producers[PID].batches[-1].crc is None
    assert duplicate_of(state, header(0, 2, value=b"other")).first_offset == 5
    state.replay(header(2, 1, base_offset=7))  # CreateTime: the stored CRC is the producer's
    assert state.producers[PID].batches[-1].crc == header(2, 1).crc


def test_an_older_epoch_is_fenced_and_a_newer_one_starts_at_zero() -> None:
    state = ProducerStateManager("t-0")
    state.update(header(0, 5, epoch=3))
    with pytest.raises(InvalidProducerEpochError, match="epoch 2 is older than the current epoch 3"):
        state.check(header(5, epoch=2))
    with pytest.raises(OutOfOrderSequenceError, match="new epoch must start at 0"):
        state.check(header(5, epoch=4))
    assert state.check(header(0, epoch=4)) is None
    state.update(header(0, epoch=4))
    assert state.producers[PID].epoch == 4
    assert state.producers[PID].last_seq == 0


def test_sequence_numbers_wrap_at_int32_max() -> None:
    state = ProducerStateManager("t-0")
    state.update(header(INT32_MAX - 1))
    assert state.check(header(INT32_MAX)) is None
    state.update(header(INT32_MAX, 3))  # sequences INT32_MAX, 0, 1
    assert state.producers[PID].last_seq == 1
    assert state.check(header(INT32_MAX, 3)) is not None  # its retry is still recognised
    assert state.check(header(2)) is None
    with pytest.raises(OutOfOrderSequenceError):
        state.check(header(INT32_MAX))


def test_pending_state_of_earlier_batches_in_the_same_request() -> None:
    state = ProducerStateManager("t-0")
    staged: dict = {}
    first = header(0, 2)
    assert state.check(first, staged) is None
    state.update(first, staged)
    assert state.producers == {}  # nothing applied yet
    assert state.check(header(2), staged) is None
    with pytest.raises(OutOfOrderSequenceError):
        state.check(header(2))  # the live state has not seen the first batch
    state.apply(staged)
    assert state.producers[PID].last_seq == 1


def test_snapshot_round_trip_and_unusable_snapshots(tmp_path: Path) -> None:
    state = ProducerStateManager("t-0")
    for n in range(3):
        state.update(header(n, 1, base_offset=n))
    state.update(header(0, 4, epoch=1, pid=7, base_offset=3))
    path = tmp_path / "snapshot.json"
    state.write_snapshot(path, offset=7)
    loaded = ProducerStateManager("t-0")
    assert loaded.load_snapshot(path) == 7
    assert {pid: (e.epoch, list(e.batches)) for pid, e in loaded.producers.items()} == {
        pid: (e.epoch, list(e.batches)) for pid, e in state.producers.items()
    }
    assert all(b.crc is not None for e in loaded.producers.values() for b in e.batches)
    for garbage in (
        b"",
        b"{",
        b'{"offset": 1}',
        b'{"offset": "x", "producers": {}}',
        b"[1, 2]",
        b'{"offset": 1, "producers": {"1": {"epoch": 0, "batches": [[0, 0, 0, 0]]}}}',
    ):
        path.write_bytes(garbage)
        assert ProducerStateManager("t-0").load_snapshot(path) is None
    assert ProducerStateManager("t-0").load_snapshot(tmp_path / "missing.json") is None


def test_a_snapshot_from_before_crcs_were_kept_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "snapshot.json"
    path.write_text('{"offset": 9, "producers": {"4242": {"epoch": 2, "batches": [[0, 2, 6, 8, 1000]]}}}')
    state = ProducerStateManager("t-0")
    assert state.load_snapshot(path) == 9
    assert list(state.producers[PID].batches) == [BatchMetadata(0, 2, 6, 8, 1000, None)]
    assert duplicate_of(state, header(0, 3, epoch=2)).first_offset == 6


# --- through the log ---------------------------------------------------------------------------------------


def test_a_duplicate_is_answered_with_its_original_offsets_and_not_appended(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    log.append(build_batch([b"plain"]))
    first = log.append(idempotent(0, 3))
    second = log.append(idempotent(3, 2))
    assert (first.base_offset, first.last_offset, second.base_offset, second.last_offset) == (1, 3, 4, 5)
    assert log.append(idempotent(0, 3)) == AppendResult(1, 3, -1, 0, True)
    assert log.append(idempotent(3, 2)) == AppendResult(4, 5, -1, 0, True)
    assert log.log_end_offset == 6
    assert log.append(idempotent(5, 1)).base_offset == 6
    assert values(log)[1:] == [f"p4242-e0-s{n}".encode() for n in range(6)]
    log.close()


def test_gaps_fences_and_bad_first_sequences_are_rejected_without_writing(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    with pytest.raises(OutOfOrderSequenceError, match="not 0"):
        log.append(idempotent(3))
    log.append(idempotent(0, 2, epoch=1))
    with pytest.raises(OutOfOrderSequenceError, match="sent sequence 3 but 2 was expected"):
        log.append(idempotent(3, epoch=1))
    with pytest.raises(InvalidProducerEpochError, match="older than the current epoch 1"):
        log.append(idempotent(2, epoch=0))
    with pytest.raises(OutOfOrderSequenceError, match="new epoch must start at 0"):
        log.append(idempotent(2, epoch=2))
    assert log.log_end_offset == 2
    assert log.append(idempotent(0, epoch=2)).base_offset == 2
    with pytest.raises(InvalidProducerEpochError):
        log.append(idempotent(1, epoch=1))  # the old epoch is fenced now
    log.close()


def test_several_batches_of_one_producer_in_one_request(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    result = log.append(idempotent(0, 2) + idempotent(2, 3) + idempotent(0, 1, pid=9))
    assert result == AppendResult(0, 5, -1, 6, False)
    with pytest.raises(OutOfOrderSequenceError, match="sent sequence 8 but 7 was expected"):
        log.append(idempotent(5, 2) + idempotent(8, 1))
    assert log.log_end_offset == 6
    with pytest.raises(OutOfOrderSequenceError, match="mixes retried batches with new ones"):
        log.append(idempotent(2, 3) + idempotent(5, 1))
    assert log.log_end_offset == 6
    assert log.append(idempotent(5, 1)).base_offset == 6
    log.close()


@pytest.mark.parametrize("clean", [True, False], ids=["clean restart (snapshot)", "unclean restart (scan)"])
def test_producer_state_survives_a_restart(tmp_path: Path, clean: bool) -> None:
    log = open_log(tmp_path)
    log.append(idempotent(0, 2, pid=1))
    log.append(idempotent(0, 3, pid=2, epoch=5))
    log.append(idempotent(2, 2, pid=1))
    if clean:
        log.close()
        assert (log.directory / PRODUCER_SNAPSHOT).exists()
        reopened = open_log(tmp_path)
    else:
        abandon(log)  # a crash: no close, no snapshot; the page cache keeps the data
        reopened = open_log(tmp_path, clean_shutdown=False)
    assert not (reopened.directory / PRODUCER_SNAPSHOT).exists()  # used once, then gone
    assert reopened.append(idempotent(2, 2, pid=1)) == AppendResult(5, 6, -1, 0, True)
    assert reopened.append(idempotent(0, 3, pid=2, epoch=5)) == AppendResult(2, 4, -1, 0, True)
    with pytest.raises(InvalidProducerEpochError):
        reopened.append(idempotent(3, pid=2, epoch=4))
    with pytest.raises(OutOfOrderSequenceError):
        reopened.append(idempotent(5, pid=1))
    assert reopened.append(idempotent(4, pid=1)).base_offset == 7
    reopened.close()


def test_a_stale_snapshot_is_not_trusted_after_an_unclean_stop(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    log.append(idempotent(0, 2))
    log.close()
    log = open_log(tmp_path)  # consumes the snapshot
    log.append(idempotent(2, 2))
    log.flush()
    # Plant a snapshot that only knows the first batch, then "crash": recovery must scan instead.
    state = ProducerStateManager("t-0")
    state.update(header(0, 2))
    state.write_snapshot(log.directory / PRODUCER_SNAPSHOT, 2)
    abandon(log)
    reopened = open_log(tmp_path, clean_shutdown=False)
    assert reopened.append(idempotent(2, 2)).duplicate
    reopened.close()


@pytest.mark.parametrize("clean", [True, False], ids=["clean restart (snapshot)", "unclean restart (scan)"])
def test_a_stranger_claiming_the_sequence_cannot_make_a_written_batch_vanish(
    tmp_path: Path, clean: bool
) -> None:
    """Issue 9 item 14: the broker used to answer another batch with the same producer id, epoch and
    sequences as a duplicate, with the first batch's offsets, so its records were never written."""
    log = open_log(tmp_path)
    mine = idempotent(0, 2)
    stranger = build_batch(
        stamped([b"stranger-1", b"stranger-2"]), producer_id=PID, producer_epoch=0, base_sequence=0
    )
    assert log.append(mine).base_offset == 0
    with pytest.raises(DuplicateSequenceNumberError, match="not that one"):
        log.append(stranger)
    if clean:
        log.close()
        log = open_log(tmp_path)
    else:
        abandon(log)
        log = open_log(tmp_path, clean_shutdown=False)
    with pytest.raises(DuplicateSequenceNumberError):
        log.append(stranger)
    assert log.append(mine) == AppendResult(0, 1, -1, 0, True)  # the real retry is still a duplicate
    assert values(log) == [b"p4242-e0-s0", b"p4242-e0-s1"]
    log.close()


def test_a_log_append_time_retry_is_recognised_after_an_unclean_restart(tmp_path: Path) -> None:
    """The broker stamps LogAppendTime batches and so changes their CRC: replayed from the log, they are
    matched by sequence numbers alone, so a retry is not refused as someone else's batch."""
    config = TopicConfig(segment_bytes=64 * 1024, message_timestamp_type="LogAppendTime")
    log = Log(tmp_path / "t-0", "t", 0, config)
    batch = idempotent(0, 2)
    assert log.append(batch).base_offset == 0
    assert log.append(batch).duplicate  # live: the CRC the producer sent is remembered
    abandon(log)
    log = Log(tmp_path / "t-0", "t", 0, config, clean_shutdown=False)
    assert log.append(batch) == AppendResult(0, 1, -1, 0, True)
    log.close()


def test_truncation_forgets_the_batches_it_removed(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    log.append(idempotent(0, 2))
    log.append(idempotent(2, 2))
    log.truncate_to(2)
    # The retried batch is not a duplicate any more: it was removed, so it is appended again.
    result = log.append(idempotent(2, 2))
    assert (result.base_offset, result.duplicate) == (2, False)
    assert values(log) == [b"p4242-e0-s0", b"p4242-e0-s1", b"p4242-e0-s2", b"p4242-e0-s3"]
    log.close()


def test_non_idempotent_batches_are_never_deduplicated(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    plain = build_batch([b"a", b"b"])
    assert log.append(plain).base_offset == 0
    assert log.append(plain).base_offset == 2
    assert log.producer_state.producers == {}
    log.close()


def test_a_retry_of_a_batch_the_cleaner_rewrote_is_recognised_after_an_unclean_restart(
    tmp_path: Path,
) -> None:
    """Compaction re-encodes a batch it drops records from, so its CRC on disk is no longer the one the
    producer sent. Replayed from the log after a crash, the retry of that (written) batch must be
    answered as a duplicate, not refused as someone else's batch: DUPLICATE_SEQUENCE_NUMBER tells the
    producer its records were not written, although they are in the log."""
    from logstore.cleaner import compact_log
    from logstore.records import BatchBuilder

    config = TopicConfig.from_mapping({"cleanup.policy": "compact", "segment.bytes": "2000"})
    log = Log(tmp_path / "t-0", "t", 0, config)
    builder = BatchBuilder(producer_id=PID, producer_epoch=0, base_sequence=0)
    builder.append(b"superseded", key=b"a", timestamp_ms=STAMP)
    builder.append(b"kept", key=b"b", timestamp_ms=STAMP)
    batch = builder.build()
    assert log.append(batch).base_offset == 0
    for i in range(30):  # a later value for key "a", and enough to roll the first segment
        log.append(build_batch([Record(0, STAMP + i, key=b"a", value=b"v%d" % i)]))
    log.roll()
    assert compact_log(log, STAMP + 10_000)
    assert [r.key for r in iter_records(log.read(0, 1 << 20).data)][:1] == [b"b"]  # rewritten
    abandon(log)
    log = Log(tmp_path / "t-0", "t", 0, config, clean_shutdown=False)
    assert log.append(batch) == AppendResult(0, 1, -1, 0, True)
    log.close()
