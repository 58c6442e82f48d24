"""Crash recovery: damage a data directory the ways a crash (or a disk) can, reopen it, and check that each
partition comes back as exactly the longest valid prefix of what was written, with indexes that agree with
a full scan and appends that carry on at the right offset. Ends with real SIGKILLs of a writer process."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from logstore.log import Log
from logstore.manager import CLEAN_SHUTDOWN_MARKER, RECOVERY_CHECKPOINT, LogManager, TopicInfo
from logstore.records import HEADER_SIZE, Record, build_batch, check_batch, iter_headers, iter_records
from logstore.segment import LogSegment

TS = 1_700_000_000_000
KIB = 1024
TOPIC_CONFIG = {"segment.bytes": 16 * KIB, "index.interval.bytes": 512}
CRC_COVERED_FROM = 21  # attributes onwards; the length (8..11), magic (16) and CRC (17..20) are checked too


@dataclass(frozen=True)
class StoredBatch:
    """A batch as the log stored it: its bytes (offsets assigned) and where it lives."""

    data: bytes
    base_offset: int
    last_offset: int
    segment_base: int
    position: int


def random_batch(rng: random.Random, timestamp: int) -> bytes:
    count = rng.randint(1, 12)
    records = [
        Record(
            0,
            timestamp + rng.randint(-5000, 5000),  # out of order across batches too
            key=rng.choice([None, rng.randbytes(rng.randint(0, 8))]),
            value=rng.randbytes(rng.randint(0, 300)),
        )
        for _ in range(count)
    ]
    return build_batch(records)


def open_manager(data_dir: Path) -> LogManager:
    return LogManager(data_dir, background=False, clock_ms=lambda: TS)


def stored_batches(log: Log) -> list[StoredBatch]:
    """Every batch in the log with its segment and position, from a full scan of the segment files."""
    result = []
    for segment in log.segments:
        raw = segment.read_all()
        for position, header in segment.batches():
            data = raw[position : position + header.size]
            result.append(
                StoredBatch(data, header.base_offset, header.last_offset, segment.base_offset, position)
            )
    return result


def write_partition(data_dir: Path, seed: int, batches: int = 80) -> tuple[LogManager, list[StoredBatch]]:
    """A partition of several segments, the first `batches // 2` flushed and checkpointed, the rest not."""
    rng = random.Random(seed)
    mgr = open_manager(data_dir)
    mgr.create_topic("t", 1, TOPIC_CONFIG)
    log = mgr.log("t", 0)
    for i in range(batches):
        log.append(random_batch(rng, TS + 1000 * i))
        if i == batches // 2:
            log.flush()
            mgr.write_checkpoints()
    assert len(log.segments) >= 4
    return mgr, stored_batches(log)


def crash(mgr: LogManager) -> None:
    """Drop the manager the way kill -9 would: nothing trimmed, no checkpoint, no marker, no snapshot.

    Only the process's own handles are released (maps, descriptors, the data-dir lock), so the files are
    left exactly as a crash leaves them in the page cache: preallocated active segment and indexes.
    """
    for log in mgr.all_logs():
        for segment in log.segments:
            _release(segment)
    mgr._release_data_dir()


def _release(segment: LogSegment) -> None:
    if segment._map is not None:
        segment._map.close()
    os.close(segment._fd)
    segment.offset_index._release()
    segment.time_index._release()


def assert_recovered(mgr: LogManager, expected: list[StoredBatch]) -> Log:
    """The partition holds exactly `expected`; every offset reads its batch; indexes match; appends go on."""
    log = mgr.log("t", 0)
    end = expected[-1].last_offset + 1 if expected else 0
    assert (log.log_start_offset, log.log_end_offset) == (0, end)
    assert [b.data for b in stored_batches(log)] == [b.data for b in expected]
    for batch in expected:
        for offset in range(batch.base_offset, batch.last_offset + 1):
            assert log.read(offset, 1).data == batch.data, offset
    for segment in log.segments:
        raw = segment.read_all()
        for n in range(segment.offset_index.entries):
            offset, position = segment.offset_index.entry(n)
            assert check_batch(raw, position).base_offset == offset
        assert segment.max_timestamp == max(
            (h.max_timestamp for _, h in segment.batches()), default=segment.max_timestamp
        )
    records = [r for b in expected for r in iter_records(b.data)]
    for record in records[:: max(1, len(records) // 40)]:
        first = next(r for r in records if r.timestamp >= record.timestamp)
        assert log.offset_for_timestamp(record.timestamp) == (first.offset, first.timestamp)
    result = log.append(build_batch([b"after recovery"]))
    assert result.base_offset == end
    assert [r.value for r in iter_records(log.read(end, 100).data)] == [b"after recovery"]
    return log


def prefix_before(expected: list[StoredBatch], segment_base: int, byte: int) -> list[StoredBatch]:
    """The batches that lie wholly before `byte` of the segment at `segment_base` (and all earlier ones)."""
    return [
        b
        for b in expected
        if b.segment_base < segment_base
        or (b.segment_base == segment_base and b.position + len(b.data) <= byte)
    ]


def segment_path(data_dir: Path, base: int, suffix: str = ".log") -> Path:
    return data_dir / "t-0" / f"{base:020d}{suffix}"


# --- torn writes and corruption in the active segment --------------------------------------------------


@pytest.mark.parametrize("seed", range(12))
def test_cut_at_a_random_byte_of_the_active_segment(tmp_path: Path, seed: int) -> None:
    mgr, expected = write_partition(tmp_path, seed)
    crash(mgr)
    rng = random.Random(seed)
    active = expected[-1].segment_base
    in_active = [b for b in expected if b.segment_base == active]
    victim = rng.choice(in_active)
    # Cut inside the header (half the time) or anywhere in the victim batch.
    cut = victim.position + rng.randrange(HEADER_SIZE if seed % 2 else len(victim.data))
    os.truncate(segment_path(tmp_path, active), cut)
    mgr = open_manager(tmp_path)
    assert not mgr.clean_shutdown
    survivors = prefix_before(expected, active, cut)
    assert survivors[-1].last_offset + 1 == victim.base_offset
    # Recovery counts the non-zero bytes it cut off: at most what was left of the torn batch.
    assert mgr.recovery[0].truncated_bytes <= cut - victim.position
    assert_recovered(mgr, survivors)
    mgr.close()


@pytest.mark.parametrize("seed", range(12))
def test_random_bit_flip_in_the_active_segment(tmp_path: Path, seed: int) -> None:
    mgr, expected = write_partition(tmp_path, seed)
    crash(mgr)
    rng = random.Random(seed)
    active = expected[-1].segment_base
    victim = rng.choice([b for b in expected if b.segment_base == active])
    # Any byte the batch checks cover: the length field, magic, CRC, and everything the CRC covers.
    covered = [*range(8, 12), *range(16, len(victim.data))]
    byte = victim.position + rng.choice(covered)
    path = segment_path(tmp_path, active)
    with open(path, "r+b") as f:
        f.seek(byte)
        value = f.read(1)[0]
        f.seek(byte)
        f.write(bytes([value ^ (1 << rng.randrange(8))]))
    mgr = open_manager(tmp_path)
    assert_recovered(mgr, [b for b in expected if b.base_offset < victim.base_offset])
    mgr.close()


def test_bit_flip_in_the_base_offset_that_goes_backwards_cuts_there(tmp_path: Path) -> None:
    """The CRC does not cover the base offset, but offsets must increase: a flip that lowers one is caught."""
    mgr, expected = write_partition(tmp_path, seed=99)
    crash(mgr)
    active = expected[-1].segment_base
    victim = expected[-1]
    path = segment_path(tmp_path, active)
    with open(path, "r+b") as f:
        f.seek(victim.position)
        f.write((victim.base_offset - 1).to_bytes(8, "big"))
    mgr = open_manager(tmp_path)
    assert_recovered(mgr, [b for b in expected if b.base_offset < victim.base_offset])
    mgr.close()


def test_garbage_after_the_last_batch_is_cut_and_nothing_is_lost(tmp_path: Path) -> None:
    mgr, expected = write_partition(tmp_path, seed=5)
    crash(mgr)
    active = expected[-1].segment_base
    end = expected[-1].position + len(expected[-1].data)
    with open(segment_path(tmp_path, active), "r+b") as f:
        f.seek(end + 100)
        f.write(b"\xab" * 50)
    mgr = open_manager(tmp_path)
    assert mgr.recovery[0].truncated_bytes == 150
    assert_recovered(mgr, expected)
    mgr.close()


def test_a_torn_tail_in_a_closed_segment_after_the_checkpoint_drops_what_follows(tmp_path: Path) -> None:
    mgr, expected = write_partition(tmp_path, seed=3)
    checkpoint = int((tmp_path / "t-0" / RECOVERY_CHECKPOINT).read_text())
    crash(mgr)
    bases = sorted({b.segment_base for b in expected})
    closed_after_checkpoint = [base for base in bases[:-1] if base >= checkpoint]
    assert closed_after_checkpoint
    base = closed_after_checkpoint[0]
    last = [b for b in expected if b.segment_base == base][-1]
    os.truncate(segment_path(tmp_path, base), last.position + 10)
    mgr = open_manager(tmp_path)
    assert not segment_path(tmp_path, bases[-1]).exists()
    assert_recovered(mgr, [b for b in expected if b.base_offset < last.base_offset])
    mgr.close()


@pytest.mark.parametrize("damage", ["zeroed", "cut at the boundary"])
def test_a_lost_last_batch_of_a_closed_segment_after_the_checkpoint_drops_what_follows(
    tmp_path: Path, damage: str
) -> None:
    """A crash can persist a file's length but not its data (a zero tail), or lose a whole batch at its
    boundary; either way that segment no longer reaches the next one, and a gap is not a prefix."""
    mgr, expected = write_partition(tmp_path, seed=4)
    checkpoint = int((tmp_path / "t-0" / RECOVERY_CHECKPOINT).read_text())
    crash(mgr)
    bases = sorted({b.segment_base for b in expected})
    base = next(base for base in bases[:-1] if base >= checkpoint)
    last = [b for b in expected if b.segment_base == base][-1]
    path = segment_path(tmp_path, base)
    if damage == "zeroed":
        with open(path, "r+b") as f:
            f.seek(last.position)
            f.write(bytes(len(last.data)))
    else:
        os.truncate(path, last.position)
    mgr = open_manager(tmp_path)
    assert mgr.recovery[0].segments_dropped == len([b for b in bases if b > base])
    assert_recovered(mgr, [b for b in expected if b.base_offset < last.base_offset])
    mgr.close()


# --- indexes, markers and checkpoints --------------------------------------------------------------------


@pytest.mark.parametrize("clean", [True, False], ids=["clean", "unclean"])
@pytest.mark.parametrize("suffix", [".index", ".timeindex"])
def test_deleted_index_files_are_rebuilt(tmp_path: Path, clean: bool, suffix: str) -> None:
    mgr, expected = write_partition(tmp_path, seed=11)
    if clean:
        mgr.close()
    else:
        crash(mgr)
    for path in (tmp_path / "t-0").glob(f"*{suffix}"):
        path.unlink()
    mgr = open_manager(tmp_path)
    assert mgr.clean_shutdown is clean
    log = assert_recovered(mgr, expected)
    for segment in log.segments[:-1]:
        assert segment.offset_index.entries > 0
        assert segment.time_index.entries > 0
    mgr.close()


@pytest.mark.parametrize("clean", [True, False], ids=["clean", "unclean"])
def test_zeroed_index_tails_are_harmless(tmp_path: Path, clean: bool) -> None:
    mgr, expected = write_partition(tmp_path, seed=12)
    if clean:
        mgr.close()
    else:
        crash(mgr)
    rng = random.Random(12)
    for path in (tmp_path / "t-0").glob("*index"):
        size = path.stat().st_size
        zeroed = rng.randint(0, size)
        with open(path, "r+b") as f:
            f.seek(size - zeroed)
            f.write(bytes(zeroed))
    mgr = open_manager(tmp_path)
    assert_recovered(mgr, expected)
    mgr.close()


def test_an_index_file_of_impossible_size_is_rebuilt(tmp_path: Path) -> None:
    mgr, expected = write_partition(tmp_path, seed=13)
    mgr.close()
    first = segment_path(tmp_path, expected[0].segment_base, ".index")
    with open(first, "ab") as f:
        f.write(b"\x01\x02\x03")  # no longer a whole number of 8-byte entries
    with open(segment_path(tmp_path, expected[0].segment_base, ".timeindex"), "ab") as f:
        f.write(b"\x01")
    mgr = open_manager(tmp_path)
    assert_recovered(mgr, expected)
    mgr.close()


def test_missing_clean_shutdown_marker_means_recovery_and_nothing_lost(tmp_path: Path) -> None:
    mgr, expected = write_partition(tmp_path, seed=21)
    mgr.close()
    (tmp_path / CLEAN_SHUTDOWN_MARKER).unlink()
    mgr = open_manager(tmp_path)
    assert not mgr.clean_shutdown
    assert mgr.recovery[0].segments_recovered >= 1
    assert_recovered(mgr, expected)
    mgr.close()


@pytest.mark.parametrize("garbage", [b"", b"not a number\n", b"-5\n", b"\x00\xff\x13"])
def test_garbage_recovery_checkpoint_means_a_full_scan(tmp_path: Path, garbage: bytes) -> None:
    mgr, expected = write_partition(tmp_path, seed=22)
    crash(mgr)
    (tmp_path / "t-0" / RECOVERY_CHECKPOINT).write_bytes(garbage)
    first = segment_path(tmp_path, expected[0].segment_base)
    with open(first, "r+b") as f:  # damage the very first segment: only a full scan can notice
        f.seek(expected[1].position + 30)
        f.write(b"\xff\xff")
    mgr = open_manager(tmp_path)
    assert mgr.recovery[0].segments_recovered == 1
    assert mgr.recovery[0].segments_dropped == len({b.segment_base for b in expected}) - 1
    assert_recovered(mgr, expected[:1])
    mgr.close()


class Killed(BaseException):
    """Stands for the process dying at this point."""


def test_a_start_up_cut_short_after_a_clean_stop_is_recovered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opening a partition changes its files (the active segment grows back to its preallocated size), so
    a crash half-way through start-up must not leave the clean-shutdown marker vouching for them."""
    rng = random.Random(41)
    mgr = open_manager(tmp_path)
    mgr.create_topic("t", 2, TOPIC_CONFIG)
    for i in range(30):
        mgr.log("t", i % 2).append(random_batch(rng, TS + 1000 * i))
    expected = stored_batches(mgr.log("t", 0))
    other = stored_batches(mgr.log("t", 1))
    mgr.close()
    opened: list[Log] = []
    real_open = LogManager._open_log

    def open_then_die(self: LogManager, info: TopicInfo, partition: int) -> Log:
        if partition == 1:
            raise Killed
        log = real_open(self, info, partition)
        opened.append(log)
        return log

    monkeypatch.setattr(LogManager, "_open_log", open_then_die)
    with pytest.raises(Killed):
        open_manager(tmp_path)
    monkeypatch.undo()
    for log in opened:
        for segment in log.segments:
            _release(segment)
    mgr = open_manager(tmp_path)
    assert [b.data for b in stored_batches(mgr.log("t", 1))] == [b.data for b in other]
    assert_recovered(mgr, expected)
    mgr.close()


def test_recovery_is_repeatable(tmp_path: Path) -> None:
    """A crash right after a recovery (before any clean stop) recovers to the same state."""
    mgr, expected = write_partition(tmp_path, seed=31)
    crash(mgr)
    active = expected[-1].segment_base
    cut = expected[-3].position + 7
    os.truncate(segment_path(tmp_path, active), cut)
    mgr = open_manager(tmp_path)
    crash(mgr)
    mgr = open_manager(tmp_path)
    assert mgr.recovery[0].truncated_bytes == 0
    assert_recovered(mgr, expected[:-3])
    mgr.close()


# --- a real writer process, killed with SIGKILL -----------------------------------------------------------

WRITER = Path(__file__).with_name("crash_writer.py")


def test_sigkill_during_flushed_appends_keeps_every_flushed_batch(tmp_path: Path) -> None:
    rng = random.Random(2024)
    data_dir = tmp_path / "data"
    reported = -1
    for _ in range(4):
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        writer = subprocess.Popen(
            [sys.executable, str(WRITER), str(data_dir)],
            stdout=subprocess.PIPE,
            env=env,
        )
        assert writer.stdout is not None
        try:
            for _ in range(rng.randint(5, 200)):  # kill it after a random number of flushed batches
                line = writer.stdout.readline()
                assert line, f"the writer stopped early (exit code {writer.poll()})"
                reported = int(line)
        finally:
            writer.send_signal(signal.SIGKILL)
            writer.wait()
            writer.stdout.close()
        assert writer.returncode == -signal.SIGKILL

        mgr = open_manager(data_dir)
        log = mgr.log("crash", 0)
        assert log.log_end_offset > reported  # every batch reported flushed is there
        expected_offset = 0
        for segment in log.segments:
            raw = segment.read_all()
            for position, header in iter_headers(raw):
                check_batch(raw, position)
                assert header.base_offset == expected_offset  # dense, no gap
                expected_offset = header.last_offset + 1
            for record in iter_records(raw):
                assert record.value == crash_value(record.offset)
        assert expected_offset == log.log_end_offset  # no partial batch left over either
        assert log.append(build_batch([crash_value(expected_offset)])).base_offset == expected_offset
        mgr.close()


def crash_value(offset: int) -> bytes:
    """The value the writer gives the record at `offset` (kept in step with tests/crash_writer.py)."""
    return f"record {offset} ".encode() * (1 + offset % 7)
