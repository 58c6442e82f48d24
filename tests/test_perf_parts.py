"""The perf tools' pure parts: percentiles, the summary line, sweep configs and their grids, and plots
being skipped without matplotlib."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
from logstore.bench.perf.plots import SKIPPED, write_plots
from logstore.bench.perf.progress import ProgressBar, StatusReporter
from logstore.bench.perf.stats import summarize, summary_line
from logstore.bench.perf.sweep import load_config


def test_percentiles_are_nearest_rank_of_the_sorted_samples() -> None:
    latency = summarize([ms * 1_000_000 for ms in range(1000, 0, -1)])  # 1..1000 ms, unsorted
    assert (latency.samples, latency.p50, latency.p95, latency.p99, latency.p999) == (
        1000,
        501,
        951,
        991,
        1000,
    )
    assert (latency.avg, latency.max) == (500.5, 1000)
    assert summarize([]).samples == 0


def test_summary_line_has_kafkas_shape() -> None:
    line = summary_line(1000, "sent", 0.5, 1000 * 100, summarize([2_000_000] * 10))
    assert line == (
        "1000 records sent, 2000.0 records/sec (0.19 MB/sec), 2.00 ms avg latency, 2.00 ms max latency, "
        "2.00 ms 50th, 2.00 ms 95th, 2.00 ms 99th, 2.00 ms 99.9th."
    )


def test_status_lines_cover_only_their_window() -> None:
    out = io.StringIO()
    reporter = StatusReporter("sent", 1.0, out)
    reporter.start(10.0)
    assert not reporter.due(10.5) and reporter.due(11.0)
    samples = [1_000_000, 3_000_000]
    reporter.report(11.0, 100, 10_000, samples)
    samples.append(10_000_000)
    reporter.report(13.0, 300, 30_000, samples)
    assert out.getvalue().splitlines() == [
        "100 records sent, 100.0 records/sec (0.01 MB/sec), 2.00 ms avg latency, 3.00 ms max latency.",
        "200 records sent, 100.0 records/sec (0.01 MB/sec), 10.00 ms avg latency, 10.00 ms max latency.",
    ]


def test_progress_bar_prints_a_line_per_update_off_a_terminal() -> None:
    out = io.StringIO()
    bar = ProgressBar(4, out, width=8)
    bar.update(1, "batch_size=16384")
    bar.update(4)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("[##......] 1/4 points, ") and lines[0].endswith(": batch_size=16384")
    assert lines[1].startswith("[########] 4/4 points, ")


def test_a_config_expands_to_every_combination_over_the_fixed_settings(tmp_path: Path) -> None:
    path = tmp_path / "grid.toml"
    path.write_text(
        '[sweep]\nnum_records = 10\n[fixed]\nacks = "all"\n[grid]\nbatch_size = [1, 2]\nlinger_ms = [0, 5, 9]\n'
    )
    config = load_config(path)
    points = config.points()
    assert (config.num_records, config.repeats, len(points)) == (10, 1, 6)
    assert points[0] == {"acks": "all", "batch_size": 1, "linger_ms": 0}
    assert points[-1] == {"acks": "all", "batch_size": 2, "linger_ms": 9}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[grid]\nbatch_sise = [1]\n", "[grid] has unknown keys ['batch_sise']; allowed: record_size,"),
        ("[grid]\nbatch_size = 5\n", "[grid] batch_size must be a non-empty list"),
        ("[fixed]\nacks = 1\n", "[grid] is empty"),
        ("[sweep]\nrepeats = 0\n[grid]\nacks = [1]\n", "[sweep] repeats must be a positive integer"),
        ("[swep]\n", "unknown tables ['swep']"),
        ("[grid\n", "not valid TOML"),
    ],
)
def test_a_bad_config_says_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=r"bad\.toml: ") as caught:
        load_config(path)
    assert message in str(caught.value)


def test_every_shipped_sweep_config_loads() -> None:
    sweeps = sorted((Path(__file__).resolve().parent.parent / "bench" / "sweeps").glob("*.toml"))
    assert len(sweeps) >= 2
    for path in sweeps:
        assert load_config(path).points()


def test_plots_are_skipped_with_a_clear_message_without_matplotlib(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` raise ImportError
    assert write_plots(tmp_path, [], ["batch_size"]) == SKIPPED
    assert "install logstore[bench]" in SKIPPED
    assert list(tmp_path.iterdir()) == []
