"""``logstore dump-log`` of a ``.index`` or ``.timeindex`` file: its entries, checked, as kafka-dump-log does.

An offset index maps an offset to the position in the segment's ``.log`` of the batch that starts there;
a time index maps a timestamp to the offset of the first record known to carry it (layouts in
``logstore.index``). Each entry is printed; the exit code is 1 if the entries do not strictly increase
or, for an offset index whose ``.log`` lies beside it, an entry does not point at a batch starting at its
offset. The files are only read: opening them through ``logstore.index`` would resize them.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

from logstore.index import OffsetIndex, TimeIndex
from logstore.records import HEADER_SIZE, parse_header
from logstore.segment import INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX

INDEX_SUFFIXES = (INDEX_SUFFIX, TIME_INDEX_SUFFIX)

_OFFSET_ENTRY = struct.Struct(">II")  # relative offset, position in the .log
_TIME_ENTRY = struct.Struct(">qI")  # timestamp, relative offset
assert _OFFSET_ENTRY.size == OffsetIndex.ENTRY_SIZE and _TIME_ENTRY.size == TimeIndex.ENTRY_SIZE


def is_index(path: Path) -> bool:
    return path.name.endswith(INDEX_SUFFIXES)


def dump_index(path: Path) -> int:
    """Print the entries of an offset or time index file and check them; the exit code."""
    if not path.stem.isdigit():
        raise ValueError(
            f"{path}: an index file is named after its segment's base offset (e.g. 00000000000000000000"
            f"{path.suffix}); without it the offsets cannot be told"
        )
    base_offset = int(path.stem)
    data = path.read_bytes()
    time_index = path.suffix == TIME_INDEX_SUFFIX
    entry = _TIME_ENTRY if time_index else _OFFSET_ENTRY
    kind = "time index" if time_index else "offset index"
    print(f"Dumping {path}")
    if len(data) % entry.size:
        print(f"Summary: {len(data)} bytes are not whole {entry.size}-byte entries: not a {kind}")
        return 1
    # A file left untrimmed by a crash (or still open) ends in zeros; they are not entries.
    count = -(-len(data.rstrip(b"\0")) // entry.size)
    entries = [entry.unpack_from(data, n * entry.size) for n in range(count)]
    if time_index:
        problems = _dump_time_entries(entries, base_offset)
    else:
        problems = _dump_offset_entries(entries, base_offset, path.with_suffix(LOG_SUFFIX))
    for problem in problems:
        print(f"Mismatch: {problem}")
    verdict = f"{len(problems)} mismatches" if problems else "in order"
    print(f"Summary: {count} entries ({kind}, base offset {base_offset}), {verdict}")
    return 1 if problems else 0


def _dump_offset_entries(entries: list[tuple[int, int]], base_offset: int, log_path: Path) -> list[str]:
    problems = []
    log = log_path.open("rb") if log_path.is_file() else None
    try:
        previous: tuple[int, int] | None = None
        for relative, position in entries:
            offset = base_offset + relative
            print(f"offset: {offset} position: {position}")
            if previous is not None and (relative <= previous[0] or position <= previous[1]):
                problems.append(f"offset {offset} position {position} does not come after the entry before")
            previous = relative, position
            if log is not None:
                problem = _check_points_at_batch(log, offset, position)
                if problem:
                    problems.append(problem)
    finally:
        if log is not None:
            log.close()
    return problems


def _check_points_at_batch(log: BinaryIO, offset: int, position: int) -> str | None:
    """Why the entry (offset, position) does not match the batch at ``position`` of the log, or None."""
    log.seek(position)
    header = log.read(HEADER_SIZE)
    if len(header) < HEADER_SIZE:
        return f"offset {offset} position {position} is past the end of the log"
    found = parse_header(header, 0).base_offset
    if found != offset:
        return f"offset {offset} position {position}: the batch there starts at offset {found}"
    return None


def _dump_time_entries(entries: list[tuple[int, int]], base_offset: int) -> list[str]:
    problems = []
    previous: tuple[int, int] | None = None
    for timestamp, relative in entries:
        offset = base_offset + relative
        print(f"timestamp: {timestamp} offset: {offset}")
        if previous is not None and (timestamp <= previous[0] or relative < previous[1]):
            problems.append(f"timestamp {timestamp} offset {offset} does not come after the entry before")
        previous = timestamp, relative
    return problems
