"""A disk that fails a write (ENOSPC, EMFILE, EIO) takes that one partition offline with a storage error,
as Kafka does with KAFKA_STORAGE_ERROR; the other partitions keep serving, and a restart recovers it."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest
from logstore.broker.embedded import EmbeddedBroker
from logstore.wire.logstore.v1 import common_pb2

from logstore.errors import PartitionOfflineError, StorageError
from logstore.manager import CLEAN_SHUTDOWN_MARKER, LogManager
from logstore.records import Record, build_batch, iter_records
from tests.conftest import Stubs

TS = 1_700_000_000_000
CONFIG = {"segment.bytes": 1024, "index.interval.bytes": 100}


def batch(value: bytes) -> bytes:
    return build_batch([Record(0, TS, value=value)])


def values(mgr: LogManager, partition: int) -> list[bytes | None]:
    """Every value in the partition (a read returns one segment's batches at most)."""
    log, offset = mgr.log("t", partition), 0
    found: list[bytes | None] = []
    while offset < log.log_end_offset:
        records = list(iter_records(log.read(offset, 1 << 30).data))
        found.extend(r.value for r in records)
        offset = records[-1].offset + 1
    return found


def in_partition_0(fd_or_path: Any) -> bool:
    path = os.readlink(f"/proc/self/fd/{fd_or_path}") if isinstance(fd_or_path, int) else str(fd_or_path)
    return f"{os.sep}t-0{os.sep}" in path


def fail(monkeypatch: pytest.MonkeyPatch, call: str, code: int) -> None:
    """Make `os.<call>` fail with `code` for partition t-0's files only."""
    real = getattr(os, call)

    def failing(target: Any, *args: Any, **kwargs: Any) -> Any:
        if in_partition_0(target):
            raise OSError(code, os.strerror(code))
        return real(target, *args, **kwargs)

    monkeypatch.setattr(os, call, failing)


FAULTS = {
    "append hits ENOSPC": ("pwritev", errno.ENOSPC, "append"),
    "roll hits EMFILE": ("open", errno.EMFILE, "append"),  # the append that rolls a segment opens files
    "fsync hits EIO": ("fsync", errno.EIO, "flush"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_failed_write_takes_only_that_partition_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    call, code, operation = FAULTS[fault]
    mgr = LogManager(tmp_path, background=False, clock_ms=lambda: TS)
    mgr.create_topic("t", 2, CONFIG)
    for partition in (0, 1):
        for i in range(5):
            mgr.log("t", partition).append(batch(b"acked %d" % i))
        mgr.log("t", partition).flush()
    with monkeypatch.context() as patch:
        fail(patch, call, code)
        t0 = mgr.log("t", 0)
        with pytest.raises(PartitionOfflineError, match=rf"t-0 is offline: .*{os.strerror(code)}"):
            if operation == "append":
                t0.append(batch(b"x" * 800))  # does not fit: rolls a new segment first
            else:
                t0.append(batch(b"not flushed"))
                t0.flush()
        mgr.log("t", 1).append(batch(b"other partition"))  # meanwhile, the others serve on
    # Once offline, the partition stays offline even if the disk recovers: nothing more is written.
    for attempt in (lambda: t0.append(batch(b"later")), lambda: t0.read(0, 100), t0.flush):
        with pytest.raises(StorageError, match="t-0 is offline"):
            attempt()
    assert values(mgr, 1)[-1] == b"other partition"
    mgr.run_retention()
    mgr.write_checkpoints()
    mgr.close()
    # An offline partition is left as the failure left it: the next start recovers it, keeping every
    # acknowledged record.
    assert not (tmp_path / CLEAN_SHUTDOWN_MARKER).exists()
    with LogManager(tmp_path, background=False, clock_ms=lambda: TS) as again:
        assert values(again, 0)[:5] == [b"acked %d" % i for i in range(5)]
        assert values(again, 1) == [*(b"acked %d" % i for i in range(5)), b"other partition"]
        again.log("t", 0).append(batch(b"after restart"))
        assert values(again, 0)[-1] == b"after restart"


def test_the_broker_answers_storage_error_for_an_offline_partition_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with EmbeddedBroker.on(tmp_path / "data") as broker:
        stubs = Stubs.connect(broker.address)
        try:
            stubs.create_topic("t", 2)
            with monkeypatch.context() as patch:
                fail(patch, "pwritev", errno.ENOSPC)
                failed = stubs.produce_one("t", 0, batch(b"lost"))
                assert failed.error_code == common_pb2.ERROR_CODE_STORAGE_ERROR  # before: UNKNOWN
                assert "t-0 is offline" in failed.error_message
                assert "No space left on device" in failed.error_message
                assert stubs.produce_one("t", 1, batch(b"kept")).error_code == common_pb2.ERROR_CODE_NONE
            later = stubs.produce_one("t", 0, batch(b"later"))
            assert later.error_code == common_pb2.ERROR_CODE_STORAGE_ERROR
            assert stubs.fetch_one("t", 0, 0).error_code == common_pb2.ERROR_CODE_STORAGE_ERROR
            assert stubs.values("t", 1) == [b"kept"]
        finally:
            stubs.channel.close()
