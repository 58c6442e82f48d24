"""What TLS costs: `logstore perf produce` and `perf consume` (gRPC), and confluent-kafka producing and
consuming through the Kafka listener, over plaintext and over TLS, interleaved.

    .venv/bin/python -m logstore.bench.tls_cost [--runs 3] [--num-records 1000000] [--record-size 100]

Each run starts its own broker (`--own-broker`, and `--own-broker-tls` with a throwaway certificate for
the TLS runs), plaintext and TLS runs taking turns so a change in the machine's load falls on both, and
each going first in half of the rounds (the first of a pair ran slower here, on a loaded machine). One
round of each tool is run first and not counted (`--warmup`). Prints each run's records/s, then per tool
the medians and TLS as a share of plaintext (the issue's target: at least 0.70).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

TOOLS = ("produce", "consume", "kafka produce", "kafka consume")


def kafka_run(tls: bool, num_records: int, record_size: int) -> tuple[float, float]:
    """records/s of librdkafka producing then consuming ``num_records`` through the Kafka listener of a
    broker of its own (the same producer and consumer settings as `perf kafka-clients`)."""
    from logstore.bench.perf.common import own_broker
    from logstore.bench.perf.kafka_clients import consume_confluent, produce_confluent

    with own_broker(("--kafka-port", "0"), tls=tls) as target:
        assert target.kafka_address is not None
        ssl = (
            {"security.protocol": "SSL", "ssl.ca.location": target.client_options["ssl_cafile"]}
            if tls
            else {}
        )
        produced = produce_confluent(target.kafka_address, "tls-cost-kafka", num_records, record_size, ssl)
        consumed = consume_confluent(target.kafka_address, "tls-cost-kafka", num_records, ssl)
    return produced, consumed


def one_run(tool: str, tls: bool, num_records: int, record_size: int) -> float:
    """records/s of one `logstore perf TOOL` run against its own broker."""
    command = [
        sys.executable,
        "-m",
        "logstore.bench.cli",
        "perf",
        tool,
        "--own-broker",
        "--topic",
        f"tls-cost-{tool}",
        "--num-records",
        str(num_records),
        "--record-size",
        str(record_size),
        "--reporting-interval",
        "0",
        "--json",
    ]
    if tls:
        command.append("--own-broker-tls")
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr}")
    return float(json.loads(done.stdout.strip().splitlines()[-1])["records_per_s"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3, help="runs of each tool over each transport (3)")
    parser.add_argument("--num-records", type=int, default=1_000_000, help="records per run (1000000)")
    parser.add_argument("--record-size", type=int, default=100, help="bytes per record value (100)")
    parser.add_argument("--warmup", type=int, default=1, help="rounds run first and not counted (1)")
    args = parser.parse_args(argv)
    for _ in range(args.warmup):
        for tls in (False, True):
            for tool in TOOLS[:2]:
                one_run(tool, tls, args.num_records, args.record_size)
            kafka_run(tls, args.num_records, args.record_size)
    results: dict[tuple[str, bool], list[float]] = {
        (tool, tls): [] for tool in TOOLS for tls in (False, True)
    }
    for run in range(args.runs):
        for tool in (*TOOLS[:2], "kafka"):
            for tls in (False, True) if run % 2 == 0 else (True, False):
                if tool == "kafka":
                    rates = dict(
                        zip(TOOLS[2:], kafka_run(tls, args.num_records, args.record_size), strict=True)
                    )
                else:
                    rates = {tool: one_run(tool, tls, args.num_records, args.record_size)}
                for name, rate in rates.items():
                    results[name, tls].append(rate)
                    transport = "TLS" if tls else "plaintext"
                    print(f"run {run + 1} {name:13} {transport:9} {rate:12,.0f} records/s", flush=True)
    for tool in TOOLS:
        plain = statistics.median(results[tool, False])
        secure = statistics.median(results[tool, True])
        print(
            f"{tool}: median plaintext {plain:,.0f} records/s, TLS {secure:,.0f} records/s: "
            f"TLS = {secure / plain:.2f} of plaintext ({args.runs} runs each)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
