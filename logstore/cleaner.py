"""Log compaction for `cleanup.policy=compact`: keep the latest record per key in the closed segments.

The cleaner works on the closed segments old enough to clean (`min.compaction.lag.ms`), once the share
of them not yet cleaned reaches `min.cleanable.dirty.ratio`. It maps each key to its latest offset over
those segments, then rewrites each segment keeping a record only if it is that latest one; tombstones
(null values) older than `delete.retention.ms` go too. Batches keep their base offset, last offset delta
and producer fields, so offsets never change and producer state stays rebuildable. Each rewritten segment
is written beside the original, fsynced, and swapped in with `Log.replace_segment` (crash-safe).

Not done yet (Kafka does them): merging small cleaned segments into one, and keeping an empty batch
for a producer whose every record was compacted away.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path

from logstore.checkpoint import read_offset_checkpoint, write_offset_checkpoint
from logstore.errors import CorruptRecordError, CorruptSegmentError
from logstore.io_errors import io_errors
from logstore.log import Log
from logstore.records import BatchHeader, Record, decode_batch, iter_headers, update_crc
from logstore.records.builder import encode_record
from logstore.records.compression import compress
from logstore.records.layout import HEADER_STRUCT, MAGIC, MIN_BATCH_LENGTH
from logstore.segment import CLEANED_SUFFIX, LogSegment

log = logging.getLogger(__name__)

CLEANER_CHECKPOINT = "cleaner-checkpoint"


def rebuild_batch(header: BatchHeader, records: Iterable[Record]) -> bytes:
    """Re-encode `records` (a subset of the batch's) under the batch's original header fields."""
    kept = list(records)
    section = b"".join(
        encode_record(
            r.offset - header.base_offset, r.timestamp - header.base_timestamp, r.key, r.value, r.headers
        )
        for r in kept
    )
    if header.compression:
        section = compress(header.compression, section)
    batch = bytearray(
        HEADER_STRUCT.pack(
            header.base_offset,
            MIN_BATCH_LENGTH + len(section),
            header.partition_leader_epoch,
            MAGIC,
            0,
            header.attributes,
            header.last_offset_delta,
            header.base_timestamp,
            header.max_timestamp,
            header.producer_id,
            header.producer_epoch,
            header.base_sequence,
            len(kept),
        )
    )
    batch += section
    update_crc(batch)
    return bytes(batch)


def _cleanable(log_: Log, now_ms: int) -> list[LogSegment]:
    """The closed segments, oldest first, up to the first one younger than min.compaction.lag.ms."""
    lag = log_.config.min_compaction_lag_ms
    segments = []
    for segment in log_.closed_segments():
        if segment.max_timestamp > now_ms - lag:
            break
        segments.append(segment)
    return segments


def _decode(segment: LogSegment, data: bytes, position: int, header: BatchHeader) -> list[Record]:
    """The batch's records; a batch damaged on disk (CRC, framing) raises naming the segment file."""
    try:
        return decode_batch(data, position)
    except CorruptRecordError as exc:
        raise CorruptSegmentError(
            f"{segment.log_path}: the stored batch at byte {position} (base offset {header.base_offset}) "
            f"is corrupt: {str(exc).removeprefix(f'batch at byte {position}: ')}; "
            "run `logstore verify` on the data directory",
            path=segment.log_path,
            offset=header.base_offset,
            position=position,
        ) from None


def _latest_offsets(segments: list[LogSegment]) -> dict[bytes, int]:
    latest: dict[bytes, int] = {}
    for segment in segments:
        with io_errors("reading for compaction", segment.log_path):
            data = segment.read_all()
        for position, header in iter_headers(data):
            for record in _decode(segment, data, position, header):
                if record.key is not None:
                    latest[record.key] = record.offset
    return latest


def _clean_segment(segment: LogSegment, latest: dict[bytes, int], tombstone_horizon_ms: int) -> bytes | None:
    """The segment's compacted bytes, or None when every record in it is still needed."""
    with io_errors("reading for compaction", segment.log_path):
        data = segment.read_all()
    pieces: list[bytes] = []
    changed = False
    for position, header in iter_headers(data):
        records = _decode(segment, data, position, header)
        kept = [
            r
            for r in records
            if r.key is not None
            and latest.get(r.key) == r.offset
            and not (r.value is None and r.timestamp < tombstone_horizon_ms)
        ]
        if len(kept) == len(records):
            pieces.append(bytes(data[position : position + header.size]))
        else:
            changed = True
            if kept:
                pieces.append(rebuild_batch(header, kept))
    return b"".join(pieces) if changed else None


def compact_log(log_: Log, now_ms: int) -> bool:
    """Compact one partition if enough of it is dirty. Returns whether anything was rewritten.

    A batch damaged on disk leaves the partition uncompacted (its keys cannot be trusted, and
    re-encoding it would give it a fresh CRC), with one WARNING per damaged batch naming the file.
    """
    try:
        return _compact(log_, now_ms)
    except CorruptSegmentError as exc:
        key = (f"compaction of {exc.path}", exc.position)  # apart from the read path's WARNING
        if key not in log_._reported_corrupt:
            log_._reported_corrupt.add(key)
            log.warning("%s-%d: not compacted: %s", log_.topic, log_.partition, exc)
        return False


def _compact(log_: Log, now_ms: int) -> bool:
    segments = _cleanable(log_, now_ms)
    if not segments:
        return False
    checkpoint_path = log_.directory / CLEANER_CHECKPOINT
    first_dirty = read_offset_checkpoint(checkpoint_path) or 0
    total = sum(s.size for s in segments)
    dirty = sum(s.size for s in segments if s.base_offset >= first_dirty)
    if total == 0 or dirty == 0 or dirty / total < log_.config.min_cleanable_dirty_ratio:
        return False
    latest = _latest_offsets(segments)
    horizon = now_ms - log_.config.delete_retention_ms
    rewritten = 0
    for segment in segments:
        cleaned = _clean_segment(segment, latest, horizon)
        if cleaned is None:
            continue
        path = Path(str(segment.log_path) + CLEANED_SUFFIX)
        try:
            with io_errors("writing the compacted copy", path):
                _write_synced(path, cleaned)
        except BaseException:
            with suppress(OSError):  # the original is untouched; a leftover is also cleared at start
                path.unlink(missing_ok=True)
            raise
        try:
            log_.replace_segment(segment, path)
        except ValueError:  # the segment went away meanwhile (retention or truncation)
            path.unlink(missing_ok=True)
            continue
        rewritten += 1
    with io_errors("writing the cleaner checkpoint", checkpoint_path):
        write_offset_checkpoint(checkpoint_path, segments[-1].next_offset)
    if rewritten:
        log.info("compacted %d segments of %s-%d", rewritten, log_.topic, log_.partition)
    return rewritten > 0


def _write_synced(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
