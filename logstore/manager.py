"""All partitions under one data directory: topic metadata, start-up recovery, and background upkeep.

The data directory holds `meta.json` (topics, partition counts, per-topic config; rewritten atomically),
one folder per partition, and `.clean-shutdown`, present only between a clean stop and the next start.
Without that marker, every partition re-checks its segments past its recovery checkpoint byte by byte.
A `.lock` file held with `flock` keeps a second broker off the same directory.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from logstore.checkpoint import (
    fsync_dir,
    read_json,
    read_offset_checkpoint,
    write_json_atomic,
    write_offset_checkpoint,
)
from logstore.cleaner import compact_log
from logstore.config import TopicConfig
from logstore.errors import (
    InvalidPartitionCountError,
    InvalidTopicError,
    LogClosedError,
    StorageError,
    TopicExistsError,
    UnknownPartitionError,
    UnknownTopicError,
)
from logstore.log import Log, RecoveryInfo, now_ms
from logstore.open_segments import OpenSegments
from logstore.retention import SegmentStats, segments_to_delete

log = logging.getLogger(__name__)

META_FILE = "meta.json"
CLEAN_SHUTDOWN_MARKER = ".clean-shutdown"
LOCK_FILE = ".lock"
RECOVERY_CHECKPOINT = "recovery-checkpoint"
MAX_TOPIC_NAME = 249
MAX_PARTITIONS = 10_000
_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]+")
_DELETED_SUFFIX = "-delete"


def validate_topic_name(name: str) -> None:
    """Kafka's rule, which also keeps every name inside the data directory."""
    if not isinstance(name, str) or not name:
        raise InvalidTopicError("topic name is empty; use 1 to 249 of the characters A-Z a-z 0-9 . _ -")
    if len(name) > MAX_TOPIC_NAME:
        raise InvalidTopicError(f"topic name is {len(name)} characters long; the limit is {MAX_TOPIC_NAME}")
    if name in (".", ".."):
        raise InvalidTopicError(f"topic name {name!r} is not allowed")
    if not _TOPIC_NAME.fullmatch(name):
        bad = sorted({c for c in name if not _TOPIC_NAME.fullmatch(c)})
        raise InvalidTopicError(
            f"topic name {name!r} contains {''.join(bad)!r}; only A-Z a-z 0-9 . _ - are allowed"
        )


@dataclass(frozen=True)
class TopicInfo:
    name: str
    partitions: int
    config: TopicConfig
    topic_id: str


@dataclass(frozen=True)
class Intervals:
    """How often the background thread does each kind of upkeep, in milliseconds."""

    tick_ms: int = 200
    retention_ms: int = 5 * 60 * 1000
    compaction_ms: int = 15 * 1000
    checkpoint_ms: int = 60 * 1000


class LogManager:
    """Owns every partition's Log under `data_dir` and keeps them recovered, flushed, retained, compacted."""

    def __init__(
        self,
        data_dir: Path | str,
        *,
        default_config: TopicConfig | None = None,
        clock_ms: Callable[[], int] = now_ms,
        background: bool = True,
        intervals: Intervals | None = None,
        max_open_segments: int | None = None,
    ) -> None:
        """`max_open_segments`: how many segments may hold their files open at once, across all partitions
        (None: half the process's descriptor limit, at six descriptors a segment); idle ones beyond it
        release their files and reopen on demand."""
        self.data_dir = Path(data_dir)
        self.open_segments = OpenSegments(max_open_segments)
        self.default_config = default_config or TopicConfig()
        self._clock_ms = clock_ms
        self.intervals = intervals or Intervals()
        self._lock = threading.RLock()
        self._topics: dict[str, TopicInfo] = {}
        self._logs: dict[str, list[Log]] = {}
        self._closed = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = self._lock_data_dir()
        marker = self.data_dir / CLEAN_SHUTDOWN_MARKER
        self.clean_shutdown = marker.exists()
        self.recovery: list[RecoveryInfo] = []
        # The marker vouches for the files exactly as the clean stop left them, and opening a partition
        # changes them (its active segment grows back to the preallocated size). So it goes before the
        # first partition is opened: from here on a crash, even one during start-up, must be noticed.
        if self.clean_shutdown:
            marker.unlink()
            fsync_dir(self.data_dir)
        try:
            self._load()
        except BaseException:
            self._release_data_dir()
            raise
        if background:
            self._thread = threading.Thread(target=self._background, name="logstore-upkeep", daemon=True)
            self._thread.start()

    # --- start-up ---------------------------------------------------------------------------------------

    def _lock_data_dir(self) -> int:
        fd = os.open(self.data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StorageError(
                f"data directory {self.data_dir} is in use by another broker (could not lock {LOCK_FILE})"
            ) from None
        return fd

    def _release_data_dir(self) -> None:
        if self._lock_fd >= 0:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = -1

    def _load(self) -> None:
        meta_path = self.data_dir / META_FILE
        topics = read_json(meta_path)["topics"] if meta_path.exists() else {}
        for name, entry in sorted(topics.items()):
            config = TopicConfig.from_mapping(entry["config"], base=self.default_config)
            self._topics[name] = TopicInfo(name, int(entry["partitions"]), config, entry["topic_id"])
        self._remove_strays()
        for info in self._topics.values():
            self._logs[info.name] = [self._open_log(info, p) for p in range(info.partitions)]
            self.recovery.extend(log.recovery for log in self._logs[info.name])
        if not self.clean_shutdown and self._topics:
            truncated = sum(info.truncated_bytes for info in self.recovery)
            log.info(
                "recovered %d partitions after an unclean shutdown; %d bytes of torn or corrupt data truncated",
                len(self.recovery),
                truncated,
            )

    def _partition_dir(self, topic: str, partition: int) -> Path:
        return self.data_dir / f"{topic}-{partition}"

    def _open_log(self, info: TopicInfo, partition: int) -> Log:
        directory = self._partition_dir(info.name, partition)
        recovery_point = read_offset_checkpoint(directory / RECOVERY_CHECKPOINT)
        return Log(
            directory,
            info.name,
            partition,
            info.config,
            clean_shutdown=self.clean_shutdown,
            recovery_point=recovery_point,
            clock_ms=self._clock_ms,
            open_segments=self.open_segments,
        )

    def _remove_strays(self) -> None:
        """Delete partition folders that meta.json no longer names (a delete or create cut short)."""
        wanted = {f"{name}-{p}" for name, info in self._topics.items() for p in range(info.partitions)}
        for path in self.data_dir.iterdir():
            if not path.is_dir() or path.name in wanted:
                continue
            if path.name.endswith(_DELETED_SUFFIX) or path.name.rpartition("-")[2].isdigit():
                log.info("removing %s: no topic in %s owns it", path.name, META_FILE)
                shutil.rmtree(path, ignore_errors=True)

    def _write_meta(self) -> None:
        topics = {
            name: {"partitions": info.partitions, "config": info.config.to_json(), "topic_id": info.topic_id}
            for name, info in self._topics.items()
        }
        write_json_atomic(self.data_dir / META_FILE, {"version": 1, "topics": topics})

    # --- topics -----------------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise LogClosedError("the log manager is closed")

    def create_topic(self, name: str, partitions: int, config: Mapping[str, Any] | None = None) -> TopicInfo:
        validate_topic_name(name)
        if not _is_int(partitions) or not 1 <= partitions <= MAX_PARTITIONS:
            raise InvalidPartitionCountError(
                f"topic {name!r}: partition count must be between 1 and {MAX_PARTITIONS}, not {partitions}"
            )
        topic_config = TopicConfig.from_mapping(config or {}, base=self.default_config)
        with self._lock:
            self._check_open()
            if name in self._topics:
                raise TopicExistsError(f"topic {name!r} already exists")
            clash = _collision(name, self._topics)
            if clash:
                raise InvalidTopicError(
                    f"topic {name!r} collides with existing topic {clash!r}: '.' and '_' may not be the only "
                    "difference between two names"
                )
            info = TopicInfo(name, partitions, topic_config, uuid.uuid4().hex)
            self._topics[name] = info
            self._write_meta()
            self._logs[name] = [self._open_new_log(info, p) for p in range(partitions)]
        log.info("created topic %s with %d partitions", name, partitions)
        return info

    def _open_new_log(self, info: TopicInfo, partition: int) -> Log:
        directory = self._partition_dir(info.name, partition)
        if directory.exists():  # left over from an earlier topic of the same name
            shutil.rmtree(directory)
        return Log(
            directory,
            info.name,
            partition,
            info.config,
            clock_ms=self._clock_ms,
            open_segments=self.open_segments,
        )

    def delete_topic(self, name: str) -> None:
        with self._lock:
            self._check_open()
            self.topic(name)
            del self._topics[name]
            self._write_meta()
            logs = self._logs.pop(name)
        for partition_log in logs:
            partition_log.delete()
        log.info("deleted topic %s", name)

    def add_partitions(self, name: str, total_partitions: int) -> TopicInfo:
        with self._lock:
            self._check_open()
            info = self.topic(name)
            if not _is_int(total_partitions) or not info.partitions < total_partitions <= MAX_PARTITIONS:
                raise InvalidPartitionCountError(
                    f"topic {name!r} has {info.partitions} partitions; the new count must be larger "
                    f"(and at most {MAX_PARTITIONS}), not {total_partitions}"
                )
            new = TopicInfo(name, total_partitions, info.config, info.topic_id)
            self._topics[name] = new
            self._write_meta()
            logs = self._logs[name]
            self._logs[name] = logs + [
                self._open_new_log(new, p) for p in range(info.partitions, total_partitions)
            ]
        log.info("topic %s now has %d partitions", name, total_partitions)
        return new

    def alter_config(self, name: str, updates: Mapping[str, Any]) -> TopicInfo:
        with self._lock:
            self._check_open()
            info = self.topic(name)
            config = TopicConfig.from_mapping(updates, base=info.config)
            new = TopicInfo(name, info.partitions, config, info.topic_id)
            self._topics[name] = new
            self._write_meta()
            for partition_log in self._logs[name]:
                partition_log.config = config
        log.info("altered config of topic %s: %s", name, dict(updates))
        return new

    def topic(self, name: str) -> TopicInfo:
        info = self._topics.get(name)
        if info is None:
            raise UnknownTopicError(f"topic {name!r} does not exist")
        return info

    def topics(self) -> list[TopicInfo]:
        with self._lock:
            return sorted(self._topics.values(), key=lambda info: info.name)

    def log(self, topic: str, partition: int) -> Log:
        logs = self._logs.get(topic)
        if logs is None:
            raise UnknownTopicError(f"topic {topic!r} does not exist")
        if not _is_int(partition) or not 0 <= partition < len(logs):
            raise UnknownPartitionError(
                f"topic {topic!r} has partitions 0 to {len(logs) - 1}; there is no partition {partition}"
            )
        return logs[partition]

    def all_logs(self) -> list[Log]:
        with self._lock:
            return [partition_log for logs in self._logs.values() for partition_log in logs]

    # --- upkeep -----------------------------------------------------------------------------------------

    def flush(self) -> None:
        for partition_log in self.all_logs():
            if partition_log.offline is None:
                partition_log.flush()

    def flush_due(self, now: int | None = None) -> int:
        """Flush the partitions whose flush policy says so; returns how many were flushed."""
        now = self._clock_ms() if now is None else now
        count = 0
        for partition_log in self.all_logs():
            if not partition_log.closed and partition_log.flush_due(now):
                partition_log.flush()
                count += 1
        return count

    def write_checkpoints(self) -> None:
        for partition_log in self.all_logs():
            if not partition_log.closed:
                write_offset_checkpoint(
                    partition_log.directory / RECOVERY_CHECKPOINT, partition_log.flushed_offset
                )

    def run_retention(self, now_ms: int | None = None) -> int:
        """Delete closed segments past their topic's retention; returns how many were deleted."""
        now = self._clock_ms() if now_ms is None else now_ms
        deleted = 0
        for partition_log in self.all_logs():
            config = partition_log.config
            if not config.delete or partition_log.closed:
                continue
            if config.retention_ms >= 0:
                partition_log.roll_if_older_than(now - config.retention_ms)
            closed = [SegmentStats(s.size, s.max_timestamp) for s in partition_log.closed_segments()]
            count = segments_to_delete(
                closed,
                total_size=partition_log.size_in_bytes,
                now_ms=now,
                retention_ms=config.retention_ms,
                retention_bytes=config.retention_bytes,
            )
            if count:
                deleted += partition_log.delete_oldest_segments(count)
                log.info(
                    "retention deleted %d segments of %s-%d; log start offset is now %d",
                    count,
                    partition_log.topic,
                    partition_log.partition,
                    partition_log.log_start_offset,
                )
        return deleted

    def run_compaction(self, now_ms: int | None = None) -> int:
        """Compact the partitions of compacted topics that have enough dirty data; returns how many."""
        now = self._clock_ms() if now_ms is None else now_ms
        compacted = 0
        for partition_log in self.all_logs():
            if partition_log.config.compact and not partition_log.closed and compact_log(partition_log, now):
                compacted += 1
        return compacted

    def _background(self) -> None:
        intervals = self.intervals
        last = {"retention": self._clock_ms(), "compaction": self._clock_ms(), "checkpoint": self._clock_ms()}
        jobs: list[tuple[str, int, Callable[[], object]]] = [
            ("retention", intervals.retention_ms, self.run_retention),
            ("compaction", intervals.compaction_ms, self.run_compaction),
            ("checkpoint", intervals.checkpoint_ms, self.write_checkpoints),
        ]
        while not self._stop.wait(intervals.tick_ms / 1000):
            try:
                self.flush_due()
                now = self._clock_ms()
                for name, every, job in jobs:
                    if now - last[name] >= every:
                        last[name] = now
                        job()
            except LogClosedError:
                continue  # a topic was deleted under us; the next tick sees the new set
            except Exception:
                log.exception("background upkeep failed; will retry")

    # --- shutdown ---------------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop upkeep, flush and close every partition, then mark the shutdown clean."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        clean = True
        for partition_log in self.all_logs():
            partition_log.close()
            if partition_log.offline is not None:
                clean = False  # its files are as the disk failure left them: the next start recovers them
                continue
            write_offset_checkpoint(
                partition_log.directory / RECOVERY_CHECKPOINT, partition_log.log_end_offset
            )
        if clean:
            (self.data_dir / CLEAN_SHUTDOWN_MARKER).write_bytes(b"")
        fsync_dir(self.data_dir)
        self._release_data_dir()

    def __enter__(self) -> LogManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _is_int(value: object) -> bool:
    """An int that is not a bool: `True` would otherwise pass for one partition and be stored as `true`."""
    return isinstance(value, int) and not isinstance(value, bool)


def _collision(name: str, topics: Mapping[str, object]) -> str | None:
    """Kafka forbids names differing only by '.' vs '_' (they collide in metric names); so do we."""
    folded = name.replace(".", "_")
    for other in topics:
        if other.replace(".", "_") == folded:
            return other
    return None
