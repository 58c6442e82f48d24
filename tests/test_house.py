"""The house rules a new user or contributor meets first: the version flag, plain `pytest`."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_logstore_version_names_the_installed_version() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "logstore.bench.cli", "--version"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"logstore {version('logstore')}"


def test_plain_pytest_collects_modules_that_import_tests_conftest() -> None:
    # `python -P` leaves the working directory off sys.path, as the `pytest` console script does.
    done = subprocess.run(
        [
            sys.executable,
            "-P",
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/test_broker_groups_offsets.py",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "error" not in done.stdout.lower()
