"""`pip install logstore` installs one top-level package, so `import client` never clashes with a user's own."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_wheel_holds_exactly_one_top_level_package(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = tmp_path.glob("logstore-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/", 1)[0] for name in names if not name.split("/", 1)[0].endswith(".dist-info")}
    assert tops == {"logstore"}
    for folder in ("broker", "client", "wire", "bench"):
        for init in (ROOT / folder).rglob("__init__.py"):  # every subpackage is listed in pyproject
            assert f"logstore/{init.relative_to(ROOT).as_posix()}" in names, init
    for init in (ROOT / "logstore").rglob("__init__.py"):
        assert init.relative_to(ROOT).as_posix() in names, init
    assert "logstore/wire/logstore/v1/produce_pb2_grpc.py" in names
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "logstore = logstore." in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_the_public_names_import_from_the_one_namespace() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-P",
            "-c",
            "from logstore.client import Producer, Consumer; import logstore.broker",
        ],
        capture_output=True,
        text=True,
        cwd="/",
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for old in ("client", "broker", "wire", "bench"):
        done = subprocess.run(
            [sys.executable, "-P", "-c", f"import {old}"],
            capture_output=True,
            text=True,
            cwd="/",
            check=False,
        )
        assert done.returncode != 0, f"`import {old}` still works: the old top-level package is installed"
