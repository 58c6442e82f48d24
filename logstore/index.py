"""Sparse, memory-mapped indexes of one segment: offset -> file position, and timestamp -> offset.

Both files are arrays of fixed-size big-endian entries. The active segment's indexes are preallocated
(sparse, via `ftruncate`) to `max_index_bytes` so appends are plain stores into the map; a closed
segment's stay at their real length, so reopening one (even after a crash) never scans megabytes of
zeros. Files are trimmed to their real length on `trim()` and `close()`. Offsets are stored relative to the segment's base offset as u32.

    offset index  (8 bytes):  relative offset u32, position in the .log u32
    time index   (12 bytes):  timestamp i64,      relative offset u32

A file left untrimmed by a crash ends in zeros; an all-zero entry is only meaningful as the very first
one, so trailing all-zero entries are not counted when a file is opened. Whatever else a crash may have
left behind is caught by `sanity_check()`, which raises `CorruptIndexError`; the segment then rebuilds
the index from its log (an index is never the source of truth).

Which entries to add (one per `index_interval_bytes` of log) is the segment's decision, not this module's.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import struct
import sys
from array import array
from itertools import islice
from operator import le, lt
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Self

from logstore.errors import LogStoreError

U32_MAX = 0xFFFFFFFF
I64_MAX = 2**63 - 1
_ZERO_SCAN_CHUNK = 1 << 16
# Typecode of an array of 32-bit unsigned ints ("I" is 4 bytes on every platform CPython supports).
_U32 = "I"
_NATIVE_IS_LITTLE = sys.byteorder == "little"


class CorruptIndexError(LogStoreError):
    """An index file is damaged or does not match its log; the segment rebuilds it from the log."""


class IndexFullError(LogStoreError, ValueError):
    """The index has no room for another entry; the segment must roll before appending more."""


class _MappedIndex:
    """File, map and entry bookkeeping shared by both indexes: open, grow, trim, truncate, close.

    Not thread-safe: its segment's Log serialises every use.

    Subclasses name their entry layout (`_ENTRY`), where the search key of `lookup` lives in an entry
    (`_KEY`, at byte 0) and where the relative offset lives (`_REL`, at `_REL_AT`), and keep a cache of
    their last entry in `_load_last()` so appends and tail lookups need no read of the map.
    """

    ENTRY_SIZE: ClassVar[int]
    _KIND: ClassVar[str]
    _ENTRY: ClassVar[struct.Struct]
    _KEY: ClassVar[struct.Struct]
    _REL: ClassVar[struct.Struct] = struct.Struct(">I")
    _REL_AT: ClassVar[int]

    def __init__(
        self, path: Path | str, base_offset: int, max_index_bytes: int, *, preallocate: bool = True
    ) -> None:
        """Open `path`, creating it if missing; grow it (sparse) to `max_index_bytes` when `preallocate`.

        Raises CorruptIndexError when the existing file's size is not a whole number of entries.
        """
        if base_offset < 0:
            raise ValueError(f"base offset must be >= 0, not {base_offset}")
        if max_index_bytes < self.ENTRY_SIZE:
            raise ValueError(
                f"max_index_bytes must hold at least one {self.ENTRY_SIZE}-byte entry, not {max_index_bytes}"
            )
        self.path = Path(path)
        self.base_offset = base_offset
        self._map: mmap.mmap | None = None  # None only while the file is empty: mmap cannot map 0 bytes
        self._file_bytes = 0
        self._entries = 0
        self._preallocated = preallocate
        self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            size = os.fstat(self._fd).st_size
            if size % self.ENTRY_SIZE:
                raise CorruptIndexError(
                    f"{self._KIND} {self.path}: size {size} is not a multiple of "
                    f"the {self.ENTRY_SIZE}-byte entry"
                )
            self._remap(size)
            self._entries = self._count_entries(size // self.ENTRY_SIZE)
            self._max_entries = max(max_index_bytes // self.ENTRY_SIZE, self._entries)
            wanted = (self._max_entries if preallocate else self._entries) * self.ENTRY_SIZE
            if wanted != size:
                self._resize(wanted)
            self._load_last()
        except BaseException:
            self._release()
            raise

    # --- state ----------------------------------------------------------------------------------------

    @property
    def entries(self) -> int:
        """Number of entries in use."""
        return self._entries

    @property
    def max_entries(self) -> int:
        """Capacity: `max_index_bytes // ENTRY_SIZE`, or more if an existing file already held more."""
        return self._max_entries

    @property
    def is_full(self) -> bool:
        return self._entries >= self._max_entries

    @property
    def closed(self) -> bool:
        return self._fd is None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, entries={self._entries}/{self._max_entries})"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- mutation shared by both kinds ----------------------------------------------------------------

    def truncate_to(self, offset: int) -> None:
        """Drop every entry whose offset is >= `offset` (after the log is truncated there)."""
        self._require_open()
        keep = self._search(self._REL, self._REL_AT, offset - self.base_offset, right=False)
        self._drop_from(keep)

    def reset(self) -> None:
        """Drop all entries, so the index can be rebuilt from the log."""
        self._require_open()
        self._drop_from(0)

    def entry(self, n: int) -> tuple[int, int]:
        """The n-th entry (0-based), decoded as `lookup` returns it."""
        self._require_open()
        if not 0 <= n < self._entries:
            raise IndexError(f"{self._KIND} {self.path} has {self._entries} entries; there is no entry {n}")
        return self._decode(n)

    def flush(self) -> None:
        """Make the entries durable: fsync the file, which also writes pages dirtied through the map.

        An fsync of the descriptor (rather than an msync of the map) stays safe while another thread
        trims or remaps this index, so a log can fsync without holding up a segment roll.
        """
        os.fsync(self._require_open())

    def trim(self) -> None:
        """Shrink the file to exactly its entries, so a reopen (even after a crash) counts them by size.

        The index then grows only as far as new entries need (a rebuilt closed segment's index stays
        small), until `preallocate()` makes it the active segment's again.
        """
        self._require_open()
        self._preallocated = False
        used = self._entries * self.ENTRY_SIZE
        if self._file_bytes != used:
            self._resize(used)

    def preallocate(self) -> None:
        """Grow the file (sparse) to full capacity, so appends are plain stores (the active segment's)."""
        self._require_open()
        self._preallocated = True
        full = self._max_entries * self.ENTRY_SIZE
        if self._file_bytes < full:
            self._resize(full)

    def close(self) -> None:
        """Trim the file and release the map and the file descriptor. Calling it again does nothing."""
        if self._fd is None:
            return
        try:
            self.trim()
        finally:
            self._release()

    def delete(self) -> None:
        """Close (without trimming: the file is going away) and unlink the file."""
        self._release()
        self.path.unlink(missing_ok=True)

    def rename(self, new_path: Path | str) -> None:
        """Move the file (e.g. to a `.deleted` or `.cleaned` name); an open index stays open and usable."""
        new_path = Path(new_path)
        os.replace(self.path, new_path)
        self.path = new_path

    # --- helpers for subclasses -----------------------------------------------------------------------

    def _decode(self, n: int) -> tuple[int, int]:
        """Entry `n` as the public (key, value) pair; subclasses convert relative offsets to absolute."""
        raise NotImplementedError

    def _load_last(self) -> None:
        """Refresh the subclass's cache of its last entry after the entry count changed."""
        raise NotImplementedError

    def _append_entry(self, *fields: int) -> None:
        """Store one entry after the last; the caller has validated the fields."""
        if self._entries >= self._max_entries:
            raise IndexFullError(
                f"{self._KIND} {self.path} is full ({self._max_entries} entries of {self.ENTRY_SIZE} bytes); "
                "roll the segment before appending"
            )
        end = (self._entries + 1) * self.ENTRY_SIZE
        if end > self._file_bytes:
            # Opened without preallocation, or trimmed: grow to full capacity once if preallocating, else
            # double (a closed segment's index rebuilt from its log never balloons to max_index_bytes).
            wanted = self._max_entries if self._preallocated else max(2 * self._entries, 512)
            self._resize(min(wanted, self._max_entries) * self.ENTRY_SIZE)
        assert self._map is not None  # the file holds at least this entry now
        self._ENTRY.pack_into(self._map, end - self.ENTRY_SIZE, *fields)
        self._entries += 1

    def _search(self, key: struct.Struct, field_at: int, value: int, *, right: bool) -> int:
        """Binary search over the map on one sorted field: the insertion point of `value`, like `bisect`.

        `right=True` gives bisect_right (entries with field <= value come before), else bisect_left.
        """
        lo, hi = 0, self._entries
        unpack, mapped, size = key.unpack_from, self._map, self.ENTRY_SIZE
        if mapped is None:  # an empty file: no entries, the insertion point is 0
            return 0
        if right:
            while lo < hi:
                mid = (lo + hi) >> 1
                if value < unpack(mapped, mid * size + field_at)[0]:
                    hi = mid
                else:
                    lo = mid + 1
        else:
            while lo < hi:
                mid = (lo + hi) >> 1
                if unpack(mapped, mid * size + field_at)[0] < value:
                    lo = mid + 1
                else:
                    hi = mid
        return lo

    def _u32_words(self) -> array:
        """The used part of the map as an array of u32 words in native order, for fast column checks."""
        words = array(_U32)
        if self._map is not None and self._entries:
            words.frombytes(self._map[: self._entries * self.ENTRY_SIZE])
            if _NATIVE_IS_LITTLE:
                words.byteswap()
        return words

    def _check_file_size(self) -> None:
        size = os.fstat(self._require_open()).st_size
        if size % self.ENTRY_SIZE or size < self._entries * self.ENTRY_SIZE:
            raise CorruptIndexError(
                f"{self._KIND} {self.path}: file size {size} does not hold {self._entries} whole "
                f"{self.ENTRY_SIZE}-byte entries (changed behind the index's back?)"
            )

    def _corrupt(self, n: int, what: str) -> CorruptIndexError:
        """A CorruptIndexError naming the file and the two entries that break the order."""
        return CorruptIndexError(
            f"{self._KIND} {self.path}: entry {n} {self._decode(n)} does not follow entry {n - 1} "
            f"{self._decode(n - 1)}; {what}"
        )

    def _require_open(self) -> int:
        """The open file's descriptor; ValueError once the index is closed."""
        if self._fd is None:
            raise ValueError(f"{self._KIND} {self.path} is closed")
        return self._fd

    # --- file and map handling ------------------------------------------------------------------------

    def _count_entries(self, stored: int) -> int:
        """Entries in a file of `stored` entries, not counting the all-zero tail a crash leaves behind.

        Scans backwards a chunk at a time for the last non-zero byte, starting at the file's first hole:
        a preallocated file is written from its start only, so what lies past the first hole is zeros,
        and a 10 MB file left untrimmed by a crash costs a chunk read or two, not 10 MB of page faults.
        """
        end = stored * self.ENTRY_SIZE
        if self._fd is not None and end:
            with contextlib.suppress(OSError):  # no SEEK_HOLE here: scan the whole zero tail
                end = min(end, os.lseek(self._fd, 0, os.SEEK_HOLE))
        while end > 0:
            assert self._map is not None  # the file is not empty
            start = max(0, end - _ZERO_SCAN_CHUNK)
            chunk = self._map[start:end]
            data_end = len(chunk.rstrip(b"\0"))
            if data_end:
                return -(-(start + data_end) // self.ENTRY_SIZE)
            end = start
        return 0

    def _drop_from(self, keep: int) -> None:
        """Keep the first `keep` entries and zero the rest, so a crash before `trim` cannot revive them."""
        if keep >= self._entries:
            return
        start, end = keep * self.ENTRY_SIZE, self._entries * self.ENTRY_SIZE
        assert self._map is not None  # it holds entries
        self._map[start:end] = bytes(end - start)
        self._entries = keep
        self._load_last()

    def _resize(self, size: int) -> None:
        """Set the file to `size` bytes and map all of it. The map is closed first: on Linux, touching a
        mapped page past a shrunk end is SIGBUS, and a map never grows with its file."""
        if self._map is not None:
            self._map.close()
            self._map = None
        try:
            os.ftruncate(self._require_open(), size)
        finally:  # on failure (disk trouble) keep a map of whatever size the file has, never a stale one
            self._remap(os.fstat(self._require_open()).st_size)

    def _remap(self, size: int) -> None:
        """Map the first `size` bytes (the whole file); mmap cannot map 0 bytes, so an empty file has none."""
        self._file_bytes = size
        self._map = mmap.mmap(self._require_open(), size) if size else None

    def _release(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class OffsetIndex(_MappedIndex):
    """Maps an offset to the position in the `.log` of a batch at or before it (a floor lookup)."""

    ENTRY_SIZE = 8
    _KIND = "offset index"
    _ENTRY = struct.Struct(">II")
    _KEY = struct.Struct(">I")
    _REL_AT = 0

    _last_rel: int
    _last_position: int

    @property
    def last_offset(self) -> int:
        """Absolute offset of the last entry, or the base offset if there are none."""
        return self.base_offset + self._last_rel

    def append(self, offset: int, position: int) -> None:
        """Add an entry: `offset` (absolute) starts a batch at byte `position` of the log.

        Both must be greater than the last entry's (the first entry may use the base offset and 0).
        Raises IndexFullError when there is no room, ValueError for entries out of order or range.
        """
        self._require_open()
        relative = offset - self.base_offset
        if not 0 <= relative <= U32_MAX:
            raise ValueError(
                f"{self._KIND} {self.path}: offset {offset} is outside this segment's range "
                f"[{self.base_offset}, {self.base_offset + U32_MAX}]"
            )
        if not 0 <= position <= U32_MAX:
            raise ValueError(f"{self._KIND} {self.path}: position {position} is outside [0, {U32_MAX}]")
        if self._entries and (relative <= self._last_rel or position <= self._last_position):
            raise ValueError(
                f"{self._KIND} {self.path}: entry (offset {offset}, position {position}) must come after the "
                f"last entry (offset {self.last_offset}, position {self._last_position}) in both"
            )
        self._append_entry(relative, position)
        self._last_rel, self._last_position = relative, position

    def lookup(self, offset: int) -> tuple[int, int]:
        """The entry with the largest offset <= `offset`, as (absolute offset, position).

        (base_offset, 0) when there is none: the scan then starts at the beginning of the segment.
        """
        self._require_open()
        relative = offset - self.base_offset
        if not self._entries or relative < 0:
            return self.base_offset, 0
        if relative >= self._last_rel:  # the common case: a consumer reading at the tail
            return self.base_offset + self._last_rel, self._last_position
        slot = self._search(self._KEY, 0, relative, right=True) - 1
        if slot < 0:
            return self.base_offset, 0
        assert self._map is not None  # it holds an entry
        relative, position = self._ENTRY.unpack_from(self._map, slot * 8)
        return self.base_offset + relative, position

    def sanity_check(self, log_size: int | None = None) -> None:
        """Raise CorruptIndexError unless offsets and positions strictly increase and, when `log_size` is
        given, the last position lies inside the log."""
        self._check_file_size()
        words = self._u32_words()
        relatives, positions = words[0::2], words[1::2]
        if not all(map(lt, relatives, islice(relatives, 1, None))):
            raise self._corrupt(_first_break(relatives, strict=True), "offsets must strictly increase")
        if not all(map(lt, positions, islice(positions, 1, None))):
            raise self._corrupt(_first_break(positions, strict=True), "positions must strictly increase")
        if log_size is not None and self._entries and self._last_position >= log_size:
            raise CorruptIndexError(
                f"{self._KIND} {self.path}: last entry points at position {self._last_position}, "
                f"but the log is only {log_size} bytes"
            )

    def _decode(self, n: int) -> tuple[int, int]:
        assert self._map is not None  # entry n exists
        relative, position = self._ENTRY.unpack_from(self._map, n * 8)
        return self.base_offset + relative, position

    def _load_last(self) -> None:
        if self._entries:
            assert self._map is not None
            self._last_rel, self._last_position = self._ENTRY.unpack_from(self._map, (self._entries - 1) * 8)
        else:
            self._last_rel, self._last_position = 0, 0


class TimeIndex(_MappedIndex):
    """Maps a timestamp to the offset of the first record known to carry it (a floor lookup).

    Timestamps only grow: an append whose timestamp is not above the last one is skipped, like Kafka's.
    """

    ENTRY_SIZE = 12
    _KIND = "time index"
    _ENTRY = struct.Struct(">qI")
    _KEY = struct.Struct(">q")
    _REL_AT = 8

    _last_timestamp: int
    _last_rel: int

    @property
    def last_timestamp(self) -> int:
        """Timestamp of the last entry, or -1 if there are none."""
        return self._last_timestamp

    @property
    def last_offset(self) -> int:
        """Absolute offset of the last entry, or the base offset if there are none."""
        return self.base_offset + self._last_rel

    def append(self, timestamp: int, offset: int) -> None:
        """Add (timestamp, offset) if `timestamp` is greater than the last one; otherwise do nothing.

        `offset` (absolute) must not be below the last entry's. Raises IndexFullError when an entry
        would be added and there is no room, ValueError for values out of order or range.
        """
        self._require_open()
        if timestamp <= self._last_timestamp:
            return
        if timestamp > I64_MAX:
            raise ValueError(f"{self._KIND} {self.path}: timestamp {timestamp} does not fit in 64 bits")
        relative = offset - self.base_offset
        if not 0 <= relative <= U32_MAX:
            raise ValueError(
                f"{self._KIND} {self.path}: offset {offset} is outside this segment's range "
                f"[{self.base_offset}, {self.base_offset + U32_MAX}]"
            )
        if self._entries and relative < self._last_rel:
            raise ValueError(
                f"{self._KIND} {self.path}: offset {offset} is below the last entry's offset "
                f"{self.last_offset}; offsets in the time index must not decrease"
            )
        self._append_entry(timestamp, relative)
        self._last_timestamp, self._last_rel = timestamp, relative

    def lookup(self, timestamp: int) -> tuple[int, int]:
        """The entry with the largest timestamp <= `timestamp`, as (timestamp, absolute offset).

        (-1, base_offset) when there is none: the scan then starts at the beginning of the segment.
        """
        self._require_open()
        if not self._entries or timestamp < 0:
            return -1, self.base_offset
        if timestamp >= self._last_timestamp:
            return self._last_timestamp, self.base_offset + self._last_rel
        slot = self._search(self._KEY, 0, timestamp, right=True) - 1
        if slot < 0:
            return -1, self.base_offset
        return self._decode(slot)

    def sanity_check(self) -> None:
        """Raise CorruptIndexError unless timestamps are non-negative and strictly increase and offsets
        never decrease."""
        self._check_file_size()
        words = self._u32_words()
        highs, lows, relatives = words[0::3], words[1::3], words[2::3]
        if highs and max(highs) > 0x7FFFFFFF:
            slot = next(n for n, high in enumerate(highs) if high > 0x7FFFFFFF)
            raise CorruptIndexError(
                f"{self._KIND} {self.path}: entry {slot} {self._decode(slot)} has a negative timestamp"
            )
        if not highs or highs.count(highs[0]) == len(highs):
            # Every timestamp shares its high word (any span under ~49 days): compare the low words alone.
            timestamps: array | list[int] = lows
        else:
            timestamps = [high << 32 | low for high, low in zip(highs, lows, strict=True)]
        if not all(map(lt, timestamps, islice(timestamps, 1, None))):
            raise self._corrupt(_first_break(timestamps, strict=True), "timestamps must strictly increase")
        if not all(map(le, relatives, islice(relatives, 1, None))):
            raise self._corrupt(_first_break(relatives, strict=False), "offsets must not decrease")

    def _decode(self, n: int) -> tuple[int, int]:
        assert self._map is not None  # entry n exists
        timestamp, relative = self._ENTRY.unpack_from(self._map, n * 12)
        return timestamp, self.base_offset + relative

    def _load_last(self) -> None:
        if self._entries:
            assert self._map is not None
            self._last_timestamp, self._last_rel = self._ENTRY.unpack_from(
                self._map, (self._entries - 1) * 12
            )
        else:
            self._last_timestamp, self._last_rel = -1, 0


def _first_break(values: array | list[int], *, strict: bool) -> int:
    """Index of the first value that does not increase (strictly, or at all) over the one before it."""
    for n in range(1, len(values)):
        if values[n] < values[n - 1] or (strict and values[n] == values[n - 1]):
            return n
    raise AssertionError("called on values that are in order")
