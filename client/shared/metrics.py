"""Client-side counters, read through ``metrics()`` on the producers and consumers (kafka-python's
habit: ``{group: {name: value}}`` with its metric names, such as ``record-send-total`` and
``request-latency-avg``).

Totals and averages since the client started (no rate windows): a monitoring system that scrapes them
takes the rates itself. Counting costs one locked add per request or per batch, never per record.
"""

from __future__ import annotations

import threading


class Meter:
    """Named counts and observations (``-total``, ``-avg``, ``-max`` of each) of one client.

    Thread-safe: the client's threads (sender, fetcher, the application) count and read under one lock.
    """

    def __init__(self, group: str, totals: tuple[str, ...], observed: tuple[str, ...]) -> None:
        self.group = group
        self._lock = threading.Lock()
        self._totals = dict.fromkeys(totals, 0.0)
        self._observed = {name: [0, 0.0, 0.0] for name in observed}  # name -> [count, sum, max]

    def count(self, name: str, amount: float = 1) -> None:
        with self._lock:
            self._totals[name] += amount

    def observe(self, name: str, value: float) -> None:
        with self._lock:
            seen = self._observed[name]
            seen[0] += 1
            seen[1] += value
            if value > seen[2]:
                seen[2] = value

    def snapshot(self) -> dict[str, dict[str, float]]:
        """``{group: {name: value}}``: each total as ``NAME-total``, each observation's ``-avg`` and ``-max``
        (0 before the first)."""
        with self._lock:
            values = {f"{name}-total": total for name, total in self._totals.items()}
            for name, (count, total, most) in self._observed.items():
                values[f"{name}-avg"] = total / count if count else 0.0
                values[f"{name}-max"] = most
        return {self.group: values}


def producer_meter() -> Meter:
    """The producer's: records sent (acknowledged), retried and failed for good; requests, their latency
    in ms, and the size of each batch sent in bytes and records."""
    return Meter(
        "producer-metrics",
        totals=("record-send", "record-retry", "record-error", "request"),
        observed=("request-latency", "batch-size", "records-per-batch"),
    )


def consumer_meter() -> Meter:
    """The consumer's: Fetch calls, their failures and latency in ms; bytes and records fetched, and
    records handed to the application."""
    return Meter(
        "consumer-fetch-manager-metrics",
        totals=("fetch", "fetch-error", "bytes-fetched", "records-consumed"),
        observed=("fetch-latency", "fetch-size"),
    )
