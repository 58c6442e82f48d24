"""Latency samples, percentiles, and the Kafka-style summary and status lines.

Latencies are kept in nanoseconds (integers from ``time.perf_counter_ns``) and reported in
milliseconds. Percentiles use the nearest rank on the sorted samples, as Kafka's perf tools do
(``sorted[int(len * p)]``), so a reported p99 is a latency that some record really had.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

NS_PER_MS = 1_000_000
MB = 1024 * 1024
"""Kafka's perf tools divide by 2**20 and call it MB; we print the same unit so figures compare."""
PERCENTILES = (("p50", 0.50), ("p95", 0.95), ("p99", 0.99), ("p999", 0.999))


@dataclass(frozen=True)
class Latency:
    """Summary of latency samples, in milliseconds."""

    samples: int
    avg: float
    max: float
    p50: float
    p95: float
    p99: float
    p999: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def summarize(samples_ns: Sequence[int]) -> Latency:
    """Average, maximum and percentiles of ``samples_ns``; all zero when there are none."""
    if not samples_ns:
        return Latency(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    ordered = sorted(samples_ns)
    count = len(ordered)
    ranks = {
        name: ordered[min(count - 1, int(count * fraction))] / NS_PER_MS for name, fraction in PERCENTILES
    }
    return Latency(count, sum(ordered) / count / NS_PER_MS, ordered[-1] / NS_PER_MS, **ranks)


def rate(count: float, seconds: float) -> float:
    """``count`` per second, 0 for an empty interval (instead of dividing by zero)."""
    return count / seconds if seconds > 0 else 0.0


def summary_line(records: int, verb: str, seconds: float, nbytes: int, latency: Latency) -> str:
    """Kafka's ``ProducerPerformance`` final line, with percentiles to 0.01 ms (ours are often under 1 ms)."""
    return (
        f"{records} records {verb}, {rate(records, seconds):.1f} records/sec "
        f"({rate(nbytes, seconds) / MB:.2f} MB/sec), {latency.avg:.2f} ms avg latency, "
        f"{latency.max:.2f} ms max latency, {latency.p50:.2f} ms 50th, {latency.p95:.2f} ms 95th, "
        f"{latency.p99:.2f} ms 99th, {latency.p999:.2f} ms 99.9th."
    )


def status_line(records: int, verb: str, seconds: float, nbytes: int, latency: Latency | None) -> str:
    """Kafka's periodic status line for one reporting window (latency only if it was measured)."""
    line = f"{records} records {verb}, {rate(records, seconds):.1f} records/sec ({rate(nbytes, seconds) / MB:.2f} MB/sec)"
    if latency is not None and latency.samples:
        line += f", {latency.avg:.2f} ms avg latency, {latency.max:.2f} ms max latency"
    return line + "."
