"""Planning an offset reset: which partitions it covers and where each committed offset moves.

Everything is checked before anything is written, so a reset either moves every partition in scope or
fails as a whole with an error that names what was wrong.
"""

from __future__ import annotations

from collections.abc import Mapping

from logstore.broker.domain.groups.offset_store import OffsetAndMetadata
from logstore.broker.domain.groups.values import PartitionScope, ResetMode, ResetOutcome, ResetSpec
from logstore.broker.domain.topics import Topics
from logstore.broker.group_machine.model import TopicPartition

from logstore.errors import InvalidRequestError, InvalidTimestampError, UnknownPartitionError
from logstore.log import Log


def check_spec(spec: ResetSpec) -> None:
    """Refuse a reset whose mode is missing or whose argument is unusable."""
    if spec.mode is None:
        raise InvalidRequestError(
            "say where to reset the offsets: mode must be EARLIEST, LATEST, OFFSET, TIMESTAMP or SHIFT"
        )
    if spec.mode is ResetMode.OFFSET and spec.offset < 0:
        raise InvalidRequestError(f"the offset to reset to must not be negative, not {spec.offset}")
    if spec.mode is ResetMode.TIMESTAMP and spec.timestamp_ms < 0:
        raise InvalidTimestampError(
            f"timestamp_ms must be a time in milliseconds since the epoch, not {spec.timestamp_ms}"
        )


def partitions_in_scope(
    topics: Topics, scope: PartitionScope, committed: Mapping[TopicPartition, OffsetAndMetadata]
) -> list[TopicPartition]:
    """The partitions a reset covers: those named (a topic alone means all of its partitions), or every
    partition with a committed offset when nothing is named. Unknown topics and partitions raise."""
    if not scope:
        return sorted(committed)
    wanted: set[TopicPartition] = set()
    for topic, numbers in scope:
        count = topics.info(topic).partitions
        for number in numbers or range(count):
            if not 0 <= number < count:
                raise UnknownPartitionError(
                    f"topic {topic!r} has partitions 0 to {count - 1}; there is no partition {number}"
                )
            wanted.add(TopicPartition(topic, number))
    return sorted(wanted)


def plan(
    topics: Topics,
    partitions: list[TopicPartition],
    committed: Mapping[TopicPartition, OffsetAndMetadata],
    spec: ResetSpec,
) -> list[ResetOutcome]:
    """Where each partition's committed offset moves; raises if any partition cannot be reset."""
    unshiftable = [f"{tp.topic}-{tp.partition}" for tp in partitions if tp not in committed]
    if spec.mode is ResetMode.SHIFT and unshiftable:
        raise InvalidRequestError(
            f"cannot shift offsets that were never committed ({', '.join(unshiftable)}); reset those "
            "partitions to earliest, latest, an offset or a timestamp first"
        )
    outcomes = []
    for tp in partitions:
        previous = committed[tp].offset if tp in committed else -1
        new = _target(spec, topics.log(tp.topic, tp.partition), previous)
        outcomes.append(ResetOutcome(tp.topic, tp.partition, previous, new))
    return outcomes


def _target(spec: ResetSpec, partition_log: Log, previous: int) -> int:
    start, end = partition_log.log_start_offset, partition_log.log_end_offset
    if spec.mode is ResetMode.EARLIEST:
        return start
    if spec.mode is ResetMode.LATEST:
        return end
    if spec.mode is ResetMode.TIMESTAMP:
        found = partition_log.offset_for_timestamp(spec.timestamp_ms)
        return end if found is None else found[0]
    wanted = spec.offset if spec.mode is ResetMode.OFFSET else previous + spec.shift
    return min(max(wanted, start), end)
