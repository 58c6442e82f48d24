"""Idempotent producer ids that are never handed out twice, also across restarts and crashes.

Ids are reserved in blocks: before the first id of a block is handed out, the end of the block is written
durably to `<data-dir>/producer-ids.json`. After a restart allocation resumes at that end, so a crash
skips at most the rest of one block and never repeats an id.

If the file is lost or unreadable in a data directory that holds topics, the reservation is recovered
from the logs instead: every partition's producer state (rebuilt from its batch headers at load) knows
the producer ids that wrote to it. Allocation resumes `RECOVERY_MARGIN` above the highest of them, since
ids handed out but not yet used in any batch (or used only in data since deleted) leave no trace there.
A repeated id would make a new producer's first batches look like retries of an old one's and be
silently dropped as duplicates, so a wide margin is cheap insurance: the id space is 63 bits.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from logstore.checkpoint import write_json_atomic
from logstore.io_errors import io_errors
from logstore.log import Log

log = logging.getLogger(__name__)

FILE_NAME = "producer-ids.json"
BLOCK_SIZE = 1000
RECOVERY_MARGIN = 1_000_000
"""Ids skipped above the highest one found in the logs when the reservation file is lost (1,000 blocks)."""


def highest_producer_id(logs: Iterable[Log]) -> int:
    """The highest producer id any of `logs` has a batch from (-1 for none): their producer state holds
    every producer id found in the partition's batch headers, so this reads no file."""
    return max(
        (max(partition_log.producer_state.producers, default=-1) for partition_log in logs), default=-1
    )


class ProducerIdAllocator:
    """Hands out increasing producer ids, persisting a reservation one block ahead.

    Not thread-safe: the broker calls it from its event loop only.

    `highest_in_logs` is asked only when the reservation file is missing or unreadable; `fresh` says the
    data directory held no topics at start (then a missing file just means nothing was handed out yet).
    """

    def __init__(
        self,
        data_dir: Path | str,
        block_size: int = BLOCK_SIZE,
        *,
        highest_in_logs: Callable[[], int] = lambda: -1,
        fresh: bool = True,
    ) -> None:
        self.path = Path(data_dir) / FILE_NAME
        self._block_size = block_size
        with io_errors("reading the producer id reservation", self.path):
            self._next = self._block_end = self._reserved_end(highest_in_logs, fresh)

    def _reserved_end(self, highest_in_logs: Callable[[], int], fresh: bool) -> int:
        if not self.path.exists():
            if fresh:
                write_json_atomic(self.path, {"next_block_start": 0})
                return 0
            return self._recover(highest_in_logs(), "is missing")
        try:
            value = json.loads(self.path.read_text())["next_block_start"]
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"next_block_start must be a non-negative integer, not {value!r}")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            aside = self.path.with_name(self.path.name + ".corrupt")
            os.replace(self.path, aside)
            return self._recover(highest_in_logs(), f"is unreadable ({exc}; kept as {aside.name})")
        return value

    def _recover(self, highest: int, problem: str) -> int:
        """Reserve far above every id the logs show, durably, before any id is handed out."""
        start = max(highest, -1) + 1 + RECOVERY_MARGIN
        write_json_atomic(self.path, {"next_block_start": start})
        log.warning(
            "%s %s; it records which producer ids were handed out. Recovered from the logs: the highest "
            "producer id in any partition is %s, so new ids start at %d (%d above it, for ids handed out "
            "but never written). No id is reused.",
            self.path,
            problem,
            highest if highest >= 0 else "none",
            start,
            RECOVERY_MARGIN,
        )
        return start

    def allocate(self) -> int:
        """The next unused producer id."""
        if self._next >= self._block_end:
            end = self._next + self._block_size
            with io_errors("reserving producer ids in", self.path):  # no id is handed out unless durable
                write_json_atomic(self.path, {"next_block_start": end})
            self._block_end = end
        producer_id = self._next
        self._next += 1
        return producer_id
