"""Record codec throughput: ours beside kafka-python's RecordBatch v2 codec, same input, same run.

Run: .venv/bin/python -m pytest bench/bench_codec.py --benchmark-enable --benchmark-only -p no:cacheprovider

Input: records of 100 random bytes, no key, no headers, uncompressed, in batches of ~16 KiB (148 records)
and ~1 MiB (9520 records). Each round handles one batch, so records/s = records per batch x OPS; the
summary printed at the end does that sum and gives each ratio to kafka-python.
- build: append every record (timestamp "now", read per record by both builders) and build the batch.
- read: decode the batch into a list of record objects with offset, timestamp, key and value
  (``decode_batch`` vs ``list(DefaultRecordBatch(...))``).
- stream: iterate the batch, touching each record's value and dropping it
  (``iter_records`` vs iterating ``DefaultRecordBatch``), as a consumer loop does.
Ours also checks the CRC while reading; kafka-python's reader does not unless asked.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import pytest
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

from logstore.records import BatchBuilder, check_batch, decode_batch, iter_records

VALUE_SIZE = 100
SIZES = {"16k": 16 * 1024, "1m": 1024 * 1024}
IMPLEMENTATIONS = ["logstore", "kafka-python"]

# (operation, size, implementation) -> records/s in the best and the median round
_results: dict[tuple[str, str, str], tuple[float, float]] = {}


def _records_per_batch(target_bytes: int, value: bytes) -> int:
    builder = BatchBuilder()
    while builder.size_in_bytes() + VALUE_SIZE + 10 <= target_bytes:
        builder.append(value)
    return builder.record_count


@pytest.fixture(scope="module")
def values() -> dict[str, list[bytes]]:
    value = random.Random(1).randbytes(VALUE_SIZE)
    return {size: [value] * _records_per_batch(target, value) for size, target in SIZES.items()}


@pytest.fixture(scope="module")
def batches(values: dict[str, list[bytes]]) -> dict[str, bytes]:
    built = {}
    for size, vals in values.items():
        builder = BatchBuilder()
        for v in vals:
            builder.append(v)
        built[size] = builder.build()
    return built


def _build_ours(vals: list[bytes]) -> bytes:
    builder = BatchBuilder()
    append = builder.append
    for v in vals:
        append(v)
    return builder.build()


def _build_kafka(vals: list[bytes]) -> bytes:
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=0,
        is_transactional=False,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 30,
    )
    append = builder.append
    for offset, v in enumerate(vals):
        append(offset, None, None, v, [])
    return builder.build()


def _read_ours(data: bytes) -> list:
    return decode_batch(data)


def _read_kafka(data: bytes) -> list:
    return list(DefaultRecordBatch(data))


def _stream_ours(data: bytes) -> int:
    total = 0
    for record in iter_records(data):
        total += len(record.value or b"")
    return total


def _stream_kafka(data: bytes) -> int:
    total = 0
    for record in DefaultRecordBatch(data):
        total += len(record.value)
    return total


BUILD: dict[str, Callable[[list[bytes]], bytes]] = {"logstore": _build_ours, "kafka-python": _build_kafka}
READ: dict[str, Callable[[bytes], object]] = {"logstore": _read_ours, "kafka-python": _read_kafka}
STREAM: dict[str, Callable[[bytes], object]] = {"logstore": _stream_ours, "kafka-python": _stream_kafka}


def _record(benchmark, operation: str, size: str, impl: str, records: int) -> None:
    stats = benchmark.stats.stats
    _results[(operation, size, impl)] = (records / stats.min, records / stats.median)
    benchmark.extra_info["records_per_batch"] = records
    benchmark.extra_info["records_per_s_best"] = round(records / stats.min)
    benchmark.extra_info["records_per_s_median"] = round(records / stats.median)


@pytest.fixture(scope="module", autouse=True)
def summary(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if not _results:
        return
    lines = ["", "codec records/s, best / median round, logstore vs kafka-python on the same input:"]
    for operation in ("build", "read", "stream"):
        for size in SIZES:
            ours = _results.get((operation, size, "logstore"))
            theirs = _results.get((operation, size, "kafka-python"))
            if ours and theirs:
                lines.append(
                    f"  {operation:6s} {size:>3s}: logstore {ours[0] / 1e6:4.2f} / {ours[1] / 1e6:4.2f} M/s  "
                    f"kafka-python {theirs[0] / 1e6:4.2f} / {theirs[1] / 1e6:4.2f} M/s  "
                    f"ratio {ours[0] / theirs[0]:4.2f} / {ours[1] / theirs[1]:4.2f}"
                )
    # printed past pytest's output capture, so it shows without -s (just above the benchmark table)
    with request.config.pluginmanager.getplugin("capturemanager").global_and_fixture_disabled():
        print("\n".join(lines))


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("size", list(SIZES))
def test_build(benchmark, values, size: str, impl: str) -> None:
    vals = values[size]
    data = benchmark(BUILD[impl], vals)
    assert check_batch(data).record_count == len(vals) and len(data) <= SIZES[size]
    _record(benchmark, "build", size, impl, len(vals))


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("size", list(SIZES))
def test_read(benchmark, batches, values, size: str, impl: str) -> None:
    records = benchmark(READ[impl], batches[size])
    assert len(records) == len(values[size]) and records[-1].value == values[size][-1]
    _record(benchmark, "read", size, impl, len(records))


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("size", list(SIZES))
def test_stream(benchmark, batches, values, size: str, impl: str) -> None:
    total = benchmark(STREAM[impl], batches[size])
    assert total == VALUE_SIZE * len(values[size])
    _record(benchmark, "stream", size, impl, len(values[size]))
