"""Key partitioning (murmur3_32, seed 0, unsigned, mod n) and the sticky partitioner for keyless records."""

from __future__ import annotations

import random

import mmh3
import pytest
from logstore.client.producer.partitioner import StickyPartitioner, key_partition


def murmur3_32_reference(data: bytes, seed: int = 0) -> int:
    """MurmurHash3 x86_32 written out from the published algorithm: an oracle independent of mmh3."""
    c1, c2, mask = 0xCC9E2D51, 0x1B873593, 0xFFFFFFFF
    h = seed & mask
    whole = len(data) // 4 * 4
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * c1) & mask
        k = ((k << 15) | (k >> 17)) & mask
        k = (k * c2) & mask
        h ^= k
        h = ((h << 13) | (h >> 19)) & mask
        h = (h * 5 + 0xE6546B64) & mask
    tail = data[whole:]
    if tail:
        k = int.from_bytes(tail, "little")
        k = (k * c1) & mask
        k = ((k << 15) | (k >> 17)) & mask
        k = (k * c2) & mask
        h ^= k
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & mask
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & mask
    h ^= h >> 16
    return h


# Published MurmurHash3_x86_32 vectors (seed 0 unless noted), as unsigned 32-bit integers.
KNOWN_HASHES = [
    (b"", 0),
    (b"hello", 613153351),
    (b"The quick brown fox jumps over the lazy dog", 0x2E4FF723),
    (b"0123456789abcdef", 919068895),
]


@pytest.mark.parametrize(("key", "expected"), KNOWN_HASHES)
def test_known_murmur3_vectors(key: bytes, expected: int) -> None:
    assert murmur3_32_reference(key) == expected
    assert mmh3.hash(key, 0, signed=False) == expected


def test_reference_matches_the_seeded_vector() -> None:
    assert murmur3_32_reference(b"", seed=1) == 0x514E28B7


@pytest.mark.parametrize(
    ("key", "count", "expected"),
    [
        (b"hello", 8, 613153351 % 8),
        (b"The quick brown fox jumps over the lazy dog", 10, 0x2E4FF723 % 10),
        (b"", 5, 0),
        (b"0123456789abcdef", 3, 919068895 % 3),
    ],
)
def test_known_key_partitions(key: bytes, count: int, expected: int) -> None:
    assert key_partition(key, count) == expected


def test_key_partition_is_unsigned_murmur3_mod_count_for_many_keys() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        key = rng.randbytes(rng.randrange(0, 40))
        count = rng.randrange(1, 64)
        expected = murmur3_32_reference(key) % count
        assert key_partition(key, count) == expected
        assert 0 <= expected < count


def test_keys_whose_hash_has_the_top_bit_set_stay_in_range() -> None:
    negative_when_signed = next(k for k in (bytes([i]) for i in range(256)) if mmh3.hash(k, 0) < 0)
    assert key_partition(negative_when_signed, 7) == mmh3.hash(negative_when_signed, 0, signed=False) % 7


def test_sticky_partition_stays_until_its_batch_completes_then_moves() -> None:
    sticky = StickyPartitioner(random.Random(1))
    first = sticky.partition("t", 6)
    assert all(sticky.partition("t", 6) == first for _ in range(10))
    moved = sticky.on_new_batch("t", 6, first)
    assert moved != first and 0 <= moved < 6
    assert sticky.partition("t", 6) == moved


def test_sticky_move_by_a_second_thread_is_not_repeated() -> None:
    sticky = StickyPartitioner(random.Random(2))
    first = sticky.partition("t", 4)
    moved = sticky.on_new_batch("t", 4, first)
    assert sticky.on_new_batch("t", 4, first) == moved  # a stale "previous" does not move it again


def test_sticky_with_one_partition_and_spread_over_many() -> None:
    sticky = StickyPartitioner(random.Random(3))
    assert sticky.partition("one", 1) == 0
    assert sticky.on_new_batch("one", 1, 0) == 0
    seen = set()
    current = sticky.partition("many", 4)
    for _ in range(200):
        current = sticky.on_new_batch("many", 4, current)
        seen.add(current)
    assert seen == {0, 1, 2, 3}


def test_sticky_partition_follows_a_shrunken_count() -> None:
    sticky = StickyPartitioner(random.Random(4))
    sticky._current["t"] = 9
    assert 0 <= sticky.partition("t", 3) < 3
