"""The controller's leader and ISR decisions on broker loss and return, and on ISR change requests."""

from __future__ import annotations

import pytest
from logstore.broker.cluster.errors import StalePartitionStateError
from logstore.broker.cluster.leader_election import (
    alter_isr,
    initial_state,
    on_brokers_changed,
    preferred_leader,
    reassign,
)
from logstore.broker.cluster.metadata import NO_LEADER, PartitionState

STATE = PartitionState(leader=1, leader_epoch=4, isr=(1, 2, 3), replicas=(1, 2, 3), partition_epoch=9)


def test_a_new_partition_is_led_by_its_first_live_replica() -> None:
    assert initial_state((2, 3, 1), {1, 2, 3}) == PartitionState(2, 0, (2, 3, 1), (2, 3, 1), 0)
    assert initial_state((2, 3, 1), {3, 1}).leader == 3


def test_losing_the_leader_elects_the_next_in_sync_replica_and_bumps_the_epoch() -> None:
    after = on_brokers_changed(STATE, {2, 3})
    assert (after.leader, after.leader_epoch, after.isr, after.partition_epoch) == (2, 5, (2, 3), 10)


def test_an_out_of_sync_replica_is_never_elected_cleanly() -> None:
    state = PartitionState(1, 4, (1, 3), (1, 2, 3), 9)
    assert on_brokers_changed(state, {2, 3}).leader == 3


def test_losing_a_follower_shrinks_the_isr_and_keeps_the_leader_epoch() -> None:
    after = on_brokers_changed(STATE, {1, 3})
    assert (after.leader, after.leader_epoch, after.isr, after.partition_epoch) == (1, 4, (1, 3), 10)


def test_no_live_in_sync_replica_takes_the_partition_offline_keeping_its_isr() -> None:
    state = PartitionState(1, 4, (1,), (1, 2, 3), 9)
    after = on_brokers_changed(state, {2, 3})
    assert (after.leader, after.leader_epoch, after.isr) == (NO_LEADER, 5, (1,))
    assert on_brokers_changed(after, {2, 3}) is after  # nothing new: no write
    back = on_brokers_changed(after, {1, 2, 3})
    assert (back.leader, back.leader_epoch, back.isr) == (1, 6, (1,))


def test_unclean_election_when_asked_elects_a_live_out_of_sync_replica() -> None:
    state = PartitionState(1, 4, (1,), (1, 2, 3), 9)
    after = on_brokers_changed(state, {3, 2}, unclean=True)
    assert (after.leader, after.leader_epoch, after.isr) == (2, 5, (2,))


def test_nothing_changes_when_every_member_lives() -> None:
    assert on_brokers_changed(STATE, {1, 2, 3, 4}) is STATE


def test_the_preferred_replica_takes_leadership_back_once_in_sync() -> None:
    moved = PartitionState(2, 5, (2, 3), (1, 2, 3), 10)
    assert preferred_leader(moved, {1, 2, 3}) is moved  # 1 is alive but not in sync yet
    caught_up = PartitionState(2, 5, (2, 3, 1), (1, 2, 3), 11)
    assert preferred_leader(caught_up, {1, 2, 3}).leader == 1
    assert preferred_leader(caught_up, {1, 2, 3}).leader_epoch == 6


def test_an_isr_change_from_the_current_leader_is_accepted() -> None:
    after = alter_isr(STATE, leader=1, leader_epoch=4, partition_epoch=9, new_isr={3, 1}, live={1, 2, 3})
    assert (after.isr, after.partition_epoch, after.leader_epoch) == ((1, 3), 10, 4)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"leader": 2}, "leader is 1"),
        ({"leader_epoch": 3}, "leader is 1 at epoch 4"),
        ({"partition_epoch": 8}, "partition epoch"),
        ({"new_isr": {1, 4}}, "outside the replicas"),
        ({"new_isr": {2, 3}}, "leaves out the leader"),
        ({"live": {1, 3}}, "no live registration"),
    ],
)
def test_a_stale_or_impossible_isr_change_is_refused(fields: dict[str, object], message: str) -> None:
    request: dict[str, object] = {
        "leader": 1, "leader_epoch": 4, "partition_epoch": 9, "new_isr": {1, 2}, "live": {1, 2, 3},
    }  # fmt: skip
    request.update(fields)
    with pytest.raises(StalePartitionStateError, match=message):
        alter_isr(STATE, **request)  # type: ignore[arg-type]


# --- reassignment ------------------------------------------------------------------------------------------


def test_a_reassignment_adds_the_new_replicas_first_outside_the_isr() -> None:
    step = reassign(STATE, (2, 3, 4), {1, 2, 3, 4})
    assert (step.replicas, step.isr, step.leader, step.leader_epoch) == ((2, 3, 4, 1), (1, 2, 3), 1, 4)
    assert step.partition_epoch == STATE.partition_epoch + 1
    assert reassign(step, (2, 3, 4), {1, 2, 3, 4}) is step  # waiting for broker 4 to catch up


def test_once_the_new_replicas_are_in_sync_the_old_leader_hands_over() -> None:
    caught_up = PartitionState(1, 4, (1, 2, 3, 4), (2, 3, 4, 1), 11)
    done = reassign(caught_up, (2, 3, 4), {1, 2, 3, 4})
    assert (done.replicas, done.isr, done.leader, done.leader_epoch) == ((2, 3, 4), (2, 3, 4), 2, 5)
    assert reassign(done, (2, 3, 4), {1, 2, 3, 4}) is done


def test_a_leader_that_stays_a_replica_keeps_leading_and_its_epoch() -> None:
    caught_up = PartitionState(2, 4, (1, 2, 3, 4), (2, 3, 4, 1), 11)
    done = reassign(caught_up, (2, 3, 4), {1, 2, 3, 4})
    assert (done.replicas, done.isr, done.leader, done.leader_epoch) == ((2, 3, 4), (2, 3, 4), 2, 4)


def test_shrinking_the_replication_factor_needs_no_catch_up() -> None:
    done = reassign(STATE, (1, 2), {1, 2, 3})
    assert (done.replicas, done.isr, done.leader) == ((1, 2), (1, 2), 1)


def test_a_reassignment_waits_while_no_target_replica_is_alive() -> None:
    state = PartitionState(1, 4, (1, 2, 3), (2, 3, 1), 9)
    assert reassign(state, (2, 3), {1}) is state
