"""What a share client does, in its pure parts, when the share coordinator moves: a ShareFetch answered
NOT_COORDINATOR is a retriable failure (``Holdings.take``); a ShareAcknowledge refused as a whole
because the coordinator moved or could not be reached goes again after the backoff until
request_timeout_ms (``SentAcks.settle``), as the admin's one-off calls do (``call_coordinator``); ranges
refused INVALID_RECORD_STATE (what a new coordinator answers for records the member held: they are
available again there), an unknown member and a non-empty group are final refusals."""

from __future__ import annotations

import grpc
import pytest
from logstore.client.groups.coordinator import call_coordinator
from logstore.client.share.holdings import Holdings, SentAcks
from logstore.client.shared.backoff import Backoff
from logstore.client.shared.errors import (
    ERROR_CODE_KEY,
    BrokerUnavailableError,
    GroupError,
    InvalidRecordStateError,
    NonEmptyGroupError,
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


class Refused(grpc.RpcError):
    """A call the broker refused with ``code`` in its trailer (as the broker's gRPC errors do)."""

    def __init__(self, code: int) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.FAILED_PRECONDITION

    def details(self) -> str:
        return common_pb2.ErrorCode.Name(self._code)

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:  # type: ignore[override]
        return ((ERROR_CODE_KEY, str(self._code)),)


class Answers:
    """A stub whose DeleteShareGroup raises each of ``failures`` in turn, then answers."""

    def __init__(self, *failures: int) -> None:
        self.failures = list(failures)
        self.calls = 0

    def DeleteShareGroup(self, request: object, timeout: float) -> str:
        self.calls += 1
        if self.failures:
            raise Refused(self.failures.pop(0))
        return "deleted"


def test_a_one_off_call_goes_again_while_the_coordinator_moves_but_not_for_other_refusals() -> None:
    moving = Answers(common_pb2.ERROR_CODE_NOT_COORDINATOR, common_pb2.ERROR_CODE_NOT_AVAILABLE)
    fast = Backoff(1, 1, jitter=0)
    assert (
        call_coordinator(moving, "DeleteShareGroup", None, "deleting", timeout_s=5, backoff=fast) == "deleted"
    )
    assert moving.calls == 3
    busy = Answers(common_pb2.ERROR_CODE_NON_EMPTY_GROUP)  # retriable, but not by asking again at once
    with pytest.raises(NonEmptyGroupError):
        call_coordinator(busy, "DeleteShareGroup", None, "deleting", timeout_s=5, backoff=fast)
    assert busy.calls == 1
    away = Answers(*[common_pb2.ERROR_CODE_NOT_COORDINATOR] * 1000)
    with pytest.raises(NotCoordinatorError):
        call_coordinator(away, "DeleteShareGroup", None, "deleting", timeout_s=0.05, backoff=fast)
