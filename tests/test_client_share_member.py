"""The share consumer's pure membership core (``ShareMember``) with an injected clock: join, pace,
rejoin, failures, fatal errors and leave, as both share consumers' drivers see it."""

from __future__ import annotations

import pytest
from logstore.client.share.membership import JOIN_EPOCH, LEAVE_EPOCH, ShareMember, SharePlan
from logstore.client.shared.backoff import Backoff
from logstore.client.shared.errors import BrokerUnavailableError, ClientError, GroupError
from logstore.wire.logstore.v1 import common_pb2, share_pb2


def member() -> ShareMember:
    return ShareMember("g", ("tasks",), Backoff(100, 1000, jitter=0), timeout_s=1.0)


def answer(
    epoch: int = 1, interval_ms: int = 500, code: common_pb2.ErrorCode = common_pb2.ERROR_CODE_NONE
) -> share_pb2.ShareHeartbeatResponse:
    return share_pb2.ShareHeartbeatResponse(
        member_id="m1", member_epoch=epoch, heartbeat_interval_ms=interval_ms, error_code=code
    )


class Unreachable(ClientError):
    retriable = True


def test_joins_with_its_topics_then_heartbeats_at_the_brokers_pace_without_them() -> None:
    m = member()
    assert m.due_in(0.0) == 0.0 and m.plan() == SharePlan("", JOIN_EPOCH, ("tasks",))
    assert m.on_answer(answer(epoch=1, interval_ms=500), now=10.0) is None
    assert m.joined and m.due_in(10.2) == pytest.approx(0.3)
    assert m.plan() == SharePlan("m1", 1, ())


def test_an_unknown_member_answer_rejoins_and_marks_what_it_held_lost() -> None:
    m = member()
    m.on_answer(answer(), now=0.0)
    note = m.on_answer(answer(code=common_pb2.ERROR_CODE_UNKNOWN_MEMBER_ID), now=1.0)
    assert note is not None and "rejoining" in note
    assert m.lost and not m.joined and m.plan() == SharePlan("", JOIN_EPOCH, ("tasks",))
    assert m.due_in(1.0) == pytest.approx(0.1), "after a backoff"


def test_failures_back_off_and_become_unreachable_after_the_request_timeout() -> None:
    m = member()
    error = Unreachable("down")
    assert m.on_failure(error, sent_at=0.0, now=0.0) is not None, "the first failure is logged"
    assert m.due_in(0.0) == pytest.approx(0.1) and m.unreachable is None
    assert m.on_failure(error, sent_at=0.5, now=0.5) is None
    assert m.due_in(0.5) == pytest.approx(0.2), "doubled"
    m.on_failure(error, sent_at=1.0, now=1.0)
    assert isinstance(m.unreachable, BrokerUnavailableError)
    assert m.on_answer(answer(), now=2.0) is not None and m.unreachable is None, "it answers again"


def test_a_fatal_answer_stops_the_member() -> None:
    m = member()
    m.on_answer(answer(code=common_pb2.ERROR_CODE_INCONSISTENT_GROUP_PROTOCOL), now=0.0)
    assert isinstance(m.fatal, GroupError) and m.due_in(0.0) is None


def test_leave_is_sent_only_by_a_member_that_joined_and_only_once() -> None:
    assert member().leave_plan() is None
    m = member()
    m.on_answer(answer(epoch=3), now=0.0)
    assert m.leave_plan() == SharePlan("m1", LEAVE_EPOCH, ())
    assert m.leave_plan() is None and m.due_in(0.0) is None


@pytest.mark.parametrize("code", [common_pb2.ERROR_CODE_NOT_COORDINATOR, common_pb2.ERROR_CODE_NOT_AVAILABLE])
def test_an_answer_from_a_broker_that_does_not_coordinate_the_group_is_retried(
    code: common_pb2.ErrorCode,
) -> None:
    m = member()
    m.on_answer(answer(epoch=2), now=0.0)
    note = m.on_answer(answer(code=code), now=1.0)
    assert note is not None and "retrying" in note, "logged once, as an unreachable broker"
    assert m.fatal is None and not m.lost, "the coordinator moved: the member is not lost for that"
    assert m.due_in(1.0) == pytest.approx(0.1) and m.plan() == SharePlan("m1", 2, ())
    m.on_answer(answer(code=common_pb2.ERROR_CODE_UNKNOWN_MEMBER_ID), now=2.0)
    assert m.lost and m.plan() == SharePlan("", JOIN_EPOCH, ("tasks",)), "the new coordinator: rejoin"
