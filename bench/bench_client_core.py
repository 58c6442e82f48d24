"""The producer's pure hot paths, each beside the bare operation it wraps, in the same run.

Run: .venv/bin/python -m pytest bench/bench_client_core.py --benchmark-enable --benchmark-only -p no:cacheprovider -s

- partitioner: ``key_partition`` (murmur3 of a 16-byte key, modulo 8) beside ``mmh3.hash`` alone, and
  the sticky partitioner's per-record lookup for keyless records;
- accumulator append: ``Accumulator.append`` of RECORDS 100-byte records into 1 MiB batches of one
  partition (keyless, and with 16-byte keys), beside ``BatchBuilder.append`` of the same records into
  builders of the same size: the difference is what the accumulator's bookkeeping (batch choice, size
  estimate, the future per record) costs on top of encoding.

The module prints ns per record (or per call) and each ratio to its baseline at the end.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import mmh3
import pytest
from logstore.client.producer.accumulator import RECORD_OVERHEAD, Accumulator
from logstore.client.producer.config import ProducerConfig
from logstore.client.producer.partitioner import StickyPartitioner, key_partition
from logstore.client.shared.backoff import Backoff

from logstore.records import BatchBuilder

RECORDS = 10_000
VALUE = b"v" * 100
KEYS = [os.urandom(16) for _ in range(1000)]
BATCH_BYTES = 1024 * 1024
TIMESTAMP_MS = 1_700_000_000_000
PARTITIONS = 8

_results: dict[str, float] = {}
"""ns per record or call, median round, by case."""
_BASELINES = {
    "key_partition": "mmh3.hash",
    "accumulator append, no key": "BatchBuilder.append, no key",
    "accumulator append, 16-byte key": "BatchBuilder.append, 16-byte key",
}


@pytest.fixture(scope="module", autouse=True)
def _summary() -> Iterator[None]:
    yield
    if not _results:
        return
    print(f"\n\nProducer hot paths, ns per record or call (median round of {RECORDS:,}):")
    for name, ns in _results.items():
        baseline = _BASELINES.get(name)
        ratio = f"  = {ns / _results[baseline]:5.2f} x {baseline}" if baseline in _results else ""
        print(f"  {name:36s} {ns:8.1f} ns{ratio}")


def _record(benchmark, name: str) -> None:
    ns = benchmark.stats.stats.median / RECORDS * 1e9
    _results[name] = ns
    benchmark.extra_info["ns_per_record"] = round(ns, 1)


def _keys() -> list[bytes]:
    return [KEYS[i % len(KEYS)] for i in range(RECORDS)]


# --- partitioner ----------------------------------------------------------------------------------------------


def test_mmh3_hash(benchmark) -> None:
    keys = _keys()
    hash_ = mmh3.hash

    def run() -> None:
        for key in keys:
            hash_(key, 0, False) % PARTITIONS

    benchmark.pedantic(run, rounds=20, warmup_rounds=2)
    _record(benchmark, "mmh3.hash")


def test_key_partition(benchmark) -> None:
    keys = _keys()

    def run() -> None:
        for key in keys:
            key_partition(key, PARTITIONS)

    benchmark.pedantic(run, rounds=20, warmup_rounds=2)
    _record(benchmark, "key_partition")


def test_sticky_partition(benchmark) -> None:
    sticky = StickyPartitioner()

    def run() -> None:
        partition = sticky.partition
        for _ in range(RECORDS):
            partition("t", PARTITIONS)

    benchmark.pedantic(run, rounds=20, warmup_rounds=2)
    _record(benchmark, "sticky partition (keyless)")


# --- accumulator append ---------------------------------------------------------------------------------------


def _builder_append(keys: list[bytes] | None) -> Callable[[], None]:
    def run() -> None:
        builder = BatchBuilder()
        limit = BATCH_BYTES
        for n in range(RECORDS):
            key = keys[n] if keys is not None else None
            size = RECORD_OVERHEAD + len(VALUE) + (len(key) if key is not None else 0)
            if builder.size_in_bytes() + size > limit:
                builder = BatchBuilder()
            builder.append(VALUE, key, (), TIMESTAMP_MS)

    return run


def _accumulator_append(keys: list[bytes] | None) -> Callable[[], None]:
    def run() -> None:
        accumulator = Accumulator(
            ProducerConfig(
                batch_size=BATCH_BYTES,
                linger_ms=5,
                buffer_memory=1 << 30,
                delivery_timeout_ms=120_000,
                max_request_size=BATCH_BYTES,
            ),
            Backoff(100, 1000),
        )
        append = accumulator.append
        if keys is None:
            for _ in range(RECORDS):
                append("t", 0, VALUE, None, (), TIMESTAMP_MS, 0.0)
        else:
            for key in keys:
                append("t", 0, VALUE, key, (), TIMESTAMP_MS, 0.0)

    return run


@pytest.mark.parametrize("keyed", [False, True], ids=["no-key", "key16"])
def test_builder_append(benchmark, keyed: bool) -> None:
    benchmark.pedantic(_builder_append(_keys() if keyed else None), rounds=20, warmup_rounds=2)
    _record(benchmark, f"BatchBuilder.append, {'16-byte key' if keyed else 'no key'}")


@pytest.mark.parametrize("keyed", [False, True], ids=["no-key", "key16"])
def test_accumulator_append(benchmark, keyed: bool) -> None:
    benchmark.pedantic(_accumulator_append(_keys() if keyed else None), rounds=20, warmup_rounds=2)
    _record(benchmark, f"accumulator append, {'16-byte key' if keyed else 'no key'}")
