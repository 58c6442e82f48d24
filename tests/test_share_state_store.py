"""`__share_group_state`: the compact snapshot encoding, writes and tombstones replayed after restarts,
and a bad batch refused at start-up naming its file."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from logstore.broker.domain.share.state_store import (
    STATE_TOPIC,
    ShareStateStore,
    decode_snapshot,
    encode_snapshot,
)
from logstore.broker.share_machine.model import PartitionSnapshot, PersistedSpan, RecordState

from logstore.errors import CorruptRecordError
from logstore.manager import LogManager
from tests.test_broker_corrupt_segments import flip_last_byte_of_batch

STORED = (RecordState.AVAILABLE, RecordState.ACKNOWLEDGED, RecordState.ARCHIVED)


@st.composite
def snapshots(draw: st.DrawFn) -> PartitionSnapshot:
    start = draw(st.integers(0, 2**62))
    lengths = draw(st.lists(st.integers(1, 5000), max_size=30))
    spans = []
    cursor = start
    for length in lengths:
        state = draw(st.sampled_from(STORED))
        spans.append(PersistedSpan(cursor, cursor + length - 1, state, draw(st.integers(0, 10))))
        cursor += length
    return PartitionSnapshot(start, cursor, tuple(spans), draw(st.integers(0, 2**40)))


@given(snapshots())
def test_snapshots_round_trip(snapshot: PartitionSnapshot) -> None:
    assert decode_snapshot(encode_snapshot(snapshot)) == snapshot


def test_an_acquired_span_is_stored_as_available_with_its_count() -> None:
    acquired = PartitionSnapshot(10, 20, (PersistedSpan(10, 19, RecordState.ACQUIRED, 3),), 0)
    assert decode_snapshot(encode_snapshot(acquired)).spans == (
        PersistedSpan(10, 19, RecordState.AVAILABLE, 3),
    )


def test_a_snapshot_is_small() -> None:
    """A 300k records/s consumer writes hundreds of these a second: a few bytes per span, not JSON."""
    snapshot = PartitionSnapshot(
        1_000_000_000,
        1_000_000_500,
        (
            PersistedSpan(1_000_000_000, 1_000_000_199, RecordState.ACKNOWLEDGED, 1),
            PersistedSpan(1_000_000_200, 1_000_000_499, RecordState.AVAILABLE, 2),
        ),
        7,
    )
    assert len(encode_snapshot(snapshot)) <= 20


@pytest.mark.parametrize(
    "data", [b"", b"\x09", b"\x01\x80", b"\x01\x00\x00\x00\x01\x00\x00\x07\x00", b"\x01\x00\x00\x00\x00\xff"]
)
def test_a_damaged_snapshot_is_refused(data: bytes) -> None:
    with pytest.raises(CorruptRecordError):
        decode_snapshot(data)


def snap(start: int, end: int) -> PartitionSnapshot:
    return PartitionSnapshot(
        start, end, (PersistedSpan(start, end - 1, RecordState.AVAILABLE, 1),) if end > start else (), 0
    )


def test_the_latest_write_per_key_survives_restarts_and_tombstones_delete(tmp_path: Path) -> None:
    with LogManager(tmp_path, background=False) as manager:
        store = ShareStateStore(manager, partitions=2)
        store.write_snapshots("g", {("t", 0): snap(0, 5), ("t", 1): snap(0, 1)})
        store.write_snapshots("g", {("t", 0): snap(5, 9)})
        store.write_snapshots("other", {("t", 0): snap(3, 4)})
        store.write_snapshots("g", {("t", 1): None})
        store.write_config("g", {"share.delivery.count.limit": "3"})
        store.write_config("gone", {"share.delivery.count.limit": "4"})
        store.write_config("gone", None)
    with LogManager(tmp_path, background=False) as manager:
        replayed = ShareStateStore(manager, partitions=2).replay()
    assert replayed.snapshots == {"g": {("t", 0): snap(5, 9)}, "other": {("t", 0): snap(3, 4)}}
    assert replayed.configs == {"g": {"share.delivery.count.limit": "3"}}


def test_state_survives_an_unclean_restart(tmp_path: Path) -> None:
    manager = LogManager(tmp_path, background=False)
    ShareStateStore(manager).write_snapshots("g", {("t", 0): snap(7, 8)})
    manager._release_data_dir()  # simulate kill -9: no close, no clean-shutdown marker
    with LogManager(tmp_path, background=False) as reopened:
        assert not reopened.clean_shutdown
        assert ShareStateStore(reopened).replay().snapshots == {"g": {("t", 0): snap(7, 8)}}


def test_one_groups_writes_go_to_one_partition(tmp_path: Path) -> None:
    with LogManager(tmp_path, background=False) as manager:
        store = ShareStateStore(manager, partitions=8)
        written = store.write_snapshots("workers", {("a", 0): snap(0, 1), ("b", 3): snap(0, 2)})
        assert written.log is store.log_for("workers")
        assert written.log.log_end_offset == 2  # one batch, two records


def test_a_bad_batch_refuses_to_start_naming_the_file(tmp_path: Path) -> None:
    with LogManager(tmp_path, background=False) as manager:
        store = ShareStateStore(manager, partitions=1)
        store.write_snapshots("g", {("t", 0): snap(0, 3)})
        store.write_snapshots("g", {("t", 0): snap(3, 4)})
    segment = tmp_path / f"{STATE_TOPIC}-0" / f"{0:020d}.log"
    flip_last_byte_of_batch(segment, 0)
    with LogManager(tmp_path, background=False) as manager, pytest.raises(CorruptRecordError) as refused:
        ShareStateStore(manager, partitions=1).replay()
    assert str(segment) in str(refused.value)
    assert "share-group state" in str(refused.value)
