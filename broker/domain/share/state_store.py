"""Share-group state kept as records in the internal compacted topic `__share_group_state`.

Modelled on the consumer groups' offset store (`logstore.broker.domain.groups.offset_store`): the storage
engine is the state store. Two kinds of records, both keyed so that compaction keeps only the latest:

- (group, topic, partition) -> the share-partition's `PartitionSnapshot`: its window, the spans of
  offsets inside it with their state and delivery count, and how many records were archived so far;
- (group) -> the group's configuration (the names set for it, as strings).

A tombstone (a null value) deletes either. One group's records all go to one partition of the topic
(murmur3 of the group id, as the offsets topic does), so one request of one member is one append.

Snapshots are written often (every acquisition and every acknowledgement: hundreds per second when a
consumer takes 300,000 records/s), so their value is a compact binary encoding of varints rather than
JSON; keys stay versioned JSON, small and readable with `logstore dump-log`. At start-up the whole topic
is replayed (in a cluster, each partition when this broker comes to lead it); a batch that fails its check stops the broker, naming the file (starting without the state
would redeliver accepted records).

In a cluster the topic is replicated like any other: a partition's leader (the coordinator of the
groups it holds) stamps its leader epoch on every batch, replays the partition when it takes it over,
and never appends to a partition it does not lead (a follower's copy is the replica fetcher's).

Not thread-safe: the broker calls it from its event loop only.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import mmh3
from logstore.broker.domain.errors import NotCoordinatorError
from logstore.broker.domain.internal_topics import ensure_internal_topic
from logstore.broker.domain.replicas import NotReplicated, Replicas
from logstore.broker.share_machine.model import PartitionSnapshot, PersistedSpan, RecordState

from logstore.errors import CorruptRecordError, CorruptSegmentError
from logstore.log import Log
from logstore.manager import LogManager
from logstore.records import BatchBuilder, iter_records

log = logging.getLogger(__name__)

STATE_TOPIC = "__share_group_state"
DEFAULT_STATE_PARTITIONS = 8
STATE_TOPIC_CONFIG = {
    "cleanup.policy": "compact",
    "segment.bytes": str(64 * 1024 * 1024),
    "min.cleanable.dirty.ratio": "0.5",
}
_VERSION = 1
_SNAPSHOT_KEY = b"\x01s"
_CONFIG_KEY = b"\x01c"
_STATE_CODES = {RecordState.AVAILABLE: 0, RecordState.ACKNOWLEDGED: 1, RecordState.ARCHIVED: 2}
_STATE_CODES[RecordState.ACQUIRED] = 0  # a lock does not survive a restart: persisted as available
_STATES = (RecordState.AVAILABLE, RecordState.ACKNOWLEDGED, RecordState.ARCHIVED)

PartitionKey = tuple[str, int]


# --- encoding (pure) ------------------------------------------------------------------------------------


def _put(out: bytearray, value: int) -> None:
    """Append an unsigned LEB128 varint (every number here is >= 0)."""
    if value < 0:
        raise ValueError(f"cannot encode negative value {value} in a share-partition snapshot")
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _get(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    shift = 0
    while True:
        try:
            byte = data[pos]
        except IndexError:
            raise CorruptRecordError("share-partition snapshot ends inside a number") from None
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 70:
            raise CorruptRecordError("share-partition snapshot holds a number longer than ten bytes")


def encode_snapshot(snapshot: PartitionSnapshot) -> bytes:
    """Version byte, then varints: start, window length, archived total, span count, and per span its
    gap after the previous one, its length - 1, its state and its delivery count."""
    out = bytearray((_VERSION,))
    start = snapshot.start_offset
    _put(out, start)
    _put(out, snapshot.end_offset - start)
    _put(out, snapshot.archived_total)
    _put(out, len(snapshot.spans))
    cursor = start
    for span in snapshot.spans:
        _put(out, span.first_offset - cursor)
        _put(out, span.last_offset - span.first_offset)
        _put(out, _STATE_CODES[span.state])
        _put(out, span.delivery_count)
        cursor = span.last_offset + 1
    return bytes(out)


def decode_snapshot(data: bytes) -> PartitionSnapshot:
    if not data or data[0] != _VERSION:
        raise CorruptRecordError(f"share-partition snapshot of unknown version {data[:1]!r}")
    start, pos = _get(data, 1)
    length, pos = _get(data, pos)
    archived, pos = _get(data, pos)
    count, pos = _get(data, pos)
    spans = []
    cursor = start
    for _ in range(count):
        gap, pos = _get(data, pos)
        span_length, pos = _get(data, pos)
        code, pos = _get(data, pos)
        delivery_count, pos = _get(data, pos)
        if code >= len(_STATES):
            raise CorruptRecordError(f"share-partition snapshot holds unknown record state {code}")
        first = cursor + gap
        spans.append(PersistedSpan(first, first + span_length, _STATES[code], delivery_count))
        cursor = first + span_length + 1
    if pos != len(data):
        raise CorruptRecordError(f"share-partition snapshot has {len(data) - pos} bytes after its end")
    return PartitionSnapshot(start, start + length, tuple(spans), archived)


def snapshot_key(group_id: str, topic: str, partition: int) -> bytes:
    return _SNAPSHOT_KEY + json.dumps([group_id, topic, partition], separators=(",", ":")).encode()


def config_key(group_id: str) -> bytes:
    return _CONFIG_KEY + json.dumps([group_id], separators=(",", ":")).encode()


def encode_config(values: Mapping[str, str]) -> bytes:
    return bytes((_VERSION,)) + json.dumps(dict(sorted(values.items())), separators=(",", ":")).encode()


def decode_config(data: bytes) -> dict[str, str]:
    if not data or data[0] != _VERSION:
        raise CorruptRecordError(f"share-group config of unknown version {data[:1]!r}")
    body = json.loads(data[1:])
    return {str(name): str(value) for name, value in body.items()}


# --- the store ------------------------------------------------------------------------------------------


@dataclass
class Replayed:
    """What the topic held at start-up: the latest snapshot per share-partition and config per group."""

    snapshots: dict[str, dict[PartitionKey, PartitionSnapshot]] = field(default_factory=dict)
    configs: dict[str, dict[str, str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Written:
    """Where a write went: flush `log` up to `last_offset + 1` to make it durable (and, in a cluster,
    wait for partition `partition` of `topic` to be on every in-sync replica up to there)."""

    log: Log
    last_offset: int
    topic: str
    partition: int


class ShareStateStore:
    """Appends share-group state records and replays them at start-up."""

    def __init__(
        self, manager: LogManager, partitions: int = DEFAULT_STATE_PARTITIONS, *, clustered: bool = False
    ) -> None:
        self._manager = manager
        self._clustered = clustered
        self._partitions = ensure_internal_topic(manager, STATE_TOPIC, partitions, STATE_TOPIC_CONFIG)
        self._keys: dict[tuple[str, str, int], bytes] = {}
        self.replicas: Replicas = NotReplicated()
        """In a cluster: the leader epoch to stamp, and the high watermark to move, on each append."""

    @property
    def partitions(self) -> int:
        return self._partitions

    def partition_for(self, group_id: str) -> int:
        return mmh3.hash(group_id.encode(), seed=0, signed=False) % self._partitions

    def log_for(self, group_id: str) -> Log:
        return self._manager.log(STATE_TOPIC, self.partition_for(group_id))

    def replay(self, partitions: Iterable[int] | None = None) -> Replayed:
        """Read the topic (or some of its partitions); later records of a key replace earlier ones,
        tombstones delete."""
        replayed = Replayed()
        records = 0
        for partition in range(self._partitions) if partitions is None else partitions:
            partition_log = self._manager.log(STATE_TOPIC, partition)
            offset = partition_log.log_start_offset
            while offset < partition_log.log_end_offset:
                try:
                    decoded = list(iter_records(partition_log.read(offset, 1 << 20).data))
                    for record in decoded:
                        records += _apply(replayed, record.key, record.value)
                except CorruptRecordError as exc:
                    raise _unloadable(partition_log, offset, exc) from exc
                if not decoded:
                    break
                offset = decoded[-1].offset + 1
        if records:
            log.info(
                "loaded share-group state of %d groups (%d share-partitions) from %d records",
                len(set(replayed.snapshots) | set(replayed.configs)),
                sum(len(parts) for parts in replayed.snapshots.values()),
                records,
            )
        return replayed

    def _key(self, group_id: str, topic: str, partition: int) -> bytes:
        cache_key = (group_id, topic, partition)
        key = self._keys.get(cache_key)
        if key is None:
            key = self._keys[cache_key] = snapshot_key(group_id, topic, partition)
        return key

    def write_snapshots(
        self,
        group_id: str,
        snapshots: Mapping[PartitionKey, PartitionSnapshot | None],
        now_ms: int | None = None,
    ) -> Written:
        """One batch with a record per share-partition (None: a tombstone); all or nothing."""
        now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
        builder = BatchBuilder()
        for (topic, partition), snapshot in snapshots.items():
            value = None if snapshot is None else encode_snapshot(snapshot)
            builder.append(value, key=self._key(group_id, topic, partition), timestamp_ms=now)
            if snapshot is None:
                self._keys.pop((group_id, topic, partition), None)
        return self._append(group_id, builder, now)

    def write_config(
        self, group_id: str, values: Mapping[str, str] | None, now_ms: int | None = None
    ) -> Written:
        """The group's configuration (None or empty: a tombstone, back to the broker's defaults)."""
        now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
        builder = BatchBuilder()
        builder.append(encode_config(values) if values else None, key=config_key(group_id), timestamp_ms=now)
        return self._append(group_id, builder, now)

    def _append(self, group_id: str, builder: BatchBuilder, now: int) -> Written:
        partition = self.partition_for(group_id)
        partition_log = self._manager.log(STATE_TOPIC, partition)
        epoch = self.replicas.leader_epoch(STATE_TOPIC, partition)
        if epoch is None and self._clustered:  # the driver checks first; this keeps a follower's copy whole
            raise NotCoordinatorError(
                f"share group {group_id!r}: this broker no longer leads {STATE_TOPIC}-{partition}, so it "
                "does not coordinate the group; find its coordinator again"
            )
        if epoch is None:
            result = partition_log.append(builder.build(), now_ms=now)
        else:
            result = partition_log.append(builder.build(), now_ms=now, leader_epoch=epoch)
        self.replicas.appended(STATE_TOPIC, partition, result.last_offset + 1)
        return Written(partition_log, result.last_offset, STATE_TOPIC, partition)

    def logs(self) -> list[Log]:
        return [self._manager.log(STATE_TOPIC, number) for number in range(self._partitions)]


def _apply(replayed: Replayed, key: bytes | None, value: bytes | None) -> int:
    """Fold one record into `replayed`; returns 1 if it was one of ours."""
    try:
        return _fold(replayed, key, value)
    except (ValueError, TypeError) as exc:  # a key or config that is not the JSON we write
        if isinstance(exc, CorruptRecordError):
            raise
        raise CorruptRecordError(f"share-group state record with key {key!r} does not parse: {exc}") from exc


def _fold(replayed: Replayed, key: bytes | None, value: bytes | None) -> int:
    if key is None:
        return 0
    kind = key[:2]
    if kind == _SNAPSHOT_KEY:
        group_id, topic, partition = json.loads(key[2:])
        parts = replayed.snapshots.setdefault(group_id, {})
        if value is None:
            parts.pop((topic, int(partition)), None)
            if not parts:
                del replayed.snapshots[group_id]
        else:
            parts[(topic, int(partition))] = decode_snapshot(value)
        return 1
    if kind == _CONFIG_KEY:
        (group_id,) = json.loads(key[2:])
        if value is None:
            replayed.configs.pop(group_id, None)
        else:
            replayed.configs[group_id] = decode_config(value)
        return 1
    return 0


def _unloadable(partition_log: Log, offset: int, exc: CorruptRecordError) -> CorruptRecordError:
    """Share state cannot be loaded past a bad batch: refuse to start, naming the file and a way out."""
    where = exc.path if isinstance(exc, CorruptSegmentError) else partition_log.directory
    return CorruptSegmentError(
        f"cannot load share-group state from {where} at offset {offset}: {exc}. Starting without it would "
        "deliver accepted records again; restore the file, or move it aside to lose the state it holds",
        path=where,
        offset=offset,
        position=exc.position if isinstance(exc, CorruptSegmentError) else -1,
    )
