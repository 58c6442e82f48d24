"""The log manager over a real data directory: topics, metadata, the directory lock, strays, markers, upkeep."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from logstore.config import TopicConfig
from logstore.errors import (
    InvalidConfigError,
    InvalidPartitionCountError,
    InvalidTopicError,
    LogClosedError,
    StorageError,
    TopicExistsError,
    UnknownPartitionError,
    UnknownTopicError,
)
from logstore.leader_epoch import CHECKPOINT_NAME
from logstore.log import HIGH_WATERMARK_FILE
from logstore.manager import CLEAN_SHUTDOWN_MARKER, META_FILE, RECOVERY_CHECKPOINT, UNOWNED_DIR, LogManager
from logstore.records import build_batch, iter_records

TS = 1_700_000_000_000


def open_manager(data_dir: Path, **kwargs: Any) -> LogManager:
    kwargs.setdefault("default_config", TopicConfig(segment_bytes=64 * 1024))
    return LogManager(data_dir, background=False, clock_ms=lambda: TS, **kwargs)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def mgr(data_dir: Path) -> Any:
    manager = open_manager(data_dir)
    yield manager
    manager.close()


def listing(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*")}


# --- topics -----------------------------------------------------------------------------------------------


def test_create_list_describe_and_use_topics(mgr: LogManager, data_dir: Path) -> None:
    info = mgr.create_topic("orders", 3, {"retention.ms": "60000", "cleanup_policy": "delete"})
    mgr.create_topic("audit", 1)
    assert (info.name, info.partitions, info.config.retention_ms) == ("orders", 3, 60000)
    assert info.config.segment_bytes == 64 * 1024  # from the manager's default config
    assert [t.name for t in mgr.topics()] == ["audit", "orders"]
    assert mgr.topic("orders") == info
    for partition in range(3):
        assert (data_dir / f"orders-{partition}").is_dir()
        assert mgr.log("orders", partition).partition == partition
    result = mgr.log("orders", 2).append(build_batch([b"hello"]))
    assert result.base_offset == 0
    assert [r.value for r in iter_records(mgr.log("orders", 2).read(0, 100).data)] == [b"hello"]


def test_unknown_topics_and_partitions(mgr: LogManager) -> None:
    mgr.create_topic("t", 2)
    with pytest.raises(UnknownTopicError, match="'nope' does not exist"):
        mgr.topic("nope")
    with pytest.raises(UnknownTopicError):
        mgr.log("nope", 0)
    for partition in (2, -1, True, "0"):
        with pytest.raises(UnknownPartitionError, match="partitions 0 to 1"):
            mgr.log("t", partition)  # type: ignore[arg-type]  # wrong types on purpose
    with pytest.raises(UnknownTopicError):
        mgr.delete_topic("nope")
    with pytest.raises(UnknownTopicError):
        mgr.alter_config("nope", {})
    with pytest.raises(UnknownTopicError):
        mgr.add_partitions("nope", 3)


BAD_NAMES = ["../etc", "a/b", "", ".", "..", "x" * 250, "a b", "/abs", "t\x00", "ü", "a\\b", "a:b"]


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_bad_topic_names_are_refused_and_touch_nothing(tmp_path: Path, name: str) -> None:
    data_dir = tmp_path / "data"
    manager = open_manager(data_dir)
    before = listing(tmp_path)
    with pytest.raises(InvalidTopicError):
        manager.create_topic(name, 1)
    assert listing(tmp_path) == before
    assert manager.topics() == []
    manager.close()


@pytest.mark.parametrize("name", ["a", "x" * 249, "A-b_c.9", "..a", "-"])
def test_names_at_the_edges_of_the_rules_are_accepted(mgr: LogManager, data_dir: Path, name: str) -> None:
    mgr.create_topic(name, 1)
    assert (data_dir / f"{name}-0").is_dir()


def test_dot_and_underscore_may_not_be_the_only_difference(mgr: LogManager) -> None:
    mgr.create_topic("a.b", 1)
    with pytest.raises(InvalidTopicError, match=r"collides with existing topic 'a\.b'"):
        mgr.create_topic("a_b", 1)
    mgr.create_topic("x_y", 1)
    with pytest.raises(InvalidTopicError, match="collides"):
        mgr.create_topic("x.y", 1)
    assert [t.name for t in mgr.topics()] == ["a.b", "x_y"]


def test_duplicate_topics_and_bad_partition_counts(mgr: LogManager) -> None:
    mgr.create_topic("t", 1)
    with pytest.raises(TopicExistsError, match="'t' already exists"):
        mgr.create_topic("t", 2)
    for count in (0, -1, 10_001, "3", 2.0, True):
        with pytest.raises(InvalidPartitionCountError):
            mgr.create_topic("u", count)  # type: ignore[arg-type]
    with pytest.raises(InvalidConfigError, match="unknown topic config"):
        mgr.create_topic("u", 1, {"no.such.setting": "1"})
    assert [t.name for t in mgr.topics()] == ["t"]


def test_delete_topic_removes_its_folders_and_closes_its_logs(mgr: LogManager, data_dir: Path) -> None:
    mgr.create_topic("t", 2)
    log = mgr.log("t", 0)
    log.append(build_batch([b"x"]))
    mgr.delete_topic("t")
    assert not (data_dir / "t-0").exists()
    assert not (data_dir / "t-1").exists()
    assert mgr.topics() == []
    with pytest.raises(LogClosedError):
        log.append(build_batch([b"y"]))
    with pytest.raises(UnknownTopicError):
        mgr.log("t", 0)
    mgr.create_topic("t", 1)  # a new topic of the same name starts empty
    assert mgr.log("t", 0).log_end_offset == 0


def test_add_partitions(mgr: LogManager, data_dir: Path) -> None:
    mgr.create_topic("t", 1)
    mgr.log("t", 0).append(build_batch([b"keep"]))
    info = mgr.add_partitions("t", 3)
    assert info.partitions == 3
    assert mgr.log("t", 0).log_end_offset == 1
    assert [mgr.log("t", p).log_end_offset for p in (1, 2)] == [0, 0]
    assert (data_dir / "t-2").is_dir()
    for bad in (3, 2, 10_001, True, "4"):
        with pytest.raises(InvalidPartitionCountError, match="has 3 partitions"):
            mgr.add_partitions("t", bad)  # type: ignore[arg-type]  # wrong types on purpose


def test_alter_config_applies_to_live_logs_and_persists(data_dir: Path) -> None:
    manager = open_manager(data_dir)
    manager.create_topic("t", 2)
    info = manager.alter_config("t", {"retention.bytes": "5000", "flush.interval.messages": 10})
    assert info.config.retention_bytes == 5000
    assert manager.log("t", 1).config.flush_interval_messages == 10
    with pytest.raises(InvalidConfigError):
        manager.alter_config("t", {"retention.bytes": "lots"})
    assert manager.topic("t").config.retention_bytes == 5000
    manager.close()
    manager = open_manager(data_dir)
    assert manager.topic("t").config.retention_bytes == 5000
    assert manager.log("t", 0).config.flush_interval_messages == 10
    manager.close()


def test_metadata_and_data_survive_a_reopen(data_dir: Path) -> None:
    manager = open_manager(data_dir)
    created = manager.create_topic("a", 2, {"segment.bytes": 1000, "retention.ms": 123})
    manager.create_topic("b", 1)
    manager.add_partitions("b", 2)
    manager.delete_topic("a")
    created = manager.create_topic("a", 2, {"segment.bytes": 1000, "retention.ms": 123})
    for i in range(10):
        manager.log("a", 1).append(build_batch([f"r{i}".encode() * 30]))
    manager.close()
    meta = json.loads((data_dir / META_FILE).read_text())
    assert sorted(meta["topics"]) == ["a", "b"]
    manager = open_manager(data_dir)
    assert manager.topic("a") == created
    assert manager.topic("b").partitions == 2
    log = manager.log("a", 1)
    assert log.log_end_offset == 10
    assert len(log.segments) > 1
    assert [r.value for r in iter_records(log.read(9, 1000).data)] == [b"r9" * 30]
    assert len(manager.recovery) == 4
    manager.close()


# --- the data directory --------------------------------------------------------------------------------


def test_a_second_manager_on_the_same_directory_is_refused(data_dir: Path) -> None:
    first = open_manager(data_dir)
    with pytest.raises(StorageError, match="in use by another broker"):
        open_manager(data_dir)
    first.close()
    second = open_manager(data_dir)  # the lock went with the first one
    second.close()


def test_clean_shutdown_marker_appears_on_close_and_goes_on_open(data_dir: Path) -> None:
    manager = open_manager(data_dir)
    assert not manager.clean_shutdown  # a fresh directory: nothing says the last stop was clean
    assert not (data_dir / CLEAN_SHUTDOWN_MARKER).exists()
    manager.create_topic("t", 1)
    manager.log("t", 0).append(build_batch([b"x"]))
    manager.close()
    assert (data_dir / CLEAN_SHUTDOWN_MARKER).exists()
    assert (data_dir / "t-0" / RECOVERY_CHECKPOINT).read_text().strip() == "1"
    manager = open_manager(data_dir)
    assert manager.clean_shutdown
    assert not (data_dir / CLEAN_SHUTDOWN_MARKER).exists()
    assert manager.recovery[0].clean
    manager.close()
    manager.close()  # closing twice is harmless


def test_a_closed_manager_refuses_changes(data_dir: Path) -> None:
    with open_manager(data_dir) as manager:
        manager.create_topic("t", 1)
    for call in (
        lambda: manager.create_topic("u", 1),
        lambda: manager.delete_topic("t"),
        lambda: manager.add_partitions("t", 2),
        lambda: manager.alter_config("t", {}),
    ):
        with pytest.raises(LogClosedError, match="closed"):
            call()


def test_folders_no_topic_owns_are_moved_aside_at_start_up_not_removed(data_dir: Path) -> None:
    manager = open_manager(data_dir)
    manager.create_topic("gone", 2)
    manager.create_topic("kept", 1)
    manager.log("gone", 0).append(build_batch([b"x"]))
    manager.close()
    # meta.json edited by hand to forget a topic, and folders the broker did not make:
    meta = json.loads((data_dir / META_FILE).read_text())
    del meta["topics"]["gone"]
    (data_dir / META_FILE).write_text(json.dumps(meta))
    (data_dir / "old-topic-delete").mkdir()
    (data_dir / "not-a-partition").mkdir()
    manager = open_manager(data_dir)
    names = {path.name for path in data_dir.iterdir() if path.is_dir()}
    assert names == {"kept-0", "not-a-partition", UNOWNED_DIR}
    assert {p.name for p in (data_dir / UNOWNED_DIR).iterdir()} == {"gone-0", "gone-1", "old-topic-delete"}
    assert any((data_dir / UNOWNED_DIR / "gone-0").glob("*.log"))
    assert [t.name for t in manager.topics()] == ["kept"]
    manager.close()


def test_flush_due_and_checkpoints(data_dir: Path) -> None:
    manager = open_manager(data_dir)
    manager.create_topic("timed", 1, {"flush.interval.ms": 1000})
    manager.create_topic("lazy", 1)
    manager.log("timed", 0).append(build_batch([b"a"]), now_ms=TS)
    manager.log("lazy", 0).append(build_batch([b"b"]), now_ms=TS)
    assert manager.flush_due(TS + 999) == 0
    assert manager.flush_due(TS + 1000) == 1
    assert manager.log("timed", 0).flushed_offset == 1
    assert manager.log("lazy", 0).flushed_offset == 0
    manager.write_checkpoints()
    assert (data_dir / "timed-0" / RECOVERY_CHECKPOINT).read_text().strip() == "1"
    assert (data_dir / "lazy-0" / RECOVERY_CHECKPOINT).read_text().strip() == "0"
    manager.flush()
    assert manager.log("lazy", 0).flushed_offset == 1
    manager.close()


def test_data_directory_holds_only_what_the_design_names(data_dir: Path) -> None:
    manager = open_manager(data_dir)
    manager.create_topic("t", 2)
    manager.log("t", 0).append(build_batch([b"x"]))
    replicated = manager.log("t", 1)
    replicated.append(build_batch([b"y"]), leader_epoch=3)
    replicated.set_high_watermark(1)
    manager.close()
    assert sorted(os.listdir(data_dir)) == [CLEAN_SHUTDOWN_MARKER, ".lock", META_FILE, "t-0", "t-1"]
    single_broker = [
        "00000000000000000000.index",
        "00000000000000000000.log",
        "00000000000000000000.timeindex",
        CHECKPOINT_NAME,
        "producer-state.json",
        RECOVERY_CHECKPOINT,
    ]
    assert sorted(os.listdir(data_dir / "t-0")) == single_broker
    assert sorted(os.listdir(data_dir / "t-1")) == sorted([*single_broker, HIGH_WATERMARK_FILE])
