"""How long one subscription regex takes against one topic name: Python's `re` (the old engine) beside
the RE2 program the broker now uses, for the catastrophic pattern ``(x+)+y`` on runs of x's.

    .venv/bin/python -m logstore.bench.regex_subscription

Each figure is the median of 5 runs, in milliseconds. `re` is only run up to 24 characters: it doubles
per character (26 would take seconds, the 249 of the longest topic name longer than the universe).

2026-12-02, 2 cores, other test runs on the machine:

| n | Python re, ms | RE2 (broker), ms |
|---|---|---|
| 16 | 2.9 | 0.0068 |
| 18 | 11.6 | 0.0090 |
| 20 | 46.8 | 0.0059 |
| 22 | 187.8 | 0.0065 |
| 24 | 758.0 | 0.0062 |
| 249 | - | 0.0145 |
| 5000 | - | 0.1981 |
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Callable

from logstore.broker.group_machine.subscription import Subscription

PATTERN = "(x+)+y"
RUNS = 5


def median_ms(match: Callable[[str], object], name: str) -> float:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        match(name)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    old = re.compile(PATTERN)
    new = Subscription.parse([], PATTERN)
    print(f"pattern {PATTERN!r}, topic name 'x' * n, median of {RUNS} runs")
    print("| n | Python re, ms | RE2 (broker), ms |")
    print("|---|---|---|")
    for n in (16, 18, 20, 22, 24, 249, 5000):
        name = "x" * n
        before = f"{median_ms(old.fullmatch, name):.1f}" if n <= 24 else "-"
        after = median_ms(lambda topic: new.resolve({topic: 1}), name)
        print(f"| {n} | {before} | {after:.4f} |")


if __name__ == "__main__":
    main()
