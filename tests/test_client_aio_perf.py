"""Smoke runs of ``perf produce --async`` and ``perf consume --async`` against a real broker: they run,
exit 0 and account for every record (never a speed: that is what the tools are for)."""

from __future__ import annotations

import json

import pytest
from logstore.bench.perf.cli import main as perf
from logstore.broker.embedded import EmbeddedBroker

RECORDS = 2000


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert perf([*argv, "--json", "--reporting-interval", "0"]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def test_async_produce_then_async_consume_and_through_a_group(broker: EmbeddedBroker, capsys) -> None:
    common = ["--bootstrap", broker.address, "--topic", "a", "--num-records", str(RECORDS), "--async"]
    produced = run_json(capsys, "produce", *common, "--partitions", "3")
    assert produced["records"] == produced["log_records"] == RECORDS
    assert produced["errors"] == 0
    assert produced["latency_ms"]["samples"] == RECORDS  # small runs time every record
    consumed = run_json(capsys, "consume", *common)
    assert consumed["records"] == RECORDS and consumed["bytes"] == RECORDS * 100
    grouped = run_json(capsys, "consume", *common, "--group", "perf")
    assert grouped["records"] == RECORDS and 0 < grouped["first_record_ms"] < grouped["seconds"] * 1000


def test_async_produce_refuses_a_throttle(broker: EmbeddedBroker, capsys) -> None:
    argv = ["produce", "--bootstrap", broker.address, "--topic", "t", "--num-records", "10", "--async"]
    with pytest.raises(SystemExit):
        perf([*argv, "--throughput", "100"])
    assert "--async does not throttle" in capsys.readouterr().err
