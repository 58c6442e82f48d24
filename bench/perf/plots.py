"""The sweep's two charts, drawn with matplotlib (the optional ``logstore[bench]`` extra).

- ``throughput_vs_batch_size.png``: records/s of the unthrottled runs against batch size (log scale),
  one line per linger_ms, one panel per combination of the other settings that vary;
- ``latency_vs_throughput.png``: p50, p99 and p99.9 latency against the records/s achieved, one colour
  per combination of the settings other than ``throughput`` (the knob that moves along the curve).
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

THROUGHPUT_PLOT = "throughput_vs_batch_size.png"
LATENCY_PLOT = "latency_vs_throughput.png"
MAX_PANELS = 12
SKIPPED = "plots skipped: install logstore[bench] (pip install -e '.[bench]') for matplotlib"


def write_plots(output: Path, summary: list[dict[str, Any]], varying: list[str]) -> str:
    """Draw both plots into ``output``; returns a line saying what was written (or why nothing was)."""
    try:
        import matplotlib
    except ImportError:
        return SKIPPED
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [point for point in summary if point["runs"]]
    if not done:
        return "plots skipped: no point of the sweep succeeded"
    written = []
    unthrottled = [point for point in done if point["settings"].get("throughput", -1) == -1]
    if unthrottled:
        _throughput_vs_batch_size(plt, output / THROUGHPUT_PLOT, unthrottled, varying)
        written.append(str(output / THROUGHPUT_PLOT))
    _latency_vs_throughput(plt, output / LATENCY_PLOT, done, varying)
    written.append(str(output / LATENCY_PLOT))
    return "plots: " + ", ".join(written)


def _label(settings: dict[str, Any], names: list[str]) -> str:
    return ", ".join(f"{name}={settings.get(name)}" for name in names) or "all points"


def _groups(points: list[dict[str, Any]], names: list[str]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for point in points:
        grouped[_label(point["settings"], names)].append(point)
    return grouped


def _throughput_vs_batch_size(plt: Any, path: Path, points: list[dict[str, Any]], varying: list[str]) -> None:
    panel_names = [name for name in varying if name not in ("batch_size", "linger_ms", "throughput")]
    panels = list(_groups(points, panel_names).items())[:MAX_PANELS]
    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(5.5 * columns, 4 * rows), squeeze=False)
    for axis, (title, members) in itertools.zip_longest(axes.flat, panels):
        if title is None:
            axis.set_visible(False)
            continue
        for linger, line in sorted(_groups(members, ["linger_ms"]).items()):
            line.sort(key=lambda p: p["settings"].get("batch_size", 16384))
            xs = [p["settings"].get("batch_size", 16384) for p in line]
            axis.plot(xs, [p["records_per_s"] for p in line], marker="o", label=linger)
        axis.set_xscale("log", base=2)
        axis.set_title(title, fontsize=9)
        axis.set_xlabel("batch_size (bytes)")
        axis.set_ylabel("records/s")
        axis.set_ylim(bottom=0)
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle("Producer throughput vs batch size, per linger_ms")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _latency_vs_throughput(plt: Any, path: Path, points: list[dict[str, Any]], varying: list[str]) -> None:
    series_names = [name for name in varying if name != "throughput"]
    figure, axis = plt.subplots(figsize=(8, 5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for number, (label, members) in enumerate(sorted(_groups(points, series_names).items())):
        members.sort(key=lambda p: p["records_per_s"])
        xs = [p["records_per_s"] for p in members]
        colour = colours[number % len(colours)]
        for percentile, style in (("p50", "-"), ("p99", "--"), ("p999", ":")):
            ys = [max(p["latency_ms"][percentile], 1e-3) for p in members]
            axis.plot(xs, ys, style, marker="o", markersize=3, color=colour, label=f"{percentile} {label}")
    axis.set_yscale("log")
    axis.set_xlabel("records/s achieved")
    axis.set_ylabel("latency, send() to acknowledgement (ms)")
    axis.set_title("Latency percentiles vs throughput (solid p50, dashed p99, dotted p99.9)")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=7, ncol=2 if len(points) > 6 else 1)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
