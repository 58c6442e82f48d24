"""One segment of a partition's log: a `.log` file of record batches and its two sparse indexes.

Write path and read path are split by measurement: appends go through `os.pwrite` into a file that is
preallocated (sparse) to the segment size, and reads slice one memory map of that file. On Linux the map
and the file share the page cache, so a read sees every byte that `pwrite` returned from. The logical end
(`size`) lives in memory; the file is trimmed to it when the segment is rolled or closed, and anything past
it is zero, so recovery can always tell where the real data stops.
"""

from __future__ import annotations

import bisect
import functools
import logging
import mmap
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Concatenate, ParamSpec, TypeVar

from logstore.errors import CorruptSegmentError, StorageError
from logstore.index import CorruptIndexError, OffsetIndex, TimeIndex
from logstore.records import HEADER_SIZE, BatchHeader, decode_batch, iter_headers, parse_header
from logstore.records.check import check_batches
from logstore.records.layout import (
    LAST_OFFSET_DELTA_OFFSET,
    LAST_OFFSET_DELTA_STRUCT,
    LENGTH_FIELD_END,
    LENGTH_OFFSET,
    LENGTH_STRUCT,
    MIN_BATCH_LENGTH,
    OFFSET_AND_LENGTH_STRUCT,
)
from logstore.recovery import scan_segment, set_aside

if TYPE_CHECKING:
    from logstore.open_segments import OpenSegments

LOG_SUFFIX = ".log"
INDEX_SUFFIX = ".index"
TIME_INDEX_SUFFIX = ".timeindex"
CLEANED_SUFFIX = ".cleaned"

_MAX_OFFSET = 2**63 - 1
_Index = TypeVar("_Index", OffsetIndex, TimeIndex)
_IOV_MAX = 1024
_P = ParamSpec("_P")
_R = TypeVar("_R")


def _pinned(method: Callable[Concatenate[LogSegment, _P], _R]) -> Callable[Concatenate[LogSegment, _P], _R]:
    """Run `method` with the segment's files open (reopening a released segment) and kept open."""

    @functools.wraps(method)
    def pinned(self: LogSegment, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        self._pin()
        try:
            return method(self, *args, **kwargs)
        finally:
            self._unpin()

    return pinned


log = logging.getLogger(__name__)


def segment_name(base_offset: int) -> str:
    """Kafka's file naming: the base offset, zero-padded to 20 digits."""
    return f"{base_offset:020d}"


def parse_segment_name(name: str) -> int | None:
    stem = name.split(".", 1)[0]
    return int(stem) if len(stem) == 20 and stem.isdigit() else None


@dataclass(frozen=True)
class RecoveryResult:
    valid_bytes: int
    truncated_bytes: int
    batches: int
    next_offset: int


class LogSegment:
    """A `.log` file with an offset index and a time index, all named by the segment's base offset.

    With an `OpenSegments` bound, an idle segment may release its files and maps (`release`) and reopen
    them on its next use; every method that touches a file pins the segment for its duration.

    Not thread-safe: its Log serialises appends, reads and maintenance; only pinning and releasing the
    files take the segment's own lock, since `OpenSegments` may release it from any thread.
    """

    def __init__(
        self,
        directory: Path,
        base_offset: int,
        *,
        capacity: int,
        max_index_bytes: int,
        index_interval_bytes: int,
        active: bool,
        open_segments: OpenSegments | None = None,
    ) -> None:
        self.directory = directory
        self.base_offset = base_offset
        self.index_interval_bytes = index_interval_bytes
        stem = directory / segment_name(base_offset)
        self.log_path = stem.with_suffix(LOG_SUFFIX)
        self._index_paths = (stem.with_suffix(INDEX_SUFFIX), stem.with_suffix(TIME_INDEX_SUFFIX))
        self._max_index_bytes = max_index_bytes
        self._open_segments = open_segments
        self._files = threading.Lock()  # guards opening and releasing the files, and `_users`
        self._users = 0  # pins: while above zero the files stay open
        self._indexes_trusted = True  # cleared when an index file is missing or unreadable
        self._fd = -1  # -1 while released
        self._capacity = 0
        self._map: mmap.mmap | None = None
        self._active = False
        self._closed = False
        self._open_files(preallocate=active, create=True)
        try:
            self.size = os.fstat(self._fd).st_size  # a trimmed file's length is its logical size
        except BaseException:
            self._release_files()
            raise
        self.next_offset = base_offset
        self.max_timestamp = -1
        self.offset_of_max_timestamp = base_offset
        self.first_batch_timestamp: int | None = None
        self._bytes_since_index_entry = 0
        self.created_ms: int | None = None  # wall-clock time of the first append in this process
        try:
            self._map_to(max(self.size, capacity) if active else self.size)
        except BaseException:
            self._release_files()
            raise
        self._active = active
        if open_segments is not None:
            open_segments.touch(self)

    # --- life cycle -------------------------------------------------------------------------------------

    def _open_files(self, *, preallocate: bool, create: bool) -> None:
        """Open both indexes and the log file (not yet mapped); on failure nothing is left open."""
        offset_index: OffsetIndex | None = None
        time_index: TimeIndex | None = None
        try:
            offset_path, time_path = self._index_paths
            offset_index = self._open_index(
                OffsetIndex, offset_path, self._max_index_bytes, preallocate=preallocate
            )
            time_index = self._open_index(
                TimeIndex, time_path, self._max_index_bytes, preallocate=preallocate
            )
            flags = os.O_RDWR | (os.O_CREAT if create else 0)
            self._fd = os.open(self.log_path, flags, 0o644)
        except BaseException:
            for index in (offset_index, time_index):
                if index is not None:
                    index.close()
            raise
        self.offset_index, self.time_index = offset_index, time_index

    def _release_files(self) -> None:
        """Unmap and close the log and both indexes (trimming them); what the segment knows stays."""
        errors: list[OSError] = []
        if self._map is not None:
            self._map.close()
            self._map = None
        for index in (self.offset_index, self.time_index):
            try:
                index.close()
            except OSError as exc:
                errors.append(exc)
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)
        if errors:
            raise errors[0]

    def _pin(self) -> None:
        """Keep the files open until `_unpin`, reopening them first if they were released."""
        with self._files:
            if self._fd < 0 and not self._closed:
                self._open_files(preallocate=self._active, create=False)
                try:
                    self._map_to(self._capacity)
                except BaseException:
                    self._release_files()
                    raise
            self._users += 1
        if self._open_segments is not None and not self._closed:
            self._open_segments.touch(self)

    def _unpin(self) -> None:
        with self._files:
            self._users -= 1
            if self._closed and self._users == 0:
                self._release_files()  # a close that came while the segment was in use

    def release(self) -> bool:
        """Close files and maps if nobody is using them (without waiting); whether they are closed now.

        Called by `OpenSegments` to stay within its bound; the next use reopens them.
        """
        if not self._files.acquire(blocking=False):
            return False
        try:
            if self._users or self._closed:
                return self._closed
            if self._fd >= 0:
                if self._map is not None:
                    try:
                        self._map.close()
                    except BufferError:  # something still holds a view of the map: it is in use
                        return False
                    self._map = None
                self._release_files()
            return True
        finally:
            self._files.release()

    @property
    def files_open(self) -> bool:
        """Whether the segment holds its descriptors and maps right now."""
        return self._fd >= 0

    def _open_index(
        self, kind: type[_Index], path: Path, max_index_bytes: int, *, preallocate: bool
    ) -> _Index:
        """Open one index file; create a missing one, replace one that cannot be opened (not whole entries).

        Either way the indexes are marked untrusted and `load` rebuilds them from the log: an empty index
        passes every sanity check, and trusting it would leave e.g. the segment's max timestamp wrong.
        Only the active segment's indexes are preallocated: a closed segment's file keeps its size, so
        opening thousands of them (and counting their entries after a crash) touches no zero tails.
        """
        if not path.exists():
            self._indexes_trusted = False
        try:
            return kind(path, self.base_offset, max_index_bytes, preallocate=preallocate)
        except CorruptIndexError:
            path.unlink()
            self._indexes_trusted = False
            return kind(path, self.base_offset, max_index_bytes, preallocate=preallocate)

    def _map_to(self, length: int) -> None:
        """(Re)map the file at `length` bytes, growing it (sparse) first if needed."""
        if self._map is not None:
            self._map.close()
            self._map = None
        if os.fstat(self._fd).st_size < length:
            os.ftruncate(self._fd, length)
        self._capacity = length
        if length > 0:
            self._map = mmap.mmap(self._fd, length, access=mmap.ACCESS_READ)

    @_pinned
    def load(self) -> None:
        """Restore in-memory state of a segment that was closed cleanly, trusting only what it can check.

        Every batch header is walked (lengths, magic, offsets; no CRC): a segment whose framing does not
        add up is cut to its longest valid prefix, with a WARNING naming the file, the bytes cut off kept
        beside it. The indexes are sanity-checked against the walk; a bad or missing one is rebuilt.
        """
        scan = scan_segment(self._map, self.size, self.base_offset)
        if scan.problem is not None:
            self._cut(scan.valid_bytes, scan.problem)
            self.rebuild_indexes()
            return
        if not self._indexes_trusted:
            self.rebuild_indexes()
            return
        try:
            self.offset_index.sanity_check(self.size)
            self.time_index.sanity_check()
            positions, bases = scan.positions, scan.base_offsets
            for n in range(self.offset_index.entries):
                offset, position = self.offset_index.entry(n)
                i = bisect.bisect_left(positions, position)
                if i == len(positions) or positions[i] != position or bases[i] != offset:
                    raise CorruptIndexError(
                        f"{self.offset_index.path}: entry {n} maps offset {offset} to byte {position}, "
                        "where no batch of that offset starts"
                    )
            _, position = self.offset_index.lookup(_MAX_OFFSET)
            self._reset_state()
            if scan.last_offset is not None:
                self.next_offset = scan.last_offset + 1
                self._note_timestamp(scan.max_timestamp, scan.offset_of_max_timestamp)
            self._bytes_since_index_entry = self.size - position
            self._load_first_timestamp()
        except CorruptIndexError:
            self.rebuild_indexes()

    def _cut(self, position: int, reason: str) -> None:
        """Cut the segment at `position` (a batch boundary) because of `reason`, keeping the bytes cut off.

        Used at start-up on a segment that should have been sound: the cut-off bytes go to a file beside
        it (`recovery.set_aside`, which logs the WARNING), so nothing is deleted behind a person's back.
        """
        self.size = position
        # A sealed segment's file ends where its data does (zero bytes included); an active one is
        # preallocated, and its data ends at the last non-zero byte.
        end = self._logical_end_of_file() if self._active else self._capacity
        if end > position and self._map is not None:
            set_aside(self.log_path, self._map[position:end], f"{reason}; cut the segment at byte {position}")
        else:
            log.warning("%s: %s; cut the segment at byte %d", self.log_path, reason, position)
        self._zero_tail()

    def _load_first_timestamp(self) -> None:
        if self.size >= HEADER_SIZE and self._map is not None:
            header = self._header_at(0)
            self.first_batch_timestamp = header.max_timestamp

    @_pinned
    def recover(self, max_batch_bytes: int) -> RecoveryResult:
        """Scan every batch (framing, magic, CRC, increasing offsets); cut the file at the first bad byte.

        Indexes are rebuilt from scratch: after an unclean stop nothing in them is trusted.
        """
        self.offset_index.reset()
        self.time_index.reset()
        self._reset_state()
        scan = scan_segment(self._map, self._capacity, self.base_offset, check_crc=True)
        for position, header in scan.headers(self._map):  # type: ignore[arg-type]
            self._index_batch(position, header)
        position = scan.valid_bytes
        batches = len(scan.positions)
        self.size = position
        truncated = self._logical_end_of_file() - position
        self._zero_tail()
        self._load_first_timestamp()
        return RecoveryResult(position, max(truncated, 0), batches, self.next_offset)

    def _logical_end_of_file(self) -> int:
        """How far non-zero data reaches: up to the first hole of the sparse file, less trailing zeros."""
        if self._map is None:
            return 0
        try:
            end = min(os.lseek(self._fd, self.size, os.SEEK_HOLE), self._capacity)
        except OSError:  # a file system without SEEK_HOLE: walk back over the whole zero tail
            end = self._capacity
        step = 1 << 16
        while end > 0:
            start = max(0, end - step)
            chunk = self._map[start:end]
            stripped = chunk.rstrip(b"\x00")
            if stripped:
                return start + len(stripped)
            end = start
        return 0

    @_pinned
    def cut_outlier_tail(self, next_base: int) -> bool:
        """Cut the last batch if it alone reaches `next_base` (the next segment's) and would fit before it.

        That batch then carries a damaged base offset (the CRC does not cover it). Returns whether it cut.
        """
        batches = list(self._headers_from(0))
        if not batches or batches[-1][1].last_offset < next_base:
            return False
        position, last = batches[-1]
        before = batches[-2][1].last_offset if len(batches) > 1 else self.base_offset - 1
        if before >= next_base or before + last.last_offset_delta + 1 >= next_base:
            return False
        self._cut(
            position,
            f"the last batch claims offsets {last.base_offset}..{last.last_offset}, reaching into the next "
            f"segment (base offset {next_base}): a damaged base offset",
        )
        self.rebuild_indexes()
        return True

    @_pinned
    def rebuild_indexes(self) -> None:
        """Rebuild both indexes from the log without truncating it (used when an index fails its check)."""
        self.offset_index.reset()
        self.time_index.reset()
        self._reset_state()
        position = 0
        for pos, header in self._headers_from(0):
            self._index_batch(pos, header)
            position = pos + header.size
        if position != self.size:
            raise StorageError(
                f"{self.log_path}: batches end at byte {position} but the segment is {self.size} bytes; "
                "the file was changed behind the broker's back"
            )
        self._load_first_timestamp()

    def _reset_state(self) -> None:
        self.next_offset = self.base_offset
        self.max_timestamp = -1
        self.offset_of_max_timestamp = self.base_offset
        self.first_batch_timestamp = None
        self._bytes_since_index_entry = 0

    def _zero_tail(self) -> None:
        """Make every byte past `size` zero: shrink the file to it, then grow it back (sparse)."""
        capacity = self._capacity
        if self._map is not None:
            self._map.close()
            self._map = None
        os.ftruncate(self._fd, self.size)
        self._map_to(capacity if self._active else self.size)

    # --- writing ----------------------------------------------------------------------------------------

    def fits(self, nbytes: int) -> bool:
        return self.size + nbytes <= self._capacity

    @_pinned
    def append(
        self,
        parts: list[bytes | bytearray | memoryview],
        headers: list[BatchHeader],
        nbytes: int,
        now_ms: int,
    ) -> None:
        """Write already-checked batches (offsets assigned) at the end, and index them.

        `parts` are buffers written back to back with one vectored write (no joining copy); `headers`
        describe the batches they make up, in order. The caller rolls the segment first when the bytes
        would not fit; a single batch larger than a whole segment grows the file instead.
        """
        if self._closed:
            raise StorageError(f"{self.log_path}: segment is closed")
        position = self.size
        if position + nbytes > self._capacity:
            self._map_to(position + nbytes)
        written = 0
        for start in range(0, len(parts), _IOV_MAX):
            chunk = parts[start : start + _IOV_MAX]
            done = os.pwritev(self._fd, chunk, position + written)
            expected = sum(len(part) for part in chunk)
            if done < expected:  # a short write: finish this chunk the slow, sure way
                rest = b"".join(chunk)[done:]
                while rest:
                    n = os.pwrite(self._fd, rest, position + written + done)
                    done += n
                    rest = rest[n:]
            written += done
        for header in headers:
            self._index_batch(position, header)
            position += header.size
        self.size = position
        if self.created_ms is None:
            self.created_ms = now_ms
        if self.first_batch_timestamp is None and headers:
            self.first_batch_timestamp = headers[0].max_timestamp

    def _index_batch(self, position: int, header: BatchHeader) -> None:
        """Kafka's cadence: once more than `index_interval_bytes` were written since the last entry, index
        this batch's position, and the largest timestamp so far. A full index just stops growing (lookups
        stay correct, only less sparse-precise); the log rolls before the next append."""
        self._note_timestamp(header.max_timestamp, header.last_offset)
        if self._bytes_since_index_entry > self.index_interval_bytes and not self.index_full:
            self.offset_index.append(header.base_offset, position)
            self.time_index.append(self.max_timestamp, self.offset_of_max_timestamp)
            self._bytes_since_index_entry = 0
        self._bytes_since_index_entry += header.size
        self.next_offset = header.last_offset + 1

    def _note_timestamp(self, timestamp: int, offset: int) -> None:
        if timestamp > self.max_timestamp:
            self.max_timestamp = timestamp
            self.offset_of_max_timestamp = offset

    @property
    def index_full(self) -> bool:
        return self.offset_index.is_full or self.time_index.is_full

    def flush(self) -> None:
        """fsync the log, then the indexes (the log is the source of truth; indexes can be rebuilt).

        A released segment is not reopened for this: its files are fsynced by path (what was written
        through descriptors and maps since closed still belongs to the files).
        """
        if self._closed:
            return
        with self._files:
            released = self._fd < 0
            if not released:
                self._users += 1
        if released:
            _fsync_path(self.log_path, missing_ok=False)
            _fsync_path(self.offset_index.path, missing_ok=True)
            _fsync_path(self.time_index.path, missing_ok=True)
            return
        try:
            os.fsync(self._fd)
            self.offset_index.flush()
            self.time_index.flush()
        finally:
            self._unpin()

    @_pinned
    def seal(self) -> None:
        """Become a closed segment: record the max timestamp in the time index, trim files to their data."""
        if self.max_timestamp > self.time_index.last_timestamp and not self.time_index.is_full:
            self.time_index.append(self.max_timestamp, self.offset_of_max_timestamp)
        self.offset_index.trim()
        self.time_index.trim()
        if self._map is not None:
            self._map.close()
            self._map = None
        os.ftruncate(self._fd, self.size)
        self._active = False
        self._map_to(self.size)

    @_pinned
    def activate(self, capacity: int) -> None:
        """Reopen a sealed segment as the active one (at start-up): grow the file again for appends."""
        self._active = True
        self.offset_index.preallocate()
        self.time_index.preallocate()
        self._map_to(max(self.size, capacity))

    def close(self) -> None:
        """Seal an active segment, then close its files for good (once the last user lets go)."""
        if self._closed:
            return
        if self._active:
            self.seal()
        with self._files:
            self._closed = True
            if not self._users:
                self._release_files()
        if self._open_segments is not None:
            self._open_segments.forget(self)

    def abandon(self) -> None:
        """Close the files for good without sealing, as a crash would leave them (the disk failed)."""
        with self._files:
            if self._closed:
                return
            self._closed = True
            if not self._users:
                self._release_files()
        if self._open_segments is not None:
            self._open_segments.forget(self)

    def delete(self) -> None:
        """Close and remove all three files."""
        self._active = False
        self.close()
        for path in (self.log_path, self.offset_index.path, self.time_index.path):
            path.unlink(missing_ok=True)

    @_pinned
    def truncate_to(self, offset: int) -> int:
        """Drop every batch holding an offset >= `offset` (a batch goes whole); return the bytes dropped.

        Like Kafka's truncateTo, the batch that contains `offset` goes too, so the segment then ends at or
        below `offset`, never above it.
        """
        position = self._position_of_first_batch_reaching(offset)
        if position >= self.size:
            return 0
        dropped = self.size - position
        self.size = position
        self._zero_tail()
        self.rebuild_indexes()
        return dropped

    # --- reading ----------------------------------------------------------------------------------------

    def _header_at(self, position: int) -> BatchHeader:
        assert self._map is not None
        return parse_header(self._map, position)

    def _headers_from(self, position: int) -> Iterator[tuple[int, BatchHeader]]:
        if self._map is None:
            return iter(())
        return iter_headers(self._map, position, self.size)

    def _position_of_first_batch_reaching(self, offset: int) -> int:
        """Byte position of the first batch whose last offset is >= `offset` (size if none)."""
        _, start = self.offset_index.lookup(offset)
        for pos, header in self._headers_from(start):
            if header.last_offset >= offset:
                return pos
        return self.size

    @_pinned
    def find_batch(self, offset: int) -> int | None:
        """Byte position of the batch holding `offset` (or the first one after it), None if past the end.

        Raises CorruptSegmentError at a length field that does not frame a batch within the segment.
        """
        _, position = self.offset_index.lookup(offset)
        view = self._map
        if view is None:
            return None
        size = self.size
        unpack_base = OFFSET_AND_LENGTH_STRUCT.unpack_from
        unpack_delta = LAST_OFFSET_DELTA_STRUCT.unpack_from
        while position + HEADER_SIZE <= size:
            base, length = unpack_base(view, position)
            if length < MIN_BATCH_LENGTH or position + length + LENGTH_FIELD_END > size:
                raise self._corrupt(position, base, f"length field {length} does not frame a batch")
            if base + unpack_delta(view, position + LAST_OFFSET_DELTA_OFFSET)[0] >= offset:
                return position
            position += length + LENGTH_FIELD_END
        return None

    @_pinned
    def position_of(self, offset: int) -> int:
        """Byte position of the batch holding `offset` (or the first one after it); the size if none."""
        return self._position_of_first_batch_reaching(offset)

    @_pinned
    def read(self, position: int, max_bytes: int, end_position: int | None = None) -> bytes:
        """Whole batches from `position`, up to `max_bytes`, but always at least the first batch.

        With `end_position` (a batch boundary) nothing from there on is served, not even a first batch.

        Every batch is CRC-checked before it is served (hardware CRC-32C: see bench/README.md). The
        answer stops before the first bad batch; CorruptSegmentError is raised if that is the first one.
        The length fields are followed on the map, the answer is copied out once, and the check runs on
        that copy (`check_batches`: no per-batch objects), so what is checked is exactly what is served.
        """
        view = self._map
        size = self.size if end_position is None else min(self.size, end_position)
        if view is None or position >= size:
            return b""
        unpack_length = LENGTH_STRUCT.unpack_from
        end = position
        while end + HEADER_SIZE <= size:
            length = unpack_length(view, end + LENGTH_OFFSET)[0]
            next_end = end + length + LENGTH_FIELD_END
            if length < MIN_BATCH_LENGTH or next_end > size:
                if end == position:
                    why = f"length field {length} does not frame a batch within the segment's {size} bytes"
                    raise self._corrupt(end, OFFSET_AND_LENGTH_STRUCT.unpack_from(view, end)[0], why)
                break
            if next_end - position > max_bytes and end > position:
                break
            end = next_end
        data = view[position:end]
        good, problem = check_batches(data)
        if problem is None:
            return data
        if good == 0:
            raise self._corrupt(position, OFFSET_AND_LENGTH_STRUCT.unpack_from(view, position)[0], problem)
        return data[:good]

    def _corrupt(self, position: int, base_offset: int, why: str) -> CorruptSegmentError:
        return CorruptSegmentError(
            f"{self.log_path}: the stored batch at byte {position} (base offset {base_offset}) is corrupt: "
            f"{why}; run `logstore verify` on the data directory",
            path=self.log_path,
            offset=base_offset,
            position=position,
        )

    @_pinned
    def read_all(self) -> bytes:
        return self._map[: self.size] if self._map is not None else b""

    @_pinned
    def find_offset_by_timestamp(self, timestamp: int) -> tuple[int, int] | None:
        """The first record whose timestamp is >= `timestamp`, as (offset, its timestamp), or None."""
        if self.max_timestamp < timestamp:
            return None
        _, offset = self.time_index.lookup(timestamp)
        _, position = self.offset_index.lookup(offset)
        for pos, header in self._headers_from(position):
            if header.max_timestamp >= timestamp:
                assert self._map is not None  # the headers came from it
                for record in decode_batch(self._map, pos):
                    if record.timestamp >= timestamp:
                        return record.offset, record.timestamp
        return None

    def batches(self) -> Iterator[tuple[int, BatchHeader]]:
        """Every batch header with its position; the segment stays pinned until the iterator is done."""
        self._pin()
        try:
            yield from self._headers_from(0)
        finally:
            self._unpin()

    def __repr__(self) -> str:
        return f"LogSegment({self.log_path.name}, size={self.size}, next_offset={self.next_offset})"


def _fsync_path(path: Path, *, missing_ok: bool) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        if missing_ok:
            return
        raise
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
