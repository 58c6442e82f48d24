"""A smoke run of `logstore perf share-consume` against a real broker: it runs, exits 0 and reports sane,
non-zero figures for every part (never a speed: the tool is for that, not the test)."""

from __future__ import annotations

import json

import pytest
from logstore.bench.perf.cli import main as perf
from logstore.broker.embedded import EmbeddedBroker


@pytest.mark.slow
def test_share_consume_reports_plain_one_and_many_consumers_and_redelivery(
    broker: EmbeddedBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["share-consume", "--bootstrap", broker.address, "--num-records", "3000", "--runs", "2"]
    argv += ["--consumers", "2", "--redelivery-runs", "1", "--lock-ms", "1000", "--json"]
    assert perf([*argv, "--reporting-interval", "0"]) == 0, capsys.readouterr().err
    result = json.loads(capsys.readouterr().out)
    assert result["tool"] == "share-consume"
    assert len(result["runs"]) == 2
    for run in result["runs"]:
        assert run["plain"] > 0 and run["share_one"] > 0 and run["share_many"] > 0
    assert result["share_one_records_per_s"] > 0 and result["plain_records_per_s"] > 0
    (redelivery,) = result["redelivery_s"]
    assert redelivery > 0
