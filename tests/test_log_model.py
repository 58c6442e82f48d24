"""A hypothesis state machine drives one partition through random appends, reads, rolls, truncations,
retention runs and clean and unclean reopens, and checks it against a plain list of batches (the model)."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from logstore.errors import OffsetOutOfRangeError
from logstore.log import Log
from logstore.manager import LogManager
from logstore.records import Record, build_batch, check_batch, decode_batch, iter_headers

TS = 1_700_000_000_000
TOPIC = "model"

# One record: key (or None), value length, value byte, timestamp jitter.
records_strategy = st.lists(
    st.tuples(
        st.one_of(st.none(), st.binary(max_size=6)),
        st.integers(0, 1500),
        st.integers(0, 255),
        st.integers(-3000, 3000),
    ),
    min_size=1,
    max_size=6,
)


@dataclass(frozen=True)
class ModelRecord:
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True)
class ModelBatch:
    base: int
    last: int
    size: int
    records: tuple[ModelRecord, ...]


@pytest.fixture(autouse=True)
def no_fsync(monkeypatch: pytest.MonkeyPatch) -> None:
    """fsync only costs time here: the model checks logic, and a simulated crash keeps the page cache."""
    monkeypatch.setattr(os, "fsync", lambda fd: None)


def crash(mgr: LogManager) -> None:
    """Let go of a manager as a killed process would: no flush, no trim, no checkpoint, no marker."""
    for log in mgr.all_logs():
        for segment in log.segments:
            if segment._map is not None:
                segment._map.close()
            os.close(segment._fd)
            segment.offset_index._release()
            segment.time_index._release()
    mgr._release_data_dir()


class LogModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="log-model-"))
        self.batches: list[ModelBatch] = []
        self.start = 0
        self.clock = TS
        self.mgr: LogManager | None = None

    @initialize(
        segment_kib=st.sampled_from([4, 8, 16]),
        index_bytes=st.sampled_from([32, 96, 4096]),
        interval=st.sampled_from([0, 256, 4096]),
    )
    def open(self, segment_kib: int, index_bytes: int, interval: int) -> None:
        self.mgr = self._open_manager()
        self.mgr.create_topic(
            TOPIC,
            1,
            {
                "segment.bytes": segment_kib * 1024,
                "segment.index.bytes": index_bytes,
                "index.interval.bytes": interval,
                "max.message.bytes": 64 * 1024,
            },
        )

    def _open_manager(self) -> LogManager:
        return LogManager(self.directory, background=False, clock_ms=lambda: self.clock)

    @property
    def log(self) -> Log:
        assert self.mgr is not None
        return self.mgr.log(TOPIC, 0)

    @property
    def end(self) -> int:
        return self.batches[-1].last + 1 if self.batches else self.start

    def teardown(self) -> None:
        if self.mgr is not None:
            self.mgr.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    # --- rules --------------------------------------------------------------------------------------------

    @rule(batches=st.lists(records_strategy, min_size=1, max_size=3))
    def append(self, batches: list[list[tuple[bytes | None, int, int, int]]]) -> None:
        self.clock += 1000
        offset = self.end
        data = b""
        new = []
        for records in batches:
            model_records = tuple(
                ModelRecord(offset + i, self.clock + jitter, key, bytes([fill]) * size)
                for i, (key, size, fill, jitter) in enumerate(records)
            )
            encoded = build_batch([Record(0, r.timestamp, key=r.key, value=r.value) for r in model_records])
            new.append(ModelBatch(offset, offset + len(records) - 1, len(encoded), model_records))
            data += encoded
            offset += len(records)
        result = self.log.append(data)
        assert (result.base_offset, result.last_offset) == (new[0].base, new[-1].last)
        assert result.record_count == sum(len(b.records) for b in new)
        assert not result.duplicate
        self.batches.extend(new)

    @precondition(lambda self: self.batches)
    @rule(data=st.data(), max_bytes=st.integers(1, 40_000))
    def read(self, data: st.DataObject, max_bytes: int) -> None:
        offset = data.draw(st.integers(self.start, self.end), label="offset")
        self._check_read(offset, max_bytes)

    @rule(below=st.integers(1, 5), above=st.integers(1, 5))
    def read_out_of_range(self, below: int, above: int) -> None:
        for offset in (self.start - below, self.end + above):
            with pytest.raises(OffsetOutOfRangeError, match=f"valid offsets are {self.start} to {self.end}"):
                self.log.read(offset, 100)
        assert self.log.read(self.end, 100).data == b""

    @precondition(lambda self: self.batches)
    @rule(data=st.data())
    def offset_for_timestamp(self, data: st.DataObject) -> None:
        timestamps = [r.timestamp for b in self.batches for r in b.records]
        target = data.draw(st.integers(min(timestamps) - 10, max(timestamps) + 10), label="timestamp")
        first = next((r for b in self.batches for r in b.records if r.timestamp >= target), None)
        expected = None if first is None else (first.offset, first.timestamp)
        assert self.log.offset_for_timestamp(target) == expected

    @rule()
    def roll(self) -> None:
        self.log.roll()

    @precondition(lambda self: self.batches)
    @rule(data=st.data())
    def truncate(self, data: st.DataObject) -> None:
        offset = data.draw(st.integers(self.start, self.end), label="truncate_to")
        self.log.truncate_to(offset)
        # A batch holding any offset >= `offset` goes, whole.
        self.batches = [b for b in self.batches if b.last < offset]

    @rule(keep_bytes=st.integers(0, 40_000))
    def retention_by_size(self, keep_bytes: int) -> None:
        assert self.mgr is not None
        self.mgr.alter_config(TOPIC, {"retention.bytes": keep_bytes, "retention.ms": -1})
        size_before = self.log.size_in_bytes
        deleted = self.mgr.run_retention(self.clock)
        self.mgr.alter_config(TOPIC, {"retention.bytes": -1})
        new_start = self.log.log_start_offset
        assert new_start >= self.start
        if deleted:
            assert self.log.size_in_bytes >= keep_bytes
        else:
            assert new_start == self.start
            assert self.log.size_in_bytes == size_before
        # Only whole batches go, from the front: the new start is a batch boundary of the model.
        assert new_start == self.end or any(b.base == new_start for b in self.batches)
        self.batches = [b for b in self.batches if b.base >= new_start]
        self.start = new_start

    @rule()
    def reopen_cleanly(self) -> None:
        assert self.mgr is not None
        self.mgr.close()
        self.mgr = self._open_manager()
        assert self.mgr.clean_shutdown

    @rule(flush=st.booleans())
    def reopen_after_a_crash(self, flush: bool) -> None:
        assert self.mgr is not None
        if flush:
            self.log.flush()
            self.mgr.write_checkpoints()
        crash(self.mgr)
        self.mgr = None
        self.mgr = self._open_manager()
        assert not self.mgr.clean_shutdown
        assert self.mgr.recovery[0].truncated_bytes == 0  # nothing was torn: the page cache kept it all

    # --- invariants ---------------------------------------------------------------------------------------

    @invariant()
    def bounds_match_the_model(self) -> None:
        if self.mgr is None:
            return
        assert (self.log.log_start_offset, self.log.log_end_offset) == (self.start, self.end)
        assert self.log.size_in_bytes == sum(b.size for b in self.batches)

    @invariant()
    def whole_log_matches_the_model(self) -> None:
        """Walk the log from start to end the way a consumer does and compare every batch and record."""
        if self.mgr is None:
            return
        offset = self.start
        seen: list[int] = []
        while offset < self.end:
            batches = self._check_read(offset, 1 << 20)
            seen.extend(b.base for b in batches)
            offset = batches[-1].last + 1
        assert seen == [b.base for b in self.batches]

    # --- checking one read ----------------------------------------------------------------------------------

    def _check_read(self, offset: int, max_bytes: int) -> list[ModelBatch]:
        result = self.log.read(offset, max_bytes)
        assert (result.high_watermark, result.log_start_offset) == (self.end, self.start)
        if offset == self.end:
            assert result.data == b""
            return []
        index = next(i for i, b in enumerate(self.batches) if b.last >= offset)
        headers = list(iter_headers(result.data))
        assert headers, "a read below the end returns at least one batch"
        assert sum(h.size for _, h in headers) == len(result.data), "only whole batches"
        expected = self.batches[index : index + len(headers)]
        assert len(expected) == len(headers)
        for (position, header), batch in zip(headers, expected, strict=True):
            check_batch(result.data, position)
            assert (header.base_offset, header.last_offset, header.size) == (
                batch.base,
                batch.last,
                batch.size,
            )
            decoded = [
                ModelRecord(r.offset, r.timestamp, r.key, r.value)
                for r in decode_batch(result.data, position)
            ]
            assert tuple(decoded) == batch.records
        if len(headers) > 1:
            assert len(result.data) <= max_bytes
        following = index + len(headers)
        if following < len(self.batches):
            next_batch = self.batches[following]
            starts_a_segment = next_batch.base in {s.base_offset for s in self.log.segments}
            # A read stops early only at a segment boundary or because the next batch would not fit.
            assert starts_a_segment or len(result.data) + next_batch.size > max_bytes
        return expected


LogModel.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TestLogModel = LogModel.TestCase
