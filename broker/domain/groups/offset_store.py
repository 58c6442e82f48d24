"""Committed offsets kept as records in the internal compacted topic `__consumer_offsets`.

It sits on the driver side (`logstore.broker.domain.groups`), beside the driver that owns its I/O: it appends to
and replays the internal topic. Its key and value encoding is pure but small, so the module moved whole.

The storage engine is its own offset store: a commit is a record appended to one partition of the
internal topic (chosen by the group id, so one group's commits stay in order), and compaction keeps only
the latest commit per (group, topic, partition) key. At start-up the whole topic is replayed into memory,
so committed offsets survive restarts and `kill -9` exactly as far as the log itself does.

Keys and values are versioned JSON (one leading version byte), small enough not to matter and readable
with `logstore dump-log`. Deleting a group writes tombstones (null values) for its keys.

Not thread-safe: the broker calls it from its event loop only. Writing and showing are two steps, so
that nobody sees a commit that is not durable yet: `commit` and the deletes append and return a
`PendingWrite`; the caller flushes its log up to `last_offset` and then calls `apply`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import mmh3
from logstore.broker.domain.internal_topics import ensure_internal_topic
from logstore.broker.domain.replicas import NotReplicated, Replicas
from logstore.broker.group_machine.model import TopicPartition

from logstore.errors import CorruptRecordError, CorruptSegmentError
from logstore.log import Log
from logstore.manager import LogManager
from logstore.records import BatchBuilder, iter_records

log = logging.getLogger(__name__)

OFFSETS_TOPIC = "__consumer_offsets"
DEFAULT_OFFSETS_PARTITIONS = 8
_KEY_VERSION = b"\x01"
OFFSETS_TOPIC_CONFIG = {
    "cleanup.policy": "compact",
    "segment.bytes": str(64 * 1024 * 1024),
    "min.cleanable.dirty.ratio": "0.5",
}


@dataclass(frozen=True, slots=True)
class OffsetAndMetadata:
    offset: int
    metadata: str = ""
    commit_timestamp_ms: int = -1


@dataclass(frozen=True, slots=True)
class PendingWrite:
    """Records appended but not yet applied: flush `log` past `last_offset`, then `OffsetStore.apply`."""

    log: Log
    last_offset: int
    group_id: str
    offsets: dict[TopicPartition, OffsetAndMetadata | None]  # None: the commit was deleted


def _key(group_id: str, tp: TopicPartition) -> bytes:
    return _KEY_VERSION + json.dumps([group_id, tp.topic, tp.partition], separators=(",", ":")).encode()


def _value(committed: OffsetAndMetadata) -> bytes:
    body = {"offset": committed.offset, "metadata": committed.metadata, "ts": committed.commit_timestamp_ms}
    return _KEY_VERSION + json.dumps(body, separators=(",", ":")).encode()


def _parse_key(key: bytes) -> tuple[str, TopicPartition] | None:
    if not key.startswith(_KEY_VERSION):
        return None
    group_id, topic, partition = json.loads(key[1:])
    return group_id, TopicPartition(topic, int(partition))


def _parse_value(value: bytes) -> OffsetAndMetadata:
    body = json.loads(value[1:])
    return OffsetAndMetadata(int(body["offset"]), str(body.get("metadata", "")), int(body.get("ts", -1)))


class OffsetStore:
    """Commits and fetches group offsets; the in-memory view is rebuilt from the log at start-up.

    Not thread-safe: the broker calls it from its event loop only.
    """

    def __init__(self, manager: LogManager, partitions: int = DEFAULT_OFFSETS_PARTITIONS) -> None:
        self._manager = manager
        self._offsets: dict[str, dict[TopicPartition, OffsetAndMetadata]] = {}
        # Log offset of the record behind each in-memory value: a write that finishes late never
        # overwrites a newer one.
        self._written_at: dict[tuple[str, TopicPartition], int] = {}
        self._partitions = ensure_internal_topic(manager, OFFSETS_TOPIC, partitions, OFFSETS_TOPIC_CONFIG)
        self.replicas: Replicas = NotReplicated()
        """In a cluster: commits are stamped with the partition's leader epoch and wait for the ISR."""
        self._load(range(self._partitions))

    def reload_partition(self, partition: int) -> None:
        """Forget what came from one partition and read it again: this broker has just become its leader
        (the coordinator of its groups), and its log now holds what the previous leader wrote."""
        for group_id, tp in [k for k in self._written_at if self.partition_for(k[0]) == partition]:
            del self._written_at[(group_id, tp)]
            group = self._offsets.get(group_id)
            if group is not None:
                group.pop(tp, None)
                if not group:
                    del self._offsets[group_id]
        self._load((partition,))

    async def replicated(self, write: PendingWrite, timeout_s: float) -> None:
        """Wait until the write is on every in-sync replica (at once for a single broker)."""
        await self.replicas.replicated(
            OFFSETS_TOPIC, self.partition_for(write.group_id), write.last_offset + 1, timeout_s
        )

    def _append(self, group_id: str, data: bytes, now: int) -> tuple[Log, int]:
        partition = self.partition_for(group_id)
        partition_log = self._manager.log(OFFSETS_TOPIC, partition)
        epoch = self.replicas.leader_epoch(OFFSETS_TOPIC, partition)
        if epoch is None:
            result = partition_log.append(data, now_ms=now)
        else:
            result = partition_log.append(data, now_ms=now, leader_epoch=epoch)
        self.replicas.appended(OFFSETS_TOPIC, partition, result.last_offset + 1)
        return partition_log, result.last_offset

    def _load(self, partitions: Iterable[int]) -> None:
        records = 0
        for partition in partitions:
            partition_log = self._manager.log(OFFSETS_TOPIC, partition)
            offset = partition_log.log_start_offset
            while offset < partition_log.log_end_offset:
                try:
                    data = partition_log.read(offset, 1 << 20).data
                    decoded = list(iter_records(data))
                except CorruptRecordError as exc:
                    raise _unloadable(partition_log, offset, exc) from exc
                last = None
                for record in decoded:
                    last = record.offset
                    parsed = _parse_key(record.key) if record.key is not None else None
                    if parsed is not None:
                        group_id, tp = parsed
                        value = None if record.value is None else _parse_value(record.value)
                        self._set(group_id, tp, value, record.offset)
                        records += 1
                if last is None:
                    break
                offset = last + 1
        if records:
            log.info("loaded committed offsets of %d groups from %d records", len(self._offsets), records)

    def _set(
        self, group_id: str, tp: TopicPartition, value: OffsetAndMetadata | None, written_at: int
    ) -> None:
        if self._written_at.get((group_id, tp), -1) > written_at:
            return
        self._written_at[(group_id, tp)] = written_at
        if value is not None:
            self._offsets.setdefault(group_id, {})[tp] = value
            return
        group = self._offsets.get(group_id)
        if group is not None:
            group.pop(tp, None)
            if not group:
                del self._offsets[group_id]

    def apply(self, write: PendingWrite) -> None:
        """Show a write's offsets (call once its log is flushed past `write.last_offset`)."""
        for tp, value in write.offsets.items():
            self._set(write.group_id, tp, value, write.last_offset)

    def partition_for(self, group_id: str) -> int:
        """Which partition of the internal topic holds a group's commits: murmur3 of the id, as for keys."""
        return mmh3.hash(group_id.encode(), seed=0, signed=False) % self._partitions

    def log_for(self, group_id: str) -> Log:
        return self._manager.log(OFFSETS_TOPIC, self.partition_for(group_id))

    def commit(
        self,
        group_id: str,
        offsets: Mapping[TopicPartition, OffsetAndMetadata],
        now_ms: int | None = None,
    ) -> PendingWrite:
        """Append the commits as one batch (all or nothing); `apply` the result once it is durable."""
        now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
        builder = BatchBuilder()
        stamped = {
            tp: OffsetAndMetadata(
                c.offset, c.metadata, now if c.commit_timestamp_ms < 0 else c.commit_timestamp_ms
            )
            for tp, c in offsets.items()
        }
        for tp, committed in stamped.items():
            builder.append(_value(committed), key=_key(group_id, tp), timestamp_ms=now)
        partition_log, last_offset = self._append(group_id, builder.build(), now)
        return PendingWrite(partition_log, last_offset, group_id, dict(stamped))

    def fetch(
        self, group_id: str, partitions: Iterable[TopicPartition] | None = None
    ) -> dict[TopicPartition, OffsetAndMetadata]:
        """Committed offsets of a group: all of them, or those asked for (missing ones are left out)."""
        group = self._offsets.get(group_id, {})
        if partitions is None:
            return dict(group)
        return {tp: group[tp] for tp in partitions if tp in group}

    def groups(self) -> list[str]:
        return sorted(self._offsets)

    def groups_in(self, partition: int) -> list[str]:
        """The groups whose commits the internal topic's `partition` holds."""
        return [group_id for group_id in sorted(self._offsets) if self.partition_for(group_id) == partition]

    def delete_group(self, group_id: str, now_ms: int | None = None) -> PendingWrite | None:
        """Write tombstones for every committed offset of the group; None if it had none."""
        return self.delete_offsets(group_id, list(self._offsets.get(group_id, {})), now_ms)

    def delete_offsets(
        self, group_id: str, partitions: Iterable[TopicPartition], now_ms: int | None = None
    ) -> PendingWrite | None:
        group = self._offsets.get(group_id, {})
        doomed = [tp for tp in partitions if tp in group]
        if not doomed:
            return None
        now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
        builder = BatchBuilder()
        for tp in doomed:
            builder.append(None, key=_key(group_id, tp), timestamp_ms=now)
        partition_log, last_offset = self._append(group_id, builder.build(), now)
        return PendingWrite(partition_log, last_offset, group_id, dict.fromkeys(doomed))

    def forget_topic(
        self,
        topic: str,
        now_ms: int | None = None,
        *,
        writable: Callable[[str], bool] = lambda group_id: True,
    ) -> None:
        """Drop the commits of every group (that this broker may write for: `writable`) for a deleted
        topic, so a new topic of that name starts clean.

        Applied at once: the topic is gone either way; the tombstones only keep a restart from showing
        the old offsets, and the caller flushes them in the background. In a cluster only the coordinator
        of a group writes its tombstones (the followers copy them)."""
        for group_id in [g for g in self._offsets if writable(g)]:
            doomed = [tp for tp in self._offsets[group_id] if tp.topic == topic]
            write = self.delete_offsets(group_id, doomed, now_ms)
            if write is not None:
                self.apply(write)


def _unloadable(partition_log: Log, offset: int, exc: CorruptRecordError) -> CorruptRecordError:
    """Committed offsets cannot be loaded past a bad batch: refuse to start, naming the file and a way out."""
    where = exc.path if isinstance(exc, CorruptSegmentError) else partition_log.directory
    return CorruptSegmentError(
        f"cannot load committed offsets from {where} at offset {offset}: {exc}. Starting without them "
        "would hand groups wrong positions; restore the file, or move it aside to lose the offsets it holds",
        path=where,
        offset=offset,
        position=exc.position if isinstance(exc, CorruptSegmentError) else -1,
    )
