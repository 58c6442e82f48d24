"""What a share consumer does, in its pure parts, when the share coordinator moves: a ShareFetch answered
NOT_COORDINATOR is a retriable failure (``Holdings.take``), and a ShareAcknowledge refused as a whole
because the coordinator moved or could not be reached goes again after the backoff until
request_timeout_ms (``SentAcks.settle``), while ranges refused INVALID_RECORD_STATE (what a new
coordinator answers for records the member held: they are available again there) are final refusals."""

from __future__ import annotations

import pytest
from logstore.client.share.holdings import Holdings, SentAcks
from logstore.client.shared.backoff import Backoff
from logstore.client.shared.errors import (
    BrokerUnavailableError,
    GroupError,
    InvalidRecordStateError,
    NotCoordinatorError,
    UnknownMemberIdError,
)
from logstore.client.shared.types import TopicPartition
from logstore.wire.logstore.v1 import common_pb2, share_pb2

TP = TopicPartition("jobs", 0)
BACKOFF = Backoff(100, 1000, jitter=0)


def sent(now: float = 0.0) -> SentAcks:
    request = share_pb2.ShareAcknowledgeRequest(group_id="g", member_id="m1")
    return SentAcks(None, request, {TP: [(0, 4, 1)]}, None, now)


def test_a_fetch_answered_not_coordinator_raises_it_for_the_retry() -> None:
    holdings = Holdings("g")
    answer = share_pb2.ShareFetchResponse(
        error_code=common_pb2.ERROR_CODE_NOT_COORDINATOR, error_message="coordinated by broker 2"
    )
    with pytest.raises(NotCoordinatorError, match="broker 2") as raised:
        holdings.take(answer)
    assert raised.value.retriable
    lost = share_pb2.ShareFetchResponse(error_code=common_pb2.ERROR_CODE_UNKNOWN_MEMBER_ID)
    assert holdings.take(lost) is None, "unknown at the new coordinator: rejoin"
    other = share_pb2.ShareFetchResponse(error_code=common_pb2.ERROR_CODE_INCONSISTENT_GROUP_PROTOCOL)
    with pytest.raises(GroupError):
        holdings.take(other)


def test_acknowledgements_refused_because_the_coordinator_moved_go_again_after_the_backoff() -> None:
    acks = sent()
    moved = share_pb2.ShareAcknowledgeResponse(error_code=common_pb2.ERROR_CODE_NOT_COORDINATOR)
    assert acks.settle(moved, 0.5, BACKOFF, timeout_s=10.0) is None
    assert acks.call is None and acks.retry_at == pytest.approx(0.6) and acks.attempts == 2
    away = BrokerUnavailableError("the coordinator could not be reached")
    assert acks.settle(away, 1.0, BACKOFF, timeout_s=10.0) is None
    assert acks.retry_at == pytest.approx(1.2), "the backoff doubles"
    applied = share_pb2.ShareAcknowledgeResponse(
        results=[share_pb2.PartitionAcknowledgementResults(topic="jobs", partition=0)]
    )
    assert acks.settle(applied, 1.5, BACKOFF, timeout_s=10.0) == {}


def test_acknowledgements_give_up_after_the_request_timeout_with_the_last_error() -> None:
    acks = sent(now=0.0)
    away = BrokerUnavailableError("the coordinator could not be reached")
    refused = acks.settle(away, 10.0, BACKOFF, timeout_s=10.0)
    assert refused == {TP: away}
    waiting = sent(now=0.0)
    assert waiting.settle(away, 1.0, BACKOFF, timeout_s=10.0) is None
    assert waiting.given_up() == {TP: away}, "what a wait that ends before it goes again reports"


def test_ranges_refused_invalid_record_state_and_an_unknown_member_are_final() -> None:
    stale = share_pb2.ShareAcknowledgeResponse(
        results=[
            share_pb2.PartitionAcknowledgementResults(
                topic="jobs",
                partition=0,
                results=[
                    share_pb2.AcknowledgementResult(
                        first_offset=0, last_offset=4, error_code=common_pb2.ERROR_CODE_INVALID_RECORD_STATE
                    )
                ],
            )
        ]
    )
    refused = sent().settle(stale, 0.1, BACKOFF, timeout_s=10.0)
    assert refused is not None and isinstance(refused[TP], InvalidRecordStateError)
    unknown = share_pb2.ShareAcknowledgeResponse(error_code=common_pb2.ERROR_CODE_UNKNOWN_MEMBER_ID)
    refused = sent().settle(unknown, 0.1, BACKOFF, timeout_s=10.0)
    assert refused is not None and isinstance(refused[TP], UnknownMemberIdError)
