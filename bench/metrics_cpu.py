"""Broker CPU seconds for one produce run with metrics on (the default) and off (`--no-http`).

Throughput on a shared machine swings by a factor of two; the broker's own CPU time for the same work
swings less, so this is the finer A/B of what counting costs. Each round starts a fresh broker per side,
runs `logstore perf produce --bootstrap` against it, and reads the broker's user+system time from /proc;
the side that goes first alternates. Linux only.

    .venv/bin/python -m logstore.bench.metrics_cpu --rounds 10
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from logstore.broker.embedded import BrokerProcess

PRODUCE = ["--topic", "perf", "--num-records", "1000000", "--record-size", "100", "--partitions", "4"]
PRODUCE += ["--batch-size", "16384", "--linger-ms", "0", "--json"]


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process `pid` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_run(metrics: bool) -> float:
    with tempfile.TemporaryDirectory(prefix="logstore-metrics-cpu-") as work:
        args = [] if metrics else ["--no-http"]
        broker = BrokerProcess(Path(work) / "data", Path(work) / "broker.log", args=args)
        address = broker.start()
        try:
            assert broker.process is not None
            before = cpu_seconds(broker.process.pid)
            command = [sys.executable, "-m", "logstore.bench.cli", "perf", "produce", "--bootstrap", address]
            subprocess.run([*command, *PRODUCE], check=True, capture_output=True)
            return cpu_seconds(broker.process.pid) - before
        finally:
            broker.terminate()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6, help="pairs of runs, on and off (default 6)")
    rounds = parser.parse_args(argv).rounds
    seconds: dict[bool, list[float]] = {True: [], False: []}
    ratios = []
    for index in range(rounds):
        for metrics in (True, False) if index % 2 == 0 else (False, True):
            seconds[metrics].append(one_run(metrics))
        ratios.append(seconds[True][-1] / seconds[False][-1])
        print(f"round {index + 1}: on {seconds[True][-1]:.2f} s, off {seconds[False][-1]:.2f} s", flush=True)
    for metrics, values in seconds.items():
        label = "on " if metrics else "off"
        print(
            f"metrics {label}: broker CPU s per run {[round(v, 2) for v in values]}, median {statistics.median(values):.2f}"
        )
    print(f"on/off per round, median {statistics.median(ratios):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
