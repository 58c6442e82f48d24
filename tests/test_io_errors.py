"""Every storage I/O error is wrapped once (`logstore.io_errors`, Kafka's `maybeHandleIOException`): the
client gets STORAGE_ERROR with the file named, never an internal error, and the other partitions serve on.

Faults are injected by making one `os` call fail with EIO for one partition's (or one file's) paths.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from logstore.broker.domain.groups.offset_store import OFFSETS_TOPIC
from logstore.broker.embedded import EmbeddedBroker
from logstore.broker.errors import ERROR_CODE_KEY
from logstore.wire.logstore.v1 import common_pb2, produce_pb2

from logstore.errors import PartitionOfflineError, StorageError
from logstore.io_errors import describe, io_errors
from logstore.manager import RECOVERY_CHECKPOINT, LogManager
from logstore.records import Record, build_batch, iter_records
from tests.conftest import GroupMember, Stubs, group_stub

TS = 1_700_000_000_000
EIO = os.strerror(errno.EIO)


def batch(value: bytes, key: bytes | None = None) -> bytes:
    return build_batch([Record(0, TS, key=key, value=value)])


def path_of(target: Any) -> str:
    return os.readlink(f"/proc/self/fd/{target}") if isinstance(target, int) else os.fsdecode(target)


def fail(patch: pytest.MonkeyPatch, call: str, where: Callable[[str], bool]) -> None:
    """Make `os.<call>` raise EIO (with no file name, as pwritev and fsync do) where `where(path)` holds."""
    real = getattr(os, call)

    def failing(target: Any, *args: Any, **kwargs: Any) -> Any:
        if where(path_of(target)):
            raise OSError(errno.EIO, EIO)
        return real(target, *args, **kwargs)

    patch.setattr(os, call, failing)


def in_dir(name: str) -> Callable[[str], bool]:
    return lambda path: f"{os.sep}{name}{os.sep}" in path


def values(log: Any) -> list[bytes | None]:
    found: list[bytes | None] = []
    offset = log.log_start_offset
    while offset < log.log_end_offset:
        records = list(iter_records(log.read(offset, 1 << 30).data))
        found.extend(r.value for r in records)
        offset = records[-1].offset + 1
    return found


# --- the wrapper ---------------------------------------------------------------------------------------


def test_the_wrapper_names_the_file_the_os_did_not() -> None:
    with pytest.raises(StorageError) as caught, io_errors("reading", Path("/data/t-0/0.log")):
        raise OSError(errno.EIO, EIO)
    assert str(caught.value) == f"reading /data/t-0/0.log failed: [Errno 5] EIO ({EIO})"
    assert isinstance(caught.value.__cause__, OSError)
    # The file the OS names itself (an open, a rename) wins over the caller's guess.
    named = OSError(errno.EACCES, "Permission denied", "/data/t-0/0.index")
    assert "/data/t-0/0.index failed: [Errno 13] EACCES" in describe(named, "opening", "/data/t-0")


# --- the engine: which failure takes a partition offline, which one is retriable -------------------------


@pytest.fixture
def manager(tmp_path: Path) -> Any:
    with LogManager(tmp_path, background=False, clock_ms=lambda: TS) as mgr:
        yield mgr


def fill(mgr: LogManager, topic: str, count: int = 6, keyed: bool = False) -> None:
    for partition in (0, 1):
        log = mgr.log(topic, partition)
        for i in range(count):
            log.append(batch(b"v%d" % i + b"." * 300, key=b"k" if keyed else None), now_ms=TS)
        log.flush()


def test_a_read_that_cannot_reopen_its_segment_is_a_retriable_storage_error(
    manager: LogManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager.create_topic("t", 2, {"segment.bytes": 1024})
    fill(manager, "t")
    t0 = manager.log("t", 0)
    first = t0.segments[0]
    assert first.release() and not first.files_open
    with monkeypatch.context() as patch:
        fail(patch, "open", in_dir("t-0"))
        with pytest.raises(StorageError) as caught:
            t0.read(0, 1 << 20)
        assert not isinstance(caught.value, PartitionOfflineError)
        assert str(first.log_path) in str(caught.value) and EIO in str(caught.value)
        assert len(values(manager.log("t", 1))) == 6  # the other partition serves on
    assert len(values(t0)) == 6  # nothing was lost: once the disk answers again, so does the read


def test_a_failed_retention_delete_takes_only_that_partition_offline(
    manager: LogManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager.create_topic("t", 2, {"segment.bytes": 1024, "retention.bytes": 1024})
    fill(manager, "t")
    with monkeypatch.context() as patch:
        fail(patch, "unlink", in_dir("t-0"))
        assert manager.run_retention(now_ms=TS) > 0  # t-1's segments went
    t0, t1 = manager.log("t", 0), manager.log("t", 1)
    assert t1.log_start_offset > 0 and t1.offline is None
    with pytest.raises(
        PartitionOfflineError, match=rf"t-0 is offline: deleting segment .*t-0.*\.log failed.*{EIO}"
    ):
        t0.append(batch(b"later"))


def test_a_failed_compaction_write_is_logged_and_changes_nothing(
    manager: LogManager, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    manager.create_topic("c", 2, {"segment.bytes": 1024, "cleanup.policy": "compact"})
    fill(manager, "c", keyed=True)
    with monkeypatch.context() as patch:
        fail(patch, "fsync", lambda path: path.endswith(".cleaned") and in_dir("c-0")(path))
        assert manager.run_compaction(now_ms=TS + 1) == 1  # c-1 was compacted
    assert "compaction of c-0 failed: writing the compacted copy" in caplog.text
    assert ".log.cleaned failed: [Errno 5] EIO" in caplog.text
    c0 = manager.log("c", 0)
    assert c0.offline is None and len(values(c0)) == 6  # untouched, still serving
    assert not list(c0.directory.glob("*.cleaned"))
    assert manager.run_compaction(now_ms=TS + 1) == 1  # and compacted once the disk answers


def test_a_failed_compaction_swap_takes_only_that_partition_offline(
    manager: LogManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager.create_topic("c", 2, {"segment.bytes": 1024, "cleanup.policy": "compact"})
    fill(manager, "c", keyed=True)
    with monkeypatch.context() as patch:
        fail(patch, "replace", in_dir("c-0"))
        assert manager.run_compaction(now_ms=TS + 1) == 1
    with pytest.raises(
        PartitionOfflineError, match=r"c-0 is offline: swapping in the compacted .*c-0.*\.log"
    ):
        manager.log("c", 0).read(0, 100)
    assert (values(manager.log("c", 1))[-1] or b"").startswith(b"v5")


def test_a_failed_checkpoint_write_takes_only_that_partition_offline(
    manager: LogManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager.create_topic("t", 2)
    fill(manager, "t")
    with monkeypatch.context() as patch:
        fail(patch, "open", lambda path: RECOVERY_CHECKPOINT in path and in_dir("t-0")(path))
        manager.write_checkpoints()
    assert (manager.log("t", 1).directory / RECOVERY_CHECKPOINT).read_text() == "6\n"
    with pytest.raises(
        PartitionOfflineError, match=rf"writing the recovery checkpoint .*t-0.*{RECOVERY_CHECKPOINT}"
    ):
        manager.log("t", 0).append(batch(b"later"))


def test_a_failed_config_change_is_a_storage_error_and_changes_nothing(
    manager: LogManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager.create_topic("t", 1, {"retention.ms": "1000"})
    with monkeypatch.context() as patch:
        fail(patch, "open", lambda path: "meta.json" in path)
        with pytest.raises(StorageError, match=rf"writing .*meta\.json failed: .*{EIO}.*nothing was changed"):
            manager.alter_config("t", {"retention.ms": "2000"})  # before: a bare OSError (INTERNAL)
    assert manager.topic("t").config.retention_ms == 1000


# --- the broker: STORAGE_ERROR with the file named, never INTERNAL / UNKNOWN ----------------------------


@pytest.fixture
def served(tmp_path: Path) -> Any:
    with EmbeddedBroker.on(tmp_path / "data") as broker:
        stubs = Stubs.connect(broker.address)
        try:
            yield broker, stubs
        finally:
            stubs.channel.close()


def manager_of(broker: EmbeddedBroker) -> LogManager:
    assert broker.server.core is not None
    return broker.server.core.manager


def error_code(error: grpc.RpcError) -> int:
    """The `ErrorCode` a failed call carries in its trailer."""
    metadata: Any = error.trailing_metadata() or ()  # (key, value) tuples; the stub calls them _Metadatum
    trailer = dict(metadata)
    return int(trailer[ERROR_CODE_KEY])


def produce_fails_with_storage_error(stubs: Stubs, topic: str, file_part: str) -> None:
    answer = stubs.produce_one(topic, 0, batch(b"later", key=b"k"))
    assert answer.error_code == common_pb2.ERROR_CODE_STORAGE_ERROR, answer
    assert file_part in answer.error_message and EIO in answer.error_message
    assert stubs.produce_one(topic, 1, batch(b"kept", key=b"k")).error_code == common_pb2.ERROR_CODE_NONE


def test_the_client_gets_storage_error_naming_the_file_for_a_failed_read(
    served: tuple[EmbeddedBroker, Stubs], monkeypatch: pytest.MonkeyPatch
) -> None:
    broker, stubs = served
    stubs.create_topic("t", 2, **{"segment.bytes": "1024"})
    for i in range(6):
        stubs.produce_one("t", 0, batch(b"v%d" % i + b"." * 300))
    first = manager_of(broker).log("t", 0).segments[0]
    assert broker.run(first.release)
    with monkeypatch.context() as patch:
        fail(patch, "open", in_dir("t-0"))
        answer = stubs.fetch_one("t", 0, 0)
        assert answer.error_code == common_pb2.ERROR_CODE_STORAGE_ERROR  # before: UNKNOWN for a bare OSError
        assert first.log_path.name in answer.error_message and EIO in answer.error_message
        assert stubs.produce_one("t", 1, batch(b"kept")).error_code == common_pb2.ERROR_CODE_NONE
    assert stubs.fetch_one("t", 0, 0).error_code == common_pb2.ERROR_CODE_NONE


@pytest.mark.parametrize("job", ["retention delete", "compaction", "checkpoint write"])
def test_the_client_gets_storage_error_after_a_failed_background_job(
    served: tuple[EmbeddedBroker, Stubs], monkeypatch: pytest.MonkeyPatch, job: str
) -> None:
    broker, stubs = served
    config = {"segment.bytes": "1024", "retention.bytes": "1024"}
    if job == "compaction":
        config = {"segment.bytes": "1024", "cleanup.policy": "compact"}
    stubs.create_topic("t", 2, **config)
    for partition in (0, 1):
        for i in range(6):
            stubs.produce_one("t", partition, batch(b"v%d" % i + b"." * 300, key=b"k"))
    manager = manager_of(broker)
    call, where, run, file_part = {
        "retention delete": ("unlink", in_dir("t-0"), manager.run_retention, ".log"),
        "compaction": ("replace", in_dir("t-0"), lambda: manager.run_compaction(now_ms=1 << 50), ".log"),
        "checkpoint write": (
            "open",
            lambda path: RECOVERY_CHECKPOINT in path and in_dir("t-0")(path),
            manager.write_checkpoints,
            RECOVERY_CHECKPOINT,
        ),
    }[job]
    with monkeypatch.context() as patch:
        fail(patch, call, where)
        broker.run(run)
    produce_fails_with_storage_error(stubs, "t", file_part)
    assert stubs.fetch_one("t", 0, 0).error_code == common_pb2.ERROR_CODE_STORAGE_ERROR


def test_the_client_gets_storage_error_naming_the_file_for_a_failed_offset_commit(
    served: tuple[EmbeddedBroker, Stubs], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, stubs = served
    stubs.create_topic("orders", 2)
    member = GroupMember(group_stub(stubs), "billing", ["orders"])
    assert member.heartbeat().error_code == common_pb2.ERROR_CODE_NONE
    with monkeypatch.context() as patch:
        fail(patch, "fsync", lambda path: f"{OFFSETS_TOPIC}-" in path)
        with pytest.raises(grpc.RpcError) as caught:
            member.commit({("orders", 0): 5})
    assert (
        error_code(caught.value) == common_pb2.ERROR_CODE_STORAGE_ERROR
    )  # in the trailer, as for every call
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    details = str(caught.value.details())
    assert f"{OFFSETS_TOPIC}-" in details and ".log" in details and EIO in details
    assert stubs.produce_one("orders", 0, batch(b"kept")).error_code == common_pb2.ERROR_CODE_NONE


def test_the_client_gets_storage_error_naming_the_file_for_a_failed_producer_id_reservation(
    served: tuple[EmbeddedBroker, Stubs], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, stubs = served
    with monkeypatch.context() as patch:
        fail(patch, "open", lambda path: "producer-ids.json" in path)
        with pytest.raises(grpc.RpcError) as caught:
            stubs.produce.InitProducerId(produce_pb2.InitProducerIdRequest())
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE  # before: INTERNAL
    assert error_code(caught.value) == common_pb2.ERROR_CODE_STORAGE_ERROR
    details = str(caught.value.details())
    assert "producer-ids.json" in details and EIO in details
    assert stubs.produce.InitProducerId(produce_pb2.InitProducerIdRequest()).producer_id >= 0
