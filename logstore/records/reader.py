"""Decoding v2 record batches into Record objects.

The per-record loop is the consumer's hot path. Two ways through it, giving the same records:

- runs of same-shaped records (the common producer output: one-byte timestamp deltas, consecutive offset
  deltas of one varint width, the same key and value lengths, no headers) are checked column by column
  with C-level strided slices and cut apart by ``struct.iter_unpack``, leaving only the record object's
  creation to Python;
- everything else goes through one flat loop: varints of one and two bytes (every length, delta and count
  of a typical record) are decoded inline, anything longer falls back to ``decode_varint``.

Values are sliced from ``bytes`` so each is one copy and a real ``bytes``. Records come out in chunks
(``decode_batch_chunks``) so that a consumer need not keep a whole batch of them alive at once.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from itertools import islice

from ..errors import CorruptRecordError
from .check import check_batch
from .compression import decompress
from .layout import HEADER_SIZE, LOG_APPEND_TIME, NONE, Readable, iter_headers
from .record import Header, Record
from .varint import decode_varint

# value of each one-byte zig-zag varint
_ONE_BYTE = [(z >> 1) ^ -(z & 1) for z in range(0x80)]
# value of each two-byte zig-zag varint b0 b1, at index b0 + (b1 << 7) (b0 has its high bit set, so the
# index is the 14-bit payload plus 0x80; the first 0x80 entries are never used)
_TWO_BYTES = [0] * 0x80 + [(z >> 1) ^ -(z & 1) for z in range(1 << 14)]

# --- same-shaped runs ------------------------------------------------------------------------------------
# Offset deltas 0..63 take one varint byte, 64..8191 two, 8192..(1 << 20) - 1 three: a run never crosses
# those bounds, so every record of it has the same layout and the same length.
_RUN_BOUNDS = (64, 8192, 1 << 20)
_MIN_RUN = 8  # shorter runs are not worth the column checks
_MAX_RUN_DELTA = 1 << 17  # offset deltas covered by the expected-column tables below (128 KiB each)


def _delta_columns() -> tuple[bytes, ...]:
    """The bytes of each varint position of offset deltas 0.. _MAX_RUN_DELTA, column by column: the one-
    byte column for deltas < 64, two columns for < 8192, three above (each indexed by the delta)."""
    zigzags = range(0, 2 * _MAX_RUN_DELTA, 2)
    low7 = bytes(z & 0x7F for z in zigzags)
    return (
        low7,  # a one-byte varint is the value itself (< 0x80)
        bytes(b | 0x80 for b in low7),  # the first byte of a longer one has its high bit set
        bytes((z >> 7) & 0x7F for z in zigzags),
        bytes(((z >> 7) & 0x7F) | 0x80 for z in zigzags),
        bytes(min(z >> 14, 0xFF) for z in zigzags),
    )


_D_ONE, _D_FIRST, _D_SECOND_LAST, _D_SECOND, _D_THIRD = _delta_columns()
_run_structs: dict[str, struct.Struct] = {}
_WHOLE_BATCH = 1 << 31  # more records than a batch can hold: decode_batch takes one chunk


def decode_batch(buf: Readable, pos: int = 0, record_type: type[Record] = Record) -> list[Record]:
    """Check the batch at ``pos`` (framing, magic, CRC) and return its records, decompressing if needed.

    With LogAppendTime every record's timestamp is the batch's max timestamp, as in Kafka. Records of a
    control batch are returned like any other (see ``BatchHeader.is_control``). ``record_type`` may be a
    subclass of Record that adds no slots: the records are made as that class directly.
    """
    for records in decode_batch_chunks(buf, pos, record_type, _WHOLE_BATCH):
        return records
    return []  # a batch without records (one chunk holds all the others)


def decode_batch_chunks(
    buf: Readable,
    pos: int = 0,
    record_type: type[Record] = Record,
    chunk_size: int = 512,
) -> Iterator[list[Record]]:
    """``decode_batch`` a chunk of at most ``chunk_size`` records at a time, each decoded when asked for.

    The batch is checked (framing, magic, CRC) before the first chunk, and its end (no bytes left over)
    before the last, so the chunk holding the batch's last record is the generator's last. A consumer that hands records out
    in small chunks keeps few of them alive at once: the cyclic garbage collector, which runs after every
    700 net allocations of container objects, then seldom runs, and records do not pile up in its older
    generations (whose full passes cost as much as decoding when a whole 1 MiB batch is kept alive).
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    return _record_chunks(buf, pos, record_type, chunk_size)


def iter_records(buf: bytes | bytearray | memoryview) -> Iterator[Record]:
    """Yield the records of every complete batch in ``buf``, in order; a partial tail is ignored.

    Each batch is checked (framing, magic, CRC) before its first record is yielded; records are decoded
    a chunk at a time, so a consumer that handles and drops them keeps memory flat.
    """
    for pos, _ in iter_headers(buf):
        for records in _record_chunks(buf, pos, Record, 512):
            yield from records


def _record_chunks(
    buf: Readable, pos: int, record_type: type[Record], chunk_size: int
) -> Iterator[list[Record]]:
    """Check the batch at ``pos`` and yield its records in lists of ``chunk_size`` (the last one shorter)."""
    header = check_batch(buf, pos)
    start = pos + HEADER_SIZE
    end = pos + header.size
    compression = header.compression
    if compression == NONE and type(buf) is bytes:
        data, p = buf, start
    else:
        with memoryview(buf) as view, view[start:end] as section:
            data = bytes(section)
        if compression != NONE:
            data = decompress(compression, data)
        p, end = 0, len(data)
    count = header.record_count
    base_offset = header.base_offset
    base_timestamp = header.base_timestamp
    timestamp_type = header.timestamp_type
    append_time = header.max_timestamp if timestamp_type == LOG_APPEND_TIME else None
    records: list[Record] = []
    append = records.append
    new = object.__new__
    one_byte = _ONE_BYTE
    two_bytes = _TWO_BYTES
    read_varint = decode_varint
    index = 0
    try_run_at = 0  # the next record index at which a same-shaped run may start
    try:
        while index < count:
            if index == try_run_at:
                bound = _run_bound(index)
                try_run_at = bound
                if bound - index >= _MIN_RUN and count - index >= _MIN_RUN:
                    run = _run_rows(data, p, end, index, min(bound, count))
                    if run is not None:
                        rows, keyed, p = run
                        timestamps = (
                            [base_timestamp + delta for delta in one_byte]
                            if append_time is None
                            else [append_time] * 0x80
                        )
                        offset = base_offset + index
                        left = min(bound, count) - index
                        index += left
                        while left:
                            part = min(left, chunk_size - len(records))
                            left -= part
                            # object.__new__ plus slot stores: no Python-level __init__ frame per record
                            if keyed:
                                for stamp, key, value in islice(rows, part):
                                    record = new(record_type)
                                    record.offset = offset
                                    record.timestamp = timestamps[stamp]
                                    record.timestamp_type = timestamp_type
                                    record.key = key
                                    record.value = value
                                    record._headers = None
                                    append(record)
                                    offset += 1
                            else:
                                for stamp, value in islice(rows, part):
                                    record = new(record_type)
                                    record.offset = offset
                                    record.timestamp = timestamps[stamp]
                                    record.timestamp_type = timestamp_type
                                    record.key = None
                                    record.value = value
                                    record._headers = None
                                    append(record)
                                    offset += 1
                            if len(records) == chunk_size and (left or index < count):
                                yield records
                                records = []
                                append = records.append
                        continue
            # record length: one or two bytes for records under 8 KiB
            b = data[p]
            if b < 0x80:
                length = one_byte[b]
                p += 1
            elif data[p + 1] < 0x80:
                length = two_bytes[b + (data[p + 1] << 7)]
                p += 2
            else:
                length, p = read_varint(data, p)
            record_end = p + length
            if record_end > end:
                raise CorruptRecordError(
                    f"batch at byte {pos}: record {index} declares {length} bytes, "
                    f"past the end of the records section by {record_end - end}"
                )
            # attributes byte (unused) then the timestamp delta
            b = data[p + 1]
            if b < 0x80:
                timestamp_delta = one_byte[b]
                p += 2
            else:
                timestamp_delta, p = read_varint(data, p + 1)
            b = data[p]
            if b < 0x80:
                offset_delta = one_byte[b]
                p += 1
            elif data[p + 1] < 0x80:
                offset_delta = two_bytes[b + (data[p + 1] << 7)]
                p += 2
            elif data[p + 2] < 0x80:  # deltas from 8192 on: the tail of a 1 MiB batch of small records
                z = (b & 0x7F) | ((data[p + 1] & 0x7F) << 7) | (data[p + 2] << 14)
                offset_delta = (z >> 1) ^ -(z & 1)
                p += 3
            else:
                offset_delta, p = read_varint(data, p)
            # key: a single 0x01 byte is the common null key
            if data[p] == 1:
                key = None
                p += 1
            else:
                key_length, p = read_varint(data, p)
                if key_length < 0:
                    key = None
                else:
                    key = data[p : p + key_length]
                    p += key_length
            b = data[p]
            if b < 0x80:
                value_length = one_byte[b]
                p += 1
            elif data[p + 1] < 0x80:
                value_length = two_bytes[b + (data[p + 1] << 7)]
                p += 2
            else:
                value_length, p = read_varint(data, p)
            if value_length < 0:
                value = None
            else:
                value = data[p : p + value_length]
                p += value_length
            if data[p] == 0:
                headers = None
                p += 1
            else:
                headers, p = _decode_headers(data, p)
            if p != record_end:
                raise CorruptRecordError(
                    f"batch at byte {pos}: record {index} declares {length} bytes "
                    f"but its fields take {length + p - record_end}"
                )
            # object.__new__ plus slot stores: no Python-level __init__ frame on the hot path
            record = new(record_type)
            record.offset = base_offset + offset_delta
            record.timestamp = base_timestamp + timestamp_delta if append_time is None else append_time
            record.timestamp_type = timestamp_type
            record.key = key
            record.value = value
            record._headers = headers
            append(record)
            index += 1
            if len(records) == chunk_size and index < count:  # the last chunk waits for the end checks
                yield records
                records = []
                append = records.append
    except (IndexError, ValueError) as exc:  # ran off the end of the data, or a header key is not UTF-8
        raise CorruptRecordError(f"batch at byte {pos}: malformed record {index} of {count}: {exc}") from None
    if p != end:
        raise CorruptRecordError(f"batch at byte {pos}: {end - p} bytes left over after its {count} records")
    if records:
        yield records


def _run_bound(index: int) -> int:
    """The first offset delta past ``index`` whose varint is wider than ``index``'s."""
    for bound in _RUN_BOUNDS:
        if index < bound:
            return bound
    return index  # deltas this large are never in a run


def _run_rows(
    data: bytes, p: int, end: int, first: int, stop: int
) -> tuple[Iterator[tuple], bool, int] | None:
    """If records ``first`` to ``stop - 1`` at ``p`` all have the shape of the first one and offset deltas
    equal to their index, return an iterator of their ``(timestamp delta byte, [key,] value)``, whether
    they have keys, and the position after them; None if they do not (the general loop takes them)."""
    if stop > _MAX_RUN_DELTA:
        return None
    # The first record's layout: length (1-2 bytes), attributes 0, timestamp delta (1 byte), offset delta
    # (width fixed by the run), key (null, or a length under 64), value length (1-2 bytes), value, no headers.
    b = data[p]
    if b < 0x80:
        length_width, length = 1, _ONE_BYTE[b]
    elif data[p + 1] < 0x80:
        length_width, length = 2, _TWO_BYTES[b + (data[p + 1] << 7)]
    else:
        return None
    if length <= 0:
        return None
    stride = length_width + length
    m = stop - first
    run_end = p + stride * m
    if run_end > end:
        return None
    delta_width = 1 if stop <= 64 else 2 if stop <= 8192 else 3
    key_at = p + length_width + 2 + delta_width
    key_byte = data[key_at]
    if key_byte == 1:
        key_length = -1
    elif key_byte < 0x80 and not key_byte & 1:
        key_length = key_byte >> 1
    else:
        return None
    value_at = key_at + 1 + max(key_length, 0)
    b = data[value_at]
    if b < 0x80:
        value_length_width, value_length = 1, b >> 1
    elif data[value_at + 1] < 0x80 and not b & 1:
        value_length_width, value_length = 2, _TWO_BYTES[b + (data[value_at + 1] << 7)]
    else:
        return None  # odd: a negative (null) value, or a varint too long for a run
    if value_at + value_length_width + value_length + 1 != p + stride:
        return None
    # Every column of the run must hold what the first record's layout says.
    zeros = bytes(m)
    at = p
    for column in range(length_width):
        if data[at + column : run_end : stride] != bytes((data[at + column],)) * m:
            return None
    at += length_width
    if data[at:run_end:stride] != zeros:  # attributes
        return None
    stamps = data[at + 1 : run_end : stride]
    if not stamps.isascii():  # timestamp deltas past one byte
        return None
    at += 2
    expected: tuple[bytes, ...]
    if delta_width == 1:
        expected = (_D_ONE[first:stop],)
    elif delta_width == 2:
        expected = (_D_FIRST[first:stop], _D_SECOND_LAST[first:stop])
    else:
        expected = (_D_FIRST[first:stop], _D_SECOND[first:stop], _D_THIRD[first:stop])
    for column, want in enumerate(expected):
        if data[at + column : run_end : stride] != want:
            return None
    if data[key_at:run_end:stride] != bytes((key_byte,)) * m:
        return None
    for column in range(value_length_width):
        at = value_at + column
        if data[at:run_end:stride] != bytes((data[at],)) * m:
            return None
    if data[p + stride - 1 : run_end : stride] != zeros:  # header counts
        return None
    # Cut the run apart in C: (timestamp delta byte, [key,] value) per record.
    skip_key = f"x{key_length}s" if key_length >= 0 else "x"
    layout = f"={length_width + 1}xB{delta_width}x{skip_key}{value_length_width}x{value_length}sx"
    unpacker = _run_structs.get(layout)
    if unpacker is None:
        unpacker = _run_structs[layout] = struct.Struct(layout)
    return unpacker.iter_unpack(memoryview(data)[p:run_end]), key_length >= 0, run_end


def _decode_headers(data: bytes, p: int) -> tuple[list[Header], int]:
    count, p = decode_varint(data, p)
    if count < 0:
        raise CorruptRecordError(f"record header count is {count}, must not be negative")
    headers: list[Header] = []
    for _ in range(count):
        key_length, p = decode_varint(data, p)
        if key_length < 0:
            raise CorruptRecordError(f"record header key length is {key_length}, must not be negative")
        key_end = p + key_length
        if key_end > len(data):
            raise IndexError("header key runs past the end of the data")
        key = data[p:key_end].decode("utf-8")
        p = key_end
        value_length, p = decode_varint(data, p)
        if value_length < 0:
            value = None
        else:
            value = data[p : p + value_length]
            p += value_length
        headers.append((key, value))
    return headers, p
