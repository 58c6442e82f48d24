"""The share consumer against a ShareService double (tests/share_fake.py): what it sends and when.

The double checks what a broker would (an acknowledged offset must be held by the member) and logs every
acknowledgement range, so these tests see the coalescing, the ShareAcknowledge beside each fetch and close()'s hand-back on
the wire. The same promises against the real broker are in test_client_share_integration.py."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from logstore.client import AcknowledgeType, ShareConsumer
from logstore.client.shared.errors import BrokerUnavailableError, IllegalStateError
from logstore.wire.logstore.v1 import share_pb2

from tests.share_fake import FakeShareService, serve
from tests.waiting import wait_until


@pytest.fixture
def fake() -> Iterator[tuple[FakeShareService, str]]:
    service = FakeShareService(partitions=2)
    server, address = serve(service)
    try:
        yield service, address
    finally:
        server.stop(0)


def poll_until(consumer: ShareConsumer, count: int) -> list:
    got: list = []

    def more() -> bool:
        got.extend(consumer.poll(timeout_ms=100))
        return len(got) >= count

    wait_until(more, f"{count} records")
    return got


def test_implicit_mode_accepts_each_poll_with_the_next_fetch_in_ranges(
    fake: tuple[FakeShareService, str],
) -> None:
    service, address = fake
    service.produce(0, [b"a%d" % i for i in range(50)])
    with ShareConsumer("tasks", group_id="g", bootstrap=address, max_poll_records=20) as consumer:
        got = poll_until(consumer, 50)
        assert [r.value for r in got] == [b"a%d" % i for i in range(50)]
        assert {r.delivery_count for r in got} == {1}
        wait_until(lambda: service.done() == set(range(40)), "each poll accepted the one before")
        assert service.held() == set(range(40, 50)), "the last poll's records wait for the next poll"
        consumer.poll(timeout_ms=100)
        wait_until(lambda: service.done() == set(range(50)), "all 50 accepted")
    ranges = [(a.first, a.last, a.type) for a in service.acks]
    assert ranges == [(0, 19, 1), (20, 39, 1), (40, 49, 1)], "one range per poll, sent with a fetch or close"
    assert {a.rpc for a in service.acks} == {"ack"}, (
        "on their own ShareAcknowledge: riding on a fetch would hold its records until their fsync"
    )


def test_explicit_mode_coalesces_outcomes_and_refuses_to_poll_with_records_undecided(
    fake: tuple[FakeShareService, str],
) -> None:
    service, address = fake
    service.produce(0, [b"x%d" % i for i in range(10)])
    with ShareConsumer(
        "tasks", group_id="g", bootstrap=address, acknowledgement_mode="explicit", max_poll_records=10
    ) as consumer:
        got = poll_until(consumer, 10)
        for record in got[:9]:
            kind = AcknowledgeType.REJECT if record.offset in (4, 5) else AcknowledgeType.ACCEPT
            consumer.acknowledge(record, kind)
        with pytest.raises(IllegalStateError, match="1 not acknowledged"):
            consumer.poll(timeout_ms=0)
        consumer.acknowledge(got[9], AcknowledgeType.RELEASE, delay_ms=250)
        assert consumer.commit_sync() == {}
        with pytest.raises(IllegalStateError, match="acknowledged"):
            consumer.acknowledge(got[0])
    ranges = [(a.first, a.last, a.type, a.delay_ms) for a in service.acks if a.rpc == "ack"]
    assert ranges[:4] == [(0, 3, 1, 0), (4, 5, 3, 0), (6, 8, 1, 0), (9, 9, 2, 250)]
    assert service.done() == set(range(9))


def test_records_of_other_members_in_a_batch_are_not_handed_out(fake: tuple[FakeShareService, str]) -> None:
    service, address = fake
    service.produce(0, [b"b%d" % i for i in range(10)])
    with service.changed:  # another member holds 3..5 of the batch
        for offset in (3, 4, 5):
            service.partitions[0].state[offset] = "acquired:someone-else"
            service.partitions[0].count[offset] = 1
    with ShareConsumer("tasks", group_id="g", bootstrap=address) as consumer:
        got = poll_until(consumer, 7)
        assert [r.offset for r in got] == [0, 1, 2, 6, 7, 8, 9]
    assert service.done() == {0, 1, 2, 6, 7, 8, 9}


def test_compaction_gaps_inside_acquired_ranges_are_accepted(fake: tuple[FakeShareService, str]) -> None:
    service, address = fake
    service.produce(1, [b"c0", b"c1"])
    service.produce(1, [b"c4", b"c5"], skip=2)  # offsets 2 and 3 have no record
    with ShareConsumer("tasks", group_id="g", bootstrap=address, acknowledgement_mode="explicit") as consumer:
        got = poll_until(consumer, 4)
        assert [r.offset for r in got] == [0, 1, 4, 5]
        for record in got:
            consumer.acknowledge(record)
        consumer.commit_sync()
    assert [(a.first, a.last, a.type) for a in service.acks if a.partition == 1] == [(0, 5, 1)]
    assert service.done(1) == set(range(6))


def test_close_gives_back_held_and_prefetched_records_without_counting_an_attempt(
    fake: tuple[FakeShareService, str],
) -> None:
    service, address = fake
    service.produce(0, [b"d%d" % i for i in range(30)])
    consumer = ShareConsumer(
        "tasks", group_id="g", bootstrap=address, acknowledgement_mode="explicit", max_poll_records=10
    )
    got = poll_until(consumer, 10)
    consumer.acknowledge(got[0])
    wait_until(lambda: len(service.held()) == 20, "the next 10 prefetched while the application works")
    consumer.close()
    gave_back = [(a.first, a.last) for a in service.acks if a.type == 2 and a.not_an_attempt]
    assert gave_back == [(1, 19)], "held and prefetched records, coalesced"
    assert service.done() == {0}
    assert service.held() == set()
    assert service.left, "left the group"
    assert all(service.partitions[0].count.get(o, 0) == 0 for o in range(1, 20)), "no attempt counted"


def test_a_refused_acknowledgement_reaches_the_commit_callback(fake: tuple[FakeShareService, str]) -> None:
    service, address = fake
    service.produce(0, [b"e0", b"e1"])
    heard: list = []
    with ShareConsumer("tasks", group_id="g", bootstrap=address, acknowledgement_mode="explicit") as consumer:
        got = poll_until(consumer, 2)
        with service.changed:  # the lock expired and someone else took offset 1
            service.partitions[0].state[1] = "acquired:other"
        consumer.acknowledge(got[0])
        consumer.acknowledge(got[1])
        consumer.commit_async(lambda offsets, error: heard.append((offsets, error)))
        consumer.commit_sync()
    assert len(heard) == 1
    offsets, error = heard[0]
    (tp,) = offsets
    assert offsets[tp] == {0, 1}
    assert type(error).__name__ == "InvalidRecordStateError"


def test_an_unreachable_broker_is_a_clear_error_not_a_hang() -> None:
    consumer = ShareConsumer("tasks", group_id="g", bootstrap="127.0.0.1:1", request_timeout_ms=300)
    try:
        with pytest.raises(BrokerUnavailableError, match="no answer from the broker"):
            wait_until(lambda: consumer.poll(timeout_ms=100) and False, "poll raises", timeout_s=10)
    finally:
        consumer.close()


def test_unknown_options_are_refused_with_the_close_match() -> None:
    with pytest.raises(TypeError, match="max_poll_records"):
        ShareConsumer("t", group_id="g", max_pol_records=5)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="acknowledgement_mode"):
        ShareConsumer("t", group_id="g", acknowledgement_mode="auto")


def test_commit_sync_waits_for_acknowledgements_sent_beside_the_fetch_in_flight(
    fake: tuple[FakeShareService, str],
) -> None:
    service, address = fake
    service.produce(0, [b"f%d" % i for i in range(30)])
    with ShareConsumer(
        "tasks", group_id="g", bootstrap=address, acknowledgement_mode="explicit", max_poll_records=10
    ) as consumer:
        for expected in (range(10), range(10, 20)):
            got = poll_until(consumer, 10)
            assert [r.offset for r in got] == list(expected)
            for record in got:
                consumer.acknowledge(record)
        # the second poll sent the first poll's acknowledgements just before the fetch it started
        assert consumer.commit_sync() == {}
        assert service.done() == set(range(20)), "both polls' acknowledgements answered"
        third = poll_until(consumer, 10)  # what that fetch acquired (it may answer after commit_sync)
        assert [r.offset for r in third] == list(range(20, 30))
        for record in third:
            consumer.acknowledge(record)
    assert service.done() == set(range(30))


def test_iteration_deserializes_and_every_fetch_says_priority(fake: tuple[FakeShareService, str]) -> None:
    service, address = fake
    service.produce(0, [b"g0", b"g1", b"g2"])
    with ShareConsumer(
        "tasks",
        group_id="g",
        bootstrap=address,
        priority=True,
        value_deserializer="str",
        consumer_timeout_ms=3000,
    ) as consumer:
        values = []
        for record in consumer:
            values.append(record.value)
            if len(values) == 3:
                break
    assert values == ["g0", "g1", "g2"]
    assert service.fetches and all(f.priority for f in service.fetches)
    assert service.done() == {0, 1, 2}, "close accepts the last records handed out (implicit mode)"


def test_share_acquire_mode_goes_on_every_fetch_and_is_checked(fake: tuple[FakeShareService, str]) -> None:
    service, address = fake
    with pytest.raises(ValueError, match="share_acquire_mode"):
        ShareConsumer("tasks", group_id="g", bootstrap=address, share_acquire_mode="strict")
    service.produce(0, [b"m0"])
    for mode, wire in (
        ("batch_optimized", share_pb2.SHARE_ACQUIRE_MODE_BATCH_OPTIMIZED),
        ("record_limit", share_pb2.SHARE_ACQUIRE_MODE_RECORD_LIMIT),
    ):
        service.fetches.clear()
        with ShareConsumer("tasks", group_id=mode, bootstrap=address, share_acquire_mode=mode) as consumer:
            consumer.poll(timeout_ms=100)
        assert service.fetches and {f.acquire_mode for f in service.fetches} == {wire}


def test_close_cancels_a_fetch_that_long_polls_instead_of_waiting_it_out(
    fake: tuple[FakeShareService, str],
) -> None:
    service, address = fake
    consumer = ShareConsumer(
        "tasks", group_id="g", bootstrap=address, fetch_max_wait_ms=20_000, request_timeout_ms=120_000
    )
    wait_until(lambda: not consumer.poll(timeout_ms=50) and len(service.fetches) > 0, "a fetch long-polls")
    closing = threading.Thread(target=consumer.close)
    closing.start()
    # waiting it out would take the fetch's 20 s; a cancelled fetch lets close() return at once
    wait_until(
        lambda: not closing.is_alive(), "close() returns without waiting for the long poll", timeout_s=10
    )
