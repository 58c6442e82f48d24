"""Share records, and picking a member's records out of the batches a ShareFetch returns.

The batches a share fetch answers with may hold records of other members (before, between or after the
acquired ranges): only records inside an acquired range are this member's. Like ``ConsumerRecord``, a
``ShareRecord`` keeps its topic, partition and delivery count on a class made per (topic, partition,
delivery count), so ``decode_batch`` makes them directly with no store per record for those fields. A
batch wholly inside one acquired range (the common case) is taken as decoded, without a look at each
record.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from logstore.client.consumer.records import ConsumerRecord

from logstore.records import CREATE_TIME, decode_batch, iter_headers

Header = tuple[str, bytes | None]


class ShareRecord(ConsumerRecord):
    """A record of a share group: topic, partition, offset, timestamp, key, value, headers and
    ``delivery_count`` (1 on its first delivery; it grows each time the record is acquired again)."""

    __slots__ = ()

    delivery_count: int

    def __new__(cls, topic: str, partition: int, *args: object, **kwargs: object) -> ShareRecord:
        delivery_count = kwargs.get("delivery_count", 1)
        return object.__new__(share_record_class(topic, partition, int(delivery_count)))  # type: ignore[call-overload]

    def __init__(
        self,
        topic: str,
        partition: int,
        offset: int,
        timestamp: int,
        timestamp_type: int = CREATE_TIME,
        key: bytes | None = None,
        value: bytes | None = None,
        headers: list[Header] | None = None,
        delivery_count: int = 1,
    ) -> None:
        super().__init__(topic, partition, offset, timestamp, timestamp_type, key, value, headers)

    def __repr__(self) -> str:
        return (
            f"ShareRecord(topic={self.topic!r}, partition={self.partition!r}, offset={self.offset!r}, "
            f"delivery_count={self.delivery_count!r}, timestamp={self.timestamp!r}, key={self.key!r}, "
            f"value={self.value!r}, headers={self.headers!r})"
        )

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return _rebuild, (
            self.topic,
            self.partition,
            self.offset,
            self.timestamp,
            self.timestamp_type,
            self.key,
            self.value,
            self._headers,
            self.delivery_count,
        )


def _rebuild(
    topic: str,
    partition: int,
    offset: int,
    timestamp: int,
    timestamp_type: int,
    key: bytes | None,
    value: bytes | None,
    headers: list[Header] | None,
    delivery_count: int,
) -> ShareRecord:
    return ShareRecord(
        topic,
        partition,
        offset,
        timestamp,
        timestamp_type,
        key,
        value,
        headers,
        delivery_count=delivery_count,
    )


_classes: dict[tuple[str, int, int], type[ShareRecord]] = {}


def share_record_class(topic: str, partition: int, delivery_count: int) -> type[ShareRecord]:
    """The ShareRecord subclass of one partition and delivery count (made once, then cached)."""
    key = (topic, partition, delivery_count)
    cls = _classes.get(key)
    if cls is None:
        cls = type(
            "ShareRecord",
            (ShareRecord,),
            {
                "__slots__": (),
                "topic": topic,
                "partition": partition,
                "delivery_count": delivery_count,
                "__module__": __name__,
            },
        )
        _classes[key] = cls
    return cls


class Acquired(NamedTuple):
    first_offset: int
    last_offset: int
    delivery_count: int


class Taken(NamedTuple):
    """What one partition of a share fetch gave this member."""

    records: list[ShareRecord]
    held: list[tuple[int, int]]
    """The acquired ranges that the returned batches cover: the member's to acknowledge."""
    gaps: list[tuple[int, int]]
    """Held offsets with no record (removed by compaction, or transaction markers): accepted like records."""
    missing: list[tuple[int, int]]
    """Acquired offsets past the last whole batch returned: never seen, so given back (not an attempt)."""


def take_records(topic: str, partition: int, data: bytes, ranges: Sequence[Acquired]) -> Taken:
    """The records of ``data`` inside the acquired ``ranges`` (ascending), each batch decoded once."""
    out: list[ShareRecord] = []
    n = len(ranges)
    ri = 0
    seen_end = -1  # last offset covered by a batch in data
    for pos, header in iter_headers(data):
        base = header.base_offset
        last = base + header.last_offset_delta
        seen_end = max(seen_end, last)
        if header.is_control:
            continue
        while ri < n and ranges[ri].last_offset < base:
            ri += 1
        if ri == n:
            break
        first_range = ranges[ri]
        if first_range.first_offset > last:
            continue
        cls = share_record_class(topic, partition, first_range.delivery_count)
        records: list[ShareRecord] = decode_batch(data, pos, cls)  # type: ignore[assignment]
        if first_range.first_offset <= base and last <= first_range.last_offset:
            out.extend(records)  # the whole batch is ours, with one delivery count
            continue
        j = ri
        for record in records:
            offset = record.offset
            while j < n and ranges[j].last_offset < offset:
                j += 1
            if j == n:
                break
            if offset >= ranges[j].first_offset:
                if j != ri and ranges[j].delivery_count != first_range.delivery_count:
                    record.__class__ = share_record_class(topic, partition, ranges[j].delivery_count)
                out.append(record)
    held: list[tuple[int, int]] = []
    missing: list[tuple[int, int]] = []
    for r in ranges:
        if r.first_offset > seen_end:
            missing.append((r.first_offset, r.last_offset))
        elif r.last_offset > seen_end:
            held.append((r.first_offset, seen_end))
            missing.append((seen_end + 1, r.last_offset))
        else:
            held.append((r.first_offset, r.last_offset))
    size = sum(last - first + 1 for first, last in held)
    gaps = [] if len(out) == size else _gaps(out, held)
    return Taken(out, held, gaps, missing)


def _gaps(records: list[ShareRecord], held: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Offsets of ``held`` (ascending) that no record (ascending) has."""
    gaps: list[tuple[int, int]] = []
    offsets = [record.offset for record in records]
    k, count = 0, len(offsets)
    for first, last in held:
        expected = first
        while k < count and offsets[k] <= last:
            if offsets[k] > expected:
                gaps.append((expected, offsets[k] - 1))
            expected = max(expected, offsets[k] + 1)
            k += 1
        if expected <= last:
            gaps.append((expected, last))
    return gaps
