"""A corrupt batch in a real broker's log, read through the consumer and the console tools (issue 9, item 1).

The bad batches are made on disk, the way corruption really arrives, so that no produce-path check can
refuse them first: garbage records under a valid CRC are written in place into a stopped broker's
segment, and a flipped byte (a CRC mismatch) into a running broker's segment, under its feet. Either
way the consumer must deliver offsets 0-2, stop at 3 with an error naming the partition and the offset
until it is told to seek past, then read 6-7.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from logstore.broker.embedded import EmbeddedBroker
from logstore.client import Admin, Consumer, TopicPartition
from logstore.client.shared.errors import CorruptRecordError

from logstore.records import Record, build_batch, crc32c, iter_headers
from tests.conftest import StartBroker, Stubs

TP = TopicPartition("ledger", 0)
LIMIT_S = 30.0


def produce_three_batches(stubs: Stubs) -> None:
    """Offsets 0-2, 3-5 (the batch that will go bad) and 6-7."""
    for values in ([b"a0", b"a1", b"a2"], [b"b3", b"b4", b"b5"], [b"c6", b"c7"]):
        result = stubs.produce_one(
            TP.topic, TP.partition, build_batch([Record(0, 1000, value=v) for v in values])
        )
        assert result.error_code == 0, result.error_message


def segment(broker: EmbeddedBroker) -> Path:
    return Path(broker.settings.data_dir) / f"{TP.topic}-{TP.partition}" / "00000000000000000000.log"


def spoil_second_batch(path: Path, *, keep_crc: bool) -> None:
    """Overwrite the records of the batch at offsets 3-5 in place (same length); ``keep_crc`` recomputes
    its CRC, as a buggy producer would have, so only decoding the records finds the damage."""
    with path.open("r+b") as file:
        data = bytearray(file.read(1 << 16))
        [(pos, header)] = [(p, h) for p, h in iter_headers(data) if h.base_offset == 3]
        end = pos + header.size
        if keep_crc:
            data[pos + 61 : end] = b"\xff" * (end - pos - 61)
            data[pos + 17 : pos + 21] = crc32c(memoryview(data)[pos + 21 : end]).to_bytes(4, "big")
        else:
            data[end - 3] ^= 0x55
        file.seek(pos)
        file.write(data[pos:end])


@dataclass(frozen=True)
class Met:
    """What a CorruptRecordError said (kept instead of the error: its traceback would hold the consumer)."""

    topic: str | None
    partition: int | None
    offset: int
    next_offset: int
    message: str


def read_through_the_bad_batch(address: str) -> tuple[list[bytes | None], list[Met]]:
    """Values read from offset 0 to the end; each corrupt batch is met twice (the position must stay),
    then skipped with a seek, as an application would."""
    values: list[bytes | None] = []
    errors: list[Met] = []
    with Consumer(bootstrap=address, auto_offset_reset="earliest") as consumer:
        consumer.assign([TP])
        end = consumer.end_offsets([TP])[TP]
        deadline = time.monotonic() + LIMIT_S
        while consumer.position(TP) < end:
            assert time.monotonic() < deadline, f"stuck at {consumer.position(TP)}: {values} {errors}"
            try:
                values += [r.value for r in consumer.poll(timeout_ms=1000).get(TP, [])]
            except CorruptRecordError as error:
                errors.append(Met(error.topic, error.partition, error.offset, error.next_offset, str(error)))
                assert consumer.position(TP) == error.offset, "the position stays at the bad batch"
                with pytest.raises(CorruptRecordError) as again:
                    while True:  # the error comes back on the next poll (a broker's answer may come first)
                        assert not consumer.poll(timeout_ms=1000), "no record past a corrupt batch"
                assert again.value.offset == error.offset
                del again  # no reference cycle through this frame
                consumer.seek(TP, error.next_offset if error.next_offset >= 0 else error.offset + 1)
    return values, errors


def logstore(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "logstore.bench.cli", *args], capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def stubs_for(connect: Callable[[EmbeddedBroker], Stubs]) -> Callable[[EmbeddedBroker], Stubs]:
    return connect


def test_garbage_records_under_a_valid_crc_in_a_stopped_brokers_segment(
    start_broker: StartBroker, stubs_for: Callable[[EmbeddedBroker], Stubs]
) -> None:
    broker = start_broker()
    with Admin(broker.address) as admin:
        admin.create_topic(TP.topic, 1)
    produce_three_batches(stubs_for(broker))
    broker.stop()
    spoil_second_batch(segment(broker), keep_crc=True)
    broker = start_broker()

    values, errors = read_through_the_bad_batch(broker.address)
    assert values == [b"a0", b"a1", b"a2", b"c6", b"c7"]
    [error] = errors
    assert (error.topic, error.partition, error.offset, error.next_offset) == (TP.topic, TP.partition, 3, 6)
    assert "ledger-0" in error.message and "offsets 3-5" in error.message

    at = ("--bootstrap", broker.address)
    stopped = logstore("consume", TP.topic, "--from-beginning", "--timeout-ms", "3000", *at)
    assert stopped.returncode == 1 and stopped.stdout == "a0\na1\na2\n"
    [line] = [x for x in stopped.stderr.splitlines() if x.startswith("logstore: error:")]
    assert "ledger-0" in line and "offset 3" in line and "--skip-corrupt" in line
    assert "Traceback" not in stopped.stderr

    skipped = logstore("consume", TP.topic, "--from-beginning", "--max-messages", "5", "--skip-corrupt", *at)
    assert skipped.returncode == 0, skipped.stderr
    assert skipped.stdout == "a0\na1\na2\nc6\nc7\n"
    assert "logstore: warning: ledger-0" in skipped.stderr and "skipping to offset 6" in skipped.stderr

    dumped = logstore("dump-log", str(segment(broker)))
    assert dumped.returncode == 1 and "Traceback" not in dumped.stderr
    assert dumped.stderr.count("\n") == 1 and "(offsets 3-5) is invalid" in dumped.stderr
    assert "| offset: 2 " in dumped.stdout and "| offset: 6 " not in dumped.stdout
    dumped = logstore("dump-log", str(segment(broker)), "--skip-corrupt")
    assert dumped.returncode == 1 and "Traceback" not in dumped.stderr
    assert "warning: " in dumped.stderr and "| offset: 7 " in dumped.stdout


def test_a_crc_mismatch_on_a_running_brokers_disk(
    broker: EmbeddedBroker, stubs_for: Callable[[EmbeddedBroker], Stubs]
) -> None:
    with Admin(broker.address) as admin:
        admin.create_topic(TP.topic, 1)
    produce_three_batches(stubs_for(broker))
    spoil_second_batch(segment(broker), keep_crc=False)

    values, errors = read_through_the_bad_batch(broker.address)
    assert values == [b"a0", b"a1", b"a2", b"c6", b"c7"]
    assert errors and all(e.topic == TP.topic and e.partition == TP.partition for e in errors)
    assert errors[0].offset == 3
    # Found by the client: "CRC mismatch", skipped in one seek. A broker that checks what it serves
    # answers CORRUPT_RECORD instead, offset by offset through the batch.
    assert "CRC mismatch" in errors[0].message or "cannot serve offset 3" in errors[0].message


def test_iterating_goes_on_after_the_application_seeks_past_a_corrupt_batch(
    broker: EmbeddedBroker, stubs_for: Callable[[EmbeddedBroker], Stubs]
) -> None:
    with Admin(broker.address) as admin:
        admin.create_topic(TP.topic, 1)
    produce_three_batches(stubs_for(broker))
    spoil_second_batch(segment(broker), keep_crc=False)
    seen: list[bytes | None] = []
    with Consumer(bootstrap=broker.address, auto_offset_reset="earliest") as consumer:
        consumer.assign([TP])
        deadline = time.monotonic() + LIMIT_S
        while b"c7" not in seen:
            assert time.monotonic() < deadline, f"iteration stopped for good after {seen}"
            try:
                for record in consumer:
                    seen.append(record.value)
                    if record.value == b"c7":
                        break
            except CorruptRecordError as error:
                consumer.seek(TP, error.next_offset if error.next_offset >= 0 else error.offset + 1)
    assert seen == [b"a0", b"a1", b"a2", b"c6", b"c7"]
