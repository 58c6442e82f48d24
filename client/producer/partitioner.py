"""Choosing a partition for a record. Pure: no I/O, randomness injected.

Keyed records (the exact rule, for clients in other languages):

    partition = murmur3_x86_32(key_bytes, seed=0) interpreted as an unsigned 32-bit integer,
                modulo the topic's partition count

``murmur3_x86_32`` is Austin Appleby's MurmurHash3, 32-bit x86 variant, over the serialized key bytes
(after the key serializer), as in ``mmh3.hash(key, 0, signed=False)`` or Guava's
``Hashing.murmur3_32_fixed(0).hashBytes(key).asInt() & 0xFFFFFFFFL``. Examples: b"" -> 0,
b"hello" -> 613153351, b"The quick brown fox jumps over the lazy dog" -> 776992547 (0x2e4ff723).
(Apache Kafka's default partitioner uses murmur2 instead; logstore does not claim to place keys where
Kafka would.) Adding partitions to a topic changes where keys go from then on.

Keyless records use a sticky partition per topic: all of them go to one partition until the batch
being filled there completes (it is full, or linger expired and it was sent), then a different
partition is chosen at random. Batches stay large, and over time the load spreads evenly.
"""

from __future__ import annotations

import random

import mmh3

_hash = mmh3.hash


def key_partition(key: bytes, num_partitions: int) -> int:
    """The partition of a keyed record: unsigned murmur3_32 (seed 0) of the key bytes, mod the count."""
    return _hash(key, 0, False) % num_partitions


class StickyPartitioner:
    """The current partition for keyless records, per topic."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()
        self._current: dict[str, int] = {}

    def partition(self, topic: str, num_partitions: int) -> int:
        """The partition keyless records of ``topic`` go to now."""
        current = self._current.get(topic)
        if current is None or current >= num_partitions:
            current = self._current[topic] = self._rng.randrange(num_partitions)
        return current

    def on_new_batch(self, topic: str, num_partitions: int, previous: int) -> int:
        """The batch at ``previous`` completed: move keyless records to another partition (if there is one)."""
        if self._current.get(topic, previous) != previous:
            return self._current[topic]  # someone already moved on
        if num_partitions <= 1:
            chosen = 0
        else:
            chosen = self._rng.randrange(num_partitions - 1)
            if chosen >= previous:
                chosen += 1
        self._current[topic] = chosen
        return chosen
