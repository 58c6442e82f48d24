"""Idempotent producers: per producer id, the epoch and the last few batches' sequence numbers.

This is what lets the log answer a retried batch with its original offsets instead of appending it twice,
and reject a batch that skips sequence numbers. A batch is a retry only if it is the same batch: same
sequence numbers and same CRC. Another batch under a remembered producer id and sequence (a stranger's, or
a buggy client's) is refused, so it can never make the producer's own acknowledged batch vanish. Like Kafka, it remembers the last five batches per
producer (a producer keeps at most five requests in flight). The state is rebuilt after a restart from the
batch headers in the log, starting from a snapshot written at clean shutdown when there is one.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from logstore.checkpoint import write_atomic
from logstore.errors import DuplicateSequenceNumberError, InvalidProducerEpochError, OutOfOrderSequenceError
from logstore.records import BatchHeader
from logstore.records.layout import TIMESTAMP_TYPE_MASK

BATCHES_REMEMBERED = 5
_INT32_MAX = 2**31 - 1


@dataclass(frozen=True)
class BatchMetadata:
    first_seq: int
    last_seq: int
    first_offset: int
    last_offset: int
    timestamp: int
    crc: int | None = None
    """The CRC the producer sent the batch with; None when unknown (a snapshot written before CRCs were
    kept, or a LogAppendTime batch read back from the log, whose stored CRC is the broker's): a batch of
    unknown CRC matches any retry with its sequence numbers, as before."""

    def same_batch(self, header: BatchHeader) -> bool:
        return self.crc is None or self.crc == header.crc


@dataclass
class ProducerEntry:
    epoch: int
    batches: deque[BatchMetadata] = field(default_factory=lambda: deque(maxlen=BATCHES_REMEMBERED))

    @property
    def last_seq(self) -> int:
        return self.batches[-1].last_seq if self.batches else -1


def _last_seq(header: BatchHeader) -> int:
    """Sequences wrap around at the int32 maximum, as Kafka's do."""
    last = header.base_sequence + header.last_offset_delta
    return last - _INT32_MAX - 1 if last > _INT32_MAX else last


def _next_seq(seq: int) -> int:
    return 0 if seq == _INT32_MAX else seq + 1


class ProducerStateManager:
    """Sequence bookkeeping for one partition. Not thread-safe: the partition's lock guards it."""

    def __init__(self, topic_partition: str) -> None:
        self.topic_partition = topic_partition
        self.producers: dict[int, ProducerEntry] = {}

    def check(
        self, header: BatchHeader, pending: dict[int, ProducerEntry] | None = None
    ) -> BatchMetadata | None:
        """Decide what to do with an incoming batch, before anything is written.

        Returns the metadata of the original batch when this one is a retried duplicate, None when it
        may be appended. Raises InvalidProducerEpochError for a fenced (older) epoch,
        OutOfOrderSequenceError when sequence numbers do not follow on, and DuplicateSequenceNumberError for
        a batch with a remembered batch's sequence numbers but other contents (its CRC differs). `pending`
        holds the state of batches earlier in the same request, not yet applied.
        """
        pid = header.producer_id
        entry = (pending or {}).get(pid) or self.producers.get(pid)
        first_seq = header.base_sequence
        if entry is None:
            if first_seq != 0:
                raise OutOfOrderSequenceError(
                    f"{self.topic_partition}: producer {pid} is unknown here and its first batch starts at "
                    f"sequence {first_seq}, not 0; the producer should reset its sequence numbers"
                )
            return None
        if header.producer_epoch < entry.epoch:
            raise InvalidProducerEpochError(
                f"{self.topic_partition}: producer {pid} epoch {header.producer_epoch} is older than the "
                f"current epoch {entry.epoch}; a newer instance of this producer has taken over"
            )
        if header.producer_epoch > entry.epoch:
            if first_seq != 0:
                raise OutOfOrderSequenceError(
                    f"{self.topic_partition}: producer {pid} started epoch {header.producer_epoch} at "
                    f"sequence {first_seq}; a new epoch must start at 0"
                )
            return None
        last_seq = _last_seq(header)
        for batch in entry.batches:
            if batch.first_seq == first_seq and batch.last_seq == last_seq:
                if batch.same_batch(header):
                    return batch
                raise DuplicateSequenceNumberError(
                    f"{self.topic_partition}: producer {pid} epoch {header.producer_epoch} already wrote "
                    f"sequences {first_seq}..{last_seq} at offsets {batch.first_offset}..{batch.last_offset}, "
                    f"and this batch is not that one (CRC {header.crc:#010x}, written {batch.crc:#010x}); "
                    "nothing was appended. Two producers may share this producer id"
                )
        expected = _next_seq(entry.last_seq)
        if first_seq != expected:
            raise OutOfOrderSequenceError(
                f"{self.topic_partition}: producer {pid} sent sequence {first_seq} but {expected} was expected "
                f"(last acknowledged sequence {entry.last_seq}); a batch in between was lost"
            )
        return None

    def update(self, header: BatchHeader, target: dict[int, ProducerEntry] | None = None) -> None:
        """Record an appended batch (offsets already assigned) in `target` (default: the live state)."""
        self._remember(header, target, header.crc)

    def replay(self, header: BatchHeader) -> None:
        """Record a batch read back from the log at start-up. The broker changed (and re-CRCed) two kinds
        of stored batch, so the CRC their producer sent is unknown and none is remembered: LogAppendTime
        batches (stamped) and batches compaction dropped records from (fewer records than offsets)."""
        rewritten = (
            header.attributes & TIMESTAMP_TYPE_MASK or header.record_count != header.last_offset_delta + 1
        )
        self._remember(header, None, None if rewritten else header.crc)

    def _remember(
        self, header: BatchHeader, target: dict[int, ProducerEntry] | None, crc: int | None
    ) -> None:
        producers = self.producers if target is None else target
        pid = header.producer_id
        entry = producers.get(pid)
        if entry is None and target is not None and pid in self.producers:
            live = self.producers[pid]
            entry = ProducerEntry(live.epoch, deque(live.batches, maxlen=BATCHES_REMEMBERED))
        if entry is None or header.producer_epoch > entry.epoch:
            entry = ProducerEntry(header.producer_epoch)
        producers[pid] = entry
        entry.batches.append(
            BatchMetadata(
                header.base_sequence,
                _last_seq(header),
                header.base_offset,
                header.last_offset,
                header.max_timestamp,
                crc,
            )
        )

    def apply(self, staged: dict[int, ProducerEntry]) -> None:
        self.producers.update(staged)

    def clear(self) -> None:
        self.producers.clear()

    # --- snapshots ---------------------------------------------------------------------------------------

    def write_snapshot(self, path: Path, offset: int) -> None:
        """Persist the state as of `offset` (the log end), so start-up need not scan the whole log."""
        data = {
            "offset": offset,
            "producers": {
                str(pid): {"epoch": e.epoch, "batches": [list(vars(b).values()) for b in e.batches]}
                for pid, e in self.producers.items()
            },
        }
        write_atomic(path, json.dumps(data).encode())

    def load_snapshot(self, path: Path) -> int | None:
        """Load a snapshot; returns the offset it is valid up to, or None when there is none usable."""
        try:
            data = json.loads(path.read_text())
            producers = {
                int(pid): ProducerEntry(
                    int(value["epoch"]),
                    deque((_batch_from_snapshot(b) for b in value["batches"]), maxlen=BATCHES_REMEMBERED),
                )
                for pid, value in data["producers"].items()
            }
            offset = int(data["offset"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        self.producers = producers
        return offset


def _batch_from_snapshot(fields: list[Any]) -> BatchMetadata:
    """Five ints (a snapshot from before CRCs were kept), or five and a CRC that may be null."""
    if len(fields) not in (5, 6):
        raise ValueError(f"a remembered batch has {len(fields)} fields, not 5 or 6")
    first_seq, last_seq, first_offset, last_offset, timestamp = map(int, fields[:5])
    crc = fields[5] if len(fields) == 6 else None
    return BatchMetadata(
        first_seq, last_seq, first_offset, last_offset, timestamp, None if crc is None else int(crc)
    )
