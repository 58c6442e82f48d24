"""`kill -9` of a broker process holding share-group state: every acknowledgement the broker confirmed
stays, and records acquired but not acknowledged come back with their delivery counts kept."""

from __future__ import annotations

from pathlib import Path

from logstore.broker.embedded import BrokerProcess

from logstore.records import build_batch
from tests.conftest import Stubs
from tests.share_members import ACCEPT, ShareMember, acks, alter_config, ranges_of, result_codes, share_stub

GROUP = "workers"


def test_kill_9_keeps_acceptances_and_redelivers_the_rest(tmp_path: Path) -> None:
    data_dir, log_path = tmp_path / "data", tmp_path / "broker.log"
    first = BrokerProcess(data_dir, log_path)
    stubs = Stubs.connect(first.start())
    try:
        stubs.create_topic("t", 2)
        stub = share_stub(stubs.channel)
        alter_config(stub, GROUP, share_auto_offset_reset="earliest")
        member = ShareMember(stub, GROUP, ["t"]).join()
        for partition in (0, 1):
            result = stubs.produce_one(
                "t", partition, build_batch([f"{partition}:{n}".encode() for n in range(6)])
            )
            assert result.error_code == 0
        got = ranges_of(member.fetch(max_wait_ms=0))
        got += ranges_of(member.fetch(max_wait_ms=0))
        assert sorted(got) == [("t", 0, 0, 5, 1), ("t", 1, 0, 5, 1)]
        answer = member.acknowledge(acks("t", 0, (0, 2, ACCEPT)), acks("t", 1, (5, 5, ACCEPT)))
        assert [code for *_, code in result_codes(answer.results)] == [0, 0]
        # acquired again after the acknowledgement, never acknowledged: must come back available
        first.kill()
    finally:
        stubs.channel.close()

    second = BrokerProcess(data_dir, log_path)
    stubs = Stubs.connect(second.start())
    try:
        stub = share_stub(stubs.channel)
        again = ShareMember(stub, GROUP, ["t"]).join()
        got = ranges_of(again.fetch(max_wait_ms=0))
        got += ranges_of(again.fetch(max_wait_ms=0))
        assert sorted(got) == [("t", 0, 3, 5, 2), ("t", 1, 0, 4, 2)]
        assert second.terminate() == 0
    finally:
        stubs.channel.close()
