"""Building v2 record batches, one record at a time or in one shot.

Records are encoded as they are appended into a list of byte pieces that ``build()`` joins once. The
common producer record (bytes value, no key, no headers, small timestamp and offset deltas) takes a
fast path made of table lookups and three list items; everything else goes through
``encode_record``, the general and reference encoder. Both produce the same bytes.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from itertools import chain, repeat
from operator import add, sub
from typing import cast

from .compression import compress, require_supported
from .crc import crc32c
from .layout import (
    CRC_COVERED_HEAD_STRUCT,
    CREATE_TIME,
    HEAD_STRUCT,
    LENGTH_FIELD_END,
    LOG_APPEND_TIME,
    MAGIC,
    MIN_BATCH_LENGTH,
    NO_PARTITION_LEADER_EPOCH,
    NO_PRODUCER_EPOCH,
    NO_PRODUCER_ID,
    NO_SEQUENCE,
    NONE,
    TIMESTAMP_TYPE_MASK,
    TRANSACTIONAL_MASK,
)
from .record import Header, Record
from .varint import VARINT, VARINT_TABLE_LIMIT, VARINT_TABLE_NEGATIVE, encode_varint

BytesLike = bytes | bytearray | memoryview

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
_INT32_MAX = (1 << 31) - 1

_HEAD = HEAD_STRUCT
_CRC_COVERED_HEAD = CRC_COVERED_HEAD_STRUCT

# Fast-path tables. A record without key and headers is
#   length | attributes 0 | timestamp delta | offset delta | key length -1 | value length | value | 0 headers
# and these tables hold ready-made runs of it for the usual small deltas and lengths (a few hundred KB;
# each saves a bytes concatenation per record).
_TS_DELTA_LIMIT = 1 << 10  # timestamp deltas in [-64, 1024) ms: appends within a second of the first
_ATTRIBUTES_AND_TS_DELTA = [b"\x00" + VARINT[i] for i in range(_TS_DELTA_LIMIT)] + [
    b"\x00" + VARINT[i] for i in range(-VARINT_TABLE_NEGATIVE, 0)
]
_NULL_KEY_TABLE_LIMIT = 1 << 12  # values under 4 KiB; longer ones concatenate (cheap beside their copy)
_NULL_KEY_AND_VALUE_LENGTH = [b"\x01" + VARINT[n] for n in range(_NULL_KEY_TABLE_LIMIT)]
_FAST_VALUE_LIMIT = VARINT_TABLE_LIMIT - 16  # keeps the whole record length inside the VARINT table
_NO_HEADERS = b"\x00"
_NULL = b"\x01"  # a varint -1: null key or null value

# Bulk tables (``append_many``): for a run of same-shaped records, the head before the offset delta,
# indexed by timestamp delta, one table per (body length less the timestamp delta's varint); built lazily.
_PREFIXES: dict[int, list[bytes]] = {}
_TS_DELTAS = [*range(_TS_DELTA_LIMIT), *range(-VARINT_TABLE_NEGATIVE, 0)]


_OFFSET_WIDTH_RUNS = ((0, 1 << 6), (1 << 6, 1 << 13), (1 << 13, VARINT_TABLE_LIMIT))


def _same_length(items: Sequence[bytes]) -> bool:
    return len(set(map(len, items))) == 1


_OFFSETS: dict[bytes, list[bytes]] = {}


def _offset_table(after_offset: bytes) -> list[bytes]:
    """``offset delta varint | after_offset`` for every tabled offset delta (after_offset: the key length
    varint, or the null key and value length)."""
    table = _OFFSETS.get(after_offset)
    if table is None:
        if len(_OFFSETS) >= 8:
            _OFFSETS.clear()  # bounded: a few hundred KB each
        table = _OFFSETS[after_offset] = list(map(add, VARINT[:VARINT_TABLE_LIMIT], repeat(after_offset)))
    return table


def _prefix_table(base_body_length: int) -> list[bytes]:
    """``length varint | attributes | timestamp delta varint`` for every tabled timestamp delta."""
    table = _PREFIXES.get(base_body_length)
    if table is None:
        if len(_PREFIXES) >= 64:
            _PREFIXES.clear()  # bounded: record shapes rarely vary that much
        table = _PREFIXES[base_body_length] = [
            VARINT[base_body_length + len(VARINT[delta])] + b"\x00" + VARINT[delta] for delta in _TS_DELTAS
        ]
    return table


def _bytes_field(name: str, data: object) -> bytes | bytearray:
    """Return ``data`` as something ``len`` and ``+=`` treat as raw bytes, or raise TypeError."""
    if type(data) is bytes or type(data) is bytearray:
        return data
    if isinstance(data, memoryview):
        return data.tobytes()  # byte length even for multi-byte formats, and contiguous
    if isinstance(data, (bytes, bytearray)):
        return data  # subclasses of bytes / bytearray
    if isinstance(data, str):
        raise TypeError(
            f"record {name} must be bytes, bytearray or memoryview, not str: "
            f"encode it (e.g. {name}.encode('utf-8')) or configure a serializer"
        )
    raise TypeError(f"record {name} must be bytes, bytearray, memoryview or None, not {type(data).__name__}")


def encode_record(
    offset_delta: int,
    timestamp_delta: int,
    key: BytesLike | None,
    value: BytesLike | None,
    headers: Iterable[Header] | None = (),
) -> bytes:
    """Encode one record, length prefix included. The general path, and the reference for the fast one."""
    body = bytearray(b"\x00")  # record attributes: unused, always 0
    body += encode_varint(timestamp_delta)
    body += encode_varint(offset_delta)
    for name, field in (("key", key), ("value", value)):
        if field is None:
            body += _NULL
        else:
            data = _bytes_field(name, field)
            body += encode_varint(len(data))
            body += data
    header_list = list(headers) if headers else []
    body += encode_varint(len(header_list))
    for header in header_list:
        try:
            header_key, header_value = header
        except (TypeError, ValueError):
            raise TypeError(f"a record header must be a (str, bytes | None) pair, not {header!r}") from None
        if not isinstance(header_key, str):
            raise TypeError(
                f"record header keys must be str, not {type(header_key).__name__}: {header_key!r}"
            )
        encoded_key = header_key.encode("utf-8")
        body += encode_varint(len(encoded_key))
        body += encoded_key
        if header_value is None:
            body += _NULL
        else:
            data = _bytes_field("header value", header_value)
            body += encode_varint(len(data))
            body += data
    return encode_varint(len(body)) + body


def _check_int(name: str, value: int, low: int, high: int) -> None:
    if not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an int in [{low}, {high}], got {value!r}")


class BatchBuilder:
    """Accumulates records into one RecordBatch v2.

    ``size_in_bytes()`` is exact for an uncompressed batch and an upper estimate (the uncompressed size)
    otherwise, which is what a producer needs to decide whether the next record still fits.
    """

    __slots__ = (
        "_attributes",
        "_base_offset",
        "_base_sequence",
        "_base_timestamp",
        "_compression",
        "_count",
        "_max_timestamp",
        "_partition_leader_epoch",
        "_pieces",
        "_producer_epoch",
        "_producer_id",
        "_size",
    )

    def __init__(
        self,
        *,
        compression: int = NONE,
        timestamp_type: int = CREATE_TIME,
        producer_id: int = NO_PRODUCER_ID,
        producer_epoch: int = NO_PRODUCER_EPOCH,
        base_sequence: int = NO_SEQUENCE,
        base_offset: int = 0,
        partition_leader_epoch: int = NO_PARTITION_LEADER_EPOCH,
        is_transactional: bool = False,
    ) -> None:
        require_supported(compression)
        if timestamp_type not in (CREATE_TIME, LOG_APPEND_TIME):
            raise ValueError(
                f"timestamp_type must be CREATE_TIME ({CREATE_TIME}) or LOG_APPEND_TIME ({LOG_APPEND_TIME}), "
                f"got {timestamp_type!r}"
            )
        _check_int("producer_id", producer_id, _INT64_MIN, _INT64_MAX)
        _check_int("producer_epoch", producer_epoch, -(1 << 15), (1 << 15) - 1)
        _check_int("base_sequence", base_sequence, -(1 << 31), _INT32_MAX)
        _check_int("base_offset", base_offset, _INT64_MIN, _INT64_MAX)
        _check_int("partition_leader_epoch", partition_leader_epoch, -(1 << 31), _INT32_MAX)
        if is_transactional and producer_id == NO_PRODUCER_ID:
            raise ValueError("a transactional batch needs a producer_id (got -1)")
        self._attributes = (
            compression
            | (TIMESTAMP_TYPE_MASK if timestamp_type == LOG_APPEND_TIME else 0)
            | (TRANSACTIONAL_MASK if is_transactional else 0)
        )
        self._compression = compression
        self._producer_id = producer_id
        self._producer_epoch = producer_epoch
        self._base_sequence = base_sequence
        self._base_offset = base_offset
        self._partition_leader_epoch = partition_leader_epoch
        self._pieces: list[bytes | bytearray] = []
        self._count = 0
        self._size = MIN_BATCH_LENGTH + LENGTH_FIELD_END
        self._base_timestamp = 0
        self._max_timestamp = 0

    @property
    def record_count(self) -> int:
        return self._count

    def size_in_bytes(self) -> int:
        """Bytes the built batch will take: exact without compression, an upper estimate with it."""
        return self._size

    def append(
        self,
        value: BytesLike | None,
        key: BytesLike | None = None,
        headers: Iterable[Header] | None = (),
        timestamp_ms: int | None = None,
    ) -> int:
        """Add a record and return its offset delta within the batch (0 for the first record).

        ``timestamp_ms`` defaults to the current time, read once per call.
        """
        if timestamp_ms is None:
            timestamp_ms = time.time_ns() // 1_000_000
        elif not isinstance(timestamp_ms, int):
            raise TypeError(f"timestamp_ms must be an int (ms since the epoch), not {timestamp_ms!r}")
        elif not _INT64_MIN <= timestamp_ms <= _INT64_MAX:
            raise ValueError(f"timestamp_ms {timestamp_ms} is outside the int64 range")
        offset_delta = self._count
        if offset_delta:
            timestamp_delta = timestamp_ms - self._base_timestamp
            if timestamp_ms > self._max_timestamp:
                self._max_timestamp = timestamp_ms
        else:
            self._base_timestamp = self._max_timestamp = timestamp_ms
            timestamp_delta = 0
        if (
            key is None
            and not headers
            and type(value) is bytes
            and -VARINT_TABLE_NEGATIVE <= timestamp_delta < _TS_DELTA_LIMIT
            and offset_delta < VARINT_TABLE_LIMIT
        ):
            value_length = len(value)
            if value_length < _FAST_VALUE_LIMIT:
                if value_length < _NULL_KEY_TABLE_LIMIT:
                    middle = (
                        _ATTRIBUTES_AND_TS_DELTA[timestamp_delta]
                        + VARINT[offset_delta]
                        + _NULL_KEY_AND_VALUE_LENGTH[value_length]
                    )
                else:
                    middle = (
                        _ATTRIBUTES_AND_TS_DELTA[timestamp_delta]
                        + VARINT[offset_delta]
                        + _NULL
                        + VARINT[value_length]
                    )
                body_length = len(middle) + value_length + 1
                head = VARINT[body_length] + middle
                self._pieces += (head, value, _NO_HEADERS)
                self._size += len(head) + value_length + 1
                self._count = offset_delta + 1
                return offset_delta
        if (
            type(key) is bytes
            and type(value) is bytes
            and not headers
            and -VARINT_TABLE_NEGATIVE <= timestamp_delta < _TS_DELTA_LIMIT
            and offset_delta < VARINT_TABLE_LIMIT
        ):
            # The keyed producer record: the same runs of table bytes around a key (a quarter of the
            # general encoder's cost, which dominated sending keyed records).
            key_length = len(key)
            value_length = len(value)
            if key_length + value_length < _FAST_VALUE_LIMIT:
                middle = (
                    _ATTRIBUTES_AND_TS_DELTA[timestamp_delta]
                    + VARINT[offset_delta]
                    + VARINT[key_length]
                    + key
                    + VARINT[value_length]
                )
                body_length = len(middle) + value_length + 1
                head = VARINT[body_length] + middle
                self._pieces += (head, value, _NO_HEADERS)
                self._size += len(head) + value_length + 1
                self._count = offset_delta + 1
                return offset_delta
        if offset_delta >= _INT32_MAX:
            raise ValueError(f"a batch holds at most {_INT32_MAX} records")
        record = encode_record(offset_delta, timestamp_delta, key, value, headers)
        self._pieces.append(record)
        self._size += len(record)
        self._count = offset_delta + 1
        return offset_delta

    def append_many(self, fields: Sequence[bytes | int | None]) -> None:
        """Append records given flat as ``[value, key, timestamp_ms, value, key, timestamp_ms, ...]``
        (bytes values, bytes or None keys, int timestamps, no headers; flat because a producer builds that
        list with one ``+=`` per record): the same bytes as ``append`` on each in turn. When they share one shape (one value
        length, one key length or no keys, deltas inside the tables) they are encoded by a few C-level
        passes instead of a Python loop, so a producer can encode a whole batch at once cheaply."""
        count = len(fields) // 3
        if not count:
            return
        first = self._count
        values = cast("Sequence[bytes]", fields[0::3])
        keys = cast("Sequence[bytes | None]", fields[1::3])
        stamps = cast("Sequence[int]", fields[2::3])
        value_length = len(values[0])
        key = keys[0]
        key_length = -1 if key is None else len(key)
        stamp_high = max(stamps)
        base = self._base_timestamp if first else stamps[0]
        if not (
            first + count <= VARINT_TABLE_LIMIT
            and base - VARINT_TABLE_NEGATIVE <= min(stamps)
            and stamp_high < base + _TS_DELTA_LIMIT
            and key_length + value_length < _FAST_VALUE_LIMIT
            and _same_length(values)
            and (
                keys.count(None) == count
                if key is None
                else None not in keys and _same_length(cast("Sequence[bytes]", keys))
            )
        ):
            append = self.append
            for value, key, stamp in zip(values, keys, stamps, strict=True):
                append(value, key, (), stamp)
            return
        if not first:
            self._base_timestamp = base
            self._max_timestamp = stamp_high
        elif stamp_high > self._max_timestamp:
            self._max_timestamp = stamp_high
        if key is None:
            after_offset = _NULL + VARINT[value_length]
            record_rest = value_length + 1
        else:
            after_offset = VARINT[key_length]
            record_rest = key_length + len(VARINT[value_length]) + value_length + 1
        # The body less its two delta varints: attributes, key, value and their lengths, header count.
        fixed = 1 + len(after_offset) + record_rest
        pieces = self._pieces
        size = 0
        for low, high in _OFFSET_WIDTH_RUNS:  # the offset delta's varint width is fixed within each
            start = max(first, low) - first
            stop = min(first + count, high) - first
            if start >= stop:
                continue
            width = len(VARINT[low])
            prefixes = list(
                map(_prefix_table(fixed + width).__getitem__, map(sub, stamps[start:stop], repeat(base)))
            )
            offsets = _offset_table(after_offset)[first + start : first + stop]
            run_values = values[start:stop]
            if key is None:
                pieces += chain.from_iterable(zip(prefixes, offsets, run_values, repeat(_NO_HEADERS)))
            else:
                pieces += chain.from_iterable(
                    zip(
                        prefixes,
                        offsets,
                        keys[start:stop],
                        repeat(VARINT[value_length]),
                        run_values,
                        repeat(_NO_HEADERS),
                    )
                )
            size += sum(map(len, prefixes)) + (stop - start) * (width + len(after_offset) + record_rest)
        self._size += size
        self._count = first + count

    def build(self) -> bytes:
        """Return the finished batch. The builder stays usable; building again gives the same bytes."""
        count = self._count
        if not count:
            raise ValueError("cannot build an empty batch: append at least one record first")
        section = b"".join(self._pieces)
        if self._compression != NONE:
            section = compress(self._compression, section)
        covered_head = _CRC_COVERED_HEAD.pack(
            self._attributes,
            count - 1,
            self._base_timestamp,
            self._max_timestamp,
            self._producer_id,
            self._producer_epoch,
            self._base_sequence,
            count,
        )
        crc = crc32c(section, crc32c(covered_head))
        head = _HEAD.pack(
            self._base_offset, MIN_BATCH_LENGTH + len(section), self._partition_leader_epoch, MAGIC, crc
        )
        return b"".join((head, covered_head, section))


def build_batch(
    values_or_records: Iterable[BytesLike | Record | None],
    *,
    compression: int = NONE,
    timestamp_type: int = CREATE_TIME,
    producer_id: int = NO_PRODUCER_ID,
    producer_epoch: int = NO_PRODUCER_EPOCH,
    base_sequence: int = NO_SEQUENCE,
    base_offset: int = 0,
    partition_leader_epoch: int = NO_PARTITION_LEADER_EPOCH,
    is_transactional: bool = False,
) -> bytes:
    """Build one batch from values (bytes-like or None, stamped now) or Records (their key, value,
    headers and timestamp; their offsets are ignored, records get consecutive offset deltas)."""
    builder = BatchBuilder(
        compression=compression,
        timestamp_type=timestamp_type,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=base_sequence,
        base_offset=base_offset,
        partition_leader_epoch=partition_leader_epoch,
        is_transactional=is_transactional,
    )
    append = builder.append
    now_ms = time.time_ns() // 1_000_000
    for item in values_or_records:
        if isinstance(item, Record):
            append(item.value, item.key, item.headers, item.timestamp)
        else:
            append(item, None, (), now_ms)
    return builder.build()
