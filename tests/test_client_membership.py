"""The pure membership core: driven with answers and a made-up clock (no sockets, no sleeps)."""

from __future__ import annotations

import pytest
from logstore.client.groups.membership import (
    AnswerOutcome,
    HeartbeatAnswer,
    HeartbeatPlan,
    Membership,
    Reconciliation,
    Subscription,
)
from logstore.client.shared.backoff import Backoff
from logstore.client.shared.errors import FencedInstanceIdError, InvalidRegularExpressionError
from logstore.client.shared.types import TopicPartition
from logstore.wire.logstore.v1 import common_pb2 as common

T0, T1, T2 = (TopicPartition("orders", p) for p in range(3))


def member(**fields: object) -> Membership:
    m = Membership("g", Backoff(100, 1000, jitter=0), **fields)  # type: ignore[arg-type]
    m.subscribe(Subscription(("orders",)), now=0.0)
    return m


def answer(
    *assigned: TopicPartition, epoch: int = 1, code: int = 0, interval_ms: int = 500
) -> HeartbeatAnswer:
    return HeartbeatAnswer(code, "why" if code else "", "m1", epoch, interval_ms, 3000, frozenset(assigned))


def exchange(m: Membership, now: float, response: HeartbeatAnswer) -> tuple[HeartbeatPlan, AnswerOutcome]:
    plan = m.plan(now)
    assert plan is not None, "a heartbeat should be due"
    return plan, m.on_answer(response, plan, now)


def next_step(m: Membership) -> Reconciliation:
    """The reconciliation step the last answer made due."""
    step = m.take_reconciliation()
    assert step is not None, "a reconciliation step should be due"
    return step


def test_join_sends_the_subscription_and_owns_nothing_until_reconciled() -> None:
    m = member(instance_id="host-1", server_assignor="range")
    plan, _ = exchange(m, 0.0, answer(T0, T1))
    assert (plan.member_id, plan.member_epoch, plan.owned) == ("", 0, None)
    assert plan.subscription == Subscription(("orders",))
    assert (plan.instance_id, plan.server_assignor) == ("host-1", "range")
    assert (m.member_id, m.member_epoch, m.heartbeat_interval_s, m.session_timeout_s) == ("m1", 1, 0.5, 3.0)
    step = m.take_reconciliation()
    assert step is not None and step.assign == {T0, T1} and not step.revoke
    assert m.take_reconciliation() is None, "one step at a time"
    m.reconciled(step, now=0.1)
    assert m.owned == {T0, T1} and not m.reconciliation_pending


def test_heartbeats_keep_the_broker_pace_and_report_what_is_owned() -> None:
    m = member()
    exchange(m, 0.0, answer(T0))
    m.reconciled(next_step(m), now=0.0)
    assert m.plan(0.4) is None, "not due before the interval"
    assert m.next_heartbeat_in(0.4) == pytest.approx(0.1)
    plan = m.plan(0.5)
    assert plan is not None and plan.member_id == "m1" and plan.member_epoch == 1 and plan.owned == {T0}
    assert plan.subscription is None, "the subscription is sent only on a join or a change"
    assert m.plan(0.6) is None, "one heartbeat in flight at a time"


def test_revoked_partitions_are_reported_released_at_once() -> None:
    m = member()
    exchange(m, 0.0, answer(T0, T1))
    m.reconciled(next_step(m), now=0.0)
    exchange(m, 0.5, answer(T1, epoch=2))
    step = m.take_reconciliation()
    assert step is not None and step.revoke == {T0} and not step.assign
    assert m.plan(0.6) is None, "the next heartbeat waits for the release"
    m.reconciled(step, now=0.6)
    plan = m.plan(0.6)
    assert plan is not None and plan.owned == {T1}, "released partitions are reported at once"


def test_fencing_loses_partitions_without_reconciliation_and_rejoins() -> None:
    m = member()
    exchange(m, 0.0, answer(T0, T1))
    m.reconciled(next_step(m), now=0.0)
    exchange(m, 0.5, answer(T0, T1, T2, epoch=2))
    stale = m.take_reconciliation()
    assert stale is not None
    _, outcome = exchange(m, 0.6 + 0.5, answer(epoch=0, code=common.ERROR_CODE_FENCED_MEMBER_EPOCH))
    assert outcome.lost == {T0, T1} and outcome.fatal is None
    assert m.owned == frozenset() and m.member_epoch == 0
    assert not m.is_current(stale)
    m.reconciled(stale, now=1.2)
    assert m.owned == frozenset(), "a step from before the loss changes nothing"
    plan = m.plan(1.2)
    assert (
        plan is not None and plan.member_epoch == 0 and plan.owned is None and plan.subscription is not None
    )
    assert plan.member_id == "m1", "a rejoin keeps the member id"


def test_unknown_member_also_loses_partitions() -> None:
    m = member()
    exchange(m, 0.0, answer(T0))
    m.reconciled(next_step(m), now=0.0)
    _, outcome = exchange(m, 0.5, answer(code=common.ERROR_CODE_UNKNOWN_MEMBER_ID, epoch=0))
    assert outcome.lost == {T0} and m.member_epoch == 0


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (common.ERROR_CODE_FENCED_INSTANCE_ID, FencedInstanceIdError),
        (common.ERROR_CODE_INVALID_REGULAR_EXPRESSION, InvalidRegularExpressionError),
    ],
)
def test_fatal_errors_stop_the_membership(code: int, error: type) -> None:
    m = member()
    exchange(m, 0.0, answer(T0))
    m.reconciled(next_step(m), now=0.0)
    _, outcome = exchange(m, 0.5, answer(code=code, epoch=0))
    assert isinstance(outcome.fatal, error) and "why" in str(outcome.fatal)
    assert outcome.lost == {T0}
    assert m.plan(100.0) is None and not m.active and m.take_reconciliation() is None
    assert m.leave_plan() is None, "a fatally failed member does not try to leave"


def test_failed_calls_back_off_exponentially_then_recover() -> None:
    m = member()
    m.plan(0.0)
    m.on_failure(0.0, retriable=True)
    assert m.plan(0.05) is None and m.plan(0.1) is not None
    m.on_failure(0.1, retriable=True)
    assert m.plan(0.25) is None and m.plan(0.31) is not None
    m.on_answer(answer(T0), HeartbeatPlan("", 0, Subscription(("orders",)), None, "", "", 0), 0.31)
    assert m.member_epoch == 1


def test_an_unexpected_error_code_is_retried_not_fatal() -> None:
    m = member()
    exchange(m, 0.0, answer(code=common.ERROR_CODE_UNKNOWN, epoch=0))
    assert m.active and m.fatal is None and m.plan(0.05) is None and m.plan(0.1) is not None


def test_a_new_subscription_is_sent_at_once() -> None:
    m = member()
    exchange(m, 0.0, answer())
    m.subscribe(Subscription((), "orders-.*"), now=0.1)
    plan = m.plan(0.1)
    assert plan is not None and plan.subscription == Subscription((), "orders-.*") and plan.member_epoch == 1


def test_leave_uses_epoch_minus_one_or_minus_two_for_static_members() -> None:
    dynamic = member()
    assert dynamic.leave_plan() is None, "never joined: nothing to leave"
    dynamic = member()
    exchange(dynamic, 0.0, answer(T0))
    leave = dynamic.leave_plan()
    assert leave is not None and leave.member_epoch == -1 and leave.member_id == "m1"
    assert dynamic.plan(10.0) is None and dynamic.leave_plan() is None
    static = member(instance_id="host-1")
    exchange(static, 0.0, answer(T0))
    leave = static.leave_plan()
    assert leave is not None and leave.member_epoch == -2 and leave.instance_id == "host-1"


def test_an_abandoned_step_is_handed_out_again() -> None:
    m = member()
    exchange(m, 0.0, answer(T0))
    step = next_step(m)
    m.abandon(step)
    again = m.take_reconciliation()
    assert again is not None and again.assign == {T0}


def test_a_subscription_needs_topics_or_a_pattern() -> None:
    with pytest.raises(ValueError, match="topic names or a pattern"):
        member().subscribe(Subscription(), now=0.0)
