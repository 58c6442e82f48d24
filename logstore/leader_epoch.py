"""Leader epochs of one partition: which epoch's leader wrote from which offset (Kafka's LeaderEpochFileCache).

Every batch carries its leader's epoch in its header. This cache keeps, per epoch, the first offset written
in it, so a leader can answer OffsetForLeaderEpoch ("where did epoch E end in your log?") and a follower
returning after a failover can find where its history diverged from the new leader's (KIP-101, KIP-279)
and truncate there instead of at its high watermark. The cache is pure; `LeaderEpochFile` keeps it on disk
in Kafka's `leader-epoch-checkpoint` text format, rewritten atomically (`checkpoint.write_atomic`).
`logstore.log.Log` owns one per partition and keeps it in step with the log.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from logstore.checkpoint import write_atomic
from logstore.errors import MetadataError

log = logging.getLogger(__name__)

UNDEFINED_EPOCH = -1
UNDEFINED_EPOCH_OFFSET = -1
CHECKPOINT_NAME = "leader-epoch-checkpoint"
CHECKPOINT_VERSION = 0


@dataclass(frozen=True, slots=True)
class EpochEntry:
    epoch: int
    start_offset: int


@dataclass(frozen=True, slots=True)
class EpochEnd:
    """An OffsetForLeaderEpoch answer: the largest epoch <= the one asked for, and where it ended."""

    epoch: int
    end_offset: int


UNDEFINED = EpochEnd(UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)


class LeaderEpochCache:
    """Epoch -> start offset, both strictly increasing. Pure; not thread-safe (the partition's lock guards it)."""

    def __init__(self, entries: Iterable[EpochEntry] = ()) -> None:
        self._entries: list[EpochEntry] = []
        for entry in entries:
            self.assign(entry.epoch, entry.start_offset)

    @property
    def entries(self) -> tuple[EpochEntry, ...]:
        return tuple(self._entries)

    @property
    def latest_epoch(self) -> int:
        return self._entries[-1].epoch if self._entries else UNDEFINED_EPOCH

    def assign(self, epoch: int, start_offset: int) -> bool:
        """Record that `epoch` starts at `start_offset`; whether the cache changed.

        As Kafka does, a new entry removes every entry it contradicts (an epoch >= it, or a start offset >=
        its own), so a leader that truncated and was re-elected keeps one consistent history.
        """
        if epoch < 0 or start_offset < 0:
            raise ValueError(f"leader epoch {epoch} at offset {start_offset}: both must be >= 0")
        if self._entries:
            latest = self._entries[-1]
            if latest.epoch == epoch and latest.start_offset <= start_offset:
                return False
        self._entries = [e for e in self._entries if e.epoch < epoch and e.start_offset < start_offset]
        self._entries.append(EpochEntry(epoch, start_offset))
        return True

    def start_offset_of(self, epoch: int) -> int | None:
        for entry in self._entries:
            if entry.epoch == epoch:
                return entry.start_offset
        return None

    def end_offset_for(self, requested_epoch: int, log_end_offset: int) -> EpochEnd:
        """The leader's OffsetForLeaderEpoch answer for `requested_epoch`, exactly as Kafka computes it.

        The latest epoch ends at the log end. An older one ends where the next higher epoch starts, and the
        epoch answered is the largest one this log knows that is <= the one asked for (the follower then
        knows which of its epochs to compare). An epoch above every known one is UNDEFINED.
        """
        if requested_epoch == UNDEFINED_EPOCH or not self._entries:
            return UNDEFINED
        if requested_epoch == self.latest_epoch:
            return EpochEnd(requested_epoch, log_end_offset)
        epochs = [e.epoch for e in self._entries]
        higher = bisect.bisect_right(epochs, requested_epoch)
        if higher == len(epochs):
            return UNDEFINED
        higher_start = self._entries[higher].start_offset
        if higher == 0:
            return EpochEnd(requested_epoch, higher_start)
        return EpochEnd(self._entries[higher - 1].epoch, higher_start)

    def truncate_from_end(self, end_offset: int) -> bool:
        """The log was truncated to `end_offset`: forget epochs that started at or after it."""
        kept = [e for e in self._entries if e.start_offset < end_offset]
        changed = len(kept) != len(self._entries)
        self._entries = kept
        return changed

    def truncate_from_start(self, start_offset: int) -> bool:
        """The log start moved to `start_offset`: the epoch in force there now starts there."""
        before = [e for e in self._entries if e.start_offset <= start_offset]
        if not before or (len(before) == 1 and before[0].start_offset == start_offset):
            return False
        rest = self._entries[len(before) :]
        self._entries = [EpochEntry(before[-1].epoch, start_offset), *rest]
        return True


@dataclass(frozen=True, slots=True)
class Truncation:
    """Where a follower truncates; `done` is False when it must ask the leader again from there (KIP-279)."""

    offset: int
    done: bool


def follower_truncation(
    cache: LeaderEpochCache, log_end_offset: int, high_watermark: int, leader_answer: EpochEnd
) -> Truncation:
    """The follower's side of OffsetForLeaderEpoch: the offset to truncate to before fetching again.

    The follower asked about its latest epoch. If the leader does not know it (UNDEFINED), the only safe
    point is the follower's high watermark. Otherwise the histories agree up to the end of the epoch the
    leader answered, in both logs: truncate to the smaller of the two. When the leader answered an older
    epoch than the follower holds at that point, truncating is only a step: the follower asks again with
    its new latest epoch.
    """
    mine = cache.end_offset_for(leader_answer.epoch, log_end_offset)
    if leader_answer.end_offset == UNDEFINED_EPOCH_OFFSET or mine == UNDEFINED:
        # The leader knows none of our epochs (or answered one above all of ours, which no leader does).
        return Truncation(min(high_watermark, log_end_offset), True)
    if mine.epoch == leader_answer.epoch:
        return Truncation(min(leader_answer.end_offset, mine.end_offset, log_end_offset), True)
    return Truncation(min(leader_answer.end_offset, mine.end_offset, log_end_offset), False)


def rebuild_from_batches(batches: Iterable[tuple[int, int]]) -> LeaderEpochCache:
    """The cache from (base offset, partition leader epoch) of each batch in offset order.

    Batches written outside a cluster carry NO_PARTITION_LEADER_EPOCH (-1) and contribute nothing.
    """
    cache = LeaderEpochCache()
    for base_offset, epoch in batches:
        if epoch >= 0 and epoch > cache.latest_epoch:
            cache.assign(epoch, base_offset)
    return cache


def encode_checkpoint(cache: LeaderEpochCache) -> bytes:
    """Kafka's format: the version, the entry count, then one `epoch start_offset` line per entry."""
    lines = [str(CHECKPOINT_VERSION), str(len(cache.entries))]
    lines += [f"{e.epoch} {e.start_offset}" for e in cache.entries]
    return ("\n".join(lines) + "\n").encode()


class LeaderEpochCheckpointError(MetadataError):
    """A partition's leader-epoch checkpoint cannot be read; the message names it and the way out."""


def decode_checkpoint(path: Path, data: bytes) -> LeaderEpochCache:
    def refuse(reason: str) -> LeaderEpochCheckpointError:
        return LeaderEpochCheckpointError(f"{path}: damaged leader-epoch checkpoint ({reason})")

    try:
        lines = data.decode("ascii").splitlines()
    except UnicodeDecodeError:
        raise refuse("not ASCII text") from None
    if len(lines) < 2:
        raise refuse("shorter than its two header lines")
    if lines[0] != str(CHECKPOINT_VERSION):
        raise refuse(f"version {lines[0]!r}, expected {CHECKPOINT_VERSION}")
    if not lines[1].isdigit() or int(lines[1]) != len(lines) - 2:
        raise refuse(f"entry count {lines[1]!r} but {len(lines) - 2} entry lines")
    entries: list[EpochEntry] = []
    for number, line in enumerate(lines[2:], start=3):
        fields = line.split(" ")
        if len(fields) != 2 or not all(f.isdigit() for f in fields):
            raise refuse(f"line {number} is {line!r}, expected 'epoch start_offset'")
        entry = EpochEntry(int(fields[0]), int(fields[1]))
        if entries and (entry.epoch <= entries[-1].epoch or entry.start_offset <= entries[-1].start_offset):
            raise refuse(f"line {number}: epochs and start offsets must both increase")
        entries.append(entry)
    return LeaderEpochCache(entries)


class LeaderEpochFile:
    """The cache of one partition and its checkpoint file, rewritten atomically whenever the cache changes.

    Not thread-safe: it belongs to one partition and is used under that partition's lock.
    """

    def __init__(self, path: Path, cache: LeaderEpochCache, *, dirty: bool = False) -> None:
        self.path = path
        self.cache = cache
        self.dirty = dirty
        """The file does not hold the cache yet (it was rebuilt at open): `flush_if_dirty` writes it."""

    @classmethod
    def open(cls, directory: Path, batches: Callable[[], Iterable[tuple[int, int]]]) -> LeaderEpochFile:
        """Read the checkpoint in a partition folder; a missing or damaged one is rebuilt from `batches`.

        Never refuses to open: the batch headers name the epoch of every batch, which is everything the
        file records but an epoch that wrote nothing (superseded by the next epoch at the same offset, or
        the latest, which its leader assigns again with its first append). A damaged file is named in a
        WARNING, and so is a missing one that the headers show should have held epochs. The rebuilt cache
        is written by the next `flush_if_dirty` (the partition's checkpoints), not here, so opening a
        partition costs no write.
        """
        path = directory / CHECKPOINT_NAME
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            cache = rebuild_from_batches(batches())
            if cache.entries:
                log.warning(
                    "%s is missing; rebuilt it from the partition's batch headers (%d epochs)",
                    path,
                    len(cache.entries),
                )
            return cls(path, cache, dirty=True)
        except OSError as exc:
            return cls._rebuilt(path, batches, f"{path}: unreadable leader-epoch checkpoint ({exc})")
        try:
            return cls(path, decode_checkpoint(path, data))
        except LeaderEpochCheckpointError as exc:
            return cls._rebuilt(path, batches, str(exc))

    @classmethod
    def _rebuilt(
        cls, path: Path, batches: Callable[[], Iterable[tuple[int, int]]], problem: str
    ) -> LeaderEpochFile:
        cache = rebuild_from_batches(batches())
        log.warning(
            "%s; rebuilt it from the partition's batch headers (%d epochs)", problem, len(cache.entries)
        )
        return cls(path, cache, dirty=True)

    def flush(self) -> None:
        write_atomic(self.path, encode_checkpoint(self.cache))
        self.dirty = False

    def flush_if_dirty(self) -> None:
        if self.dirty:
            self.flush()

    def assign(self, epoch: int, start_offset: int) -> bool:
        changed = self.cache.assign(epoch, start_offset)
        if changed:
            self.flush()
        return changed

    def truncate_from_end(self, end_offset: int) -> bool:
        changed = self.cache.truncate_from_end(end_offset)
        if changed:
            self.flush()
        return changed

    def truncate_from_start(self, start_offset: int) -> bool:
        changed = self.cache.truncate_from_start(start_offset)
        if changed:
            self.flush()
        return changed
