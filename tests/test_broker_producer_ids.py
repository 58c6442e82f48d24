"""Producer ids never repeat, also when `producer-ids.json` is lost or damaged (issue 9, item 7).

A repeated id makes a new producer's first batch look like a retry of an old producer's batch with the
same sequence: it is answered as a duplicate, with the old offset, and never written.
"""

from __future__ import annotations

import json
import logging

import pytest
from logstore.broker.domain.producer_ids import FILE_NAME, RECOVERY_MARGIN, ProducerIdAllocator
from logstore.broker.embedded import BrokerProcess
from logstore.wire.logstore.v1 import produce_pb2

from logstore.records import build_batch
from tests.conftest import Stubs


def _produce_as_new_producer(stubs: Stubs, value: bytes) -> tuple[int, int]:
    """(producer id, offset) of one idempotent record from a freshly initialised producer."""
    pid = stubs.produce.InitProducerId(produce_pb2.InitProducerIdRequest()).producer_id
    batch = build_batch([value], producer_id=pid, producer_epoch=0, base_sequence=0)
    result = stubs.produce_one("t", 0, batch)
    assert result.error_code == 0, result.error_message
    return pid, result.base_offset


def test_a_lost_reservation_file_never_hands_an_id_out_again(start_broker, connect, caplog) -> None:
    broker = start_broker()
    stubs = connect(broker)
    stubs.create_topic("t")
    old_ids = [_produce_as_new_producer(stubs, f"old-{n}".encode())[0] for n in range(3)]
    broker.stop()
    (broker.settings.data_dir / FILE_NAME).unlink()

    with caplog.at_level(logging.WARNING, logger="logstore.broker.domain.producer_ids"):
        stubs = connect(start_broker())
    new_id, offset = _produce_as_new_producer(stubs, b"new")
    assert new_id > max(old_ids)
    assert offset == 3
    assert stubs.values("t", 0) == [b"old-0", b"old-1", b"old-2", b"new"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(FILE_NAME in w and "is missing" in w for w in warnings), warnings


def test_ids_are_recovered_from_the_batch_headers_after_a_crash(tmp_path) -> None:
    """kill -9: no producer-state snapshot is written, the ids come from the batch headers alone."""
    broker = BrokerProcess(tmp_path / "data", tmp_path / "broker.log")
    stubs = Stubs.connect(broker.start())
    try:
        stubs.create_topic("t")
        old_id, _ = _produce_as_new_producer(stubs, b"old")
    finally:
        stubs.channel.close()
        broker.kill()
    (tmp_path / "data" / FILE_NAME).unlink()

    stubs = Stubs.connect(broker.start())
    try:
        new_id, offset = _produce_as_new_producer(stubs, b"new")
        assert new_id > old_id
        assert offset == 1
        assert stubs.values("t", 0) == [b"old", b"new"]
    finally:
        stubs.channel.close()
        broker.terminate()
    assert f"{FILE_NAME} is missing" in broker.log_text()


@pytest.mark.parametrize("content", ["", "{not json", '{"next_block_start": -5}', '{"other": 1}', "[]"])
def test_an_unreadable_reservation_file_is_kept_aside_and_recovered_from_the_logs(tmp_path, content) -> None:
    (tmp_path / FILE_NAME).write_text(content)
    allocator = ProducerIdAllocator(tmp_path, highest_in_logs=lambda: 41, fresh=False)
    assert allocator.allocate() == 42 + RECOVERY_MARGIN
    assert (tmp_path / f"{FILE_NAME}.corrupt").read_text() == content
    assert json.loads((tmp_path / FILE_NAME).read_text())["next_block_start"] > 42 + RECOVERY_MARGIN


def test_a_fresh_data_directory_starts_at_zero_and_writes_the_file_at_once(tmp_path) -> None:
    allocator = ProducerIdAllocator(tmp_path, highest_in_logs=lambda: pytest.fail("no logs to ask"))
    assert json.loads((tmp_path / FILE_NAME).read_text()) == {"next_block_start": 0}
    assert [allocator.allocate(), allocator.allocate()] == [0, 1]


def test_a_missing_file_beside_topics_without_producers_still_skips_the_margin(tmp_path) -> None:
    """Ids may have been handed out to producers that never wrote: nothing in the logs shows them."""
    allocator = ProducerIdAllocator(tmp_path, highest_in_logs=lambda: -1, fresh=False)
    assert allocator.allocate() == RECOVERY_MARGIN
    assert ProducerIdAllocator(tmp_path, fresh=False).allocate() > RECOVERY_MARGIN
