"""Small files that must never be seen half-written: write to a temporary file, fsync, rename, fsync dir.

A crash at any moment leaves either the old content or the new one, never a mix.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def fsync_dir(directory: Path | str) -> None:
    """Make a rename or unlink inside `directory` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path | str, data: bytes, mode: int = 0o644) -> None:
    """Replace `path` with `data` so that a crash leaves the old or the new content, whole (`mode`: the
    permissions of a new file; 0o600 for secrets, so no other user can read them while they are written)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    if mode != 0o644:  # a stale temporary file keeps its old mode through O_CREAT
        os.fchmod(fd, mode)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def write_json_atomic(path: Path | str, value: Any, mode: int = 0o644) -> None:
    write_atomic(path, (json.dumps(value, indent=2, sort_keys=True) + "\n").encode(), mode)


def read_json(path: Path | str) -> Any:
    return json.loads(Path(path).read_text())


def write_offset_checkpoint(path: Path | str, offset: int) -> None:
    """The recovery checkpoint: every byte of the log below `offset` is known to be fsynced."""
    write_atomic(path, f"{offset}\n".encode())


def read_offset_checkpoint(path: Path | str) -> int | None:
    """The stored offset, or None when the file is missing or unreadable (then recovery scans everything)."""
    try:
        text = Path(path).read_text().strip()
        value = int(text)
    except (OSError, ValueError):
        return None
    return value if value >= 0 else None
