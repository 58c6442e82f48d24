"""Offset index lookups over the memory-mapped file, beside `bisect` on a plain list of the same offsets.

Run: .venv/bin/python -m pytest bench/bench_index.py --benchmark-enable -p no:cacheprovider

Each round does LOOKUPS lookups, so lookups/s = LOOKUPS * OPS in pytest-benchmark's table. The baseline
(`bisect.bisect_right` on a Python list held in memory) is the ceiling for a floor search from Python;
the index pays for reading its keys out of the map instead, in exchange for using no heap and
surviving restarts. Tail lookups (at or past the last entry, what a consumer that keeps up asks for) take
a shortcut and are measured separately. sanity_check, run on every segment at start-up, is measured on
300k entries (a 1 GB segment at one entry per 4 KB) beside merely decoding the same bytes.
"""

from __future__ import annotations

import bisect
import random
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from logstore.index import OffsetIndex

ENTRIES = 100_000
CHECKED_ENTRIES = 300_000
LOOKUPS = 10_000
BASE = 1_000_000


def _offsets(count: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    offsets, offset = [], BASE
    for _ in range(count):
        offsets.append(offset)
        offset += rng.randint(1, 60)
    return offsets


def _build(path: Path, offsets: list[int]) -> OffsetIndex:
    index = OffsetIndex(path, BASE, len(offsets) * OffsetIndex.ENTRY_SIZE)
    for n, offset in enumerate(offsets):
        index.append(offset, n * 4096)
    return index


@pytest.fixture(scope="module")
def offsets() -> list[int]:
    return _offsets(ENTRIES, seed=1)


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory, offsets: list[int]) -> Iterator[OffsetIndex]:
    built = _build(tmp_path_factory.mktemp("bench-index") / "lookup.index", offsets)
    yield built
    built.close()


@pytest.fixture(scope="module")
def targets(offsets: list[int]) -> list[int]:
    rng = random.Random(2)
    return [rng.randint(BASE - 10, offsets[-1] + 10) for _ in range(LOOKUPS)]


def test_lookup_random_index(benchmark, index: OffsetIndex, offsets: list[int], targets: list[int]) -> None:
    benchmark.group = f"floor lookup, {ENTRIES} entries, {LOOKUPS} lookups/round"
    benchmark.extra_info["lookups_per_round"] = LOOKUPS
    lookup = index.lookup

    def run() -> None:
        for target in targets:
            lookup(target)

    benchmark(run)
    for target in targets[:100]:  # the two sides of the comparison must give the same answers
        assert lookup(target)[0] == offsets[max(bisect.bisect_right(offsets, target) - 1, 0)]


def test_lookup_random_bisect_baseline(benchmark, offsets: list[int], targets: list[int]) -> None:
    benchmark.group = f"floor lookup, {ENTRIES} entries, {LOOKUPS} lookups/round"
    benchmark.extra_info["lookups_per_round"] = LOOKUPS
    bisect_right = bisect.bisect_right

    def run() -> None:
        for target in targets:
            bisect_right(offsets, target)

    benchmark(run)


def test_lookup_tail_index(benchmark, index: OffsetIndex, offsets: list[int]) -> None:
    benchmark.group = f"floor lookup, {ENTRIES} entries, {LOOKUPS} lookups/round"
    benchmark.extra_info["lookups_per_round"] = LOOKUPS
    lookup, tail = index.lookup, [offsets[-1] + n % 50 for n in range(LOOKUPS)]

    def run() -> None:
        for target in tail:
            lookup(target)

    benchmark(run)


@pytest.fixture(scope="module")
def checked_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OffsetIndex]:
    built = _build(tmp_path_factory.mktemp("bench-check") / "check.index", _offsets(CHECKED_ENTRIES, seed=3))
    yield built
    built.close()


def test_sanity_check_index(benchmark, checked_index: OffsetIndex) -> None:
    benchmark.group = f"sanity_check, {CHECKED_ENTRIES} entries"
    benchmark(checked_index.sanity_check, CHECKED_ENTRIES * 4096)


def test_sanity_check_decode_baseline(benchmark, checked_index: OffsetIndex) -> None:
    """Baseline: only decoding the same bytes into tuples with struct.iter_unpack, checking nothing."""
    benchmark.group = f"sanity_check, {CHECKED_ENTRIES} entries"
    raw = checked_index.path.read_bytes()[: CHECKED_ENTRIES * OffsetIndex.ENTRY_SIZE]
    benchmark(lambda: list(struct.iter_unpack(">II", raw)))
