"""Fetch and Produce answers written straight into their frame, for the path every record takes.

kio builds an answer as frozen dataclasses and writes it field by field in Python: about 35 us for a
one-partition Fetch answer on the machines we measure, most of the broker's share of a record's
end-to-end latency. These two answers have a fixed shape, so they are packed with `struct` into one
buffer (the batches copied once, as kio's writer also copies them). kio stays the definition: the
tests compare every byte of these frames with kio's for every version served.

Layouts (non-flexible versions, Kafka's FetchResponse.json and ProduceResponse.json):
- Fetch v4-11: throttle_time_ms, then from v7 error_code and session_id; per topic its name and per
  partition: index, error_code, high_watermark, last_stable_offset, log_start_offset (v5+),
  aborted_transactions (always empty: no transactions), preferred_read_replica (v11, -1), records.
- Produce v3-8: per topic its name and per partition: index, error_code, base_offset,
  log_append_time_ms, log_start_offset (v5+), record_errors (v8, empty) and error_message (v8); then
  throttle_time_ms.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from logstore.broker.domain.values import AppendOutcome, PartitionRead
from logstore.broker.kafka.errors import error_code, error_message

_FRAME_HEADER = struct.Struct(">ii")  # size prefix, correlation id (response header v0)
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_FETCH_TOP_V7 = struct.Struct(">ihi")  # throttle_time_ms, error_code, session_id
_FETCH_PARTITION_V4 = struct.Struct(">ihqqi")  # index, error, high watermark, last stable, aborted count
_FETCH_PARTITION_V5 = struct.Struct(">ihqqqi")  # ... and log_start_offset before the aborted count
_PRODUCE_PARTITION_V3 = struct.Struct(">ihqq")  # index, error, base offset, log append time
_PRODUCE_PARTITION_V5 = struct.Struct(">ihqqq")  # ... and log_start_offset
NO_REPLICA = -1
NO_SESSION = 0


@dataclass(frozen=True, slots=True)
class Encoded:
    """An answer already written: a frame whose size and correlation id the connection fills in."""

    frame: bytearray

    def framed(self, correlation_id: int) -> bytearray:
        _FRAME_HEADER.pack_into(self.frame, 0, len(self.frame) - 4, correlation_id)
        return self.frame


def _string(out: bytearray, text: str) -> None:
    data = text.encode()
    out += _I16.pack(len(data))
    out += data


def _nullable_string(out: bytearray, text: str | None) -> None:
    if text is None:
        out += _I16.pack(-1)
    else:
        _string(out, text)


def fetch_answer(version: int, reads: Sequence[PartitionRead]) -> Encoded:
    """The Fetch answer (v4-11) of `reads`, grouped by topic in the order topics first appear."""
    out = bytearray(_FRAME_HEADER.size)
    if version >= 7:
        out += _FETCH_TOP_V7.pack(0, 0, NO_SESSION)
    else:
        out += _I32.pack(0)
    by_topic: dict[str, list[PartitionRead]] = {}
    for read in reads:
        by_topic.setdefault(read.topic, []).append(read)
    out += _I32.pack(len(by_topic))
    for topic, partitions in by_topic.items():
        _string(out, topic)
        out += _I32.pack(len(partitions))
        for read in partitions:
            code = int(error_code(read.error))
            if version >= 5:
                out += _FETCH_PARTITION_V5.pack(
                    read.partition, code, read.high_watermark, read.high_watermark, read.log_start_offset, 0
                )
            else:
                out += _FETCH_PARTITION_V4.pack(
                    read.partition, code, read.high_watermark, read.high_watermark, 0
                )
            if version >= 11:
                out += _I32.pack(NO_REPLICA)
            out += _I32.pack(len(read.records))
            out += read.records
    return Encoded(out)


def produce_answer(
    version: int,
    topics: Sequence[tuple[str, Sequence[int]]],
    outcomes: dict[tuple[str, int], AppendOutcome],
    refusal: int,
) -> Encoded:
    """The Produce answer (v3-8): every (topic, partitions) of the request in its order, each partition
    with its outcome, or the error `refusal` where it has none."""
    out = bytearray(_FRAME_HEADER.size)
    out += _I32.pack(len(topics))
    for topic, partitions in topics:
        _string(out, topic)
        out += _I32.pack(len(partitions))
        for index in partitions:
            outcome = outcomes.get((topic, index))
            if outcome is None:
                code, base, append_time, start, message = refusal, -1, -1, -1, None
            else:
                code = int(error_code(outcome.error))
                base, start = outcome.base_offset, outcome.log_start_offset
                append_time = outcome.log_append_time_ms if outcome.log_append_time_ms >= 0 else -1
                message = error_message(outcome.error)
            if version >= 5:
                out += _PRODUCE_PARTITION_V5.pack(index, code, base, append_time, start)
            else:
                out += _PRODUCE_PARTITION_V3.pack(index, code, base, append_time)
            if version >= 8:
                out += _I32.pack(0)  # record_errors: none (a bad batch fails whole)
                _nullable_string(out, message)
    out += _I32.pack(0)  # throttle_time_ms
    return Encoded(out)
