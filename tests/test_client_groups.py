"""Consumer groups through the client against a real broker: rebalances with callbacks, fan-out, resuming
from committed offsets, fencing, admin calls. Waiting is bounded polling on a condition, never a sleep."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from logstore.client import (
    Admin,
    CommitFailedError,
    Consumer,
    ConsumerRebalanceListener,
    Producer,
    TopicPartition,
)
from logstore.client.shared.errors import (
    GroupIdNotFoundError,
    InvalidRegularExpressionError,
    NonEmptyGroupError,
)

SESSION_TIMEOUT_MS = 1500
HEARTBEAT_INTERVAL_MS = 50
LIMIT_S = 20.0


@pytest.fixture
def address(start_broker) -> str:
    broker = start_broker(
        group_session_timeout_ms=SESSION_TIMEOUT_MS, group_heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS
    )
    return broker.address


def produce(address: str, topic: str, count: int, start: int = 0) -> None:
    with Producer(address, linger_ms=0) as producer:
        for i in range(start, start + count):
            producer.send(topic, b"%d" % i, key=b"k%d" % i)
        producer.flush()


def poll_until(consumers: list[Consumer], done: Callable[[], bool], sink: list[list] | None = None) -> None:
    """Poll every consumer, round after round, until ``done()``; records go to ``sink[i]``."""
    deadline = time.monotonic() + LIMIT_S
    while not done():
        assert time.monotonic() < deadline, "the condition did not come true in time"
        for i, consumer in enumerate(consumers):
            for records in consumer.poll(timeout_ms=20).values():
                if sink is not None:
                    sink[i].extend(records)


class Recorder(ConsumerRebalanceListener):
    def __init__(self) -> None:
        self.events: list[tuple[str, frozenset[TopicPartition]]] = []

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.events.append(("revoked", frozenset(revoked)))

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.events.append(("assigned", frozenset(assigned)))

    def on_partitions_lost(self, lost: set[TopicPartition]) -> None:
        self.events.append(("lost", frozenset(lost)))


def group_consumer(address: str, **settings: object) -> Consumer:
    settings.setdefault("auto_offset_reset", "earliest")
    settings.setdefault("group_id", "g")
    return Consumer(bootstrap=address, **settings)  # type: ignore[arg-type]


def tps(topic: str, *numbers: int) -> frozenset[TopicPartition]:
    return frozenset(TopicPartition(topic, n) for n in numbers)


def test_a_second_member_takes_half_with_revoke_then_assign_and_no_record_twice(address: str) -> None:
    with Admin(address) as admin:
        admin.create_topic("orders", 4)
    produce(address, "orders", 200)
    first_listener, second_listener = Recorder(), Recorder()
    got: list[list] = [[], []]
    first = group_consumer(address)
    first.subscribe(["orders"], listener=first_listener)
    second = group_consumer(address)
    try:
        poll_until([first], lambda: len(got[0]) >= 100, got)  # part-way through, positions not committed yet
        second.subscribe(["orders"], listener=second_listener)
        produce(address, "orders", 200, start=200)

        def shared_and_drained() -> bool:
            a, b = first.assignment(), second.assignment()
            return len(a) == 2 and len(b) == 2 and len(got[0]) + len(got[1]) >= 400

        poll_until([first, second], shared_and_drained, got)
        assert first_listener.events[0] == ("assigned", tps("orders", 0, 1, 2, 3))
        revoked = [e for e in first_listener.events if e[0] == "revoked"]
        assert len(revoked) == 1 and revoked[0][1] == second.assignment()
        assert second_listener.events == [("assigned", second.assignment())]
        seen = [(r.partition, r.offset) for r in got[0] + got[1]]
        assert len(seen) == len(set(seen)) == 400, "every record exactly once across the two members"
    finally:
        first.close()
        second.close()


def test_two_groups_each_see_every_record(address: str) -> None:
    with Admin(address) as admin:
        admin.create_topic("events", 3)
    produce(address, "events", 90)
    got: list[list] = [[], []]
    billing = group_consumer(address, group_id="billing")
    audit = group_consumer(address, group_id="audit")
    billing.subscribe(["events"])
    audit.subscribe(["events"])
    try:
        poll_until([billing, audit], lambda: len(got[0]) >= 90 and len(got[1]) >= 90, got)
        for records in got:
            assert sorted(int(r.value) for r in records) == list(range(90))
    finally:
        billing.close()
        audit.close()


def test_committed_offsets_resume_after_a_restart(address: str) -> None:
    with Admin(address) as admin:
        admin.create_topic("jobs", 2)
    produce(address, "jobs", 50)
    got: list[list] = [[]]
    consumer = group_consumer(address, enable_auto_commit=False)
    consumer.subscribe(["jobs"])
    poll_until([consumer], lambda: len(got[0]) >= 50, got)
    consumer.commit()
    assert {consumer.committed(tp) for tp in tps("jobs", 0, 1)} == {
        consumer.position(tp) for tp in tps("jobs", 0, 1)
    }
    consumer.close()
    produce(address, "jobs", 20, start=50)
    again: list[list] = [[]]
    restarted = group_consumer(address)
    restarted.subscribe(["jobs"])
    try:
        poll_until([restarted], lambda: len(again[0]) >= 20, again)
        assert sorted(int(r.value) for r in again[0]) == list(range(50, 70)), "only the new records"
    finally:
        restarted.close()


def test_auto_commit_on_close_and_commit_async(address: str) -> None:
    with Admin(address) as admin:
        admin.create_topic("logs", 1)
    produce(address, "logs", 10)
    tp = TopicPartition("logs", 0)
    got: list[list] = [[]]
    with group_consumer(address, max_poll_records=4) as consumer:
        consumer.subscribe(["logs"])
        poll_until([consumer], lambda: len(got[0]) >= 4, got)
        outcome: list = []
        future = consumer.commit_async(
            {tp: 2}, callback=lambda offsets, error: outcome.append((offsets, error))
        )
        assert future.result(timeout=10) == {tp: 2}
        assert outcome == [({tp: 2}, None)]
        assert consumer.committed(tp) == 2
        handed_out = len(got[0])
    with Consumer(bootstrap=address, group_id="g") as reader:
        assert reader.committed(tp) == handed_out, "close() commits the position of records handed out"


def test_a_fenced_member_cannot_commit_and_loses_its_partitions(address: str) -> None:
    with Admin(address) as admin:
        admin.create_topic("payments", 2)
    produce(address, "payments", 10)
    listener = Recorder()
    zombie = group_consumer(address, enable_auto_commit=False)
    zombie.subscribe(["payments"], listener=listener)
    got: list[list] = [[]]
    poll_until([zombie], lambda: len(got[0]) >= 10, got)
    # The zombie's heartbeats stop (a long GC pause, a frozen VM): stop its heartbeat thread the hard way.
    group = zombie._group
    assert group is not None and group._thread is not None
    with group._lock:
        group._stopping = True
        group._wake.notify()
    group._thread.join(5)
    taker = group_consumer(address)
    taker.subscribe(["payments"])
    try:
        poll_until([taker], lambda: len(taker.assignment()) == 2)
        with pytest.raises(CommitFailedError, match="reassigned"):
            zombie.commit()
        assert taker.committed(TopicPartition("payments", 0)) is None, "the zombie's commit stored nothing"
    finally:
        taker.close()
        zombie.close()


def test_an_invalid_pattern_is_fatal_and_raised_by_poll(address: str) -> None:
    with group_consumer(address) as consumer:
        consumer.subscribe(pattern="orders-(")
        deadline = time.monotonic() + LIMIT_S
        with pytest.raises(InvalidRegularExpressionError):
            while time.monotonic() < deadline:
                consumer.poll(timeout_ms=50)


def test_a_pattern_subscription_follows_matching_topics(address: str) -> None:
    with Admin(address) as admin:
        admin.create_topic("metrics-cpu", 1)
        admin.create_topic("other", 1)
    with group_consumer(address) as consumer:
        consumer.subscribe(pattern="metrics-.*")
        poll_until([consumer], lambda: consumer.assignment() == tps("metrics-cpu", 0))
        with Admin(address) as admin:
            admin.create_topic("metrics-mem", 1)
        poll_until([consumer], lambda: consumer.assignment() == tps("metrics-cpu", 0) | tps("metrics-mem", 0))


def test_assign_mode_keeps_working_and_commits_from_outside(address: str) -> None:
    with Admin(address) as admin:
        admin.create_topic("manual", 1)
    produce(address, "manual", 5)
    tp = TopicPartition("manual", 0)
    with group_consumer(address, group_id="tools") as consumer:
        consumer.assign([tp])
        got: list[list] = [[]]
        poll_until([consumer], lambda: len(got[0]) >= 5, got)
        consumer.commit()
        assert consumer.committed(tp) == 5
        assert consumer.lag(tp) == 0


def test_admin_describes_lists_resets_and_deletes_groups(address: str) -> None:
    with Admin(address) as admin:
        admin.create_topic("clicks", 2)
        produce(address, "clicks", 40)
        with group_consumer(address, group_id="reporting", enable_auto_commit=False) as consumer:
            consumer.subscribe(["clicks"])
            poll_until([consumer], lambda: len(consumer.assignment()) == 2)
            consumer.commit({TopicPartition("clicks", 0): 1, TopicPartition("clicks", 1): 2})
            description = admin.describe_group("reporting")
            assert description.state in ("Stable", "Reconciling") and len(description.members) == 1
            assert description.members[0].assignment == tps("clicks", 0, 1)
            with pytest.raises(NonEmptyGroupError):
                admin.delete_group("reporting")
        [listing] = [g for g in admin.list_groups() if g.group_id == "reporting"]
        assert (listing.state, listing.member_count) == ("Empty", 0)
        offsets = {(o.partition): o for o in admin.describe_group("reporting").offsets}
        end = offsets[0].log_end_offset
        assert offsets[0].committed_offset == 1 and offsets[0].lag == end - 1
        preview = admin.reset_offsets("reporting", ["clicks"], to="earliest", dry_run=True)
        assert [(r.partition, r.previous_offset, r.new_offset) for r in preview] == [(0, 1, 0), (1, 2, 0)]
        assert admin.describe_group("reporting").offsets[0].committed_offset == 1, "a dry run changes nothing"
        moved = admin.reset_offsets("reporting", [TopicPartition("clicks", 1)], shift=-1)
        assert [(r.partition, r.new_offset) for r in moved] == [(1, 1)]
        with pytest.raises(ValueError, match="exactly one"):
            admin.reset_offsets("reporting", to="latest", shift=1)
        admin.delete_group("reporting")
        with pytest.raises(GroupIdNotFoundError):
            admin.describe_group("reporting")


def test_close_from_another_thread_ends_a_waiting_iteration(address: str) -> None:
    with Admin(address) as admin:
        admin.create_topic("quiet", 1)
    consumer = group_consumer(address)
    consumer.subscribe(["quiet"])
    poll_until([consumer], lambda: len(consumer.assignment()) == 1)
    finished = threading.Event()

    def iterate() -> None:
        for _ in consumer:
            pass
        finished.set()

    thread = threading.Thread(target=iterate)
    thread.start()
    consumer.close()
    thread.join(LIMIT_S)
    assert finished.is_set()
