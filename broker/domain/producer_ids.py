"""Idempotent producer ids that are never handed out twice, also across restarts and crashes.

Ids are reserved in blocks: before the first id of a block is handed out, the end of the block is written
durably to `<data-dir>/producer-ids.json`. After a restart allocation resumes at that end, so a crash
skips at most the rest of one block and never repeats an id.
"""

from __future__ import annotations

import json
from pathlib import Path

from logstore.checkpoint import write_json_atomic
from logstore.errors import StorageError

FILE_NAME = "producer-ids.json"
BLOCK_SIZE = 1000


class ProducerIdAllocator:
    """Hands out increasing producer ids, persisting a reservation one block ahead."""

    def __init__(self, data_dir: Path | str, block_size: int = BLOCK_SIZE) -> None:
        self.path = Path(data_dir) / FILE_NAME
        self._block_size = block_size
        self._next = self._block_end = self._read_reserved_end()

    def _read_reserved_end(self) -> int:
        if not self.path.exists():
            return 0
        try:
            value = json.loads(self.path.read_text())["next_block_start"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StorageError(
                f"{self.path} is unreadable ({exc}); it records which producer ids were handed out. Restore it, "
                'or replace it with {"next_block_start": N} where N is above every id ever used'
            ) from exc
        if not isinstance(value, int) or value < 0:
            raise StorageError(f"{self.path}: next_block_start must be a non-negative integer, not {value!r}")
        return value

    def allocate(self) -> int:
        """The next unused producer id."""
        if self._next >= self._block_end:
            end = self._next + self._block_size
            write_json_atomic(self.path, {"next_block_start": end})
            self._block_end = end
        producer_id = self._next
        self._next += 1
        return producer_id
