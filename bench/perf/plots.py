"""The sweep's two charts, drawn with matplotlib (the optional ``logstore[bench]`` extra).

Both draw one colour per linger_ms and one panel (at most 12) per combination of the other varying
settings that are not on an axis:

- ``throughput_vs_batch_size.png``: records/s of the unthrottled runs against batch size (log scale);
- ``latency_vs_throughput.png``: p50 (solid) and p99 (dashed) latency against the records/s achieved,
  one point per ``throughput`` target (a panel per batch size, too), so each curve shows what a rate
  costs in latency.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

THROUGHPUT_PLOT = "throughput_vs_batch_size.png"
LATENCY_PLOT = "latency_vs_throughput.png"
MAX_PANELS = 12
SKIPPED = "plots skipped: install logstore[bench] (pip install -e '.[bench]') for matplotlib"
DEFAULTS = {"batch_size": 16384, "linger_ms": 5, "throughput": -1}

Point = dict[str, Any]


def write_plots(output: Path, summary: list[Point], varying: list[str]) -> str:
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
    unthrottled = [point for point in done if _setting(point, "throughput") == -1]
    if unthrottled:
        panels = [name for name in varying if name not in ("batch_size", "linger_ms", "throughput")]
        _draw(plt, output / THROUGHPUT_PLOT, unthrottled, panels, _throughput_panel)
        written.append(str(output / THROUGHPUT_PLOT))
    panels = [name for name in varying if name not in ("linger_ms", "throughput")]
    _draw(plt, output / LATENCY_PLOT, done, panels, _latency_panel)
    written.append(str(output / LATENCY_PLOT))
    return "plots: " + ", ".join(written)


def _setting(point: Point, name: str) -> Any:
    return point["settings"].get(name, DEFAULTS.get(name))


def _groups(points: list[Point], names: list[str]) -> list[tuple[str, list[Point]]]:
    """Points grouped by their values of ``names``, in the order of those values (numbers numerically)."""
    grouped: dict[tuple[Any, ...], list[Point]] = {}
    for point in points:
        grouped.setdefault(tuple(_setting(point, name) for name in names), []).append(point)
    ordered = sorted(grouped.items(), key=lambda item: tuple((str(type(v)), v) for v in item[0]))
    return [
        (", ".join(f"{n}={v}" for n, v in zip(names, key, strict=True)), members) for key, members in ordered
    ]


def _draw(plt: Any, path: Path, points: list[Point], panel_names: list[str], panel: Any) -> None:
    panels = _groups(points, panel_names)[:MAX_PANELS]
    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(5.5 * columns, 4.2 * rows), squeeze=False)
    for axis, group in itertools.zip_longest(axes.flat, panels):
        if group is None:
            axis.set_visible(False)
            continue
        title, members = group
        panel(axis, members, plt.rcParams["axes.prop_cycle"].by_key()["color"])
        axis.set_title(title or "all points", fontsize=9)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=7)
    figure.suptitle(
        "Producer throughput vs batch size (unthrottled)"
        if panel is _throughput_panel
        else "Latency vs throughput: p50 solid, p99 dashed (send() to acknowledgement)"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _throughput_panel(axis: Any, points: list[Point], colours: list[str]) -> None:
    for number, (label, line) in enumerate(_groups(points, ["linger_ms"])):
        line.sort(key=lambda p: _setting(p, "batch_size"))
        xs = [_setting(p, "batch_size") for p in line]
        axis.plot(
            xs,
            [p["records_per_s"] for p in line],
            marker="o",
            color=colours[number % len(colours)],
            label=label,
        )
    axis.set_xscale("log", base=2)
    axis.set_xlabel("batch_size (bytes)")
    axis.set_ylabel("records/s")
    axis.set_ylim(bottom=0)
    axis.yaxis.set_major_formatter(_thousands())


def _latency_panel(axis: Any, points: list[Point], colours: list[str]) -> None:
    for number, (label, members) in enumerate(_groups(points, ["linger_ms"])):
        colour = colours[number % len(colours)]
        members.sort(key=lambda p: p["records_per_s"])
        xs = [p["records_per_s"] for p in members]
        for percentile, style in (("p50", "-"), ("p99", "--")):
            ys = [max(p["latency_ms"][percentile], 1e-3) for p in members]
            axis.plot(
                xs,
                ys,
                style,
                marker="o",
                markersize=3,
                color=colour,
                label=label if percentile == "p50" else None,
            )
    axis.set_yscale("log")
    axis.xaxis.set_major_formatter(_thousands())
    axis.set_xlabel("records/s achieved")
    axis.set_ylabel("latency (ms)")


def _thousands() -> Any:
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda value, _: f"{value / 1000:.0f}k")
