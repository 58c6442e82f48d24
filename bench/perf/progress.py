"""What a long run shows while it runs: Kafka-style status lines, and a text progress bar for sweeps.

Both write to stderr, so stdout carries only the result (the summary, or one JSON object with ``--json``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import TextIO

from logstore.bench.perf.stats import status_line, summarize


class StatusReporter:
    """Prints one status line per reporting window: records, rate and latency of that window only.

    The caller asks ``due(now)`` now and then (cheap: one comparison) and calls ``report`` when it is.
    """

    def __init__(self, verb: str, interval_s: float, stream: TextIO | None = None) -> None:
        self.verb = verb
        self.interval_s = interval_s
        self.stream = stream if stream is not None else sys.stderr
        self._window_start = 0.0
        self._next = float("inf")
        self._records = 0
        self._bytes = 0
        self._samples_seen = 0

    def start(self, now: float) -> None:
        self._window_start = now
        self._next = now + self.interval_s if self.interval_s > 0 else float("inf")

    def due(self, now: float) -> bool:
        return now >= self._next

    def report(self, now: float, records: int, nbytes: int, samples_ns: Sequence[int] | None = None) -> None:
        """Print the window that ends now; ``records``, ``nbytes`` and ``samples_ns`` are run totals."""
        latency = None
        if samples_ns is not None:
            end = len(samples_ns)
            latency = summarize(samples_ns[self._samples_seen : end])
            self._samples_seen = end
        line = status_line(
            records - self._records, self.verb, now - self._window_start, nbytes - self._bytes, latency
        )
        print(line, file=self.stream, flush=True)
        self._records, self._bytes = records, nbytes
        self.start(now)


class ProgressBar:
    """``[#######.......] 5/12 points, 1m02s elapsed, ~1m27s left: <label>`` on stderr.

    On a terminal the bar redraws in place; otherwise (a log file, CI) each update is its own line.
    """

    def __init__(self, total: int, stream: TextIO | None = None, width: int = 30) -> None:
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self._started = time.monotonic()
        self._in_place = bool(getattr(self.stream, "isatty", lambda: False)())

    def update(self, done: int, label: str = "") -> None:
        elapsed = time.monotonic() - self._started
        filled = self.width * done // self.total if self.total else self.width
        left = f", ~{_duration(elapsed / done * (self.total - done))} left" if 0 < done < self.total else ""
        text = f"[{'#' * filled}{'.' * (self.width - filled)}] {done}/{self.total} points, {_duration(elapsed)} elapsed{left}"
        if label:
            text += f": {label}"
        if self._in_place:
            self.stream.write(f"\r\x1b[K{text}")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self._in_place:
            self.stream.write("\n")
            self.stream.flush()


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds + 0.5), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
