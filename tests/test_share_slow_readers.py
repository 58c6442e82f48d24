"""ShareFetch answers a client never reads count against the broker's answer budget, as Fetch answers do.

The stalled client is a raw HTTP/2 connection that sends ShareFetch calls and never reads
(bench/stalled_reader.py); the member joined over an ordinary channel first.
"""

from __future__ import annotations

from logstore.bench.stalled_reader import StalledReader
from logstore.wire.logstore.v1 import produce_pb2
from logstore.wire.logstore.v1 import share_pb2 as pb

from logstore.records import build_batch
from tests.share_members import ShareMember, alter_config, share_stub
from tests.waiting import wait_until

MiB = 1024 * 1024
SHARE_FETCH = "/logstore.v1.ShareService/ShareFetch"


def _fill(stubs, topic: str, batches: int) -> None:
    """`batches` batches of just under 1 MiB: 16 records of about 64 KiB each."""
    stubs.create_topic(topic, 1)
    batch = build_batch([b"x" * (64 * 1024 - 64)] * 16)
    for _ in range(batches):
        assert stubs.produce_one(topic, 0, batch, acks=produce_pb2.ACKS_LEADER).error_code == 0


def test_stalled_share_fetches_hold_at_most_their_connection_s_budget(start_broker, connect) -> None:
    broker = start_broker(
        queued_max_response_bytes=64 * MiB, queued_max_response_bytes_per_connection=4 * MiB
    )
    stubs = connect(broker)
    _fill(stubs, "big", 24)
    stub = share_stub(stubs.channel)
    alter_config(stub, "g", share_auto_offset_reset="earliest")
    member = ShareMember(stub, "g", ["big"]).join()
    request = pb.ShareFetchRequest(group_id="g", member_id=member.member_id, max_records=16, max_wait_ms=0)
    answers = broker.server.answers
    assert answers is not None
    with StalledReader(broker.address) as stalled:
        for _ in range(16):
            stalled.call(SHARE_FETCH, request.SerializeToString())
        # Each answer is one 1 MiB batch: four or five fit the connection's 4 MiB, the others wait.
        wait_until(lambda: broker.run(lambda: len(answers._waiting)) >= 11, "the rest wait for room")
        held = broker.run(answers.held_by, stalled.peer)
        assert 4 * MiB <= held <= 5 * MiB + MiB
        # Another member on another connection is served meanwhile.
        other = ShareMember(stub, "g", ["big"]).join()
        assert other.fetch(max_wait_ms=0, max_records=16).partitions[0].records
    wait_until(lambda: broker.run(lambda: answers.in_use) == 0, "the answers are let go with the connection")
