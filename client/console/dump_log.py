"""``logstore dump-log PATH``: print the batches and records of a segment file, checking every batch.

Works on the file alone (no broker). Each batch is checked with ``check_batch`` (framing, magic, CRC)
and, unless --batches-only, by decoding its records. The first invalid batch ends the dump with a
one-line error; with --skip-corrupt it is reported with a warning and the dump goes on. The exit code
is 1 if any batch is invalid or the file ends in something that is not a whole batch (a zero-filled
preallocated tail is reported but is not an error).
"""

from __future__ import annotations

import argparse
import errno
import mmap
import os
import sys
from pathlib import Path
from typing import Any

from logstore.client.console.common import friendly
from logstore.client.console.dump_index import dump_index, is_index

_SHOWN_BYTES = 60
_SCAN_CHUNK = 1 << 20


def add_parser(subcommands: Any) -> None:
    parser = subcommands.add_parser(
        "dump-log",
        help="print and check the batches of a segment file, or the entries of an index",
        description="Print each batch of a .log segment file with its header fields and whether it is "
        "valid, then its records (unless --batches-only). Given a .index or .timeindex file, print its "
        "entries (offset and position, or timestamp and offset) and check them against the .log beside it. "
        "Reads the file alone: no broker is involved.",
    )
    parser.add_argument(
        "path",
        type=Path,
        help="a segment file, e.g. data/orders-0/00000000000000000000.log, or its .index or .timeindex",
    )
    parser.add_argument("--batches-only", action="store_true", help="do not print records")
    parser.add_argument("--print-values", action="store_true", help="show keys and values (first 60 bytes)")
    parser.add_argument(
        "--skip-corrupt",
        action="store_true",
        help="report an invalid batch with a warning and go on to the next one, instead of stopping",
    )
    parser.set_defaults(handler=friendly(_dump))


def _dump(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    path: Path = args.path
    if not path.is_file():
        raise ValueError(
            f"{path} is not a file; give a segment file such as <data-dir>/<topic>-<n>/<offset>.log"
        )
    if is_index(path):
        return dump_index(path)
    size = path.stat().st_size
    if size == 0:
        print(f"{path}: empty")
        return 0
    with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return _dump_buffer(data, path, args, file.fileno())


def _dump_buffer(data: Any, path: Path, args: argparse.Namespace, fileno: int) -> int:
    from logstore.errors import LogStoreError  # what check_batch raises
    from logstore.records import (
        GZIP,
        LOG_APPEND_TIME,
        LZ4,
        NONE,
        SNAPPY,
        ZSTD,
        check_batch,
        decode_batch,
        iter_headers,
    )

    codecs = {NONE: "none", GZIP: "gzip", SNAPPY: "snappy", LZ4: "lz4", ZSTD: "zstd"}
    invalid = 0
    batches = 0
    records = 0
    end = 0
    print(f"Dumping {path}")
    for pos, header in iter_headers(data):
        batches += 1
        end = pos + header.size
        problem = None
        decoded = []
        try:
            check_batch(data, pos)
            if not args.batches_only:
                decoded = decode_batch(data, pos)
        except LogStoreError as exc:
            invalid += 1
            problem = str(exc)
        verdict = "isValid: true" if problem is None else f"isValid: false ({problem})"
        kind = "LogAppendTime" if header.timestamp_type == LOG_APPEND_TIME else "CreateTime"
        print(
            f"baseOffset: {header.base_offset} lastOffset: {header.last_offset} count: {header.record_count} "
            f"position: {pos} size: {header.size} {kind}: {header.max_timestamp} "
            f"compression: {codecs.get(header.compression, header.compression)} producerId: {header.producer_id} "
            f"producerEpoch: {header.producer_epoch} baseSequence: {header.base_sequence} "
            f"crc: {header.crc} {verdict}"
        )
        if problem is not None:
            where = f"{path}: the batch at position {pos} (offsets {header.base_offset}-{header.last_offset})"
            if not args.skip_corrupt:
                print(f"Summary: stopped at the invalid batch at position {pos}")
                raise CorruptBatchError(
                    f"{where} is invalid: {problem} (--skip-corrupt reports it and goes on)"
                )
            print(f"logstore: warning: {where} is invalid, skipped: {problem}", file=sys.stderr)
            continue
        for record in decoded:
            records += 1
            line = (
                f"| offset: {record.offset} {kind}: {record.timestamp} "
                f"keySize: {_size(record.key)} valueSize: {_size(record.value)} headers: {len(record.headers)}"
            )
            if args.print_values:
                line += f" key: {_show(record.key)} value: {_show(record.value)}"
            print(line)
    tail = len(data) - end
    verdicts = [f"{batches} batches, {records if not args.batches_only else 'unprinted'} records"]
    if invalid:
        verdicts.append(f"{invalid} invalid batches")
    if tail:
        if _all_zero(data, end, fileno):
            verdicts.append(f"{tail} zero bytes after the last batch (preallocated space)")
        else:
            verdicts.append(f"{tail} bytes after position {end} are not a whole batch (torn or corrupt)")
            invalid += 1
    print("Summary: " + "; ".join(verdicts))
    return 1 if invalid else 0


class CorruptBatchError(ValueError):
    """An invalid batch ended the dump (a ValueError: the console tools print it as one line)."""


def _all_zero(data: Any, start: int, fileno: int) -> bool:
    """Whether ``data[start:]`` is all zero bytes. Segment files are preallocated sparse, so holes (found
    with SEEK_DATA / SEEK_HOLE, which read nothing) are skipped and only data regions are scanned."""
    end = len(data)
    position = start
    while position < end:
        try:
            position = os.lseek(fileno, position, os.SEEK_DATA)
            stop = min(os.lseek(fileno, position, os.SEEK_HOLE), end)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # no data after position: the rest is a hole
                return True
            stop = end  # the file system cannot say: scan everything
        for chunk_start in range(position, stop, _SCAN_CHUNK):
            chunk = data[chunk_start : min(chunk_start + _SCAN_CHUNK, stop)]
            if chunk.count(0) != len(chunk):
                return False
        position = stop
    return True


def _size(data: bytes | None) -> int:
    return -1 if data is None else len(data)


def _show(data: bytes | None) -> str:
    if data is None:
        return "null"
    text = repr(data[:_SHOWN_BYTES])
    return text + ("..." if len(data) > _SHOWN_BYTES else "")
