"""One partition: an ordered list of segments, the partition's lock, and the append / read / flush paths.

Appends check every batch (framing, magic, CRC, size, producer sequence) before anything is written, then
assign offsets with the codec's pure `assign_offsets` (a new 8-byte base offset per batch, outside the CRC)
and hand the pieces to one `pwritev`, so the payload is never copied or re-encoded. `flush` implements group commit:
callers that need durability up to some offset share one fsync.

For replication the log also keeps its leader-epoch cache (`leader-epoch-checkpoint`, in step with the log
at both ends) and its high watermark (`high-watermark`, written with the checkpoints): a leader stamps its
epoch on what it appends (`append(..., leader_epoch=E)`), a follower copies the leader's batches as they
are (`append_replica`), and consumers read below the high watermark (`read(..., max_offset=hw)`).
"""

from __future__ import annotations

import bisect
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass
from pathlib import Path

from logstore.checkpoint import fsync_dir, read_offset_checkpoint, write_offset_checkpoint
from logstore.config import TopicConfig
from logstore.errors import (
    CorruptRecordError,
    CorruptSegmentError,
    InvalidRequestError,
    LogClosedError,
    OffsetOutOfRangeError,
    OutOfOrderSequenceError,
    PartitionOfflineError,
    RecordTooLargeError,
    StorageError,
)
from logstore.io_errors import PathSource, io_errors
from logstore.io_errors import describe as describe_io_error
from logstore.leader_epoch import EpochEnd, LeaderEpochCache, LeaderEpochFile
from logstore.open_segments import OpenSegments
from logstore.producer_state import BatchMetadata, ProducerEntry, ProducerStateManager
from logstore.records import BatchHeader, assign_offsets, check_batch
from logstore.records.validate import validate_records
from logstore.recovery import move_aside
from logstore.segment import (
    CLEANED_SUFFIX,
    INDEX_SUFFIX,
    LOG_SUFFIX,
    TIME_INDEX_SUFFIX,
    LogSegment,
    RecoveryResult,
    parse_segment_name,
    segment_name,
)

log = logging.getLogger(__name__)

PRODUCER_SNAPSHOT = "producer-state.json"
LOG_START_FILE = "log-start-offset"
"""The offset records were deleted below (DeleteRecords), when it lies inside the first segment."""
HIGH_WATERMARK_FILE = "high-watermark"
"""A replicated partition's high watermark as of the last checkpoint (absent on a single broker)."""
_MAX_RELATIVE_OFFSET = 0xFFFFFFFF


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class AppendResult:
    base_offset: int
    last_offset: int
    log_append_time_ms: int
    record_count: int
    duplicate: bool = False
    flush_due: bool = False
    """The topic's flush.interval.messages is reached: the caller should flush soon (off its hot path)."""


@dataclass(frozen=True)
class ReadResult:
    data: bytes
    high_watermark: int
    log_start_offset: int


@dataclass(frozen=True)
class RecoveryInfo:
    """What opening a partition found: how many segments were scanned and how much was cut off."""

    topic: str
    partition: int
    clean: bool
    segments_recovered: int
    truncated_bytes: int
    segments_dropped: int
    log_end_offset: int


class Log:
    """A partition's log. Thread-safe: appends, reads and maintenance serialise on one lock; fsync does not."""

    def __init__(
        self,
        directory: Path,
        topic: str,
        partition: int,
        config: TopicConfig,
        *,
        clean_shutdown: bool = True,
        recovery_point: int | None = None,
        clock_ms: Callable[[], int] = now_ms,
        open_segments: OpenSegments | None = None,
        on_fsync: Callable[[float], None] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.topic = topic
        self.partition = partition
        self.config = config
        self._clock_ms = clock_ms
        self._open_segments = open_segments  # the bound on segments with open files (None: no bound)
        self._on_fsync = on_fsync  # told each flush's fsync time in seconds (the broker's metrics)
        self.offline: PartitionOfflineError | None = None  # set when the disk failed an append or flush
        self._lock = threading.RLock()
        self._fsync_lock = threading.Lock()  # held while fsyncing; segment removal waits for it
        self._flush_cond = threading.Condition()
        self._flushing = False
        self._closed = False
        self.segments: list[LogSegment] = []
        self._reported_corrupt: set[tuple[str, int]] = set()
        self._bases: list[int] = []
        self.producer_state = ProducerStateManager(f"{topic}-{partition}")
        self.unflushed_messages = 0
        self.first_unflushed_ms: int | None = None
        self.directory.mkdir(parents=True, exist_ok=True)
        self._deleted_below = read_offset_checkpoint(self.directory / LOG_START_FILE) or 0
        """Records below this offset are deleted even where their segment is still on disk."""
        self.recovery = self._load(clean_shutdown, recovery_point or 0)
        self.flushed_offset = (
            self.log_end_offset if clean_shutdown else min(recovery_point or 0, self.log_end_offset)
        )
        self._epochs = self._open_leader_epochs(clean_shutdown, recovery_point or 0)
        self._persisted_high_watermark = read_offset_checkpoint(self.directory / HIGH_WATERMARK_FILE)
        self._high_watermark = (
            None if self._persisted_high_watermark is None else self._clamp(self._persisted_high_watermark)
        )

    # --- opening and recovery -----------------------------------------------------------------------------

    def _new_segment(self, base_offset: int, *, active: bool) -> LogSegment:
        return LogSegment(
            self.directory,
            base_offset,
            capacity=self.config.segment_bytes,
            max_index_bytes=self.config.segment_index_bytes,
            index_interval_bytes=self.config.index_interval_bytes,
            active=active,
            open_segments=self._open_segments,
        )

    def _load(self, clean: bool, recovery_point: int) -> RecoveryInfo:
        """Open every segment and check it; after an unclean stop, CRC-check those past the recovery point.

        Every segment's framing is walked whatever the stop (`LogSegment.load`), and cut to its longest
        valid prefix if it does not add up; the segments after such a cut are kept, their offsets still
        increase. Then the segments must follow each other: a file whose base offset lies inside its
        predecessor's offsets is moved aside, not trusted and not deleted. Only a cut in a segment past
        the recovery point (a torn write) makes the later segments unreachable; they are moved aside too.
        """
        bases = self._discover_segments()
        first_to_recover = len(bases)
        if not clean:
            first_to_recover = max(0, bisect.bisect_right(bases, recovery_point) - 1)
            first_to_recover = min(first_to_recover, max(len(bases) - 1, 0))
        opened: list[tuple[LogSegment, RecoveryResult | None]] = []
        dropped = 0
        damaged_tail: set[int] = set()  # segments whose last batch had a damaged base offset, now cut
        for i, base in enumerate(bases):
            if opened:
                previous, result = opened[-1]
                if result is not None and result.truncated_bytes > 0:
                    # Everything after a torn write is unreachable: set the later segments aside unread.
                    for later in bases[i:]:
                        self._set_files_aside(later, f"it follows {previous.log_path.name}, cut by recovery")
                        dropped += 1
                    break
                if base < previous.next_offset and previous.cut_outlier_tail(base):
                    damaged_tail.add(previous.base_offset)
                elif base < previous.next_offset:
                    self._set_files_aside(
                        base,
                        f"its base offset {base} lies inside the offsets of {previous.log_path.name} "
                        f"(up to {previous.next_offset - 1})",
                    )
                    dropped += 1
                    continue
            segment = self._new_segment(base, active=False)
            if i >= first_to_recover:
                opened.append((segment, segment.recover(self.config.max_message_bytes)))
            else:
                segment.load()
                opened.append((segment, None))
        kept = opened
        recovered = sum(1 for _, result in opened if result is not None)
        truncated = sum(result.truncated_bytes for _, result in opened if result is not None)
        for i, (segment, result) in enumerate(kept[:-1]):
            torn = (
                result is not None
                and segment.base_offset not in damaged_tail
                and self._gap_after(segment, kept[i + 1][0].base_offset)
            )
            if torn:
                # The segment lost its last batches (a crash): the later ones are unreachable, set aside.
                for unreachable, _ in kept[i + 1 :]:
                    unreachable.close()
                    self._set_files_aside(
                        unreachable.base_offset,
                        f"it follows {segment.log_path.name}, which stops short of it",
                    )
                    dropped += 1
                del kept[i + 1 :]
                break
        for segment, _ in kept:
            self._add_segment(segment)
        if not self.segments:
            self._add_segment(self._new_segment(0, active=True))
        elif not self.active._active:
            self.active.activate(self.config.segment_bytes)
        self._rebuild_producer_state(clean)
        info = RecoveryInfo(
            self.topic, self.partition, clean, recovered, truncated, dropped, self.log_end_offset
        )
        if truncated or dropped:
            log.warning(
                "%s-%s: recovery truncated %d bytes and set aside %d segments; log end offset %d",
                self.topic,
                self.partition,
                truncated,
                dropped,
                self.log_end_offset,
            )
        return info

    def _set_files_aside(self, base_offset: int, reason: str) -> None:
        """Move a segment's log file aside (a WARNING says where) and drop its indexes (rebuildable)."""
        stem = self.directory / segment_name(base_offset)
        log_path = stem.with_suffix(LOG_SUFFIX)
        if log_path.exists():
            move_aside(log_path, f"{self.topic}-{self.partition}: {reason}")
        stem.with_suffix(INDEX_SUFFIX).unlink(missing_ok=True)
        stem.with_suffix(TIME_INDEX_SUFFIX).unlink(missing_ok=True)

    def _gap_after(self, segment: LogSegment, next_base: int) -> bool:
        """Whether a recovered closed segment stops short of the next segment's base offset.

        A crash can lose a segment's last batches without leaving a non-zero byte behind (cut at a batch
        boundary, or a length persisted before its data, which reads back as zeros). The next segment is
        then unreachable without a gap in the offsets. Compacted topics are exempt: the cleaner may drop a
        segment's last batches on purpose.
        """
        return not self.config.compact and segment.next_offset != next_base

    def _discover_segments(self) -> list[int]:
        """Segment base offsets on disk, after clearing what an interrupted operation left behind."""
        bases = []
        for path in self.directory.iterdir():
            name = path.name
            if name.endswith((CLEANED_SUFFIX, ".tmp", ".deleted")):
                path.unlink(missing_ok=True)
                continue
            if name.endswith(LOG_SUFFIX):
                base = parse_segment_name(name)
                if base is not None:
                    bases.append(base)
        for path in self.directory.iterdir():
            if path.name.endswith((INDEX_SUFFIX, TIME_INDEX_SUFFIX)):
                base = parse_segment_name(path.name)
                if base is None or base not in bases:
                    path.unlink(missing_ok=True)  # an index without its log
        return sorted(bases)

    def _add_segment(self, segment: LogSegment) -> None:
        self.segments.append(segment)
        self._bases.append(segment.base_offset)

    def _rebuild_producer_state(self, clean: bool) -> None:
        """Producer sequences from the snapshot (clean stop only) plus the batches after it."""
        self.producer_state.clear()
        snapshot = self.directory / PRODUCER_SNAPSHOT
        start = 0
        if clean:
            loaded = self.producer_state.load_snapshot(snapshot)
            if loaded is not None and loaded <= self.log_end_offset:
                start = loaded
            else:
                self.producer_state.clear()
        snapshot.unlink(missing_ok=True)
        for header in self._headers_from(start):
            if header.producer_id >= 0:
                self.producer_state.replay(header)

    def _open_leader_epochs(self, clean: bool, recovery_point: int) -> LeaderEpochFile:
        """The leader-epoch cache, from its checkpoint (rebuilt from the headers if missing or damaged),
        brought in step with the log as recovery left it.

        Like Kafka's LogLoader: entries at or past the log end go (the tail they described was cut, or an
        append assigned its epoch and died before its write), and after an unclean stop the batches past
        the recovery point assign their epochs again, in case their checkpoint write was lost.
        """
        epochs = LeaderEpochFile.open(
            self.directory,
            lambda: ((h.base_offset, h.partition_leader_epoch) for h in self._headers_from(0)),
        )
        cache = epochs.cache
        changed = cache.truncate_from_end(self.log_end_offset)
        if not clean and not epochs.dirty:
            for header in self._headers_from(recovery_point):
                if header.partition_leader_epoch > cache.latest_epoch:
                    changed = cache.assign(header.partition_leader_epoch, header.base_offset) or changed
        changed = cache.truncate_from_start(self.log_start_offset) or changed
        if changed:
            epochs.dirty = True
            with self._offline_on_error("writing the leader-epoch checkpoint", epochs.path):
                epochs.flush()
        return epochs

    def _headers_from(self, offset: int) -> Iterator[BatchHeader]:
        index = max(0, bisect.bisect_right(self._bases, offset) - 1)
        for segment in self.segments[index:]:
            for _, header in segment.batches():
                if header.last_offset >= offset:
                    yield header

    # --- offsets --------------------------------------------------------------------------------------

    @property
    def active(self) -> LogSegment:
        return self.segments[-1]

    @property
    def log_start_offset(self) -> int:
        """The first offset kept: the first segment's base, or past it where records were deleted."""
        first = self.segments[0].base_offset
        if self._deleted_below <= first:
            return first
        return min(self._deleted_below, self.log_end_offset)

    @property
    def log_end_offset(self) -> int:
        return self.active.next_offset

    @property
    def size_in_bytes(self) -> int:
        return sum(segment.size for segment in self.segments)

    # --- replication: leader epochs and the high watermark ------------------------------------------

    @property
    def leader_epochs(self) -> LeaderEpochCache:
        """Leader epoch -> first offset written in it; changed only under the log's lock."""
        return self._epochs.cache

    @property
    def latest_epoch(self) -> int:
        """The latest leader epoch that wrote to this log, UNDEFINED_EPOCH (-1) if none did."""
        return self._epochs.cache.latest_epoch

    def end_offset_for_epoch(self, epoch: int) -> EpochEnd:
        """The leader's OffsetForLeaderEpoch answer (Kafka's `endOffsetForEpoch`): the largest epoch <=
        `epoch` this log knows and the offset where it ended (the log end for the latest), or UNDEFINED."""
        with self._lock:
            self._check_open()
            return self._epochs.cache.end_offset_for(epoch, self.log_end_offset)

    @property
    def high_watermark(self) -> int | None:
        """The replicated high watermark: offsets below it are on every in-sync replica. None until the
        broker sets one (a single broker's log never has one, and reads its end instead)."""
        return self._high_watermark

    def set_high_watermark(self, offset: int) -> int:
        """Set the high watermark, clamped to [log start, log end] as Kafka's `updateHighWatermark`;
        returns the value kept. Written to disk by `write_checkpoints` and `close`, not per call."""
        with self._lock:
            self._check_open()
            self._high_watermark = self._clamp(offset)
            return self._high_watermark

    def _clamp(self, offset: int) -> int:
        return min(max(offset, self.log_start_offset), self.log_end_offset)

    def write_checkpoints(self) -> None:
        """Write the high watermark if it changed, and a leader-epoch checkpoint rebuilt at open.

        A failed write takes the partition offline, as a failing recovery checkpoint does.
        """
        with self._lock:
            if self._closed:
                return  # closed (or deleted) meanwhile: close wrote them
            self._check_open()
            self._write_checkpoints()

    def _write_checkpoints(self) -> None:
        hw = self._high_watermark
        if hw is not None and hw != self._persisted_high_watermark:
            path = self.directory / HIGH_WATERMARK_FILE
            with self._offline_on_error("writing the high watermark", path):
                write_offset_checkpoint(path, hw)
            self._persisted_high_watermark = hw
        if self._epochs.dirty:
            with self._offline_on_error("writing the leader-epoch checkpoint", self._epochs.path):
                self._epochs.flush()

    def _assign_epoch(self, epoch: int, start_offset: int) -> None:
        """Record that `epoch` starts at `start_offset` (a no-op for the latest epoch), on disk at once."""
        if epoch != self._epochs.cache.latest_epoch:
            with self._offline_on_error("writing the leader-epoch checkpoint", self._epochs.path):
                self._epochs.assign(epoch, start_offset)

    def _check_open(self) -> None:
        if self.offline is not None:
            raise PartitionOfflineError(str(self.offline))  # a fresh one: each raise grows a traceback
        if self._closed:
            raise LogClosedError(f"partition {self.topic}-{self.partition} is closed")

    def _take_offline(self, error: OSError, doing: str, path: PathSource = None) -> PartitionOfflineError:
        """The disk failed us mid-write: stop serving this partition (as Kafka does) until a restart.

        What is in memory still describes the last complete append, but the files may not (a torn write,
        a segment half rolled), so nothing more is written or read; the next start recovers the files.
        """
        if self.offline is None:
            self.offline = PartitionOfflineError(
                f"partition {self.topic}-{self.partition} is offline: "
                f"{describe_io_error(error, doing, path or self.directory)}; "
                "it serves nothing until the broker restarts and recovers it"
            )
            log.error("%s", self.offline)
        return self.offline

    def _offline_on_error(self, doing: str, path: PathSource = None) -> AbstractContextManager[None]:
        """`io_errors` for a step after which the files may no longer match memory: offline if it fails."""
        return io_errors(doing, path, on_error=self._take_offline)

    def take_offline(self, error: OSError, doing: str, path: PathSource = None) -> PartitionOfflineError:
        """Take the partition offline for a failure of a file the manager keeps for it (a checkpoint)."""
        with self._lock:
            return self._take_offline(error, doing, path)

    # --- append -----------------------------------------------------------------------------------------

    def validate(self, data: bytes | bytearray | memoryview) -> list[tuple[int, BatchHeader]]:
        """Check that `data` is whole v2 batches, each within the size limit, with a good CRC, and with
        records a reader can decode (`validate_records`: offsets, lengths, codec, timestamps, keys)."""
        view = memoryview(data)
        total = len(view)
        if total == 0:
            raise CorruptRecordError(f"{self.topic}-{self.partition}: the request holds no record batch")
        batches = []
        position = 0
        limit = self.config.max_message_bytes
        compact = self.config.compact
        while position < total:
            try:
                header = check_batch(view, position, max_size=limit)
            except RecordTooLargeError as exc:
                raise RecordTooLargeError(
                    f"{self.topic}-{self.partition}: {exc}, the topic's max.message.bytes (send smaller "
                    f"batches, or raise it: logstore topics alter {self.topic} --config max.message.bytes=N)"
                ) from None
            if header.is_transactional or header.is_control:
                raise InvalidRequestError(
                    f"{self.topic}-{self.partition}: transactional and control batches are not supported"
                )
            validate_records(view, position, header, require_keys=compact)
            batches.append((position, header))
            position += header.size
        return batches

    def append(
        self,
        data: bytes | bytearray | memoryview,
        *,
        now_ms: int | None = None,
        leader_epoch: int | None = None,
    ) -> AppendResult:
        """Append whole batches. All-or-nothing: on any error nothing is written.

        A retried idempotent batch is answered with its original offsets (duplicate=True). With
        `leader_epoch` (a replicated partition's leader) every batch is stamped with it, and a new epoch
        is recorded in the leader-epoch cache from the first offset it writes; an epoch older than the
        log's latest is refused (a deposed leader's late append must not rewrite the history).
        """
        view = memoryview(data)
        batches = self.validate(view)
        with self._lock:
            self._check_open()
            if leader_epoch is not None and leader_epoch < self._epochs.cache.latest_epoch:
                self._refuse_epoch(leader_epoch)
            now = self._clock_ms() if now_ms is None else now_ms
            append_time = now if self.config.log_append_time else -1
            assigned = assign_offsets(
                view, batches, self.log_end_offset, None if append_time < 0 else now, leader_epoch
            )
            staged: dict[int, ProducerEntry] = {}
            duplicates = self._check_sequences(batches, assigned.headers, staged)
            if duplicates:
                return AppendResult(duplicates[0].first_offset, duplicates[-1].last_offset, -1, 0, True)
            next_offset = assigned.next_offset
            if leader_epoch is not None:
                self._assign_epoch(leader_epoch, assigned.headers[0].base_offset)
            try:
                self._maybe_roll(assigned.size, next_offset, now)
                self.active.append(assigned.pieces, assigned.headers, assigned.size, now)
            except OSError as exc:  # EMFILE, ENOSPC, EIO...: nothing was acknowledged
                raise self._take_offline(exc, "an append to", lambda: self.active.log_path) from exc
            self.producer_state.apply(staged)
            records = assigned.record_count
            self.unflushed_messages += records
            if self.first_unflushed_ms is None:
                self.first_unflushed_ms = now
            flush_due = 0 < self.config.flush_interval_messages <= self.unflushed_messages
            return AppendResult(
                assigned.headers[0].base_offset, next_offset - 1, append_time, records, False, flush_due
            )

    def _refuse_epoch(self, leader_epoch: int) -> None:
        raise InvalidRequestError(
            f"{self.topic}-{self.partition}: an append at leader epoch {leader_epoch}, but epoch "
            f"{self._epochs.cache.latest_epoch} already wrote to this log (from offset "
            f"{self._epochs.cache.start_offset_of(self._epochs.cache.latest_epoch)}); nothing was appended"
        )

    def append_replica(self, data: bytes | bytearray | memoryview) -> AppendResult:
        """A follower's append of batches copied from its leader, kept byte for byte (Kafka's appendAsFollower).

        Offsets, leader epochs and timestamps stay as the leader wrote them; each batch's framing, magic
        and CRC are checked (not its size: the leader accepted it under the topic's limit of the time, as
        Kafka's follower ignores the record size). The first batch must start at the log end and each batch
        right after the one before, else InvalidRequestError naming the offsets, and nothing is written;
        compacted topics may skip offsets forward, since cleaning removes whole batches from the leader's
        log. Producer state learns each idempotent batch without a sequence check, so if this replica
        becomes the leader a producer's retry is still answered as a duplicate; each batch's leader epoch
        goes into the cache. Indexes and the flush policy are the leader's append's.
        """
        view = memoryview(data)
        total = len(view)
        if total == 0:
            raise CorruptRecordError(
                f"{self.topic}-{self.partition}: the replica append holds no record batch"
            )
        headers: list[BatchHeader] = []
        position = 0
        while position < total:
            headers.append(check_batch(view, position))
            position += headers[-1].size
        with self._lock:
            self._check_open()
            self._check_replica_offsets(headers)
            now = self._clock_ms()
            next_offset = headers[-1].last_offset + 1
            for header in headers:
                epoch = header.partition_leader_epoch
                if epoch >= 0 and epoch != self._epochs.cache.latest_epoch:
                    if epoch < self._epochs.cache.latest_epoch:
                        log.warning(
                            "%s-%s: the leader's batch at offset %d has leader epoch %d, older than this "
                            "replica's latest %d; the newer epochs are forgotten",
                            self.topic,
                            self.partition,
                            header.base_offset,
                            epoch,
                            self._epochs.cache.latest_epoch,
                        )
                    with self._offline_on_error("writing the leader-epoch checkpoint", self._epochs.path):
                        self._epochs.assign(epoch, header.base_offset)
            try:
                self._maybe_roll(total, next_offset, now)
                self.active.append([view], headers, total, now)
            except OSError as exc:
                raise self._take_offline(exc, "a replica append to", lambda: self.active.log_path) from exc
            records = 0
            for header in headers:
                records += header.record_count
                if header.producer_id >= 0:
                    self.producer_state.replay(header)
            self.unflushed_messages += records
            if self.first_unflushed_ms is None:
                self.first_unflushed_ms = now
            flush_due = 0 < self.config.flush_interval_messages <= self.unflushed_messages
            return AppendResult(headers[0].base_offset, next_offset - 1, -1, records, False, flush_due)

    def _check_replica_offsets(self, headers: list[BatchHeader]) -> None:
        """The batches must carry on from the log end, in order, without a gap (unless compacted)."""
        expected = self.log_end_offset
        gaps = self.config.compact
        for n, header in enumerate(headers):
            base = header.base_offset
            if base == expected or (gaps and base > expected):
                expected = header.last_offset + 1
                continue
            where = "the log end offset" if n == 0 else f"the end of batch {n - 1} in the request"
            raise InvalidRequestError(
                f"{self.topic}-{self.partition}: a replica append's batch {n} starts at offset {base}, "
                f"but {where} is {expected}; nothing was appended"
            )

    def _check_sequences(
        self,
        batches: list[tuple[int, BatchHeader]],
        written: list[BatchHeader],
        staged: dict[int, ProducerEntry],
    ) -> list[BatchMetadata]:
        """Check the idempotent batches' sequences and stage what they change in `staged`.

        Returns the original batches when the request is a retry of batches already written (nothing is
        to be appended), and raises when it mixes such retries with new batches.
        """
        duplicates: list[BatchMetadata] = []
        new = False
        for (_, header), assigned in zip(batches, written, strict=True):
            if header.producer_id >= 0:
                original = self.producer_state.check(header, staged)
                if original is not None:
                    duplicates.append(original)
                    continue
                # Remember the CRC the producer sent (a retry carries it), not a LogAppendTime reseal's.
                self.producer_state.update(
                    assigned if assigned.crc == header.crc else assigned._replace(crc=header.crc), staged
                )
            new = True
        if duplicates and new:
            raise OutOfOrderSequenceError(
                f"{self.topic}-{self.partition}: a request mixes retried batches with new ones; "
                "send retries on their own"
            )
        return duplicates

    def _maybe_roll(self, nbytes: int, next_offset: int, now: int) -> None:
        active = self.active
        if active.size == 0:
            return
        started = active.created_ms if active.created_ms is not None else active.first_batch_timestamp
        if (
            active.size + nbytes > self.config.segment_bytes
            or active.index_full
            or next_offset - 1 - active.base_offset > _MAX_RELATIVE_OFFSET
            or (started is not None and now - started >= self.config.segment_ms)
        ):
            self._roll()

    def roll(self) -> None:
        """Start a new active segment at the log end (no-op when the active segment is empty)."""
        with self._lock:
            self._check_open()
            if self.active.size > 0:
                try:
                    self._roll()
                except OSError as exc:
                    raise self._take_offline(
                        exc, "a segment roll after", lambda: self.active.log_path
                    ) from exc

    def _roll(self) -> None:
        # No fsync lock here: a concurrent flush only fsyncs descriptors, which sealing keeps open, so a
        # roll on the append path never waits for a disk flush.
        self.active.seal()
        self._add_segment(self._new_segment(self.log_end_offset, active=True))

    # --- read ---------------------------------------------------------------------------------------------

    def read(self, offset: int, max_bytes: int, *, max_offset: int | None = None) -> ReadResult:
        """Whole batches from the one holding `offset`, up to `max_bytes` but at least one batch.

        With `max_offset` (a replicated partition's high watermark, for consumers) no batch holding an
        offset >= `max_offset` is returned, and the result's high watermark is `max_offset` (at most the
        log end). Offsets are still valid up to the log end: one at or past `max_offset` reads nothing.
        """
        with self._lock:
            self._check_open()
            start, end = self.log_start_offset, self.log_end_offset
            if offset < start or offset > end:
                raise OffsetOutOfRangeError(
                    f"offset {offset} is out of range for {self.topic}-{self.partition}: "
                    f"valid offsets are {start} to {end}",
                    log_start_offset=start,
                    log_end_offset=end,
                )
            limit = end if max_offset is None else min(max_offset, end)
            if offset >= limit:
                return ReadResult(b"", limit, start)
            index = bisect.bisect_right(self._bases, offset) - 1
            try:
                for segment in self.segments[index:]:
                    if segment.base_offset >= limit:
                        break
                    # reopening a released segment can fail (EMFILE, EIO): a StorageError, retriable
                    with io_errors(
                        f"{self.topic}-{self.partition}: reading offset {offset} from", segment.log_path
                    ):
                        position = segment.find_batch(offset)
                        if position is not None:
                            if limit < segment.next_offset:
                                stop = segment.position_of(limit)
                                return ReadResult(segment.read(position, max_bytes, stop), limit, start)
                            return ReadResult(segment.read(position, max_bytes), limit, start)
            except CorruptSegmentError as exc:
                self._warn_corrupt(offset, exc)
                raise
            return ReadResult(b"", limit, start)

    def _warn_corrupt(self, offset: int, exc: CorruptSegmentError) -> None:
        """One WARNING per damaged batch and process: a consumer retrying the offset must not flood the log."""
        key = (str(exc.path), exc.position)
        if key not in self._reported_corrupt:
            self._reported_corrupt.add(key)
            log.warning("%s-%s: not serving offset %d: %s", self.topic, self.partition, offset, exc)

    def offset_for_timestamp(self, timestamp_ms: int) -> tuple[int, int] | None:
        """The first record with a timestamp >= `timestamp_ms`: (offset, timestamp), or None."""
        with self._lock:
            self._check_open()
            for segment in self.segments:
                if segment.max_timestamp >= timestamp_ms:
                    with io_errors(
                        f"{self.topic}-{self.partition}: looking up a timestamp in", segment.log_path
                    ):
                        found = segment.find_offset_by_timestamp(timestamp_ms)
                    if found is not None:
                        return found
            return None

    # --- durability -------------------------------------------------------------------------------------

    def flush(self, up_to_offset: int | None = None) -> None:
        """Return once every offset below `up_to_offset` (default: the log end) is on stable storage.

        Group commit: while one caller fsyncs, the others wait; when it finishes, those it covered return
        and one of the rest fsyncs everything appended meanwhile.
        """
        if self.offline is not None:
            self._check_open()
        target = self.log_end_offset if up_to_offset is None else min(up_to_offset, self.log_end_offset)
        with self._flush_cond:
            while self.flushed_offset < target and self._flushing:
                self._flush_cond.wait()
            if self.flushed_offset >= target:
                return
            self._flushing = True
        try:
            with self._lock:
                self._check_open()
                end = self.log_end_offset
                first = max(0, bisect.bisect_right(self._bases, self.flushed_offset) - 1)
                segments = self.segments[first:]
                self.unflushed_messages = 0
                self.first_unflushed_ms = None
            with self._fsync_lock:
                started = time.perf_counter()
                try:
                    for segment in segments:
                        segment.flush()
                except OSError as exc:  # an fsync that fails may have lost the pages: never retry it
                    raise self._take_offline(exc, "an fsync of", lambda: segment.log_path) from exc
                if self._on_fsync is not None:
                    self._on_fsync(time.perf_counter() - started)
                # Publish before letting go of the fsync lock: a truncation waiting for it then lowers
                # flushed_offset after this, never before (which would leave it past the new log end).
                with self._flush_cond:
                    self.flushed_offset = max(self.flushed_offset, end)
        finally:
            with self._flush_cond:
                self._flushing = False
                self._flush_cond.notify_all()

    def flush_due(self, now: int) -> bool:
        """Whether the topic's flush policy (or a rolled, unflushed segment) calls for a flush now."""
        if self.flushed_offset < self.active.base_offset:
            return True
        if 0 < self.config.flush_interval_messages <= self.unflushed_messages:
            return True
        interval = self.config.flush_interval_ms
        return (
            interval > 0 and self.first_unflushed_ms is not None and now - self.first_unflushed_ms >= interval
        )

    # --- maintenance -------------------------------------------------------------------------------------

    def truncate_to(self, offset: int) -> None:
        """Remove every batch that holds an offset >= `offset` (a batch is kept or dropped whole).

        The leader-epoch cache forgets the epochs that started at or past the new log end, and the high
        watermark comes down to it (a follower truncating to where its history diverged from the leader's).
        """
        with (
            self._lock,
            self._fsync_lock,
            self._offline_on_error(f"truncating to offset {offset}", lambda: self.active.log_path),
        ):
            self._check_open()
            if offset >= self.log_end_offset:
                return
            while len(self.segments) > 1 and self.active.base_offset >= offset:
                self.segments.pop().delete()
                self._bases.pop()
            if self.active.base_offset >= offset:
                # Nothing before `offset` is left in the log: start again, empty, at `offset`.
                self.segments.pop().delete()
                self._bases.pop()
                self._add_segment(self._new_segment(max(offset, 0), active=True))
            else:
                if not self.active._active:
                    self.active.activate(self.config.segment_bytes)
                self.active.truncate_to(offset)
            self.flushed_offset = min(self.flushed_offset, self.log_end_offset)
            if self._deleted_below > self.log_end_offset:
                # Later appends must not fall below a start offset that is now past the log end.
                self._deleted_below = self.log_end_offset
                write_offset_checkpoint(self.directory / LOG_START_FILE, self._deleted_below)
            self._rebuild_producer_state(clean=False)
            self._epochs.truncate_from_end(self.log_end_offset)
            if self._high_watermark is not None:
                self._high_watermark = min(self._high_watermark, self.log_end_offset)

    def truncate_fully_and_start_at(self, offset: int) -> None:
        """Drop every batch and start again, empty, at `offset` (Kafka's truncateFullyAndStartAt).

        For a follower whose log ends below the leader's log start: retention on the leader deleted what
        it would need next, so it copies the partition afresh from the leader's start. Its producer state
        and leader epochs go with its batches. Crash-safe in this order: the segments go, the new empty
        segment is made (its file name is the new start), then the log-start checkpoint is written.
        """
        if offset < 0:
            raise ValueError(f"a log cannot start at a negative offset ({offset})")
        with (
            self._lock,
            self._fsync_lock,
            self._offline_on_error(f"truncating fully to start at offset {offset}", lambda: self.directory),
        ):
            self._check_open()
            for segment in reversed(self.segments):
                segment.delete()
            self.segments.clear()
            self._bases.clear()
            self._add_segment(self._new_segment(offset, active=True))
            self._deleted_below = offset
            write_offset_checkpoint(self.directory / LOG_START_FILE, offset)
            self.flushed_offset = offset
            self._rebuild_producer_state(clean=False)
            self._epochs.truncate_from_end(0)
            if self._high_watermark is not None:
                self._high_watermark = offset
            log.warning(
                "%s-%s: every batch deleted; the log starts again, empty, at offset %d",
                self.topic,
                self.partition,
                offset,
            )

    def closed_segments(self) -> list[LogSegment]:
        with self._lock:
            return list(self.segments[:-1])

    def delete_oldest_segments(self, count: int) -> int:
        """Delete the `count` oldest closed segments (never the active one); returns how many went.

        With a high watermark, as in Kafka, no segment goes whose successor starts above it: records not
        yet on every in-sync replica are never deleted. The leader-epoch cache then starts at the new log
        start offset.
        """
        with self._lock, self._fsync_lock:
            self._check_open()
            count = min(count, len(self.segments) - 1)
            hw = self._high_watermark
            if hw is not None:
                while count > 0 and self.segments[count].base_offset > hw:
                    count -= 1
            for segment in self.segments[:count]:
                # A failed unlink leaves the files half gone while the segment list still has them.
                with self._offline_on_error("deleting segment", segment.log_path):
                    segment.delete()
            del self.segments[:count]
            del self._bases[:count]
            if count > 0:
                self._log_start_moved()
            return max(count, 0)

    def _log_start_moved(self) -> None:
        """Retention or DeleteRecords moved the log start: the epoch in force there now starts there."""
        start = self.log_start_offset
        with self._offline_on_error("writing the leader-epoch checkpoint", self._epochs.path):
            self._epochs.truncate_from_start(start)
        if self._high_watermark is not None and self._high_watermark < start:
            self._high_watermark = start

    def delete_records_before(self, offset: int) -> int:
        """Make `offset` the log start offset (Kafka's DeleteRecords); returns the log start offset after.

        `offset` may be anything up to the log end (up to the high watermark when there is one, as in
        Kafka: records not on every in-sync replica cannot be deleted); one at or below the current start
        changes nothing.
        The new start is written to disk before any segment goes, so a crash between the two only
        leaves segments that the next start still hides; the segments wholly below it are then deleted
        (never the active one), and the records below it in the first kept one are no longer served.
        """
        with self._lock, self._fsync_lock:
            self._check_open()
            start, end = self.log_start_offset, self.log_end_offset
            if not 0 <= offset <= end:
                raise OffsetOutOfRangeError(
                    f"cannot delete records of {self.topic}-{self.partition} before offset {offset}: "
                    f"it must be between 0 and the log end offset {end}",
                    log_start_offset=start,
                    log_end_offset=end,
                )
            if self._high_watermark is not None and offset > self._high_watermark:
                raise OffsetOutOfRangeError(
                    f"cannot delete records of {self.topic}-{self.partition} before offset {offset}: "
                    f"it is above the high watermark {self._high_watermark}",
                    log_start_offset=start,
                    log_end_offset=end,
                )
            if offset <= start:
                return start
            path = self.directory / LOG_START_FILE
            with io_errors("writing the log start offset", path):  # nothing changed yet: stay online
                write_offset_checkpoint(path, offset)
            self._deleted_below = offset
            count = 0
            while count < len(self.segments) - 1 and self.segments[count + 1].base_offset <= offset:
                count += 1
            for segment in self.segments[:count]:
                with self._offline_on_error("deleting segment", segment.log_path):
                    segment.delete()
            del self.segments[:count]
            del self._bases[:count]
            self._log_start_moved()
            log.info(
                "%s-%s: records before offset %d deleted (%d segments)",
                self.topic,
                self.partition,
                offset,
                count,
            )
            return self.log_start_offset

    def roll_if_older_than(self, deadline_ms: int) -> bool:
        """Roll an active segment whose newest record is older than `deadline_ms`, so retention can take it."""
        with self._lock:
            self._check_open()
            active = self.active
            if active.size > 0 and 0 <= active.max_timestamp < deadline_ms:
                try:
                    self._roll()
                except OSError as exc:
                    raise self._take_offline(
                        exc, "a segment roll after", lambda: self.active.log_path
                    ) from exc
                return True
            return False

    def replace_segment(self, old: LogSegment, cleaned_path: Path) -> LogSegment:
        """Swap a closed segment for its compacted copy (same base offset), crash-safely.

        Order matters: the old indexes go first (a missing index is rebuilt at start-up, a stale one
        could point into the wrong bytes), then `os.replace` swaps the log file atomically.
        """
        with self._lock, self._fsync_lock:
            self._check_open()
            index = self.segments.index(old)
            if index == len(self.segments) - 1:
                raise ValueError("the active segment cannot be replaced")
            # Once the old segment is closed it cannot serve again: a failure from here takes the partition
            # offline, and the next start finds either the old log file or the cleaned one, whole.
            with self._offline_on_error("swapping in the compacted", old.log_path):
                old.close()
                old.offset_index.path.unlink(missing_ok=True)
                old.time_index.path.unlink(missing_ok=True)
                os.replace(cleaned_path, old.log_path)
                fsync_dir(self.directory)
                segment = self._new_segment(old.base_offset, active=False)
                segment.rebuild_indexes()
                segment.seal()
            self.segments[index] = segment
            return segment

    # --- life cycle -------------------------------------------------------------------------------------

    def close(self) -> None:
        """Flush, snapshot producer state, trim and close every segment.

        An offline partition only lets go of its files: it writes nothing, so the next start recovers it.
        A disk failure during the close takes it offline the same way; it never stops the close halfway.
        """
        if self._closed:
            return
        if self.offline is None:
            with suppress(PartitionOfflineError):  # the fsync failed: offline now, let go of the files below
                self.flush()
        if self.offline is not None:
            self._abandon()
            return
        with self._lock, self._fsync_lock:
            if self._closed:
                return
            with suppress(PartitionOfflineError):  # offline now: the files below are let go unwritten
                self._write_checkpoints()
            snapshot = self.directory / PRODUCER_SNAPSHOT
            try:
                with io_errors("writing the producer state snapshot", snapshot):
                    self.producer_state.write_snapshot(snapshot, self.log_end_offset)
            except StorageError as exc:  # harmless: the next start rebuilds producer state from the log
                log.error(
                    "%s-%s: %s; the next start rebuilds it from the log", self.topic, self.partition, exc
                )
            for segment in self.segments:
                if self.offline is None:
                    try:
                        segment.close()
                        continue
                    except OSError as exc:
                        self._take_offline(exc, "closing", segment.log_path)
                self._let_go(segment)
            self._closed = True

    def delete(self) -> None:
        """Close without flushing and remove the partition's directory."""
        with self._lock, self._fsync_lock:
            for segment in self.segments:
                segment.delete()
            self._closed = True
        shutil.rmtree(self.directory, ignore_errors=True)

    def _abandon(self) -> None:
        with self._lock, self._fsync_lock:
            for segment in self.segments:
                self._let_go(segment)
            self._closed = True

    def _let_go(self, segment: LogSegment) -> None:
        """Close a segment's files without writing to them (its partition is offline)."""
        try:
            segment.abandon()
        except OSError as exc:
            log.warning("%s-%s: could not close %s: %s", self.topic, self.partition, segment, exc)

    @property
    def closed(self) -> bool:
        """Closed, or offline (nothing is appended, flushed, retained or compacted any more)."""
        return self._closed or self.offline is not None

    def __repr__(self) -> str:
        return f"Log({self.topic}-{self.partition}, start={self.log_start_offset}, end={self.log_end_offset})"
