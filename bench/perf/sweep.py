"""``logstore perf sweep CONFIG``: run ``perf produce`` over a grid of settings and chart the results.

The config is a small TOML file (see ``bench/sweeps/``):

    [sweep]
    num_records = 200000      # per run
    repeats = 3               # runs per grid point; the results are their medians
    [fixed]                   # produce flags for every point
    record_size = 100
    [grid]                    # one point per combination
    batch_size = [16384, 262144, 1048576]
    linger_ms = [0, 5]
    acks = ["1", "all"]

Each run is a ``python -m logstore.bench.perf produce --json`` subprocess on a topic of its own, deleted after the
run: a fresh interpreter per run carries no heap, threads or buffers from the previous one, shares no GIL
with the sweep's bookkeeping, and a crash or hang costs one point (recorded as failed), not the sweep.
Starting it costs about half a second, outside the measured time.

Unless given ``--bootstrap``, the sweep starts its own broker (a child process on a temporary data
directory) and stops it at the end. It writes into ``--output``: ``results.csv`` and ``results.md``
(one row per point, medians), ``results.json`` (every run, the medians, the config, the machine),
``runs.log`` (the runs' stderr), and with matplotlib installed two plots (``logstore.bench.perf.plots``).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime
import itertools
import json
import statistics
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from logstore.bench.perf.common import machine, own_broker
from logstore.bench.perf.produce import ProduceSettings
from logstore.bench.perf.progress import ProgressBar
from logstore.client.console.common import add_bootstrap, bootstrap, friendly

PARAMETERS = (
    "record_size",
    "throughput",
    "batch_size",
    "linger_ms",
    "acks",
    "compression",
    "partitions",
    "key_cardinality",
    "key_size",
)
"""Grid and fixed keys: the flags of ``perf produce`` (with underscores)."""
DEFAULTS = {
    name: getattr(ProduceSettings, name, None) if name != "partitions" else "broker default"
    for name in PARAMETERS
}
"""What ``perf produce`` uses for a setting the config leaves out (shown in the CSV)."""
LATENCIES = ("avg", "p50", "p95", "p99", "p999", "max")
POINT_TIMEOUT_S = 600


@dataclass(frozen=True)
class SweepConfig:
    num_records: int
    repeats: int
    fixed: dict[str, Any]
    grid: dict[str, list[Any]]
    producer_props: dict[str, Any] = field(default_factory=dict)

    def points(self) -> list[dict[str, Any]]:
        """Every combination of the grid's values, merged over the fixed settings."""
        names = list(self.grid)
        return [
            {**self.fixed, **dict(zip(names, values, strict=True))}
            for values in itertools.product(*self.grid.values())
        ]


def load_config(path: Path) -> SweepConfig:
    """Read and check a sweep config; errors say which key is wrong and what is allowed."""
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from None
    unknown_tables = set(data) - {"sweep", "fixed", "grid", "producer_props"}
    if unknown_tables:
        raise ValueError(
            f"{path}: unknown tables {sorted(unknown_tables)}; allowed: sweep, fixed, grid, producer_props"
        )
    sweep = data.get("sweep", {})
    num_records = sweep.get("num_records", 100_000)
    repeats = sweep.get("repeats", 1)
    for name, value in (("num_records", num_records), ("repeats", repeats)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{path}: [sweep] {name} must be a positive integer, got {value!r}")
    fixed = data.get("fixed", {})
    grid = data.get("grid", {})
    for table, keys in (("fixed", fixed), ("grid", grid)):
        unknown = set(keys) - set(PARAMETERS)
        if unknown:
            raise ValueError(
                f"{path}: [{table}] has unknown keys {sorted(unknown)}; allowed: {', '.join(PARAMETERS)}"
            )
    for name, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ValueError(f"{path}: [grid] {name} must be a non-empty list of values, got {values!r}")
    if not grid:
        raise ValueError(f"{path}: [grid] is empty; give at least one setting with a list of values")
    return SweepConfig(num_records, repeats, fixed, grid, data.get("producer_props", {}))


def add_parser(subcommands: Any) -> None:
    parser = subcommands.add_parser(
        "sweep",
        help="run perf produce over a grid of settings; write CSV, JSON, markdown and plots",
        description="Run `perf produce` for every combination in a TOML grid (see bench/sweeps/) and write "
        "the medians as CSV, JSON and a markdown table, with plots when matplotlib is installed.",
    )
    parser.add_argument("config", type=Path, help="the grid, a TOML file")
    add_bootstrap(parser, security=False)
    parser.add_argument(
        "--output",
        type=Path,
        help="directory for the results (default: ./perf-sweep-<config>-<date and time>)",
    )
    parser.add_argument(
        "--point-timeout",
        type=float,
        default=POINT_TIMEOUT_S,
        help=f"seconds one run may take (default: {POINT_TIMEOUT_S})",
    )
    parser.set_defaults(handler=friendly(_run))


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    config = load_config(args.config)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    output = args.output or Path(f"perf-sweep-{args.config.stem}-{stamp}")
    output.mkdir(parents=True, exist_ok=True)
    if getattr(args, "bootstrap", None):
        summary = run_sweep(config, bootstrap(args), output, f"perf-sweep-{stamp}", args.point_timeout)
    else:
        with own_broker() as target:
            summary = run_sweep(config, target.address, output, "perf-sweep", args.point_timeout)
    config_text = args.config.read_text()
    write_results(output, config, summary, config_text)
    failed = sum(1 for point in summary if point["failed"])
    print(f"{len(summary)} points, {failed} failed; results in {output}/", file=sys.stderr)
    return 1 if failed else 0


def run_sweep(
    config: SweepConfig, address: str, output: Path, topic_prefix: str, point_timeout_s: float
) -> list[dict[str, Any]]:
    """Run every point ``config.repeats`` times; returns per point its settings, runs and medians."""
    from logstore.client import Admin

    points = config.points()
    bar = ProgressBar(len(points))
    bar.update(0)
    summary = []
    with (output / "runs.log").open("w") as log, Admin(address) as admin:
        for index, point in enumerate(points):
            runs = []
            errors = []
            for repeat in range(config.repeats):
                topic = f"{topic_prefix}-{index}-{repeat}"
                log.write(f"=== point {index} run {repeat}: {point}\n")
                log.flush()
                try:
                    runs.append(_run_point(config, point, address, topic, log, point_timeout_s))
                except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError) as exc:
                    errors.append(str(exc))
                    log.write(f"failed: {exc}\n")
                finally:
                    _delete_quietly(admin, topic)
            medians = _medians(runs)
            summary.append(
                {
                    "point": index,
                    "settings": point,
                    "runs": runs,
                    "errors": errors,
                    "failed": not runs or bool(errors),
                    **medians,
                }
            )
            label = " ".join(f"{k}={v}" for k, v in point.items() if k in config.grid)
            outcome = f"{medians['records_per_s']:,.0f} rec/s" if runs else "FAILED"
            bar.update(index + 1, f"{label} -> {outcome}")
    bar.finish()
    return summary


def _run_point(
    config: SweepConfig, point: dict[str, Any], address: str, topic: str, log: Any, timeout_s: float
) -> dict[str, Any]:
    command = [
        sys.executable, "-m", "logstore.bench.perf", "produce", "--json", "--reporting-interval", "0",
        "--bootstrap", address, "--topic", topic, "--num-records", str(config.num_records),
    ]  # fmt: skip
    for name, value in point.items():
        command += [f"--{name.replace('_', '-')}", str(value)]
    for name, value in config.producer_props.items():
        command += ["--producer-prop", f"{name}={value}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
    log.write(done.stderr)
    log.flush()
    if done.returncode != 0:
        last = done.stderr.strip().splitlines()[-1:] or ["(no output)"]
        raise RuntimeError(f"perf produce exited with {done.returncode}: {last[0]}")
    return json.loads(done.stdout)


def _delete_quietly(admin: Any, topic: str) -> None:
    from logstore.client.shared.errors import ClientError

    with contextlib.suppress(ClientError):  # never created (the run failed early): nothing to free
        admin.delete_topics([topic])


def _medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    if not runs:
        return {
            "records_per_s": 0.0,
            "mb_per_s": 0.0,
            "latency_ms": dict.fromkeys(LATENCIES, 0.0),
            "ratio_to_file_write": 0.0,
        }

    def median(get: Any) -> float:
        return statistics.median(get(run) for run in runs)

    return {
        "records_per_s": median(lambda r: r["records_per_s"]),
        "mb_per_s": median(lambda r: r["mb_per_s"]),
        "latency_ms": {name: median(lambda r, n=name: r["latency_ms"][n]) for name in LATENCIES},
        "ratio_to_file_write": median(lambda r: r["ratio_to_file_write"]),
        "write_ceiling_mb_per_s": median(lambda r: r["ceilings"]["write_mb_per_s"]),
        "grpc_p50_us": median(lambda r: r["ceilings"]["grpc_p50_us"]),
    }


# --- writing the results ----------------------------------------------------------------------------------


def write_results(output: Path, config: SweepConfig, summary: list[dict[str, Any]], config_text: str) -> None:
    columns = [*PARAMETERS]
    varying = list(config.grid)
    rows = [_row(point) for point in summary]
    with (output / "results.csv").open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=["point", *columns, *_METRICS, "repeats", "failed"])
        writer.writeheader()
        for point, row in zip(summary, rows, strict=True):
            settings = {name: point["settings"].get(name, DEFAULTS[name]) for name in columns}
            writer.writerow(
                {
                    "point": point["point"],
                    **settings,
                    **row,
                    "repeats": len(point["runs"]),
                    "failed": point["failed"],
                }
            )
    (output / "results.md").write_text(markdown_table(summary, varying, config))
    (output / "results.json").write_text(
        json.dumps(
            {
                "config": config_text,
                "num_records": config.num_records,
                "repeats": config.repeats,
                "machine": machine(),
                "points": summary,
            },
            indent=1,
            sort_keys=True,
        )
    )
    from logstore.bench.perf.plots import write_plots

    message = write_plots(output, summary, varying)
    print(message, file=sys.stderr)


_METRICS = {
    "records_per_s": lambda p: p["records_per_s"],
    "mb_per_s": lambda p: p["mb_per_s"],
    "latency_avg_ms": lambda p: p["latency_ms"]["avg"],
    "latency_p50_ms": lambda p: p["latency_ms"]["p50"],
    "latency_p95_ms": lambda p: p["latency_ms"]["p95"],
    "latency_p99_ms": lambda p: p["latency_ms"]["p99"],
    "latency_p999_ms": lambda p: p["latency_ms"]["p999"],
    "latency_max_ms": lambda p: p["latency_ms"]["max"],
    "ratio_to_file_write": lambda p: p["ratio_to_file_write"],
    "write_ceiling_mb_per_s": lambda p: p.get("write_ceiling_mb_per_s", 0.0),
    "grpc_p50_us": lambda p: p.get("grpc_p50_us", 0.0),
}


def _row(point: dict[str, Any]) -> dict[str, float]:
    return {name: round(get(point), 3) for name, get in _METRICS.items()}


def markdown_table(summary: list[dict[str, Any]], varying: list[str], config: SweepConfig) -> str:
    fixed = ", ".join(f"{k}={v}" for k, v in config.fixed.items()) or "none"
    lines = [
        f"{config.num_records} records per run, median of {config.repeats} run(s) per point; fixed: {fixed}.",
        "",
        "| "
        + " | ".join([*varying, "records/s", "MB/s", "p50 ms", "p99 ms", "p99.9 ms", "x file write"])
        + " |",
        "|" + "|".join(["---"] * (len(varying) + 6)) + "|",
    ]
    for point in summary:
        cells = [str(point["settings"].get(name, "")) for name in varying]
        if point["failed"] and not point["runs"]:
            cells += ["failed"] + [""] * 5
        else:
            latency = point["latency_ms"]
            cells += [
                f"{point['records_per_s']:,.0f}",
                f"{point['mb_per_s']:.1f}",
                f"{latency['p50']:.2f}",
                f"{latency['p99']:.2f}",
                f"{latency['p999']:.2f}",
                f"{point['ratio_to_file_write']:.3f}",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
