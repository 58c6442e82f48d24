"""One partition's log on real files: append, read, timestamps, rolling, flushing, truncation, bad input."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from logstore.config import TopicConfig
from logstore.errors import (
    CorruptRecordError,
    InvalidRequestError,
    LogClosedError,
    OffsetOutOfRangeError,
    RecordTooLargeError,
)
from logstore.log import AppendResult, Log
from logstore.records import LOG_APPEND_TIME, Record, build_batch, check_batch, iter_headers, iter_records

TS = 1_700_000_000_000
KIB = 1024


def batch(count: int = 3, *, ts: int = TS, size: int = 20, key: bytes | None = None, **kwargs: Any) -> bytes:
    """A batch of `count` records with timestamps ts, ts+1, ...; values name their position in the batch."""
    records = [Record(0, ts + i, key=key, value=f"v{i}".encode().ljust(size, b".")) for i in range(count)]
    return build_batch(records, **kwargs)


def open_log(directory: Path, clock: Callable[[], int] = lambda: TS, **config: Any) -> Log:
    """A log with small (64 KiB) segments unless told otherwise, so whole files are cheap to compare."""
    config.setdefault("segment_bytes", 64 * KIB)
    return Log(directory / "t-0", "t", 0, TopicConfig(**config), clock_ms=clock)


def offsets(data: bytes) -> list[int]:
    return [record.offset for record in iter_records(data)]


def read_everything(log: Log) -> bytes:
    """The whole log, read the way a consumer does: one segment per read at most."""
    chunks = []
    offset = log.log_start_offset
    while offset < log.log_end_offset:
        data = log.read(offset, 10**9).data
        chunks.append(data)
        offset = list(iter_headers(data))[-1][1].last_offset + 1
    return b"".join(chunks)


def files(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every os.fsync of a segment's .log file, by descriptor, in order (the fsync still happens).

    Index files are fsynced too, but the log is the durable record; counting only its fsyncs keeps the
    figures about group commit readable."""
    calls: list[int] = []
    real = os.fsync

    def counting(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".log"):
            calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    return calls


# --- append ---------------------------------------------------------------------------------------------


def test_append_assigns_dense_offsets_and_reports_them(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    assert (log.log_start_offset, log.log_end_offset) == (0, 0)
    assert log.append(batch(3)) == AppendResult(0, 2, -1, 3, False)
    assert log.append(batch(1)) == AppendResult(3, 3, -1, 1, False)
    assert log.append(batch(5)) == AppendResult(4, 8, -1, 5, False)
    assert log.log_end_offset == 9
    assert offsets(read_everything(log)) == list(range(9))
    log.close()


def test_append_many_batches_in_one_call(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    log.append(batch(2))
    result = log.append(batch(3) + batch(1) + batch(4))
    assert result == AppendResult(2, 9, -1, 8, False)
    data = read_everything(log)
    assert [h.base_offset for _, h in iter_headers(data)] == [0, 2, 5, 6]
    assert offsets(data) == list(range(10))
    per_batch = [2, 3, 1, 4]
    assert [(r.value or b"")[:2] for r in iter_records(data)] == [
        f"v{i}".encode() for n in per_batch for i in range(n)
    ]
    log.close()


def test_appended_bytes_are_the_producers_bytes_with_the_offset_patched(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    log.append(batch(2))
    sent = batch(3, ts=TS + 5)
    log.append(sent)
    stored = log.read(2, 10**6).data
    assert stored[8:] == sent[8:]
    assert int.from_bytes(stored[:8], "big") == 2
    check_batch(stored)
    log.close()


# --- read -------------------------------------------------------------------------------------------------


def test_read_returns_at_least_one_batch_and_otherwise_respects_max_bytes(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    sizes = []
    for count in (10, 1, 1, 1, 1):
        sizes.append(len(batch(count)))
        log.append(batch(count))
    assert log.read(0, 1).data == log.read(0, sizes[0]).data  # larger than max_bytes, still returned
    assert len(log.read(0, 1).data) == sizes[0]
    assert len(log.read(0, sizes[0] + sizes[1] - 1).data) == sizes[0]
    assert len(log.read(0, sizes[0] + sizes[1]).data) == sizes[0] + sizes[1]
    assert len(log.read(10, 3 * sizes[1] + 5).data) == 3 * sizes[1]
    assert len(log.read(0, 10**9).data) == sum(sizes)
    log.close()


def test_read_inside_a_batch_returns_the_whole_batch(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    log.append(batch(4))
    log.append(batch(4))
    for offset in range(4, 8):
        result = log.read(offset, 1)
        assert offsets(result.data) == [4, 5, 6, 7]
        assert (result.high_watermark, result.log_start_offset) == (8, 0)
    log.close()


def test_read_at_the_end_is_empty_and_outside_the_range_raises(tmp_path: Path) -> None:
    log = open_log(tmp_path, segment_bytes=200)
    for _ in range(6):
        log.append(batch(2))
    log.delete_oldest_segments(2)
    start, end = log.log_start_offset, log.log_end_offset
    assert (start, end) == (4, 12)
    empty = log.read(end, 100)
    assert (empty.data, empty.high_watermark, empty.log_start_offset) == (b"", 12, 4)
    for bad in (start - 1, end + 1, -1):
        with pytest.raises(OffsetOutOfRangeError, match="valid offsets are 4 to 12") as caught:
            log.read(bad, 100)
        assert (caught.value.log_start_offset, caught.value.log_end_offset) == (4, 12)
    log.close()


def test_read_across_many_segments_finds_every_offset(tmp_path: Path) -> None:
    log = open_log(tmp_path, segment_bytes=1 * KIB, index_interval_bytes=200)
    for i in range(60):
        log.append(batch(1 + i % 4))
    assert len(log.segments) > 5
    for offset in range(log.log_end_offset):
        first = next(iter(iter_records(log.read(offset, 1).data)))
        assert first.offset <= offset
        assert offset in offsets(log.read(offset, 1).data)
    log.close()


# --- timestamps -----------------------------------------------------------------------------------------


def test_offset_for_timestamp_exact_between_before_and_after(tmp_path: Path) -> None:
    log = open_log(tmp_path, segment_bytes=300, index_interval_bytes=100)
    for i in range(20):  # batch i: offsets 2i, 2i+1 with timestamps TS+100i, TS+100i+1
        log.append(batch(2, ts=TS + 100 * i))
    assert len(log.segments) > 3
    assert log.offset_for_timestamp(TS + 500) == (10, TS + 500)  # exact
    assert log.offset_for_timestamp(TS + 501) == (11, TS + 501)
    assert log.offset_for_timestamp(TS + 502) == (12, TS + 600)  # between: the next one
    assert log.offset_for_timestamp(0) == (0, TS)  # before the first
    assert log.offset_for_timestamp(TS + 1901) == (39, TS + 1901)
    assert log.offset_for_timestamp(TS + 1902) is None  # after the last
    log.close()


def test_offset_for_timestamp_with_out_of_order_timestamps(tmp_path: Path) -> None:
    log = open_log(tmp_path, index_interval_bytes=50)
    log.append(batch(1, ts=TS + 1000))
    for i in range(10):
        log.append(batch(1, ts=TS + i))
    assert log.offset_for_timestamp(TS + 5) == (0, TS + 1000)
    assert log.offset_for_timestamp(TS + 1001) is None
    log.close()


def test_log_append_time_replaces_timestamps_and_keeps_the_crc_valid(tmp_path: Path) -> None:
    log = open_log(tmp_path, message_timestamp_type="LogAppendTime")
    append_time = TS + 123_456
    result = log.append(batch(2, ts=TS) + batch(3, ts=TS + 1), now_ms=append_time)
    assert result == AppendResult(0, 4, append_time, 5, False)
    data = read_everything(log)
    for position, _ in iter_headers(data):
        checked = check_batch(data, position)  # raises on a bad CRC
        assert checked.timestamp_type == LOG_APPEND_TIME
        assert checked.max_timestamp == append_time
    assert [r.timestamp for r in iter_records(data)] == [append_time] * 5
    assert log.offset_for_timestamp(TS + 10) == (0, append_time)
    assert log.offset_for_timestamp(append_time + 1) is None
    log.close()


def test_create_time_topic_reports_no_append_time(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    assert log.append(batch(1), now_ms=TS + 99).log_append_time_ms == -1
    assert [r.timestamp for r in iter_records(read_everything(log))] == [TS]
    log.close()


# --- rolling ----------------------------------------------------------------------------------------------


def test_roll_by_size_keeps_every_segment_within_segment_bytes(tmp_path: Path) -> None:
    log = open_log(tmp_path, segment_bytes=1 * KIB)
    size = len(batch(3))
    for _ in range(40):
        log.append(batch(3))
    per_segment = KIB // size
    assert len(log.segments) == -(-40 // per_segment)
    assert [s.base_offset for s in log.segments] == [3 * per_segment * i for i in range(len(log.segments))]
    assert all(s.size <= KIB for s in log.segments)
    for segment in log.segments[:-1]:
        assert os.path.getsize(segment.log_path) == segment.size  # sealed segments are trimmed
    log.close()


def test_roll_by_segment_ms_with_an_injected_clock(tmp_path: Path) -> None:
    now = [TS]
    log = open_log(tmp_path, clock=lambda: now[0], segment_ms=60_000)
    log.append(batch(1))
    now[0] = TS + 59_999
    log.append(batch(1))
    assert len(log.segments) == 1
    now[0] = TS + 60_000
    log.append(batch(1))
    assert [s.base_offset for s in log.segments] == [0, 2]
    log.append(batch(1), now_ms=TS + 119_999)
    assert len(log.segments) == 2
    log.append(batch(1), now_ms=TS + 120_000)
    assert [s.base_offset for s in log.segments] == [0, 2, 4]
    log.close()


def test_roll_when_the_index_is_full(tmp_path: Path) -> None:
    # 32 index bytes: 4 offset entries, 2 time index entries; an entry for every batch after the first.
    log = open_log(tmp_path, segment_index_bytes=32, index_interval_bytes=0)
    for i in range(9):
        log.append(batch(1, ts=TS + i))
    assert [s.base_offset for s in log.segments] == [0, 3, 6]
    assert all(s.offset_index.entries <= 4 and s.time_index.entries <= 2 for s in log.segments)
    assert offsets(read_everything(log)) == list(range(9))
    assert log.offset_for_timestamp(TS + 4) == (4, TS + 4)
    log.close()


def test_explicit_roll_and_its_no_op_on_an_empty_segment(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    log.roll()
    assert len(log.segments) == 1
    log.append(batch(2))
    log.roll()
    log.roll()
    assert [s.base_offset for s in log.segments] == [0, 2]
    log.append(batch(1))
    assert offsets(read_everything(log)) == [0, 1, 2]
    log.close()


# --- flushing ---------------------------------------------------------------------------------------------


class WaiterCountingCondition(threading.Condition):
    """A Condition that signals once `expected` distinct threads are blocked in wait()."""

    def __init__(self, expected: int) -> None:
        super().__init__()
        self.expected = expected
        self.waiters: set[int] = set()
        self.all_waiting = threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        self.waiters.add(threading.get_ident())
        if len(self.waiters) >= self.expected:
            self.all_waiting.set()
        return super().wait(timeout)


def test_concurrent_flushes_share_one_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = open_log(tmp_path)
    log.append(batch(2))
    calls: list[int] = []
    first_entered, release_first = threading.Event(), threading.Event()
    real_fsync = os.fsync

    def blocking_fsync(fd: int) -> None:
        if not os.readlink(f"/proc/self/fd/{fd}").endswith(".log"):
            real_fsync(fd)  # index files: not what group commit is about
            return
        calls.append(fd)
        if len(calls) == 1:  # the first fsync holds on until every other caller has queued up
            first_entered.set()
            assert release_first.wait(30)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", blocking_fsync)
    waiters = 4
    condition = WaiterCountingCondition(waiters)
    log._flush_cond = condition
    covered: dict[str, bool] = {}

    def flush(name: str) -> None:
        target = log.log_end_offset
        log.flush()
        covered[name] = log.flushed_offset >= target

    leader = threading.Thread(target=flush, args=("leader",))
    leader.start()
    assert first_entered.wait(30)
    log.append(batch(3))  # appended while the leader's fsync is in progress
    followers = [threading.Thread(target=flush, args=(f"f{i}",)) for i in range(waiters)]
    for thread in followers:
        thread.start()
    assert condition.all_waiting.wait(30)
    release_first.set()
    for thread in [leader, *followers]:
        thread.join(30)
        assert not thread.is_alive()
    assert covered == {"leader": True, **{f"f{i}": True for i in range(waiters)}}
    assert log.flushed_offset == 5
    assert len(calls) == 2  # five callers, two fsyncs: the four that queued shared one
    log.close()


def test_concurrent_appenders_waiting_for_durability(tmp_path: Path) -> None:
    """acks=all from many threads: each flush covers its own append, offsets stay dense, order per thread."""
    log = open_log(tmp_path, segment_bytes=4 * KIB)
    failures: list[str] = []

    def produce(thread: int) -> None:
        for n in range(40):
            result = log.append(batch(1 + n % 3, key=f"{thread}:{n}".encode()))
            log.flush(result.last_offset + 1)
            if log.flushed_offset <= result.last_offset:
                failures.append(
                    f"thread {thread} append {n}: flushed {log.flushed_offset} <= {result.last_offset}"
                )

    threads = [threading.Thread(target=produce, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    records = list(iter_records(read_everything(log)))
    assert [r.offset for r in records] == list(range(log.log_end_offset))
    for writer in range(4):
        keys = [r.key for r in records if r.key is not None]
        sequence = [int(key.split(b":")[1]) for key in keys if key.startswith(f"{writer}:".encode())]
        assert sequence == sorted(sequence) and set(sequence) == set(range(40))
    log.close()


class PauseAfterRelease:
    """A stand-in for the log's fsync lock that, the first time the thread named `paused` releases it, holds
    that thread right after the release until `resume` is set: the moment another thread can slip in."""

    def __init__(self, paused: str) -> None:
        self._lock = threading.Lock()
        self.paused = paused
        self.released = threading.Event()
        self.resume = threading.Event()

    def __enter__(self) -> PauseAfterRelease:
        self._lock.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()
        if threading.current_thread().name == self.paused and not self.released.is_set():
            self.released.set()
            assert self.resume.wait(30)


def test_truncation_during_a_flush_never_leaves_flushed_offset_past_the_end(
    tmp_path: Path, fsyncs: list[int]
) -> None:
    log = open_log(tmp_path)
    log.append(batch(2))
    log.append(batch(2))
    lock = PauseAfterRelease(paused="flusher")
    log._fsync_lock = lock  # type: ignore[assignment]  # a stand-in that pauses after release
    flusher = threading.Thread(target=log.flush, name="flusher")
    flusher.start()
    assert lock.released.wait(30)  # the fsync of offsets 0..3 is done; the flusher is between two steps
    log.truncate_to(2)
    lock.resume.set()
    flusher.join(30)
    assert log.flushed_offset <= log.log_end_offset == 2
    log.append(batch(2))  # offsets 2 and 3 again, new data this time
    fsyncs.clear()
    log.flush(up_to_offset=4)
    assert len(fsyncs) == 1  # the new data really is fsynced, not taken for flushed already
    assert log.flushed_offset == 4
    log.close()


def test_flush_skips_fsync_when_already_durable(tmp_path: Path, fsyncs: list[int]) -> None:
    log = open_log(tmp_path)
    log.append(batch(2))
    log.flush()
    assert (len(fsyncs), log.flushed_offset) == (1, 2)
    log.flush()
    log.flush(up_to_offset=1)
    assert len(fsyncs) == 1
    log.append(batch(1))
    log.flush(up_to_offset=2)
    assert len(fsyncs) == 1
    log.flush(up_to_offset=3)
    assert (len(fsyncs), log.flushed_offset) == (2, 3)
    log.close()


def test_each_flush_that_fsyncs_tells_on_fsync_its_time(tmp_path: Path, fsyncs: list[int]) -> None:
    """The broker's fsync-latency metric: one report per flush that fsynced, none for one that did not."""
    reports: list[float] = []
    log = Log(tmp_path / "t-0", "t", 0, TopicConfig(), clock_ms=lambda: TS, on_fsync=reports.append)
    log.append(batch(2))
    log.flush()
    log.flush()  # already durable: no fsync, no report
    assert len(fsyncs) == len(reports) == 1 and reports[0] >= 0
    log.close()


def test_flush_covers_rolled_segments_that_were_never_flushed(tmp_path: Path, fsyncs: list[int]) -> None:
    log = open_log(tmp_path, segment_bytes=300)
    for _ in range(5):
        log.append(batch(2))
    assert len(log.segments) == 3
    assert log.flush_due(TS)  # rolled segments are waiting for their fsync
    log.flush()
    assert len(fsyncs) == 3
    assert log.flushed_offset == 10
    assert not log.flush_due(TS)
    log.close()


def test_flush_interval_messages_asks_the_caller_to_flush_without_fsyncing_inline(
    tmp_path: Path, fsyncs: list[int]
) -> None:
    log = open_log(tmp_path, flush_interval_messages=5)
    assert not log.append(batch(2)).flush_due
    assert not log.append(batch(2)).flush_due
    assert not log.flush_due(TS)
    result = log.append(batch(2))
    assert result.flush_due and log.flush_due(TS)
    assert (len(fsyncs), log.flushed_offset) == (0, 0)  # append never fsyncs on the caller's path
    log.flush(result.last_offset + 1)
    assert (len(fsyncs), log.flushed_offset) == (1, 6)
    assert not log.append(batch(4)).flush_due
    assert log.append(batch(1)).flush_due
    log.close()


def test_flush_due_by_flush_interval_ms(tmp_path: Path) -> None:
    log = open_log(tmp_path, flush_interval_ms=1000)
    assert not log.flush_due(TS + 10**6)
    log.append(batch(1), now_ms=TS)
    assert not log.flush_due(TS + 999)
    assert log.flush_due(TS + 1000)
    log.flush()
    assert not log.flush_due(TS + 5000)
    log.close()


# --- truncation -------------------------------------------------------------------------------------------


def test_truncate_to_a_batch_boundary_and_append_again(tmp_path: Path) -> None:
    log = open_log(tmp_path, segment_bytes=400, index_interval_bytes=50)
    for _ in range(12):
        log.append(batch(2))
    segments = len(log.segments)
    log.truncate_to(9 * 2)
    assert log.log_end_offset == 18
    assert len(log.segments) < segments
    assert offsets(read_everything(log)) == list(range(18))
    with pytest.raises(OffsetOutOfRangeError):
        log.read(19, 100)
    assert log.append(batch(1)).base_offset == 18
    assert offsets(read_everything(log)) == list(range(19))
    log.truncate_to(0)
    assert (log.log_start_offset, log.log_end_offset) == (0, 0)
    assert log.append(batch(1)).base_offset == 0
    log.truncate_to(100)  # past the end: nothing to do
    assert log.log_end_offset == 1
    log.close()


def test_truncate_to_an_offset_inside_a_batch_drops_that_whole_batch(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    log.append(batch(10))
    log.append(batch(10))
    log.truncate_to(15)
    # The batch holding offsets 10..19 holds an offset >= 15, so it goes; a batch is kept or dropped whole.
    assert log.log_end_offset == 10
    assert offsets(read_everything(log)) == list(range(10))
    assert log.append(batch(1)).base_offset == 10
    log.close()


def test_truncate_lowers_flushed_offset(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    log.append(batch(4))
    log.append(batch(4))
    log.flush()
    log.truncate_to(4)
    assert log.flushed_offset == 4
    log.close()


# --- bad input --------------------------------------------------------------------------------------------


def _corrupt_crc(data: bytes) -> bytes:
    raw = bytearray(data)
    raw[-3] ^= 0x40
    return bytes(raw)


def _wrong_magic(data: bytes) -> bytes:
    raw = bytearray(data)
    raw[16] = 1
    return bytes(raw)


BAD_INPUTS: list[tuple[str, Callable[[], bytes], type[Exception], str, dict[str, Any]]] = [
    ("empty", lambda: b"", CorruptRecordError, "no record batch", {}),
    ("garbage", lambda: os.urandom(7) + b"\xff" * 100, CorruptRecordError, "batch at byte 0", {}),
    ("wrong crc", lambda: _corrupt_crc(batch(3)), CorruptRecordError, "CRC mismatch", {}),
    ("truncated", lambda: batch(3)[:-5], CorruptRecordError, "truncated", {}),
    ("short header", lambda: batch(3)[:40], CorruptRecordError, "header needs 61", {}),
    ("wrong magic", lambda: _wrong_magic(batch(3)), CorruptRecordError, "magic byte is 1", {}),
    (
        "oversize",
        lambda: batch(1, size=2000),
        RecordTooLargeError,
        "larger than the limit of 1000",
        {"max_message_bytes": 1000},
    ),
    (
        "transactional",
        lambda: batch(1, producer_id=7, producer_epoch=0, base_sequence=0, is_transactional=True),
        InvalidRequestError,
        "transactional",
        {},
    ),
    (
        "keyless in compacted",
        lambda: batch(2),
        CorruptRecordError,
        "needs a key",
        {"cleanup_policy": "compact"},
    ),
    ("good then bad", lambda: batch(2, key=b"k") + _corrupt_crc(batch(2)), CorruptRecordError, "CRC", {}),
    ("good then tail", lambda: batch(2, key=b"k") + b"\x00" * 10, CorruptRecordError, "header needs 61", {}),
]


@pytest.mark.parametrize(
    ("data", "error", "message", "config"),
    [case[1:] for case in BAD_INPUTS],
    ids=[case[0] for case in BAD_INPUTS],
)
def test_bad_input_raises_its_typed_error_and_writes_nothing(
    tmp_path: Path,
    data: Callable[[], bytes],
    error: type[Exception],
    message: str,
    config: dict[str, Any],
) -> None:
    log = open_log(tmp_path, **config)
    log.append(batch(2, key=b"k"))
    before = files(log.directory)
    with pytest.raises(error, match=message):
        log.append(data())
    assert log.log_end_offset == 2
    assert files(log.directory) == before
    assert log.append(batch(1, key=b"k")) == AppendResult(2, 2, -1, 1, False)
    assert offsets(read_everything(log)) == [0, 1, 2]
    log.close()


# --- life cycle ---------------------------------------------------------------------------------------------


def test_clean_reopen_keeps_everything(tmp_path: Path) -> None:
    log = open_log(tmp_path, segment_bytes=500, index_interval_bytes=100)
    for i in range(20):
        log.append(batch(1 + i % 3, ts=TS + i))
    data = read_everything(log)
    end, segments = log.log_end_offset, len(log.segments)
    log.close()
    assert log.closed
    reopened = open_log(tmp_path, segment_bytes=500, index_interval_bytes=100)
    assert (reopened.log_end_offset, len(reopened.segments)) == (end, segments)
    assert reopened.flushed_offset == end
    assert read_everything(reopened) == data
    assert reopened.offset_for_timestamp(TS + 7) == log_offset_of_ts(data, TS + 7)
    assert reopened.append(batch(1)).base_offset == end
    reopened.close()


def log_offset_of_ts(data: bytes, ts: int) -> tuple[int, int]:
    record = next(r for r in iter_records(data) if r.timestamp >= ts)
    return record.offset, record.timestamp


def test_a_closed_log_refuses_work(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    log.append(batch(1))
    log.close()
    log.close()  # twice is fine
    for call in (lambda: log.append(batch(1)), lambda: log.read(0, 10), log.roll, lambda: log.truncate_to(0)):
        with pytest.raises(LogClosedError, match="closed"):
            call()


def test_delete_removes_the_partition_directory(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    log.append(batch(1))
    log.delete()
    assert not (tmp_path / "t-0").exists()
