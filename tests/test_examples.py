"""Every script in examples/ runs against a real broker with small parameters and reports success."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(scope="module")
def address(tmp_path_factory):
    from logstore.broker.embedded import EmbeddedBroker

    broker = EmbeddedBroker.on(
        tmp_path_factory.mktemp("examples"), group_session_timeout_ms=3000, group_heartbeat_interval_ms=100
    ).start()
    yield broker.address
    broker.stop()


@pytest.mark.parametrize(
    ("script", "options"),
    [
        ("work_queue.py", ["--workers", "2", "--count", "20"]),
        ("fan_out.py", ["--count", "10"]),
        ("live_tail.py", ["--count", "3"]),
        ("replay_from_time.py", ["--count", "5"]),
        ("dead_letter.py", ["--count", "6", "--attempts", "2"]),
        ("share_queue.py", ["--workers", "3", "--count", "20"]),
    ],
)
def test_example_runs(address: str, script: str, options: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), "--bootstrap", address, "--seconds", "20", *options],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"{script} failed:\n{done.stdout}\n{done.stderr}"


def test_every_example_is_tested_and_says_how_to_run() -> None:
    scripts = {p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_")}
    assert scripts == {
        "work_queue.py",
        "fan_out.py",
        "live_tail.py",
        "replay_from_time.py",
        "dead_letter.py",
        "share_queue.py",
    }
    for name in scripts:
        assert "make run" in (EXAMPLES / name).read_text(), f"{name}'s docstring should say how to run it"


def test_share_queue_finds_its_broker_in_logstore_bootstrap_and_runs_again_on_the_same_group(
    address: str,
) -> None:
    for _ in range(2):  # the same durable group twice: the second run starts where the first ended
        done = subprocess.run(
            [sys.executable, str(EXAMPLES / "share_queue.py"), "--count", "12", "--seconds", "20"],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "LOGSTORE_BOOTSTRAP": address},
        )
        assert done.returncode == 0, f"share_queue.py failed:\n{done.stdout}\n{done.stderr}"
        assert "10 of 10 tasks accepted" in done.stdout
