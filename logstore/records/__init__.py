"""The record codec: Kafka's RecordBatch v2, byte for byte. Pure: no I/O, no threads, no grpc.

This package is the only part of ``logstore`` the client uses. See docs/storage-api.md.
"""

from __future__ import annotations

from .assign import AssignedBatches, assign_offsets
from .builder import BatchBuilder, build_batch
from .check import check_batch
from .crc import crc32c
from .layout import (
    CREATE_TIME,
    GZIP,
    HEADER_SIZE,
    LOG_APPEND_TIME,
    LZ4,
    NONE,
    SNAPPY,
    ZSTD,
    BatchHeader,
    iter_headers,
    parse_header,
    set_base_offset,
    set_log_append_time,
    set_partition_leader_epoch,
    set_producer,
    update_crc,
)
from .reader import decode_batch, decode_batch_chunks, iter_records
from .record import Record

__all__ = [
    "CREATE_TIME",
    "GZIP",
    "HEADER_SIZE",
    "LOG_APPEND_TIME",
    "LZ4",
    "NONE",
    "SNAPPY",
    "ZSTD",
    "AssignedBatches",
    "BatchBuilder",
    "BatchHeader",
    "Record",
    "assign_offsets",
    "build_batch",
    "check_batch",
    "crc32c",
    "decode_batch",
    "decode_batch_chunks",
    "iter_headers",
    "iter_records",
    "parse_header",
    "set_base_offset",
    "set_log_append_time",
    "set_partition_leader_epoch",
    "set_producer",
    "update_crc",
]
