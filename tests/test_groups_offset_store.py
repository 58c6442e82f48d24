"""Committed offsets live in __consumer_offsets: they survive clean and unclean restarts and compaction."""

from __future__ import annotations

from pathlib import Path

from logstore.broker.domain.groups.offset_store import OFFSETS_TOPIC, OffsetAndMetadata, OffsetStore
from logstore.broker.group_machine.model import TopicPartition

from logstore.manager import LogManager

TP0 = TopicPartition("orders", 0)
TP1 = TopicPartition("orders", 1)


def _commit(store: OffsetStore, group: str, offsets, now_ms: int | None = None):
    write = store.commit(group, offsets, now_ms=now_ms)
    write.log.flush(write.last_offset + 1)
    store.apply(write)
    return write


def test_commit_and_fetch(tmp_path: Path):
    with LogManager(tmp_path, background=False) as mgr:
        store = OffsetStore(mgr, partitions=4)
        _commit(store, "g", {TP0: OffsetAndMetadata(10, "m"), TP1: OffsetAndMetadata(3)}, now_ms=1000)
        _commit(store, "g", {TP0: OffsetAndMetadata(12)}, now_ms=2000)
        assert store.fetch("g") == {TP0: OffsetAndMetadata(12, "", 2000), TP1: OffsetAndMetadata(3, "", 1000)}
        assert store.fetch("g", [TP1, TopicPartition("other", 0)]) == {TP1: OffsetAndMetadata(3, "", 1000)}
        assert store.fetch("nobody") == {}
        assert store.groups() == ["g"]


def test_offsets_survive_a_clean_restart(tmp_path: Path):
    with LogManager(tmp_path, background=False) as mgr:
        store = OffsetStore(mgr, partitions=4)
        for i in range(50):
            _commit(store, f"g{i % 5}", {TP0: OffsetAndMetadata(i)}, now_ms=i)
    with LogManager(tmp_path, background=False) as mgr:
        store = OffsetStore(mgr, partitions=99)  # the existing topic's partition count wins
        assert mgr.topic(OFFSETS_TOPIC).partitions == 4
        assert {g: store.fetch(g)[TP0].offset for g in store.groups()} == {f"g{k}": 45 + k for k in range(5)}


def test_offsets_survive_an_unclean_restart(tmp_path: Path):
    mgr = LogManager(tmp_path, background=False)
    store = OffsetStore(mgr)
    _commit(store, "g", {TP0: OffsetAndMetadata(7, "x")})
    mgr._release_data_dir()  # simulate kill -9: no close, no clean-shutdown marker
    with LogManager(tmp_path, background=False) as again:
        assert not again.clean_shutdown
        assert OffsetStore(again).fetch("g")[TP0].offset == 7


def test_deleting_a_group_writes_tombstones_that_survive_restart_and_compaction(tmp_path: Path):
    with LogManager(tmp_path, background=False) as mgr:
        store = OffsetStore(mgr, partitions=1)
        _commit(store, "gone", {TP0: OffsetAndMetadata(1), TP1: OffsetAndMetadata(2)})
        _commit(store, "kept", {TP0: OffsetAndMetadata(5)})
        deletion = store.delete_group("gone")
        assert deletion is not None
        store.apply(deletion)
        assert store.delete_group("gone") is None
        assert store.groups() == ["kept"]
    with LogManager(tmp_path, background=False) as mgr:
        store = OffsetStore(mgr, partitions=1)
        assert store.groups() == ["kept"]
        mgr.log(OFFSETS_TOPIC, 0).roll()
        mgr.run_compaction(now_ms=2**62)
        assert OffsetStore(mgr, partitions=1).fetch("kept") == store.fetch("kept")


def test_forget_topic_removes_its_offsets_from_every_group(tmp_path: Path):
    with LogManager(tmp_path, background=False) as mgr:
        store = OffsetStore(mgr, partitions=2)
        _commit(store, "a", {TP0: OffsetAndMetadata(1), TopicPartition("keep", 0): OffsetAndMetadata(2)})
        _commit(store, "b", {TP1: OffsetAndMetadata(3)})
        store.forget_topic("orders")
        assert store.fetch("a") == {TopicPartition("keep", 0): store.fetch("a")[TopicPartition("keep", 0)]}
        assert store.groups() == ["a"]


def test_a_group_always_maps_to_the_same_partition(tmp_path: Path):
    with LogManager(tmp_path, background=False) as mgr:
        store = OffsetStore(mgr, partitions=8)
        assert {store.partition_for("payments") for _ in range(3)} == {store.partition_for("payments")}
        assert len({store.partition_for(f"g{i}") for i in range(100)}) == 8


def test_a_commit_is_shown_only_once_applied_and_a_late_write_never_wins(tmp_path: Path):
    with LogManager(tmp_path, background=False) as mgr:
        store = OffsetStore(mgr, partitions=1)
        first = store.commit("g", {TP0: OffsetAndMetadata(10)})
        assert store.fetch("g") == {}  # appended, not yet durable: not shown
        second = store.commit("g", {TP0: OffsetAndMetadata(20)})
        store.apply(second)
        store.apply(first)  # finished later, but written earlier: must not move the offset back
        assert store.fetch("g")[TP0].offset == 20
    with LogManager(tmp_path, background=False) as mgr:
        assert OffsetStore(mgr, partitions=1).fetch("g")[TP0].offset == 20
