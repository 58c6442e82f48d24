"""Share groups over real gRPC against a real broker: acquire, acknowledge, long-poll wake-ups, lock expiry,
the delivery limit and dead letters, retention, topic deletion, and bad input each with its own code.

Members are driven with the raw ShareService stub (`tests.share_members`). Waiting is on events (a
long-poll parked inside the broker, a result arriving), never a sleep that decides an outcome.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from logstore.broker.embedded import EmbeddedBroker
from logstore.broker.errors import ERROR_CODE_KEY
from logstore.wire.logstore.v1 import admin_pb2, group_pb2
from logstore.wire.logstore.v1 import common_pb2 as common
from logstore.wire.logstore.v1 import share_pb2 as pb

from logstore.records import Record, build_batch, iter_records
from tests.conftest import GroupMember, Stubs, group_stub
from tests.share_members import (
    ACCEPT,
    REJECT,
    RELEASE,
    RENEW,
    ShareMember,
    acks,
    alter_config,
    describe,
    owned,
    ranges_of,
    result_codes,
    share_stub,
)
from tests.waiting import broker_waiters, wait_until

GROUP = "workers"
RECORD_LIMIT = pb.SHARE_ACQUIRE_MODE_RECORD_LIMIT
LONG_POLL_MS = 120_000
WOKEN_WITHIN_S = 15.0
"""A long-poll that is not woken would answer only after LONG_POLL_MS (a last look finds the records
then): the call's deadline, far shorter, makes that a failure (DEADLINE_EXCEEDED) instead of a slow pass."""


def produce(stubs: Stubs, topic: str, values: list[bytes], partition: int = 0, **kw: Any) -> int:
    result = stubs.produce_one(topic, partition, build_batch(values, **kw))
    assert result.error_code == 0, result.error_message
    return int(result.base_offset)


@pytest.fixture
def share(broker: EmbeddedBroker, stubs: Stubs):
    """(stubs, ShareService stub) with topic "t" (1 partition) and group GROUP reading from the earliest."""
    stubs.create_topic("t")
    stub = share_stub(stubs.channel)
    alter_config(stub, GROUP, share_auto_offset_reset="earliest")
    return stubs, stub


def error_code(failed: pytest.ExceptionInfo[grpc.RpcError]) -> str:
    """The ErrorCode a failed call carried in its trailer (as a decimal string)."""
    metadata: Any = failed.value.trailing_metadata()  # (key, value) tuples; the stub calls them _Metadatum
    return str(dict(metadata)[ERROR_CODE_KEY])


class Background:
    """A call run on a thread (a long-poll), its result awaited by the test."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self.result: Any = None
        self._thread = threading.Thread(target=self._run, args=(call,), daemon=True)
        self._thread.start()

    def _run(self, call: Callable[[], Any]) -> None:
        self.result = call()

    def running(self) -> bool:
        return self._thread.is_alive()

    def wait(self, timeout_s: float) -> None:
        """Pace a loop that does something while the call runs (joins the thread for at most timeout_s)."""
        self._thread.join(timeout_s)

    def get(self, timeout_s: float = 30) -> Any:
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), "the call did not return"
        return self.result


def test_join_fetch_accept_round_trip(share) -> None:
    stubs, stub = share
    member = ShareMember(stub, GROUP, ["t"]).join()
    answer = member.heartbeat()
    assert [(a.topic, list(a.partitions)) for a in answer.assignment] == [("t", [0])]
    produce(stubs, "t", [b"a", b"b", b"c"])
    first = member.fetch(max_wait_ms=0)
    assert first.error_code == common.ERROR_CODE_NONE
    assert owned(first) == [("t", 0, 0, 1, b"a"), ("t", 0, 1, 1, b"b"), ("t", 0, 2, 1, b"c")]
    assert first.lock_duration_ms == 30_000
    produce(stubs, "t", [b"d"])
    second = member.fetch(acks("t", 0, (0, 2, ACCEPT)), max_wait_ms=0)
    assert result_codes(second.acknowledgement_results) == [("t", 0, 0, 2, common.ERROR_CODE_NONE)]
    assert owned(second) == [("t", 0, 3, 1, b"d")]
    done = member.acknowledge(acks("t", 0, (3, 3, ACCEPT)))
    assert done.error_code == 0 and result_codes(done.results) == [("t", 0, 3, 3, 0)]
    (partition,) = describe(stub, GROUP).partitions
    assert (partition.start_offset, partition.end_offset, partition.in_flight_records, partition.lag) == (
        4,
        4,
        0,
        0,
    )
    # nothing left: an answer without records, not an error
    assert member.fetch(max_wait_ms=0).partitions == []


def test_two_members_never_hold_the_same_record(share) -> None:
    stubs, stub = share
    alter_config(stub, GROUP, share_partition_max_record_locks="100")
    first, second = ShareMember(stub, GROUP, ["t"]).join(), ShareMember(stub, GROUP, ["t"]).join()
    produce(stubs, "t", [str(n).encode() for n in range(10)])
    a = first.fetch(max_wait_ms=0, max_records=4, acquire_mode=RECORD_LIMIT)
    b = second.fetch(max_wait_ms=0)
    offsets_a = {o for _, _, o, _, _ in owned(a)}
    offsets_b = {o for _, _, o, _, _ in owned(b)}
    assert offsets_a == {0, 1, 2, 3} and offsets_b == set(range(4, 10))
    # the batch holds the others' records too; only the acquired ranges are the member's
    assert [r.offset for r in iter_records(b.partitions[0].records)] == list(range(10))


def test_by_default_a_batch_cut_by_max_records_or_the_lock_limit_is_acquired_whole(share) -> None:
    stubs, stub = share
    alter_config(stub, GROUP, share_partition_max_record_locks="100")
    member = ShareMember(stub, GROUP, ["t"]).join()
    produce(stubs, "t", [b"%d" % n for n in range(10)])  # one batch
    produce(stubs, "t", [b"%d" % n for n in range(10, 250)])  # one batch of 240: past the 100 locks
    produce(stubs, "t", [b"late"])
    assert ranges_of(member.fetch(max_wait_ms=0, max_records=4)) == [("t", 0, 0, 9, 1)], "max_records"
    assert ranges_of(member.fetch(max_wait_ms=0)) == [("t", 0, 10, 249, 1)], "the lock limit"
    assert member.fetch(max_wait_ms=0).partitions == [], "the window is full: nothing more"


def test_an_unknown_acquire_mode_is_refused(share) -> None:
    _, stub = share
    member = ShareMember(stub, GROUP, ["t"]).join()
    with pytest.raises(grpc.RpcError) as raised:
        member.fetch(max_wait_ms=0, acquire_mode=7)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "acquire_mode 7 is unknown" in str(raised.value.details())


def test_a_long_poll_wakes_on_append(share, broker: EmbeddedBroker) -> None:
    stubs, stub = share
    member = ShareMember(stub, GROUP, ["t"]).join()
    member.fetch(max_wait_ms=0)  # the share-partition starts now (at the earliest offset, 0)
    waiting = Background(lambda: member.fetch(max_wait_ms=LONG_POLL_MS, timeout=WOKEN_WITHIN_S))
    wait_until(lambda: broker_waiters(broker) > 0, "the share fetch waits inside the broker")
    produce(stubs, "t", [b"late"])
    assert owned(waiting.get()) == [("t", 0, 0, 1, b"late")]


def test_a_long_poll_wakes_when_another_member_releases(share, broker: EmbeddedBroker) -> None:
    stubs, stub = share
    holder, waiter = ShareMember(stub, GROUP, ["t"]).join(), ShareMember(stub, GROUP, ["t"]).join()
    produce(stubs, "t", [b"x", b"y"])
    assert len(owned(holder.fetch(max_wait_ms=0))) == 2
    waiting = Background(lambda: waiter.fetch(max_wait_ms=LONG_POLL_MS, timeout=WOKEN_WITHIN_S))
    wait_until(lambda: broker_waiters(broker) > 0, "the second member waits for records")
    released = holder.acknowledge(acks("t", 0, (0, 1, RELEASE)))
    assert result_codes(released.results) == [("t", 0, 0, 1, 0)]
    assert owned(waiting.get()) == [("t", 0, 0, 2, b"x"), ("t", 0, 1, 2, b"y")]


def test_an_expired_lock_is_redelivered_to_another_member(share, broker: EmbeddedBroker) -> None:
    stubs, stub = share
    alter_config(stub, GROUP, share_record_lock_duration_ms="1000")
    slow, quick = ShareMember(stub, GROUP, ["t"]).join(), ShareMember(stub, GROUP, ["t"]).join()
    produce(stubs, "t", [b"task"])
    assert ranges_of(slow.fetch(max_wait_ms=0)) == [("t", 0, 0, 0, 1)]
    # the lock expires after 1 s: the timer wakes the waiting member, who gets the record again
    assert ranges_of(quick.fetch(max_wait_ms=LONG_POLL_MS, timeout=WOKEN_WITHIN_S)) == [("t", 0, 0, 0, 2)]
    late = slow.acknowledge(acks("t", 0, (0, 0, ACCEPT)))
    assert result_codes(late.results) == [("t", 0, 0, 0, common.ERROR_CODE_INVALID_RECORD_STATE)]
    assert result_codes(quick.acknowledge(acks("t", 0, (0, 0, ACCEPT))).results) == [("t", 0, 0, 0, 0)]


def test_renew_keeps_the_lock(share) -> None:
    stubs, stub = share
    member = ShareMember(stub, GROUP, ["t"]).join()
    produce(stubs, "t", [b"long job"])
    member.fetch(max_wait_ms=0)
    renewed = member.acknowledge(acks("t", 0, (0, 0, RENEW)))
    assert result_codes(renewed.results) == [("t", 0, 0, 0, 0)]
    assert result_codes(member.acknowledge(acks("t", 0, (0, 0, ACCEPT))).results) == [("t", 0, 0, 0, 0)]


def dead_letters(stubs: Stubs, topic: str = "dlq") -> list[Any]:
    result = stubs.fetch_one(topic, 0, 0)
    assert result.error_code == 0, result.error_message
    return list(iter_records(result.records))


def test_the_delivery_limit_archives_to_the_dead_letter_topic_with_headers(share) -> None:
    stubs, stub = share
    alter_config(
        stub,
        GROUP,
        share_delivery_count_limit="2",
        errors_deadletterqueue_topic_name="dlq",
    )
    member = ShareMember(stub, GROUP, ["t"]).join()
    poison = Record(0, int(time.time() * 1000), key=b"k1", value=b"poison", headers=[("trace", b"42")])
    result = stubs.produce_one("t", 0, build_batch([poison]))
    assert result.error_code == 0
    for count in (1, 2):
        assert ranges_of(member.fetch(max_wait_ms=0)) == [("t", 0, 0, 0, count)]
        assert result_codes(member.acknowledge(acks("t", 0, (0, 0, RELEASE))).results) == [("t", 0, 0, 0, 0)]
    assert member.fetch(max_wait_ms=0).partitions == []  # archived, not delivered a third time
    (letter,) = dead_letters(stubs)
    headers = dict(letter.headers)
    assert (letter.key, letter.value) == (b"k1", b"poison")
    assert headers["trace"] == b"42"
    assert headers["__dlq.errors.topic"] == b"t"
    assert headers["__dlq.errors.partition"] == b"0"
    assert headers["__dlq.errors.offset"] == b"0"
    assert headers["__dlq.errors.delivery.count"] == b"2"
    assert headers["__dlq.errors.reason"] == b"DELIVERY_LIMIT"
    assert headers["__dlq.errors.group.id"] == GROUP.encode()
    (partition,) = describe(stub, GROUP).partitions
    assert (partition.archived_records, partition.start_offset) == (1, 1)


def test_a_rejected_record_goes_to_the_dead_letter_topic_without_its_value_if_told(share) -> None:
    stubs, stub = share
    alter_config(
        stub,
        GROUP,
        errors_deadletterqueue_topic_name="dlq",
        errors_deadletterqueue_copy_record_enable="false",
    )
    member = ShareMember(stub, GROUP, ["t"]).join()
    produce(stubs, "t", [b"ok", b"bad"])
    member.fetch(max_wait_ms=0)
    answer = member.acknowledge(acks("t", 0, (0, 0, ACCEPT), (1, 1, REJECT)))
    assert result_codes(answer.results) == [("t", 0, 0, 0, 0), ("t", 0, 1, 1, 0)]
    (letter,) = dead_letters(stubs)
    assert letter.value is None and letter.key is None
    assert dict(letter.headers)["__dlq.errors.reason"] == b"REJECTED"
    assert dict(letter.headers)["__dlq.errors.offset"] == b"1"


def test_restart_keeps_accepted_records_and_redelivers_the_rest_with_counts(start_broker, connect) -> None:
    broker = start_broker()
    stubs = connect(broker)
    stubs.create_topic("t")
    stub = share_stub(stubs.channel)
    alter_config(stub, GROUP, share_auto_offset_reset="earliest")
    member = ShareMember(stub, GROUP, ["t"]).join()
    produce(stubs, "t", [str(n).encode() for n in range(6)])
    member.fetch(max_wait_ms=0)
    assert result_codes(member.acknowledge(acks("t", 0, (0, 1, ACCEPT), (4, 4, ACCEPT))).results) == [
        ("t", 0, 0, 1, 0),
        ("t", 0, 4, 4, 0),
    ]
    broker.stop()

    stubs = connect(start_broker())
    stub = share_stub(stubs.channel)
    again = ShareMember(stub, GROUP, ["t"]).join()
    redelivered = again.fetch(max_wait_ms=0)
    assert ranges_of(redelivered) == [("t", 0, 2, 3, 2), ("t", 0, 5, 5, 2)]
    assert describe(stub, GROUP).partitions[0].start_offset == 2


def test_a_member_unknown_after_restart_is_told_to_rejoin(start_broker, connect) -> None:
    broker = start_broker()
    stubs = connect(broker)
    stubs.create_topic("t")
    member = ShareMember(share_stub(stubs.channel), GROUP, ["t"]).join()
    broker.stop()
    member.stub = share_stub(connect(start_broker()).channel)
    assert member.fetch(max_wait_ms=0).error_code in (
        common.ERROR_CODE_UNKNOWN_MEMBER_ID,
        common.ERROR_CODE_GROUP_ID_NOT_FOUND,
    )
    assert member.heartbeat().error_code == common.ERROR_CODE_UNKNOWN_MEMBER_ID


def test_retention_advances_the_window(share, broker: EmbeddedBroker) -> None:
    stubs, stub = share
    stubs.create_topic("short", 1, **{"segment.bytes": "200", "retention.bytes": "1"})
    alter_config(stub, GROUP, share_auto_offset_reset="earliest")
    member = ShareMember(stub, GROUP, ["short"]).join()
    for n in range(5):
        produce(stubs, "short", [f"old{n}".encode() * 10])
    assert len(owned(member.fetch(max_wait_ms=0, max_records=1))) == 1  # holds offset 0, the rest waits
    core = broker.server.core
    assert core is not None
    assert broker.run(lambda: core.manager.run_retention()) > 0
    start = stubs.fetch_one("short", 0, 4).log_start_offset
    assert start > 1
    fetched = member.fetch(max_wait_ms=0)
    assert min(o for _, _, o, _, _ in owned(fetched)) >= start
    assert describe(stub, GROUP).partitions[0].start_offset >= start


def test_deleting_a_topic_forgets_its_share_state(share) -> None:
    stubs, stub = share
    member = ShareMember(stub, GROUP, ["t"]).join()
    produce(stubs, "t", [b"a", b"b"])
    member.fetch(max_wait_ms=0)
    member.acknowledge(acks("t", 0, (0, 1, ACCEPT)))
    assert describe(stub, GROUP).partitions[0].start_offset == 2
    stubs.admin.DeleteTopic(admin_pb2.DeleteTopicRequest(name="t"))
    assert describe(stub, GROUP).partitions == []
    stubs.create_topic("t")
    produce(stubs, "t", [b"new"])
    member.heartbeat()
    assert owned(member.fetch(max_wait_ms=0)) == [("t", 0, 0, 1, b"new")]


# --- bad input: each its own code, nothing else harmed -------------------------------------------------


def test_acknowledging_what_you_do_not_hold_is_refused_and_harms_nobody(share) -> None:
    stubs, stub = share
    mine, theirs = ShareMember(stub, GROUP, ["t"]).join(), ShareMember(stub, GROUP, ["t"]).join()
    produce(stubs, "t", [b"0", b"1", b"2", b"3"])
    assert ranges_of(theirs.fetch(max_wait_ms=0, max_records=2, acquire_mode=RECORD_LIMIT)) == [
        ("t", 0, 0, 1, 1)
    ]
    assert ranges_of(mine.fetch(max_wait_ms=0)) == [("t", 0, 2, 3, 1)]
    answer = mine.acknowledge(acks("t", 0, (0, 1, ACCEPT), (2, 3, ACCEPT), (9, 9, ACCEPT)))
    assert answer.error_code == common.ERROR_CODE_NONE
    codes = result_codes(answer.results)
    assert codes == [
        ("t", 0, 0, 1, common.ERROR_CODE_INVALID_RECORD_STATE),
        ("t", 0, 2, 3, common.ERROR_CODE_NONE),
        ("t", 0, 9, 9, common.ERROR_CODE_INVALID_RECORD_STATE),
    ]
    assert "0" in answer.results[0].results[0].error_message
    # the other member still holds its records and acknowledges them
    assert result_codes(theirs.acknowledge(acks("t", 0, (0, 1, ACCEPT))).results) == [("t", 0, 0, 1, 0)]
    assert describe(stub, GROUP).partitions[0].start_offset == 4


def test_a_release_delay_out_of_range_is_an_invalid_request_for_that_range(share) -> None:
    stubs, stub = share
    member = ShareMember(stub, GROUP, ["t"]).join()
    produce(stubs, "t", [b"0", b"1"])
    member.fetch(max_wait_ms=0)
    too_long = pb.ShareAcknowledgement(first_offset=0, last_offset=0, type=RELEASE, delay_ms=3_600_001)
    negative = pb.ShareAcknowledgement(first_offset=1, last_offset=1, type=RELEASE, delay_ms=-1)
    answer = member.acknowledge(acks("t", 0, too_long, negative))
    assert result_codes(answer.results) == [
        ("t", 0, 0, 0, common.ERROR_CODE_INVALID_REQUEST),
        ("t", 0, 1, 1, common.ERROR_CODE_INVALID_REQUEST),
    ]
    unknown_type = member.acknowledge(acks("t", 0, (0, 0, 7), (1, 1, ACCEPT)))
    assert result_codes(unknown_type.results) == [
        ("t", 0, 0, 0, common.ERROR_CODE_INVALID_REQUEST),
        ("t", 0, 1, 1, common.ERROR_CODE_NONE),
    ]
    # the refused range is still held
    assert result_codes(member.acknowledge(acks("t", 0, (0, 0, ACCEPT))).results) == [("t", 0, 0, 0, 0)]


def test_a_stale_or_unknown_member_is_told_so(share) -> None:
    _, stub = share
    member = ShareMember(stub, GROUP, ["t"]).join()
    stranger = ShareMember(stub, GROUP, ["t"])
    stranger.member_id, stranger.epoch = "nobody", 1
    assert stranger.fetch(max_wait_ms=0).error_code == common.ERROR_CODE_UNKNOWN_MEMBER_ID
    assert (
        stranger.acknowledge(acks("t", 0, (0, 0, ACCEPT))).error_code == common.ERROR_CODE_UNKNOWN_MEMBER_ID
    )
    assert stranger.heartbeat().error_code == common.ERROR_CODE_UNKNOWN_MEMBER_ID
    stale_epoch = member.heartbeat(member_epoch=member.epoch + 5)
    assert stale_epoch.error_code == common.ERROR_CODE_FENCED_MEMBER_EPOCH
    member.leave()
    assert member.fetch(max_wait_ms=0).error_code == common.ERROR_CODE_UNKNOWN_MEMBER_ID


def test_an_unknown_group_is_not_found(share) -> None:
    _, stub = share
    with pytest.raises(grpc.RpcError) as missing:
        describe(stub, "no-such-group")
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_code(missing) == str(common.ERROR_CODE_GROUP_ID_NOT_FOUND)
    nobody = ShareMember(stub, "no-such-group", ["t"])
    assert nobody.acknowledge(acks("t", 0, (0, 0, ACCEPT))).error_code == common.ERROR_CODE_GROUP_ID_NOT_FOUND
    with pytest.raises(grpc.RpcError) as delete:
        stub.DeleteShareGroup(pb.DeleteShareGroupRequest(group_id="no-such-group"))
    assert delete.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_consumer_groups_id_is_refused_both_ways(share) -> None:
    stubs, stub = share
    consumer = GroupMember(group_stub(stubs), "billing", ["t"])
    assert consumer.heartbeat().error_code == common.ERROR_CODE_NONE
    refused = ShareMember(stub, "billing", ["t"]).heartbeat()
    assert refused.error_code == common.ERROR_CODE_INCONSISTENT_GROUP_PROTOCOL
    with pytest.raises(grpc.RpcError) as described:
        describe(stub, "billing")
    assert described.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_code(described) == str(common.ERROR_CODE_INCONSISTENT_GROUP_PROTOCOL)
    ShareMember(stub, GROUP, ["t"]).join()
    other_way = GroupMember(group_stub(stubs), GROUP, ["t"]).heartbeat()
    assert other_way.error_code == common.ERROR_CODE_INCONSISTENT_GROUP_PROTOCOL


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"share.record.lock.duration.ms": "999"}, "share.record.lock.duration.ms"),
        ({"share.delivery.count.limit": "11"}, "share.delivery.count.limit"),
        ({"share.auto.offset.reset": "yesterday"}, "share.auto.offset.reset"),
        ({"no.such.config": "1"}, "no.such.config"),
        ({"errors.deadletterqueue.topic.name": "__consumer_offsets"}, "internal"),
    ],
)
def test_a_bad_config_is_refused_and_changes_nothing(share, values, fragment) -> None:
    _, stub = share
    with pytest.raises(grpc.RpcError) as refused:
        stub.AlterGroupConfig(
            pb.AlterGroupConfigRequest(group_id=GROUP, set={"share.delivery.count.limit": "3", **values})
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_code(refused) == str(common.ERROR_CODE_INVALID_CONFIG)
    assert fragment in (refused.value.details() or "")
    configs = stub.DescribeGroupConfig(pb.DescribeGroupConfigRequest(group_id=GROUP)).configs
    entries = {c.name: (c.value, c.is_group_value) for c in configs}
    assert entries["share.delivery.count.limit"] == ("5", False)
    assert entries["share.auto.offset.reset"] == ("earliest", True)


def test_malformed_requests_are_invalid_argument(share) -> None:
    _, stub = share
    with pytest.raises(grpc.RpcError) as empty:
        stub.ShareHeartbeat(pb.ShareHeartbeatRequest(group_id="", member_epoch=0, topic_names=["t"]))
    assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    member = ShareMember(stub, GROUP, ["t"]).join()
    with pytest.raises(grpc.RpcError) as negative:
        member.fetch(max_wait_ms=-1)
    assert negative.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    many = acks("t", 0, *[(n, n, ACCEPT) for n in range(10_001)])
    with pytest.raises(grpc.RpcError) as too_many:
        member.acknowledge(many)
    assert too_many.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_deleting_a_group_needs_it_empty(share) -> None:
    _, stub = share
    member = ShareMember(stub, GROUP, ["t"]).join()
    with pytest.raises(grpc.RpcError) as busy:
        stub.DeleteShareGroup(pb.DeleteShareGroupRequest(group_id=GROUP))
    assert busy.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    member.leave()
    stub.DeleteShareGroup(pb.DeleteShareGroupRequest(group_id=GROUP))
    with pytest.raises(grpc.RpcError) as gone:
        describe(stub, GROUP)
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_silent_members_records_go_to_another_after_its_session_ends(share) -> None:
    stubs, stub = share
    alter_config(stub, GROUP, share_session_timeout_ms="1000", share_heartbeat_interval_ms="100")
    silent, alive = ShareMember(stub, GROUP, ["t"]).join(), ShareMember(stub, GROUP, ["t"]).join()
    produce(stubs, "t", [b"job"])
    assert ranges_of(silent.fetch(max_wait_ms=0)) == [("t", 0, 0, 0, 1)]
    waiting = Background(lambda: alive.fetch(max_wait_ms=LONG_POLL_MS, timeout=WOKEN_WITHIN_S))
    # `alive` keeps heartbeating; `silent` does not and is removed after 1 s, releasing the job
    while waiting.running():
        assert alive.heartbeat().error_code == common.ERROR_CODE_NONE
        waiting.wait(0.1)
    assert ranges_of(waiting.get()) == [("t", 0, 0, 0, 2)]
    assert silent.heartbeat().error_code == common.ERROR_CODE_UNKNOWN_MEMBER_ID


def test_describe_shows_members_and_what_they_hold(share) -> None:
    stubs, stub = share
    member = ShareMember(stub, GROUP, ["t"]).join()
    produce(stubs, "t", [b"a", b"b", b"c"])
    member.fetch(max_wait_ms=0, max_records=2, acquire_mode=RECORD_LIMIT)
    group = describe(stub, GROUP)
    assert group.state == group_pb2.GROUP_STATE_STABLE
    (described,) = group.members
    assert (described.member_id, list(described.topic_names), described.acquired_records) == (
        member.member_id,
        ["t"],
        2,
    )
    (partition,) = group.partitions
    assert (partition.start_offset, partition.end_offset, partition.log_end_offset) == (0, 2, 3)
    assert (partition.in_flight_records, partition.acquired_records, partition.lag) == (2, 2, 3)
    member.leave()
    assert describe(stub, GROUP).state == group_pb2.GROUP_STATE_EMPTY


def test_list_groups_names_each_group_type(share) -> None:
    stubs, stub = share
    consumer = GroupMember(group_stub(stubs), "billing", ["t"])
    consumer.heartbeat()
    alter_config(stub, "configured-only", share_record_lock_duration_ms="5000")  # no member ever
    member = ShareMember(stub, GROUP, ["t"]).join()

    def listed() -> list[tuple[str, str, int, int]]:
        answer = group_stub(stubs).ListGroups(group_pb2.ListGroupsRequest())
        return [(g.group_id, g.type, g.state, g.member_count) for g in answer.groups]

    assert listed() == [
        ("billing", "consumer", group_pb2.GROUP_STATE_STABLE, 1),
        ("configured-only", "share", group_pb2.GROUP_STATE_EMPTY, 0),
        (GROUP, "share", group_pb2.GROUP_STATE_STABLE, 1),
    ]
    member.leave()
    assert (GROUP, "share", group_pb2.GROUP_STATE_EMPTY, 0) in listed()
