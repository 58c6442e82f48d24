"""Checking the inside of a batch a producer sent, before it is appended (Kafka's ``LogValidator``).

``check_batch`` checks what recovery needs (framing, magic byte, CRC) and so accepts the offset-delta gaps
compaction leaves. A CRC only says the bytes arrived as the producer sent them, not that a reader can
decode them: a batch from a producer must also hold exactly ``record_count`` well-formed records that
fill it to the last byte, with offset deltas 0..n-1 (else offsets are not dense), a codec we can decode,
and timestamps readers can use. This module checks all of that without an object per record:

- runs of same-shaped records (a producer's usual output: same lengths, one-byte timestamp deltas, no
  headers) are checked column by column with C-level strided slices, a few passes over the run's bytes;
- everything else goes through one flat varint loop (about a microsecond per record).
"""

from __future__ import annotations

from ..errors import CorruptRecordError, InvalidTimestampError
from .compression import decompress
from .layout import COMPRESSION_MASK, HEADER_SIZE, LENGTH_FIELD_END, NONE, TIMESTAMP_TYPE_MASK, BatchHeader
from .reader import (
    _D_FIRST,
    _D_ONE,
    _D_SECOND,
    _D_SECOND_LAST,
    _D_THIRD,
    _MAX_RUN_DELTA,
    _RUN_BOUNDS,
    decode_batch,
)
from .varint import decode_varint

NO_TIMESTAMP = -1
"""A record without a timestamp (Kafka's RecordBatch.NO_TIMESTAMP); any other negative one is refused."""

_MIN_RUN = 8  # shorter runs are cheaper in the flat loop
_ONE_BYTE = [(z >> 1) ^ -(z & 1) for z in range(0x80)]
_in_range_tables: dict[tuple[int, int], bytes] = {}


def validate_records(
    buf: bytes | bytearray | memoryview, pos: int, header: BatchHeader, *, require_keys: bool = False
) -> None:
    """Check the records of the batch at ``pos``, whose header ``check_batch`` has already checked.

    Raises CorruptRecordError when the last offset delta is not ``record_count - 1``, the codec is not one
    we decode (snappy, lz4), the records section does not decompress, a record's fields do not add up to
    its length, the records do not fill the batch exactly, an offset delta is not the record's index, or
    (with ``require_keys``, for compacted topics) a record has no key. Raises InvalidTimestampError when
    a record's timestamp is negative (other than -1, no timestamp), the header's max timestamp is not the
    largest record timestamp, or the producer set the LogAppendTime bit (the broker stamps that itself).
    """
    count = header.record_count
    if header.last_offset_delta != count - 1:
        raise CorruptRecordError(
            f"batch at byte {pos}: last offset delta {header.last_offset_delta} does not match its "
            f"{count} records (must be {count - 1}: a producer's offset deltas are 0 to n-1)"
        )
    if header.attributes & TIMESTAMP_TYPE_MASK:
        raise InvalidTimestampError(
            f"batch at byte {pos}: the producer set the LogAppendTime timestamp type; producers send "
            "CreateTime, and the broker stamps batches of topics with message.timestamp.type=LogAppendTime"
        )
    codec = header.attributes & COMPRESSION_MASK  # not the properties: this runs per batch
    start = pos + HEADER_SIZE
    end = pos + LENGTH_FIELD_END + header.length
    if codec == NONE:
        data = _whole_bytes(buf)
        if data is None:
            with memoryview(buf) as view, view[start:end] as section:
                data = bytes(section)
            p, stop = 0, end - start
        else:
            p, stop = start, end
    else:
        try:
            with memoryview(buf) as view, view[start:end] as section:
                data = decompress(codec, section)
        except CorruptRecordError as exc:
            raise CorruptRecordError(f"batch at byte {pos}: {exc}") from None
        p, stop = 0, len(data)
    stamps = _Timestamps(header.base_timestamp, header.max_timestamp, pos)
    _walk(data, p, stop, count, pos, require_keys, stamps)
    if not stamps.reached:  # rare and refused: decoding the batch to name the largest costs nothing here
        largest = max(record.timestamp for record in decode_batch(buf, pos))
        raise InvalidTimestampError(
            f"batch at byte {pos}: the header's max timestamp {header.max_timestamp} is larger than every "
            f"record's timestamp (the largest is {largest}); it must be the largest record timestamp"
        )


class _Timestamps:
    """The timestamp rules as bounds on the deltas: every record's timestamp (base + delta) is -1 or more
    and at most the header's max timestamp, and some record's is exactly that.

    Checking bounds and whether the top is reached takes one C-level pass over a run's column of deltas,
    where finding their minimum and maximum would touch each byte from Python.
    """

    __slots__ = ("base", "floor", "pos", "reached", "top")

    def __init__(self, base: int, max_timestamp: int, pos: int) -> None:
        self.base = base
        self.floor = NO_TIMESTAMP - base  # the smallest delta allowed
        self.top = max_timestamp - base  # the largest delta allowed, and the one some record must have
        self.pos = pos
        self.reached = False

    def refuse(self, index: int, delta: int) -> InvalidTimestampError:
        timestamp = self.base + delta
        if delta < self.floor:
            return InvalidTimestampError(
                f"batch at byte {self.pos}: record {index} has timestamp {timestamp}; timestamps are "
                f"milliseconds since the epoch, or {NO_TIMESTAMP} for none"
            )
        return InvalidTimestampError(
            f"batch at byte {self.pos}: record {index} has timestamp {timestamp}, larger than the header's "
            f"max timestamp {self.base + self.top}"
        )

    def check_column(self, column: bytes, first: int) -> None:
        """Check a run's one-byte zig-zag deltas (record ``first`` onwards)."""
        lo = self.floor if self.floor > -64 else -64
        hi = self.top if self.top < 63 else 63
        key = (lo, hi)
        allowed = _in_range_tables.get(key)
        if allowed is None:
            allowed = bytes((v << 1) ^ (v >> 63) for v in range(lo, hi + 1))
            if len(_in_range_tables) < 4096:
                _in_range_tables[key] = allowed
        outside = column.translate(None, allowed)
        if outside:
            index = column.index(outside[0])
            raise self.refuse(first + index, _ONE_BYTE[outside[0]])
        if not self.reached and hi == self.top and ((hi << 1) ^ (hi >> 63)) in column:
            self.reached = True


def _whole_bytes(buf: bytes | bytearray | memoryview) -> bytes | None:
    """``buf`` as the ``bytes`` it is or views whole (no copy), else None.

    A contiguous byte view as long as the ``bytes`` object under it starts at its first byte, so the
    positions agree. Strided slicing is fastest on ``bytes``, and the broker's batches arrive as ``bytes``.
    """
    if type(buf) is bytes:
        return buf
    if type(buf) is memoryview:
        under = buf.obj
        if type(under) is bytes and buf.c_contiguous and buf.itemsize == 1 and buf.nbytes == len(under):
            return under
    return None


def _walk(
    data: bytes, p: int, end: int, count: int, pos: int, require_keys: bool, stamps: _Timestamps
) -> None:
    """Walk the ``count`` records in ``data[p:end]``, checking each as ``validate_records`` says."""
    floor = stamps.floor
    top = stamps.top
    index = 0
    next_bound = 0  # the next offset delta at which the width of the offset-delta varint changes
    backoff = _MIN_RUN
    try_run_at = 0
    read_varint = _read_varint
    one_byte = _ONE_BYTE
    try:
        if 64 < count <= 8192 and _two_runs(data, p, end, count, require_keys, stamps):
            return
        while index < count:
            if index >= try_run_at:
                if index >= next_bound:
                    next_bound = _run_bound(index)
                run = _longest_run(
                    data, p, end, index, min(next_bound, count, _MAX_RUN_DELTA), require_keys, stamps
                )
                if run is not None:
                    taken, p = run
                    index += taken
                    backoff = _MIN_RUN
                    try_run_at = index
                    continue
                try_run_at = index + backoff  # records of mixed shapes: try again later, less often
                backoff = min(backoff * 2, 1024)
            # the flat loop: one record
            b = data[p]
            if b < 0x80:
                length = one_byte[b]
                p += 1
            else:
                length, p = read_varint(data, p)
            record_end = p + length
            if length < 0 or record_end > end:
                raise CorruptRecordError(
                    f"batch at byte {pos}: record {index} of {count} declares {length} bytes, but "
                    f"{end - p} are left in the records section"
                )
            b = data[p + 1]  # after the attributes byte (unused, any value): the timestamp delta
            if b < 0x80:
                delta = one_byte[b]
                p += 2
            else:
                delta, p = read_varint(data, p + 1)
            if delta < floor or delta > top:
                raise stamps.refuse(index, delta)
            if delta == top:
                stamps.reached = True
            b = data[p]
            if b < 0x80:
                offset_delta = one_byte[b]
                p += 1
            else:
                offset_delta, p = read_varint(data, p)
            if offset_delta != index:
                raise CorruptRecordError(
                    f"batch at byte {pos}: record {index} has offset delta {offset_delta}; a producer's "
                    f"records have offset deltas 0 to {count - 1} in order"
                )
            b = data[p]
            if b == 1:  # the null key
                if require_keys:
                    raise CorruptRecordError(_no_key(pos, index))
                p += 1
            else:
                key_length, p = read_varint(data, p)
                if key_length < 0:  # -1 written in more bytes than it needs is still the null key
                    if key_length < -1:
                        raise CorruptRecordError(
                            f"batch at byte {pos}: record {index} has key length {key_length}"
                        )
                    if require_keys:
                        raise CorruptRecordError(_no_key(pos, index))
                else:
                    p += key_length
            b = data[p]
            if b < 0x80:
                value_length = one_byte[b]
                p += 1
            else:
                value_length, p = read_varint(data, p)
            if value_length < -1:  # -1 is a null value (a tombstone)
                raise CorruptRecordError(
                    f"batch at byte {pos}: record {index} has value length {value_length}"
                )
            if value_length > 0:
                p += value_length
            if data[p] == 0:
                p += 1
            else:
                p = _walk_headers(data, p, record_end, pos, index)
            if p != record_end:
                raise CorruptRecordError(
                    f"batch at byte {pos}: record {index} declares {length} bytes but its fields take "
                    f"{length + p - record_end}"
                )
            index += 1
    except IndexError as exc:  # ran off the end of the data, or a varint did
        detail = str(exc) if isinstance(exc, _VarintError) else "runs past the end of the data"
        raise CorruptRecordError(f"batch at byte {pos}: record {index} of {count}: {detail}") from None
    if p != end:
        raise CorruptRecordError(
            f"batch at byte {pos}: {end - p} bytes left over after its {count} records (the record "
            "count or a record length is wrong)"
        )


class _VarintError(IndexError):
    """A varint ran past the end of the data or over ten bytes (so ``_walk`` can name the record)."""


def _read_varint(data: bytes, p: int) -> tuple[int, int]:
    try:
        return decode_varint(data, p)
    except CorruptRecordError as exc:
        raise _VarintError(str(exc)) from None


def _walk_headers(data: bytes, p: int, record_end: int, pos: int, index: int) -> int:
    """Walk one record's headers; the keys must be UTF-8, as the reader decodes them."""
    count, p = _read_varint(data, p)
    if count < 0:
        raise CorruptRecordError(f"batch at byte {pos}: record {index} has header count {count}")
    for _ in range(count):
        key_length, p = _read_varint(data, p)
        key_end = p + key_length
        if key_length < 0 or key_end > record_end:
            raise CorruptRecordError(
                f"batch at byte {pos}: record {index} has a header key of {key_length} bytes"
            )
        try:
            data[p:key_end].decode("utf-8")
        except UnicodeDecodeError:
            raise CorruptRecordError(
                f"batch at byte {pos}: record {index} has a header key that is not UTF-8"
            ) from None
        value_length, p = _read_varint(data, key_end)
        if value_length < -1:
            raise CorruptRecordError(
                f"batch at byte {pos}: record {index} has a header value length of {value_length}"
            )
        p += max(value_length, 0)
    return p


def _no_key(pos: int, index: int) -> str:
    return (
        f"batch at byte {pos}: the topic is compacted (cleanup.policy=compact): every record needs a key; "
        f"the record at offset delta {index} has none"
    )


def _run_bound(index: int) -> int:
    """The first offset delta past ``index`` whose varint is wider than ``index``'s."""
    for bound in _RUN_BOUNDS:
        if index < bound:
            return bound
    return index + 1  # deltas this large never form runs


def _longest_run(
    data: bytes, p: int, end: int, first: int, stop: int, require_keys: bool, stamps: _Timestamps
) -> tuple[int, int] | None:
    """Check the longest run of same-shaped records at ``p`` (records ``first`` up to ``stop - 1``).

    A run's record: length (1-2 bytes), attributes (any), timestamp delta (1 byte), offset delta (its
    width set by the run's deltas), key (null, or shorter than 64 bytes), value length (1-2 bytes), value,
    no headers. Every record of such a run has the same length, so each field is a column at a fixed
    stride: a strided slice per column checks all records at once in C. Returns ``(records, position
    after them)`` with the run's timestamps checked by ``stamps``, or None when fewer than ``_MIN_RUN``
    records from ``first`` share the first one's shape (the flat loop takes them). A prefix of a run is
    a run too, so one that breaks off is cut at the break by bisection.
    """
    if stop - first < _MIN_RUN or end - p < _MIN_RUN * 6:
        return None
    try:
        layout = _layout(data, p, stop, require_keys)
    except IndexError:  # fields running past the data: the flat loop reports them
        return None
    if layout is None:
        return None
    stride, length_width, delta_width, key_at, value_at, value_length_width = layout
    m = min(stop - first, (end - p) // stride)
    if m < _MIN_RUN:
        return None
    columns = _columns(p, stride, length_width, key_at, value_at, value_length_width)
    stamp_at = p + length_width + 1
    delta_at = stamp_at + 1
    if delta_width == 1:
        deltas: tuple[tuple[int, bytes], ...] = ((delta_at, _D_ONE),)
    elif delta_width == 2:
        deltas = ((delta_at, _D_FIRST), (delta_at + 1, _D_SECOND_LAST))
    else:
        deltas = ((delta_at, _D_FIRST), (delta_at + 1, _D_SECOND), (delta_at + 2, _D_THIRD))
    if not _is_run(data, p, stride, first, m, columns, stamp_at, deltas):
        if not _is_run(data, p, stride, first, _MIN_RUN, columns, stamp_at, deltas):
            return None
        good, bad = _MIN_RUN, m
        while bad - good > 1:
            middle = (good + bad) // 2
            if _is_run(data, p, stride, first, middle, columns, stamp_at, deltas):
                good = middle
            else:
                bad = middle
        m = good
    run_end = p + stride * m
    stamps.check_column(data[stamp_at:run_end:stride], first)
    return m, run_end


def _columns(
    p: int, stride: int, length_width: int, key_at: int, value_at: int, value_length_width: int
) -> tuple[int, ...]:
    """The positions of the bytes every record of a run shares: length, key length, value length and
    header count (the timestamp and offset deltas are checked apart)."""
    columns = (p, key_at) if length_width == 1 else (p, p + 1, key_at)
    if value_length_width == 1:
        return (*columns, value_at, p + stride - 1)
    return (*columns, value_at, value_at + 1, p + stride - 1)


def _two_runs(data: bytes, p: int, end: int, count: int, require_keys: bool, stamps: _Timestamps) -> bool:
    """Check a batch of 65 to 8192 records that is two whole runs, records 0-63 and 64 on, if it is.

    That is Kafka's default 16 KiB batch of small records; its two halves differ only in the width of
    the offset delta. Checked in one call with one timestamp check, it pays the fixed Python cost of a
    run (most of the cost at this size) about once instead of twice. False leaves it to ``_walk``.
    """
    try:
        head = _layout(data, p, 64, require_keys)
        if head is None:
            return False
        split = p + 64 * head[0]
        if split >= end:
            return False
        tail = _layout(data, split, count, require_keys)
    except IndexError:
        return False
    if tail is None or split + tail[0] * (count - 64) != end:
        return False
    stride, length_width, _, key_at, value_at, value_length_width = head
    head_stamps = p + length_width + 1
    head_columns = _columns(p, stride, length_width, key_at, value_at, value_length_width)
    if not _is_run(data, p, stride, 0, 64, head_columns, head_stamps, ((head_stamps + 1, _D_ONE),)):
        return False
    tail_stride, length_width, _, key_at, value_at, value_length_width = tail
    tail_stamps = split + length_width + 1
    tail_columns = _columns(split, tail_stride, length_width, key_at, value_at, value_length_width)
    tail_deltas = ((tail_stamps + 1, _D_FIRST), (tail_stamps + 2, _D_SECOND_LAST))
    if not _is_run(data, split, tail_stride, 64, count - 64, tail_columns, tail_stamps, tail_deltas):
        return False
    stamps.check_column(data[head_stamps:split:stride] + data[tail_stamps:end:tail_stride], 0)
    return True


def _is_run(
    data: bytes,
    p: int,
    stride: int,
    first: int,
    count: int,
    columns: tuple[int, ...],
    stamp_at: int,
    deltas: tuple[tuple[int, bytes], ...],
) -> bool:
    """Whether ``count`` records from ``p`` share the bytes of the first at ``columns``, have one-byte
    timestamp deltas and offset deltas ``first`` onwards."""
    run_end = p + stride * count
    for at in columns:
        if data[at:run_end:stride].count(data[at]) != count:
            return False
    if not data[stamp_at:run_end:stride].isascii():
        return False
    last = first + count
    for at, table in deltas:  # noqa: SIM110 (a loop: all() over a generator costs more on this path)
        if data[at:run_end:stride] != table[first:last]:
            return False
    return True


def _layout(data: bytes, p: int, stop: int, require_keys: bool) -> tuple[int, int, int, int, int, int] | None:
    """The layout of the record at ``p`` if it can start a run ending before offset delta ``stop``:
    ``(stride, length width, offset-delta width, key position, value position, value-length width)``."""
    b = data[p]
    if b < 0x80:
        length_width, length = 1, b >> 1
    elif data[p + 1] < 0x80:
        length_width, length = 2, ((b & 0x7F) | (data[p + 1] << 7)) >> 1
    else:
        return None
    if b & 1:  # a negative length: the flat loop refuses it
        return None
    stride = length_width + length
    delta_width = 1 if stop <= 64 else 2 if stop <= 8192 else 3
    key_at = p + length_width + 2 + delta_width
    key_byte = data[key_at]
    if key_byte == 1:
        if require_keys:
            return None  # the flat loop names the record
        key_length = 0
    elif key_byte < 0x80 and not key_byte & 1:
        key_length = key_byte >> 1
    else:
        return None
    value_at = key_at + 1 + key_length
    b = data[value_at]
    if b < 0x80:
        value_length_width, value_length = 1, b >> 1
    elif data[value_at + 1] < 0x80:
        value_length_width, value_length = 2, ((b & 0x7F) | (data[value_at + 1] << 7)) >> 1
    else:
        return None
    if b & 1 or value_at + value_length_width + value_length + 1 != p + stride:
        return None  # a null value, or fields that do not add up to the length: the flat loop decides
    return stride, length_width, delta_width, key_at, value_at, value_length_width
