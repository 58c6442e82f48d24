"""The hand-packed Fetch and Produce answers are byte for byte the frames kio writes, for every version
served and any mix of topics, partitions, errors and batches."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from kio.schema.errors import ErrorCode
from logstore.broker.domain.values import AppendOutcome, PartitionRead
from logstore.broker.kafka.api_versions import NO_THROTTLE
from logstore.broker.kafka.codec import build, element, frame_response, kafka_time, response_type
from logstore.broker.kafka.errors import error_code, error_message
from logstore.broker.kafka.hot_answers import fetch_answer, produce_answer
from logstore.broker.kafka.versions import FETCH, PRODUCE

from logstore.errors import CorruptRecordError, OffsetOutOfRangeError, UnknownTopicError

ERRORS = st.sampled_from(
    [
        None,
        None,
        OffsetOutOfRangeError("offset 9 is past the end", log_start_offset=0, log_end_offset=3),
        UnknownTopicError("no topic t"),
        CorruptRecordError("bad record"),
        RuntimeError("a bug"),
    ]
)
TOPICS = st.sampled_from(["t", "orders", "ünïcode"])
offsets = st.integers(min_value=-1, max_value=2**40)

reads = st.lists(
    st.builds(
        PartitionRead,
        topic=TOPICS,
        partition=st.integers(0, 2**31 - 1),
        records=st.binary(max_size=300),
        high_watermark=offsets,
        log_start_offset=offsets,
        error=ERRORS,
    ),
    max_size=5,
)


NO_SESSION = 0


def kio_fetch_answer(cls: type[Any], reads: list[PartitionRead]) -> Any:
    """kio's answer, the oracle."""
    topic_cls = element(cls, "responses")
    partition_cls = element(topic_cls, "partitions")
    by_topic: dict[str, list[Any]] = {}
    for read in reads:
        by_topic.setdefault(read.topic, []).append(
            build(
                partition_cls,
                partition_index=read.partition,
                error_code=error_code(read.error),
                high_watermark=read.high_watermark,
                last_stable_offset=read.high_watermark,
                log_start_offset=read.log_start_offset,
                aborted_transactions=(),
                preferred_read_replica=-1,
                records=read.records,
            )
        )
    responses = tuple(build(topic_cls, topic=name, partitions=tuple(ps)) for name, ps in by_topic.items())
    return build(
        cls, throttle_time=NO_THROTTLE, error_code=ErrorCode.none, session_id=NO_SESSION, responses=responses
    )


def kio_produce_answer(
    request: Any, version: int, outcomes: dict[tuple[str, int], AppendOutcome], refusal: ErrorCode
) -> Any:
    """kio's answer: every partition of the request, in its order: its outcome, or `refusal` where it has none."""
    cls = response_type(PRODUCE, version)
    topic_cls = element(cls, "responses")
    partition_cls = element(topic_cls, "partition_responses")
    responses = []
    for topic in request.topic_data:
        partitions = []
        for p in topic.partition_data:
            outcome = outcomes.get((topic.name, p.index))
            code = refusal if outcome is None else error_code(outcome.error)
            partitions.append(
                build(
                    partition_cls,
                    index=p.index,
                    error_code=code,
                    base_offset=outcome.base_offset if outcome else -1,
                    log_append_time=kafka_time(outcome.log_append_time_ms) if outcome else None,
                    log_start_offset=outcome.log_start_offset if outcome else -1,
                    record_errors=(),
                    error_message=error_message(outcome.error) if outcome else None,
                )
            )
        responses.append(build(topic_cls, name=topic.name, partition_responses=tuple(partitions)))
    return build(cls, responses=tuple(responses), throttle_time=NO_THROTTLE)


@settings(max_examples=150, deadline=None)
@given(version=st.integers(4, 11), reads=reads, correlation_id=st.integers(-(2**31), 2**31 - 1))
def test_fetch_answers_are_kios_frames(version: int, reads: list[PartitionRead], correlation_id: int) -> None:
    expected = bytes(frame_response(correlation_id, kio_fetch_answer(response_type(FETCH, version), reads)))
    assert bytes(fetch_answer(version, reads).framed(correlation_id)) == expected


class _Request:
    """What `produce._answer` reads of a request: topic_data[].name and partition_data[].index."""

    class Topic:
        def __init__(self, name: str, indexes: list[int]) -> None:
            self.name = name
            self.partition_data = [_Request.Partition(i) for i in indexes]

    class Partition:
        def __init__(self, index: int) -> None:
            self.index = index

    def __init__(self, topics: list[tuple[str, list[int]]]) -> None:
        self.topic_data = [_Request.Topic(name, indexes) for name, indexes in topics]


@settings(max_examples=150, deadline=None)
@given(
    version=st.integers(3, 8),
    topics=st.lists(st.tuples(TOPICS, st.lists(st.integers(0, 50), max_size=4, unique=True)), max_size=3),
    data=st.data(),
    refused=st.booleans(),
)
def test_produce_answers_are_kios_frames(
    version: int, topics: list[tuple[str, list[int]]], data: st.DataObject, refused: bool
) -> None:
    outcomes = {}
    for name, indexes in topics:
        for index in indexes:
            if data.draw(st.booleans()):  # some partitions have no outcome: they get the refusal code
                outcomes[name, index] = AppendOutcome(
                    name,
                    index,
                    base_offset=data.draw(offsets),
                    log_append_time_ms=data.draw(st.sampled_from([-1, 0, 1_700_000_000_123])),
                    log_start_offset=data.draw(offsets),
                    error=data.draw(ERRORS),
                )
    refusal = ErrorCode.invalid_required_acks if refused else ErrorCode.none
    request = _Request(topics)
    expected = bytes(frame_response(7, kio_produce_answer(request, version, outcomes, refusal)))
    assert bytes(produce_answer(version, topics, outcomes, int(refusal)).framed(7)) == expected
