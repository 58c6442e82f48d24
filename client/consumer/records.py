"""Consumer records, and turning fetched bytes into them in bulk.

``decode_batch`` (the codec's tuned loop) makes one object per record. A ``ConsumerRecord`` must also say
its topic and partition; storing them in every record would cost two slot stores per record. Instead each
partition gets its own subclass of ``ConsumerRecord`` (which adds no slots, so it has the same layout as
``Record``) carrying ``topic`` and ``partition`` as class attributes, and ``decode_batch`` makes the
records as that class directly.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from logstore.client.shared.errors import SerializationError
from logstore.client.shared.types import TopicPartition

from logstore.records import CREATE_TIME, BatchHeader, Record, decode_batch, decode_batch_chunks, iter_headers

DECODE_CHUNK = 512
"""Records decoded at a time for the application: few enough that, handed out and dropped chunk by
chunk, they never set off the garbage collector (700 net allocations) and never reach its old
generations."""

Header = tuple[str, bytes | None]


class ConsumerRecord(Record):
    """A record as consumers see it: topic, partition, offset, timestamp, timestamp_type, key, value, headers.

    ``timestamp_type`` is 0 for create time (set by the producer) and 1 for log append time (set by the
    broker). ``headers`` is a list of ``(str, bytes | None)`` pairs.
    """

    __slots__ = ()

    topic: str
    partition: int

    def __new__(cls, topic: str, partition: int, *args: object, **kwargs: object) -> ConsumerRecord:
        return object.__new__(record_class(topic, partition))

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
    ) -> None:
        super().__init__(offset, timestamp, timestamp_type, key, value, headers)

    @property
    def topic_partition(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ConsumerRecord):
            return NotImplemented
        return self.topic == other.topic and self.partition == other.partition and super().__eq__(other)

    __hash__ = None

    def __repr__(self) -> str:
        return (
            f"ConsumerRecord(topic={self.topic!r}, partition={self.partition!r}, offset={self.offset!r}, "
            f"timestamp={self.timestamp!r}, timestamp_type={self.timestamp_type!r}, key={self.key!r}, "
            f"value={self.value!r}, headers={self.headers!r})"
        )

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return ConsumerRecord, (
            self.topic,
            self.partition,
            self.offset,
            self.timestamp,
            self.timestamp_type,
            self.key,
            self.value,
            self._headers,
        )


_classes: dict[tuple[str, int], type[ConsumerRecord]] = {}


def record_class(topic: str, partition: int) -> type[ConsumerRecord]:
    """The ConsumerRecord subclass of one partition (made once, then cached)."""
    cls = _classes.get((topic, partition))
    if cls is None:
        cls = type(
            "ConsumerRecord",
            (ConsumerRecord,),
            {"__slots__": (), "topic": topic, "partition": partition, "__module__": __name__},
        )
        _classes[(topic, partition)] = cls
    return cls


def batch_positions(data: bytes, start_offset: int) -> list[tuple[int, BatchHeader]]:
    """Positions and headers of the whole data batches in ``data`` that hold offsets >= ``start_offset``
    (control batches, which carry no application records, are left out)."""
    return [
        (pos, header)
        for pos, header in iter_headers(data)
        if header.base_offset + header.last_offset_delta >= start_offset and not header.is_control
    ]


def decode_as(cls: type[ConsumerRecord], data: bytes, pos: int, start_offset: int) -> list[ConsumerRecord]:
    """Decode the batch at ``pos`` into records of ``cls``, without those before ``start_offset``."""
    records = decode_batch(data, pos, cls)
    if records and records[0].offset < start_offset:
        records = [record for record in records if record.offset >= start_offset]
    return records  # type: ignore[return-value]


def decode_chunks_as(
    cls: type[ConsumerRecord], data: bytes, pos: int, start_offset: int, chunk_size: int = DECODE_CHUNK
) -> Iterator[list[ConsumerRecord]]:
    """``decode_as`` a chunk of at most ``chunk_size`` records at a time, each decoded when asked for."""
    for records in decode_batch_chunks(data, pos, cls, chunk_size):
        if records[-1].offset < start_offset:
            continue
        if records[0].offset < start_offset:
            records = [record for record in records if record.offset >= start_offset]
        yield records  # type: ignore[misc]


def decode_all(topic: str, partition: int, data: bytes, start_offset: int = 0) -> list[ConsumerRecord]:
    """Every record of every whole batch in ``data`` from ``start_offset`` on."""
    cls = record_class(topic, partition)
    out: list[ConsumerRecord] = []
    for pos, _ in batch_positions(data, start_offset):
        out.extend(decode_as(cls, data, pos, start_offset))
    return out


def with_deserializers(
    records: Sequence[ConsumerRecord], key_deserializer: object, value_deserializer: object
) -> None:
    """Replace keys and values in place by their deserialized form."""
    if key_deserializer is not None:
        for record in records:
            record.key = key_deserializer(record.key)  # type: ignore[operator]
    if value_deserializer is not None:
        for record in records:
            record.value = value_deserializer(record.value)  # type: ignore[operator]


def deserialize(
    records: Sequence[ConsumerRecord], key_deserializer: object, value_deserializer: object
) -> None:
    """`with_deserializers` for a consumer's poll: a deserializer's own failure is raised as
    SerializationError naming the partition (the error a consumer promises), the record left as it was."""
    try:
        with_deserializers(records, key_deserializer, value_deserializer)
    except SerializationError:
        raise
    except Exception as exc:
        raise SerializationError(
            f"a deserializer failed on a record of {records[0].topic_partition}: {exc!r}"
        ) from exc
