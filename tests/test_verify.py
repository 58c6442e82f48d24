"""`logstore verify DATA_DIR`: every batch of every segment checked offline, one line per file, exit 1 on
problems; run as the real command over a directory a broker wrote and then damaged the ways a disk can."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from logstore.records import Record, build_batch
from logstore.records.builder import encode_record
from logstore.records.crc import crc32c
from logstore.records.layout import ATTRIBUTES_OFFSET, CRC_OFFSET
from tests.test_crash_recovery import open_manager, segment_path, write_partition
from tests.test_start_checks import flip, in_segment, segment_bases

ROOT = Path(__file__).resolve().parents[1]


def verify(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "logstore.bench.cli", "verify", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def test_verify_reports_every_file_and_exits_zero_on_a_sound_directory(tmp_path: Path) -> None:
    mgr, expected = write_partition(tmp_path, seed=71)
    mgr.close()
    result = verify(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    bases = segment_bases(expected)
    assert len(lines) == len(bases) + 1
    first = in_segment(expected, bases[0])
    assert lines[0] == (
        f"{segment_path(tmp_path, bases[0])}: ok, {len(first)} batches, "
        f"{first[-1].last_offset + 1} records, offsets 0..{first[-1].last_offset}, "
        f"{segment_path(tmp_path, bases[0]).stat().st_size} bytes"
    )
    assert lines[-1] == f"checked {len(bases)} segment file(s) in 1 partition(s): no problems"


def test_verify_names_each_damaged_file_and_exits_one(tmp_path: Path) -> None:
    mgr, expected = write_partition(tmp_path, seed=72)
    mgr.close()
    bases = segment_bases(expected)
    crc_victim = in_segment(expected, bases[1])[2]
    flip(segment_path(tmp_path, bases[1]), crc_victim.position + len(crc_victim.data) - 1, 0x01)
    # A batch whose CRC is right but whose records do not decode: only a deep iteration sees it.
    garbage = _crc_valid_batch_with_garbage_records()
    with open(segment_path(tmp_path, bases[3]), "r+b") as f:
        victim = in_segment(expected, bases[3])[-1]
        assert len(garbage) <= len(victim.data)
        f.seek(victim.position)
        f.truncate()
        f.write(victim.base_offset.to_bytes(8, "big") + garbage[8:])

    result = verify(tmp_path, "--problems-only")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 3, result.stdout
    assert lines[0].startswith(f"{segment_path(tmp_path, bases[1])}: CORRUPT: the batch at byte ")
    assert f"byte {crc_victim.position} fails its CRC" in lines[0]
    assert lines[1].startswith(f"{segment_path(tmp_path, bases[3])}: CORRUPT: the records of the batch")
    assert lines[2] == f"checked {len(bases)} segment file(s) in 1 partition(s): 2 problem(s)"


def test_verify_refuses_a_path_that_is_not_a_directory(tmp_path: Path) -> None:
    result = verify(tmp_path / "missing")
    assert result.returncode != 0
    assert "is not a directory" in result.stderr


def _crc_valid_batch_with_garbage_records() -> bytes:
    """One record whose length varint claims more bytes than the batch holds, under a correct CRC."""
    batch = bytearray(build_batch([Record(0, 1_700_000_000_000, key=b"k", value=b"v" * 20)]))
    record = encode_record(0, 0, b"k", b"v" * 20, ())
    start = len(batch) - len(record)
    batch[start] = 0x7E  # the record length varint: 63, far past the end
    batch[CRC_OFFSET : CRC_OFFSET + 4] = crc32c(bytes(batch[ATTRIBUTES_OFFSET:])).to_bytes(4, "big")
    return bytes(batch)


def test_verify_changes_no_file(tmp_path: Path) -> None:
    """verify is read-only: it leaves the files exactly as they were for the broker to deal with."""
    mgr, expected = write_partition(tmp_path, seed=73)
    mgr.close()
    before = {p: p.read_bytes() for p in (tmp_path / "t-0").iterdir()}
    flip(segment_path(tmp_path, expected[0].segment_base), expected[1].position + 40, 0x01)
    damaged = {p: p.read_bytes() for p in (tmp_path / "t-0").iterdir()}
    assert verify(tmp_path).returncode == 1
    assert {p: p.read_bytes() for p in (tmp_path / "t-0").iterdir()} == damaged != before
    open_manager(tmp_path).close()
