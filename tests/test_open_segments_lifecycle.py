"""Topics that go away (deleted, or a creation undone) leave nothing in the open-segment registry.

i9-meta made creation all or nothing and deletion a rename to `-delete`; i9-fds registers every segment
with open files in the manager's `OpenSegments`. A segment left registered after its topic is gone would
hold its descriptors (and a reference) until evicted, and count against the bound of the live ones.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest

import logstore.manager as manager_module
from logstore.config import TopicConfig
from logstore.errors import StorageError
from logstore.manager import LogManager
from logstore.records import build_batch
from tests.test_manager_metadata import FailingLog

TS = 1_700_000_000_000


def open_manager(data_dir: Path) -> LogManager:
    return LogManager(
        data_dir,
        background=False,
        clock_ms=lambda: TS,
        default_config=TopicConfig(segment_bytes=1024),
        max_open_segments=1000,
    )


def descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def registered(manager: LogManager) -> set[Any]:
    return set(manager.open_segments._order)


def fill(manager: LogManager, topic: str, partitions: int) -> None:
    """Roll a few segments in every partition, so each holds closed and active segments."""
    for partition in range(partitions):
        log = manager.log(topic, partition)
        for i in range(12):
            log.append(build_batch([bytes(200) + str(i).encode()]))
        assert len(log.segments) >= 3


def test_a_deleted_topic_leaves_no_segment_registered_and_no_descriptor_open(tmp_path: Path) -> None:
    with open_manager(tmp_path) as manager:
        manager.create_topic("kept", 1)
        fill(manager, "kept", 1)
        before, fds = registered(manager), descriptors()
        manager.create_topic("gone", 3)
        fill(manager, "gone", 3)
        assert len(registered(manager)) > len(before)
        manager.delete_topic("gone")
        assert registered(manager) == before
        assert descriptors() == fds


def test_an_undone_creation_leaves_no_segment_registered_and_no_descriptor_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_manager(tmp_path) as manager:
        manager.create_topic("kept", 1)
        before, fds = registered(manager), descriptors()
        monkeypatch.setattr(manager_module, "Log", FailingLog(manager_module.Log, fail_at=4))
        with pytest.raises(StorageError, match="nothing was created"):
            manager.create_topic("big", 10)
        monkeypatch.setattr(manager_module, "Log", FailingLog(manager_module.Log, fail_at=4))
        with pytest.raises(StorageError, match="nothing was created"):
            manager.add_partitions("kept", 10)
        monkeypatch.undo()
        assert registered(manager) == before
        assert descriptors() == fds


def test_a_failed_delete_keeps_only_the_reopened_segments_registered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def io_error(*args: Any) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    with open_manager(tmp_path) as manager:
        manager.create_topic("t", 2)
        fill(manager, "t", 2)
        old = {segment for p in range(2) for segment in manager.log("t", p).segments}
        fds = descriptors()
        monkeypatch.setattr(manager_module, "write_json_atomic", io_error)
        with pytest.raises(StorageError, match="the topic is kept"):
            manager.delete_topic("t")
        monkeypatch.undo()
        live = {segment for p in range(2) for segment in manager.log("t", p).segments}
        assert not registered(manager) & old  # the closed ones are forgotten
        assert registered(manager) <= live
        assert descriptors() <= fds
        manager.log("t", 1).append(build_batch([b"after"]))


def test_a_partition_whose_fsync_fails_while_its_topic_is_deleted_does_not_stop_the_delete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Closing a partition flushes it; an fsync that fails takes the partition offline (i9-fds) with a
    StorageError, not an OSError, so i9-meta's delete used to stop halfway: the partitions closed before
    it refused every call as closed, the topic stayed listed, and nothing was undone. The topic is going
    away anyway: the offline partition lets go of its files and the delete goes on."""
    from logstore.segment import LogSegment

    with open_manager(tmp_path) as manager:
        manager.create_topic("t", 3)
        fill(manager, "t", 3)
        failing = manager.log("t", 1).directory
        real_flush = LogSegment.flush

        def flush(segment: LogSegment) -> None:
            if segment.directory == failing:
                raise OSError(errno.EIO, os.strerror(errno.EIO))
            real_flush(segment)

        monkeypatch.setattr(LogSegment, "flush", flush)
        manager.delete_topic("t")
        monkeypatch.undo()
        assert [t.name for t in manager.topics()] == []
        assert not [p for p in tmp_path.iterdir() if p.name.startswith("t-")]
        assert len(manager.open_segments) == 0
    with open_manager(tmp_path) as again:
        assert [t.name for t in again.topics()] == []
