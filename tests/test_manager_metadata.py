"""The data directory's topic list: nothing is deleted that the broker did not decide to delete.

A missing or corrupt `meta.json` stops the start with a message (and `recover_metadata` rebuilds it);
folders no topic owns are moved aside; topics are created all or nothing and deleted through `-delete`
folders, so a crash or an I/O error at any step leaves a directory that starts and holds what it should.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from logstore import manager as manager_module
from logstore.config import TopicConfig
from logstore.errors import (
    InvalidPartitionCountError,
    LogStoreError,
    MetadataError,
    StorageError,
)
from logstore.manager import CLEAN_SHUTDOWN_MARKER, META_FILE, UNOWNED_DIR, LogManager
from logstore.records import build_batch, iter_records

TS = 1_700_000_000_000


def open_manager(data_dir: Path, **kwargs: Any) -> LogManager:
    kwargs.setdefault("default_config", TopicConfig(segment_bytes=64 * 1024))
    return LogManager(data_dir, background=False, clock_ms=lambda: TS, **kwargs)


def values(manager: LogManager, topic: str, partition: int) -> list[bytes | None]:
    return [r.value for r in iter_records(manager.log(topic, partition).read(0, 1 << 20).data)]


def folders(root: Path) -> set[str]:
    return {path.name for path in root.iterdir() if path.is_dir()}


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A directory with topics `orders` (3 partitions, one record in each) and `audit` (1), closed."""
    root = tmp_path / "data"
    with open_manager(root) as manager:
        manager.create_topic("orders", 3, {"retention.ms": "3600000"})
        manager.create_topic("audit", 1)
        for partition in range(3):
            manager.log("orders", partition).append(build_batch([f"o{partition}".encode()]))
        manager.log("audit", 0).append(build_batch([b"a0"]))
    return root


def meta(data_dir: Path) -> dict[str, Any]:
    return json.loads((data_dir / META_FILE).read_text())


# --- a missing meta.json ------------------------------------------------------------------------------


def test_a_missing_meta_json_beside_partition_folders_refuses_to_start_and_deletes_nothing(
    data_dir: Path,
) -> None:
    (data_dir / META_FILE).unlink()
    before = folders(data_dir)
    with pytest.raises(MetadataError) as refused:
        open_manager(data_dir)
    message = str(refused.value)
    assert META_FILE in message and "--recover-metadata" in message and "audit-0" in message
    assert folders(data_dir) == before
    assert any((data_dir / "orders-2").glob("*.log"))
    assert (data_dir / CLEAN_SHUTDOWN_MARKER).exists(), "a refused start changes nothing"
    # the refusal released the directory lock: the way out works at once
    with open_manager(data_dir, recover_metadata=True) as recovered:
        assert values(recovered, "orders", 2) == [b"o2"]


def test_a_fresh_or_foreign_only_directory_starts_without_meta_json(tmp_path: Path) -> None:
    (tmp_path / "data" / "not-a-partition").mkdir(parents=True)
    with open_manager(tmp_path / "data") as manager:
        assert manager.topics() == []
    assert (tmp_path / "data" / "not-a-partition").is_dir()


def test_recover_metadata_rebuilds_topics_from_the_folders_with_retention_off(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (data_dir / META_FILE).unlink()
    (data_dir / "audit-0").rename(data_dir / "audit-2")  # partitions 0 and 1 of audit have no folder
    caplog.set_level(logging.WARNING, logger="logstore.manager")
    with open_manager(
        data_dir, recover_metadata=True, recovered_configs={"audit": {"retention.ms": "5"}}
    ) as m:
        orders, audit = m.topic("orders"), m.topic("audit")
        assert (orders.partitions, audit.partitions) == (3, 3)
        assert [values(m, "orders", p) for p in range(3)] == [[b"o0"], [b"o1"], [b"o2"]]
        assert values(m, "audit", 2) == [b"a0"] and values(m, "audit", 0) == []
        # the real retention (1 h) is lost; the rebuilt topic keeps everything until it is set again
        assert (orders.config.retention_ms, orders.config.retention_bytes) == (-1, -1)
        assert orders.config.segment_bytes == 64 * 1024  # otherwise the broker's defaults
        assert audit.config.retention_ms == 5  # a config the caller knows
    assert sorted(meta(data_dir)["topics"]) == ["audit", "orders"]
    assert "rebuilt topic orders with 3 partitions" in caplog.text
    assert "partitions 0-1 had no folder" in caplog.text
    with open_manager(data_dir) as again:  # an ordinary start from here on
        assert values(again, "orders", 0) == [b"o0"]


def test_recover_metadata_sets_deletions_in_progress_aside(data_dir: Path) -> None:
    topic_id = meta(data_dir)["topics"]["audit"]["topic_id"]
    (data_dir / META_FILE).unlink()
    (data_dir / "audit-0").rename(data_dir / f"audit-0.{topic_id}-delete")
    with open_manager(data_dir, recover_metadata=True) as manager:
        assert [t.name for t in manager.topics()] == ["orders"]
    assert (data_dir / UNOWNED_DIR / f"audit-0.{topic_id}-delete").is_dir()


# --- folders no topic owns ----------------------------------------------------------------------------


def test_a_lowered_partition_count_and_foreign_folders_are_moved_aside_with_a_warning(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    document = meta(data_dir)
    document["topics"]["orders"]["partitions"] = 2  # lowered by hand
    (data_dir / META_FILE).write_text(json.dumps(document))
    (data_dir / "other-3").mkdir()
    (data_dir / "other-3" / "precious").write_bytes(b"someone's data")
    (data_dir / "x-delete").mkdir()  # a -delete folder the broker did not make
    caplog.set_level(logging.WARNING, logger="logstore.manager")
    with open_manager(data_dir) as manager:
        assert manager.topic("orders").partitions == 2
    aside = data_dir / UNOWNED_DIR
    assert folders(aside) == {"orders-2", "other-3", "x-delete"}
    assert (aside / "other-3" / "precious").read_bytes() == b"someone's data"
    assert any((aside / "orders-2").glob("*.log"))
    assert caplog.text.count("moved ") == 3 and "Nothing in it was deleted" in caplog.text
    # the same names again later get a free name instead of overwriting the first
    (data_dir / "other-3").mkdir()
    with open_manager(data_dir):
        pass
    assert folders(aside) == {"orders-2", "other-3", "other-3.1", "x-delete"}


def test_a_new_topic_moves_a_folder_already_holding_its_name_aside(tmp_path: Path) -> None:
    with open_manager(tmp_path / "data") as manager:
        (tmp_path / "data" / "late-0").mkdir()
        (tmp_path / "data" / "late-0" / "precious").write_bytes(b"x")
        manager.create_topic("late", 1)
        assert manager.log("late", 0).log_end_offset == 0
    assert (tmp_path / "data" / UNOWNED_DIR / "late-0" / "precious").read_bytes() == b"x"


# --- corrupt meta.json and unreadable partitions -------------------------------------------------------

GOOD_ENTRY = {"partitions": 1, "config": {}, "topic_id": "0" * 32}


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        (b"", "not valid JSON"),
        (b"\x00\xff garbage \xfe", "not valid JSON"),
        (b'{"version": 1, "topics": {"audit": {"parti', "not valid JSON"),
        (b"[]", "expected an object"),
        (b'{"topics": {}}', "version"),
        (b'{"version": 2, "topics": {}}', "version is 2"),
        (b'{"version": 1, "topics": []}', "'topics' must be an object"),
        (json.dumps({"version": 1, "topics": {"audit": 3}}).encode(), "entry must be an object"),
        (
            json.dumps({"version": 1, "topics": {"audit": {**GOOD_ENTRY, "partitions": "1"}}}).encode(),
            "'partitions'",
        ),
        (
            json.dumps({"version": 1, "topics": {"audit": {**GOOD_ENTRY, "partitions": 0}}}).encode(),
            "'partitions'",
        ),
        (json.dumps({"version": 1, "topics": {"audit": {**GOOD_ENTRY, "config": []}}}).encode(), "'config'"),
        (
            json.dumps({"version": 1, "topics": {"audit": {"partitions": 1, "config": {}}}}).encode(),
            "'topic_id'",
        ),
        (
            json.dumps(
                {"version": 1, "topics": {"audit": {**GOOD_ENTRY, "config": {"segment_bytes": "x"}}}}
            ).encode(),
            "segment.bytes must be a whole number",
        ),
        (
            json.dumps({"version": 1, "topics": {"audit": {**GOOD_ENTRY, "config": {"colour": 1}}}}).encode(),
            "unknown topic config",
        ),
        (json.dumps({"version": 1, "topics": {"../x": GOOD_ENTRY}}).encode(), "contains"),
    ],
)
def test_a_corrupt_meta_json_is_refused_with_a_message(
    data_dir: Path, content: bytes, complaint: str
) -> None:
    (data_dir / META_FILE).write_bytes(content)
    with pytest.raises(MetadataError) as refused:
        open_manager(data_dir)
    assert complaint in str(refused.value)
    assert str(data_dir / META_FILE) in str(refused.value) and "--recover-metadata" in str(refused.value)
    assert folders(data_dir) == {"orders-0", "orders-1", "orders-2", "audit-0"}
    assert (data_dir / CLEAN_SHUTDOWN_MARKER).exists(), "a refused start changes nothing"


def test_a_meta_json_that_is_a_folder_is_refused_with_a_message(data_dir: Path) -> None:
    (data_dir / META_FILE).unlink()
    (data_dir / META_FILE).mkdir()
    with pytest.raises(MetadataError, match=r"cannot read .*meta\.json"):
        open_manager(data_dir)


def test_a_segment_path_that_is_a_folder_is_refused_with_a_message(data_dir: Path) -> None:
    (segment,) = (data_dir / "audit-0").glob("*.log")
    stray = data_dir / "audit-0" / f"{int(segment.stem) + 100:020d}.log"
    stray.mkdir()
    with pytest.raises(LogStoreError) as refused:
        open_manager(data_dir)
    assert "audit-0" in str(refused.value)


# --- create and grow: all or nothing -------------------------------------------------------------------


class FailingLog:
    """Stands in for `Log` and fails like the real one under EMFILE once `fail_at` partitions are open."""

    def __init__(self, real: type, fail_at: int) -> None:
        self.real, self.fail_at, self.opened = real, fail_at, 0

    def __call__(self, directory: Path, *args: Any, **kwargs: Any) -> Any:
        if self.opened == self.fail_at:
            Path(directory).mkdir(parents=True, exist_ok=True)  # the real one has made its folder by then
            raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))
        self.opened += 1
        return self.real(directory, *args, **kwargs)


def test_a_create_that_fails_midway_leaves_nothing_behind(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = (data_dir / META_FILE).read_bytes()
    with open_manager(data_dir) as manager:
        monkeypatch.setattr(manager_module, "Log", FailingLog(manager_module.Log, fail_at=7))
        with pytest.raises(
            StorageError, match=r"opening partition 7 of 20 .*Too many open files.*nothing was created"
        ):
            manager.create_topic("big", 20)
        assert [t.name for t in manager.topics()] == ["audit", "orders"]
        assert not [name for name in folders(data_dir) if name.startswith("big")]
        assert (data_dir / META_FILE).read_bytes() == before
        monkeypatch.undo()
        manager.create_topic("big", 20)  # the name is free and nothing stands in the way
        manager.delete_topic("big")
    with open_manager(data_dir) as again:
        assert [t.name for t in again.topics()] == ["audit", "orders"]


def test_a_create_whose_meta_json_write_fails_leaves_nothing_behind(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(*args: Any) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with open_manager(data_dir) as manager:
        monkeypatch.setattr(manager_module, "write_json_atomic", disk_full)
        with pytest.raises(StorageError, match=r"writing .*meta\.json failed.*nothing was created"):
            manager.create_topic("big", 4)
        with pytest.raises(StorageError, match="nothing was added"):
            manager.add_partitions("orders", 5)
        assert [t.name for t in manager.topics()] == ["audit", "orders"]
        assert manager.topic("orders").partitions == 3
        assert folders(data_dir) == {"orders-0", "orders-1", "orders-2", "audit-0"}
        monkeypatch.undo()
        manager.log("orders", 2).append(build_batch([b"still fine"]))
    with open_manager(data_dir) as again:
        assert values(again, "orders", 2) == [b"o2", b"still fine"]


def test_growing_that_fails_midway_keeps_the_old_partitions_serving(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_manager(data_dir) as manager:
        monkeypatch.setattr(manager_module, "Log", FailingLog(manager_module.Log, fail_at=2))
        with pytest.raises(StorageError, match="nothing was created"):
            manager.add_partitions("orders", 8)
        monkeypatch.undo()
        assert manager.topic("orders").partitions == 3
        assert folders(data_dir) == {"orders-0", "orders-1", "orders-2", "audit-0"}
        manager.log("orders", 0).append(build_batch([b"more"]))
        assert manager.add_partitions("orders", 4).partitions == 4
    with open_manager(data_dir) as again:
        assert values(again, "orders", 0) == [b"o0", b"more"]


def test_the_partition_limit_is_the_managers_setting(tmp_path: Path) -> None:
    with open_manager(tmp_path / "data", max_partitions=4) as manager:
        with pytest.raises(InvalidPartitionCountError, match="between 1 and 4"):
            manager.create_topic("t", 5)
        manager.create_topic("t", 4)
        with pytest.raises(InvalidPartitionCountError, match="at most 4"):
            manager.add_partitions("t", 5)
        assert not (tmp_path / "data" / "t-4").exists()


# --- delete: rename to -delete, forget, remove ---------------------------------------------------------


def test_delete_renames_then_forgets_then_removes(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    topic_id = meta(data_dir)["topics"]["orders"]["topic_id"]
    seen: list[set[str]] = []
    real_write = manager_module.write_json_atomic

    def watch(path: Path, value: Any) -> None:
        seen.append(folders(data_dir))
        real_write(path, value)

    with open_manager(data_dir) as manager:
        monkeypatch.setattr(manager_module, "write_json_atomic", watch)
        manager.delete_topic("orders")
    # when meta.json forgot the topic, its folders were already renamed and still there
    assert seen == [{"audit-0", *(f"orders-{p}.{topic_id}-delete" for p in range(3))}]
    assert folders(data_dir) == {"audit-0"}


def test_a_delete_cut_short_before_meta_json_forgot_the_topic_is_undone_at_start(data_dir: Path) -> None:
    topic_id = meta(data_dir)["topics"]["orders"]["topic_id"]
    for partition in (0, 1):  # the crash came after two of the three renames
        (data_dir / f"orders-{partition}").rename(data_dir / f"orders-{partition}.{topic_id}-delete")
    with open_manager(data_dir) as manager:
        assert [values(manager, "orders", p) for p in range(3)] == [[b"o0"], [b"o1"], [b"o2"]]
    assert folders(data_dir) == {"orders-0", "orders-1", "orders-2", "audit-0"}


def test_a_delete_cut_short_after_meta_json_forgot_the_topic_is_finished_at_start(data_dir: Path) -> None:
    document = meta(data_dir)
    topic_id = document["topics"].pop("orders")["topic_id"]
    for partition in range(3):
        (data_dir / f"orders-{partition}").rename(data_dir / f"orders-{partition}.{topic_id}-delete")
    (data_dir / META_FILE).write_text(json.dumps(document))
    with open_manager(data_dir) as manager:
        assert [t.name for t in manager.topics()] == ["audit"]
    assert folders(data_dir) == {"audit-0"}


def test_a_delete_whose_meta_json_write_fails_keeps_the_topic(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def io_error(*args: Any) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    with open_manager(data_dir) as manager:
        monkeypatch.setattr(manager_module, "write_json_atomic", io_error)
        with pytest.raises(StorageError, match=r"could not delete topic .orders.*the topic is kept"):
            manager.delete_topic("orders")
        monkeypatch.undo()
        assert folders(data_dir) == {"orders-0", "orders-1", "orders-2", "audit-0"}
        manager.log("orders", 1).append(build_batch([b"after"]))
        assert values(manager, "orders", 1) == [b"o1", b"after"]
    with open_manager(data_dir) as again:
        assert values(again, "orders", 1) == [b"o1", b"after"]


EMFILE_CHILD = """
import json, resource, sys
from logstore.manager import LogManager
resource.setrlimit(resource.RLIMIT_NOFILE, (128, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
with LogManager(sys.argv[1], background=False) as manager:
    try:
        manager.create_topic("big", 300)
        outcome = "created"
    except Exception as exc:
        outcome = f"{type(exc).__name__}: {exc}"
    print(json.dumps({"outcome": outcome, "topics": [t.name for t in manager.topics()]}))
"""


def test_a_create_that_runs_out_of_descriptors_leaves_the_topic_whole_or_absent(data_dir: Path) -> None:
    """Real EMFILE, in a child process under a 128-descriptor limit: whatever the descriptor cost of a
    partition, the topic is afterwards complete or absent, and the directory starts."""
    child = subprocess.run(
        [sys.executable, "-c", EMFILE_CHILD, str(data_dir)], capture_output=True, text=True, timeout=300
    )
    assert child.returncode == 0, child.stderr
    report = json.loads(child.stdout)
    big = sorted(name for name in folders(data_dir) if name.startswith("big-"))
    listed = "big" in meta(data_dir)["topics"]
    if report["outcome"] == "created":
        assert report["topics"] == ["audit", "big", "orders"] and listed and len(big) == 300
    else:
        assert report["outcome"].startswith("StorageError") and "nothing was created" in report["outcome"]
        assert report["topics"] == ["audit", "orders"] and not listed and big == []
    with open_manager(data_dir) as again:
        assert values(again, "orders", 2) == [b"o2"]
        assert [t.name for t in again.topics()] == (
            ["audit", "big", "orders"] if listed else ["audit", "orders"]
        )
