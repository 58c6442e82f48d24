"""The leader's ISR and high-watermark math: lag, shrink, expand, the maximal ISR, acks=all."""

from __future__ import annotations

from logstore.broker.cluster.isr import AcksAll, IsrTracker

LAG = 10_000


def tracker(**overrides: object) -> IsrTracker:
    fields: dict[str, object] = {
        "leader": 1, "replicas": (1, 2, 3), "isr": (1, 2, 3), "leader_end_offset": 0, "high_watermark": 0,
        "epoch_start_offset": 0, "now_ms": 0, "min_insync_replicas": 2, "replica_lag_time_max_ms": LAG,
    }  # fmt: skip
    fields.update(overrides)
    return IsrTracker(**fields)  # type: ignore[arg-type]


def test_the_high_watermark_is_the_smallest_end_offset_in_the_isr() -> None:
    isr = tracker()
    assert isr.on_leader_append(10) == 0
    assert isr.on_follower_fetch(2, 10, 100) == 0  # 3 has nothing yet
    assert isr.on_follower_fetch(3, 7, 100) == 7
    assert isr.on_follower_fetch(3, 10, 200) == 10


def test_the_high_watermark_never_moves_back() -> None:
    isr = tracker(high_watermark=5, leader_end_offset=5)
    assert isr.on_follower_fetch(2, 3, 10) == 5


def test_a_follower_lagging_longer_than_the_lag_time_is_out_of_sync() -> None:
    isr = tracker()
    isr.on_leader_append(10)
    isr.on_follower_fetch(2, 10, 1_000)
    isr.on_follower_fetch(3, 4, 1_000)  # behind since the start
    assert isr.out_of_sync(LAG) == frozenset()  # exactly the lag time: still in
    assert isr.out_of_sync(LAG + 1) == {3}
    assert isr.proposal(LAG + 1) == {1, 2}


def test_a_follower_that_reached_the_previous_end_counts_as_caught_up_then() -> None:
    isr = tracker(replicas=(1, 3), isr=(1, 3))
    isr.on_leader_append(10)
    isr.on_follower_fetch(3, 4, 5_000)  # leader's end was 10 at this fetch
    isr.on_leader_append(20)
    isr.on_follower_fetch(3, 10, 14_000)  # reached 10: it was caught up at 5_000
    assert isr.out_of_sync(5_000 + LAG) == frozenset()
    assert isr.out_of_sync(5_000 + LAG + 1) == {3}


def test_a_follower_at_the_leaders_end_is_never_out_of_sync() -> None:
    isr = tracker(replicas=(1, 2), isr=(1, 2))
    isr.on_follower_fetch(2, 0, 1)
    assert isr.out_of_sync(10 * LAG) == frozenset()  # nothing written: nobody lags, however long ago


def test_a_shrink_holds_only_when_committed_and_the_high_watermark_waits_for_it() -> None:
    isr = tracker()
    isr.on_leader_append(10)
    isr.on_follower_fetch(2, 10, 1)
    assert isr.high_watermark == 0
    assert isr.proposal(LAG + 1) == {1, 2}
    assert isr.proposal(LAG + 2) is None  # one change in flight at a time
    assert isr.on_follower_fetch(2, 10, LAG + 2) == 0  # 3 still counts until the controller commits
    assert isr.on_isr_committed({1, 2}) == 10


def test_a_follower_rejoins_once_it_reaches_the_high_watermark_and_counts_at_once() -> None:
    isr = tracker(isr=(1, 2), leader_end_offset=20, high_watermark=20)
    isr.on_leader_append(30)
    isr.on_follower_fetch(3, 19, 1)
    assert isr.caught_up() == frozenset()
    isr.on_follower_fetch(3, 20, 2)
    assert isr.caught_up() == {3}
    assert isr.proposal(3) == {1, 2, 3}
    isr.on_follower_fetch(2, 30, 4)
    assert isr.high_watermark == 20  # the proposed member already counts (maximal ISR)
    isr.on_follower_fetch(3, 30, 5)
    assert isr.high_watermark == 30


def test_a_follower_must_also_reach_the_start_of_the_current_epoch() -> None:
    isr = tracker(isr=(1, 2), leader_end_offset=20, high_watermark=10, epoch_start_offset=15)
    isr.on_follower_fetch(3, 12, 1)
    assert isr.caught_up() == frozenset()
    isr.on_follower_fetch(3, 15, 2)
    assert isr.caught_up() == {3}


def test_a_refused_proposal_can_be_made_again() -> None:
    isr = tracker()
    isr.on_leader_append(1)
    assert isr.proposal(LAG + 1) == {1}
    isr.on_isr_refused()
    assert isr.proposal(LAG + 1) == {1}


def test_acks_all_is_refused_below_min_insync_and_completes_at_the_high_watermark() -> None:
    isr = tracker(isr=(1,), replicas=(1, 2, 3))
    assert isr.check_acks_all() is AcksAll.NOT_ENOUGH_REPLICAS
    isr.on_isr_committed({1, 2})
    assert isr.check_acks_all() is AcksAll.WAIT
    isr.on_leader_append(5)
    assert isr.acks_all(5) is AcksAll.WAIT
    isr.on_follower_fetch(2, 5, 1)
    assert isr.acks_all(5) is AcksAll.DONE


def test_acks_all_reports_an_isr_that_shrank_below_the_minimum_while_waiting() -> None:
    isr = tracker(isr=(1, 2), replicas=(1, 2, 3))
    isr.on_leader_append(5)
    isr.on_isr_committed({1})  # follower 2 dropped out; an ISR of one moves the high watermark alone
    assert isr.acks_all(5) is AcksAll.NOT_ENOUGH_REPLICAS_AFTER_APPEND


def test_a_follower_the_controller_removed_is_not_proposed_back_until_it_fetches_again() -> None:
    isr = tracker(leader_end_offset=5, high_watermark=0)
    isr.on_follower_fetch(2, 5, 1)
    isr.on_follower_fetch(3, 5, 1)  # then broker 3 dies; its lease expires
    assert isr.on_isr_committed({1, 2}) == 5  # the controller dropped it
    assert isr.caught_up() == frozenset()  # its last position is old news
    assert isr.proposal(2) is None
    isr.on_follower_fetch(3, 5, 3)  # it came back
    assert isr.proposal(4) == {1, 2, 3}
