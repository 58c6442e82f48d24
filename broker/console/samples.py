"""A ring buffer of the broker's counters over the last 15 minutes, and the rates the charts draw from
it. Pure: the sampler hands in `now` and the counter totals; nothing here reads a clock or the broker.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

INTERVAL_S = 5.0
"""Seconds between samples (the page refreshes at the same pace)."""
WINDOW_S = 15 * 60.0
"""How far back the charts reach."""


@dataclass(frozen=True, slots=True)
class Sample:
    """Counter totals at one moment: broker-wide records and bytes in and out, each partition's log end
    offset ("topic", partition) and each consumer group's lag per partition (group -> {(topic, p): lag})."""

    at_s: float
    records_in: float
    records_out: float
    bytes_in: float
    bytes_out: float
    end_offsets: Mapping[tuple[str, int], int] = field(default_factory=dict)
    group_lag: Mapping[str, Mapping[tuple[str, int], int]] = field(default_factory=dict)


class Samples:
    """The last `WINDOW_S` of samples, oldest first. Not thread-safe: the event loop only."""

    def __init__(self, interval_s: float = INTERVAL_S, window_s: float = WINDOW_S) -> None:
        self.interval_s = interval_s
        self._samples: deque[Sample] = deque(maxlen=int(window_s / interval_s) + 1)

    def add(self, sample: Sample) -> None:
        self._samples.append(sample)

    def __len__(self) -> int:
        return len(self._samples)

    def broker_rates(self) -> list[dict[str, float]]:
        """Per second between each two samples: records and bytes in and out, stamped with the later
        sample's time (seconds since the epoch)."""
        rates = []
        for before, after in _pairs(self._samples):
            span = after.at_s - before.at_s
            rates.append(
                {
                    "t": after.at_s,
                    "records_in": _rate(before.records_in, after.records_in, span),
                    "records_out": _rate(before.records_out, after.records_out, span),
                    "bytes_in": _rate(before.bytes_in, after.bytes_in, span),
                    "bytes_out": _rate(before.bytes_out, after.bytes_out, span),
                }
            )
        return rates

    def write_rates(self, topic: str) -> list[dict[str, object]]:
        """Records appended per second to each partition of `topic` between each two samples."""
        rates: list[dict[str, object]] = []
        for before, after in _pairs(self._samples):
            span = after.at_s - before.at_s
            partitions = {
                str(p): _rate(before.end_offsets.get((t, p), end), end, span)
                for (t, p), end in after.end_offsets.items()
                if t == topic
            }
            if partitions:
                rates.append({"t": after.at_s, "partitions": partitions})
        return rates

    def lag_history(self, group_id: str) -> list[dict[str, float]]:
        """A consumer group's total lag (over its partitions) at each sample that knew the group."""
        return [
            {"t": sample.at_s, "lag": float(sum(sample.group_lag[group_id].values()))}
            for sample in self._samples
            if group_id in sample.group_lag
        ]


def _pairs(samples: deque[Sample]) -> list[tuple[Sample, Sample]]:
    ordered = list(samples)
    return [(a, b) for a, b in itertools.pairwise(ordered) if b.at_s > a.at_s]


def _rate(before: float, after: float, span_s: float) -> float:
    """Per second; a counter that went down (a deleted and re-created topic) counts from zero."""
    grown = after - before if after >= before else after
    return grown / span_s
