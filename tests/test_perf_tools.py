"""Smoke runs of the perf tools against a real broker: each runs, exits 0 and reports sane, non-zero
figures (never a speed: that is what the tools are for, not what tests assert)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from logstore.bench.cli import main as logstore
from logstore.bench.perf.cli import main as perf
from logstore.broker.embedded import EmbeddedBroker

from tests.conftest import StartBroker

SWEEPS = Path(__file__).resolve().parent.parent / "bench" / "sweeps"
RECORDS = 2000


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert perf([*argv, "--json", "--reporting-interval", "0"]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def assert_sane_latency(latency: dict, samples: int) -> None:
    assert latency["samples"] == samples
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["p999"] <= latency["max"]
    assert 0 < latency["avg"] <= latency["max"]


def assert_sane_ceilings(ceilings: dict) -> None:
    assert ceilings["write_bytes"] > 0 and ceilings["write_mb_per_s"] > 0
    assert ceilings["grpc_calls"] > 0 and 0 < ceilings["grpc_p50_us"] <= ceilings["grpc_p99_us"]
    assert ceilings["tcp_trips"] > 0 and 0 < ceilings["tcp_p50_us"] <= ceilings["tcp_p99_us"]


def test_produce_reports_throughput_latency_and_ceilings(broker: EmbeddedBroker, capsys) -> None:
    result = run_json(
        capsys, "produce", "--bootstrap", broker.address, "--topic", "p", "--num-records", str(RECORDS)
    )
    assert result["records"] == RECORDS
    assert result["log_records"] == RECORDS  # the broker really holds every record
    assert result["errors"] == 0
    assert result["bytes"] == RECORDS * 100
    assert result["records_per_s"] > 0 and result["mb_per_s"] > 0
    assert_sane_latency(result["latency_ms"], RECORDS)  # small runs time every record
    assert_sane_ceilings(result["ceilings"])
    assert result["ratio_to_file_write"] > 0


def test_produce_keyed_acks_all_compressed_over_partitions(broker: EmbeddedBroker, capsys) -> None:
    result = run_json(
        capsys,
        "produce", "--bootstrap", broker.address, "--topic", "keyed", "--num-records", str(RECORDS),
        "--partitions", "4", "--key-cardinality", "100", "--acks", "all", "--compression", "zstd",
        "--batch-size", "4096", "--linger-ms", "1", "--throughput", "100000",
        "--producer-prop", "max_in_flight=3",
    )  # fmt: skip
    assert result["log_records"] == RECORDS and result["errors"] == 0
    assert result["settings"]["producer_props"] == {"max_in_flight": 3}
    assert result["ceilings"]["write_fsync"] is True
    assert_sane_latency(result["latency_ms"], RECORDS)


def test_produce_over_the_stream_and_over_unary_calls(broker: EmbeddedBroker, capsys) -> None:
    for flag, transport in (("--stream", "stream"), ("--unary", "unary")):
        result = run_json(
            capsys,
            "produce", "--bootstrap", broker.address, "--topic", f"via-{transport}", "--num-records",
            str(RECORDS), "--partitions", "2", "--batch-size", "4096", "--acks", "all", flag,
        )  # fmt: skip
        assert result["log_records"] == RECORDS and result["errors"] == 0
        assert result["settings"]["transport"] == transport
        assert_sane_latency(result["latency_ms"], RECORDS)


def test_produce_summary_is_kafkas_line_then_the_ceilings(broker: EmbeddedBroker, capsys) -> None:
    argv = ["perf", "produce", "--bootstrap", broker.address, "--topic", "lines", "--num-records", "500"]
    assert logstore(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4
    number = r"\d+\.\d+"
    assert re.fullmatch(
        rf"500 records sent, {number} records/sec \({number} MB/sec\), {number} ms avg latency, {number} ms max "
        rf"latency, {number} ms 50th, {number} ms 95th, {number} ms 99th, {number} ms 99.9th\.",
        lines[0],
    ), lines[0]
    assert lines[1].startswith("ceiling: plain sequential write of 1048576 bytes")
    assert "this run = " in lines[1]
    assert lines[2].startswith("ceiling: empty gRPC call") and "round trips" in lines[2]
    assert lines[3].startswith("ceiling: loopback TCP round trip between two processes")


def test_produce_refuses_a_topic_with_another_partition_count(broker: EmbeddedBroker, capsys) -> None:
    run_json(
        capsys,
        "produce",
        "--bootstrap",
        broker.address,
        "--topic",
        "two",
        "--num-records",
        "10",
        "--partitions",
        "2",
    )
    code = perf(
        [
            "produce",
            "--bootstrap",
            broker.address,
            "--topic",
            "two",
            "--num-records",
            "10",
            "--partitions",
            "3",
        ]
    )
    assert code == 1
    assert "already exists with 2 partitions, not the 3 asked for" in capsys.readouterr().err


def test_consume_reads_what_produce_wrote(broker: EmbeddedBroker, capsys) -> None:
    run_json(
        capsys,
        "produce",
        "--bootstrap",
        broker.address,
        "--topic",
        "c",
        "--num-records",
        str(RECORDS),
        "--partitions",
        "3",
    )
    result = run_json(
        capsys, "consume", "--bootstrap", broker.address, "--topic", "c", "--num-records", str(RECORDS)
    )
    assert result["records"] == RECORDS
    assert result["bytes"] == RECORDS * 100
    assert result["records_per_s"] > 0 and result["mb_per_s"] > 0 and result["records_per_s_after_first"] > 0
    assert 0 < result["first_record_ms"] < result["seconds"] * 1000
    assert_sane_ceilings(result["ceilings"])


def test_consume_through_a_group(broker: EmbeddedBroker, capsys) -> None:
    run_json(
        capsys,
        "produce",
        "--bootstrap",
        broker.address,
        "--topic",
        "g",
        "--num-records",
        str(RECORDS),
        "--partitions",
        "3",
    )
    result = run_json(
        capsys,
        "consume",
        "--bootstrap",
        broker.address,
        "--topic",
        "g",
        "--num-records",
        str(RECORDS),
        "--group",
        "perf",
    )
    assert result["settings"]["group"] == "perf"
    assert result["records"] == RECORDS and result["bytes"] == RECORDS * 100
    assert 0 < result["first_record_ms"] < result["seconds"] * 1000


def test_consume_prefills_and_fails_plainly_when_records_are_missing(broker: EmbeddedBroker, capsys) -> None:
    result = run_json(
        capsys,
        "consume",
        "--bootstrap",
        broker.address,
        "--topic",
        "pre",
        "--num-records",
        "300",
        "--prefill",
        "--record-size",
        "10",
    )
    assert result["records"] == 300 and result["bytes"] == 3000
    code = perf(
        [
            "consume",
            "--bootstrap",
            broker.address,
            "--topic",
            "pre",
            "--num-records",
            "301",
            "--timeout-ms",
            "200",
        ]
    )
    assert code == 1
    assert "only 300 of 301 records of 'pre' arrived" in capsys.readouterr().err


def test_e2e_times_each_record_over_fetch_and_push(broker: EmbeddedBroker, capsys) -> None:
    result = run_json(
        capsys,
        "e2e",
        "--bootstrap",
        broker.address,
        "--topic",
        "e",
        "--num-records",
        "200",
        "--warmup-records",
        "5",
    )
    assert set(result["latency_ms"]) == {"fetch", "push"}
    for latency in result["latency_ms"].values():
        assert_sane_latency(latency, 200)
    assert all(ratio > 0 for ratio in result["p50_in_round_trips"].values())
    assert_sane_ceilings(result["ceilings"])


def test_e2e_at_a_fixed_rate_over_one_mode(broker: EmbeddedBroker, capsys) -> None:
    result = run_json(
        capsys,
        "e2e",
        "--bootstrap",
        broker.address,
        "--topic",
        "r",
        "--num-records",
        "50",
        "--rate",
        "500",
        "--mode",
        "push",
    )
    assert set(result["latency_ms"]) == {"push"}
    assert_sane_latency(result["latency_ms"]["push"], 50)


def test_sweep_writes_csv_json_markdown_and_plots_if_it_can(
    broker: EmbeddedBroker, tmp_path: Path, capsys
) -> None:
    output = tmp_path / "sweep"
    code = perf(["sweep", str(SWEEPS / "smoke.toml"), "--bootstrap", broker.address, "--output", str(output)])
    err = capsys.readouterr().err
    assert code == 0, (err, (output / "runs.log").read_text())
    assert "2/2 points" in err
    rows = (output / "results.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[0].startswith("point,record_size,")
    assert [row.split(",")[3] for row in rows[1:]] == ["16384", "65536"]  # the batch_size column
    summary = json.loads((output / "results.json").read_text())
    assert len(summary["points"]) == 2
    for point in summary["points"]:
        assert not point["failed"] and point["records_per_s"] > 0
        assert point["runs"][0]["log_records"] == 2000
    table = (output / "results.md").read_text().splitlines()
    assert table[2].startswith("| batch_size | records/s |") and len(table) == 6
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "plots skipped: install logstore[bench]" in err
    else:
        for name in ("throughput_vs_batch_size.png", "latency_vs_throughput.png"):
            assert (output / name).read_bytes().startswith(b"\x89PNG")


def test_kafka_clients_measures_each_client_beside_grpc(start_broker: StartBroker, capsys) -> None:
    broker = start_broker(kafka_port=0)
    result = run_json(
        capsys,
        "kafka-clients",
        "--bootstrap",
        broker.address,
        "--kafka-bootstrap",
        broker.kafka_address,
        "--num-records",
        "3000",
        "--python-records",
        "500",
        "--e2e-records",
        "50",
        "--runs",
        "2",
    )
    assert len(result["runs"]) == 2
    for figures in result["runs"]:
        assert set(figures) == {
            "produce_confluent",
            "produce_kafka_python",
            "produce_aiokafka",
            "produce_grpc",
            "consume_confluent",
            "consume_confluent_tuned",
            "consume_grpc",
            "e2e_confluent_p50_us",
            "e2e_confluent_p99_us",
            "e2e_grpc_p50_us",
            "e2e_grpc_p99_us",
            "tcp_round_trip_p50_us",
            "tcp_round_trip_p99_us",
        }
        assert all(value > 0 for value in figures.values())
        assert figures["tcp_round_trip_p50_us"] <= figures["tcp_round_trip_p99_us"]
        assert figures["e2e_confluent_p50_us"] <= figures["e2e_confluent_p99_us"]
    assert set(result["median"]) == set(result["runs"][0])


def test_publish_records_sends_plain_records_from_a_raw_stub(broker: EmbeddedBroker, capsys) -> None:
    result = run_json(
        capsys,
        "publish-records", "--bootstrap", broker.address, "--topic", "plain", "--num-records", "2500",
        "--records-per-call", "1000", "--partitions", "3", "--key-cardinality", "50",
    )  # fmt: skip
    assert result["records"] == 2500 and result["calls"] == 3
    assert result["log_records"] == 2500  # the broker really holds every record
    assert result["errors"] == 0 and result["first_error"] is None
    assert result["bytes"] == 2500 * 100
    assert result["records_per_s"] > 0 and result["mb_per_s"] > 0
    assert_sane_latency(result["call_latency_ms"], 3)
    assert_sane_ceilings(result["ceilings"])


def test_publish_records_summary_line(broker: EmbeddedBroker, capsys) -> None:
    argv = [
        "perf",
        "publish-records",
        "--bootstrap",
        broker.address,
        "--topic",
        "lines",
        "--num-records",
        "10",
    ]
    assert logstore(argv) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("10 records published in 1 PublishRecords calls of 1000, "), first
