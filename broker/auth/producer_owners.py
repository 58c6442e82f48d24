"""Which principal each idempotent producer id belongs to, kept in the data directory across restarts.

InitProducerId binds the id it hands out to the principal that asked, and a batch under an id bound to
someone else is refused (CLUSTER_AUTHORIZATION_FAILED), so one principal cannot write, or fence, under
another's producer id. The bindings live in memory and in `producer-owners.jsonl` (mode 0600), one
``[id, principal]`` line appended (and fsynced) per new binding: an InitProducerId pays one small append,
never a rewrite of every binding. When the journal holds twice `limit` lines it is compacted, written
whole through `write_atomic` (temporary file, fsync, rename), so a crash leaves the old or the new
journal. A last line cut short by a crash is dropped at start (that binding had not been answered as
durable to anyone who could rely on it: the id's owner simply takes it again with its first batch).

At most `limit` bindings are kept; past that the one unused longest goes. Why that is safe, and what
it costs: producer ids are never reused (the allocator only counts up), so an evicted binding can never
hand a new producer's id to someone else. An id whose binding is gone falls back to the rule for ids
the broker has no binding for (given out before this file existed): the first principal to write under
it takes it. The cost is that, for an evicted id only, another principal that guesses it (ids are
sequential) and writes first can take it, and the idle producer that owned it is then refused and must
get a new id. With the default of 100,000 that needs 100,000 newer or more recently used producers.
"""

from __future__ import annotations

import json
import logging
import os
from collections import OrderedDict
from pathlib import Path

from logstore.broker.domain.errors import SecurityStoreError

from logstore.checkpoint import fsync_dir, write_atomic

FILE_NAME = "producer-owners.jsonl"
DEFAULT_LIMIT = 100_000
"""Bindings kept (an entry is an int and a principal string: some tens of MB at most in memory)."""
log = logging.getLogger("logstore.broker.auth")


def _line(producer_id: int, principal: str) -> bytes:
    return (json.dumps([producer_id, principal], separators=(",", ":")) + "\n").encode()


class ProducerOwners:
    """The bindings of one data directory (None: memory only, for a broker without one).

    Not thread-safe: the broker's event loop only.
    """

    def __init__(self, data_dir: Path | None, limit: int = DEFAULT_LIMIT) -> None:
        if limit < 1:
            raise ValueError(f"the producer binding limit must be positive, not {limit}")
        self.limit = limit
        self.path = None if data_dir is None else Path(data_dir) / FILE_NAME
        self._owners: OrderedDict[int, str] = OrderedDict()
        self._lines = 0
        if self.path is not None and self.path.exists():
            self._load(self.path)

    def __len__(self) -> int:
        return len(self._owners)

    def _load(self, path: Path) -> None:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise SecurityStoreError(
                f"{path} cannot be read ({exc.strerror}); move it aside to start without producer id "
                "bindings (each id is then taken by the first principal that writes under it)"
            ) from None
        lines = raw.split(b"\n")
        torn = lines.pop() if lines else b""  # after the last newline: empty, or a cut-short append
        if torn:
            log.warning("%s: dropped a last line cut short (a crash during an append)", path)
        for number, line in enumerate(lines, 1):
            try:
                producer_id, principal = json.loads(line)
                if not isinstance(producer_id, int) or not isinstance(principal, str):
                    raise ValueError("not [id, principal]")
            except ValueError:
                raise SecurityStoreError(
                    f"{path} line {number} is not a producer id binding; restore the file or move it aside "
                    "to start without bindings (each id is then taken by the first principal that writes "
                    "under it)"
                ) from None
            self._owners[producer_id] = principal
            self._owners.move_to_end(producer_id)
            self._lines += 1
        self._evict()
        if torn:
            self._compact()

    def owner(self, producer_id: int) -> str | None:
        return self._owners.get(producer_id)

    def bind(self, producer_id: int, principal: str) -> str:
        """The id's owner: its bound principal, or `principal`, bound now (and written) if none was."""
        owner = self._owners.get(producer_id)
        if owner is not None:
            self._owners.move_to_end(producer_id)
            return owner
        self._owners[producer_id] = principal
        self._evict()
        self._append(producer_id, principal)
        return principal

    def _evict(self) -> None:
        while len(self._owners) > self.limit:
            self._owners.popitem(last=False)

    def _append(self, producer_id: int, principal: str) -> None:
        if self.path is None:
            return
        if self._lines >= 2 * self.limit:
            self._compact()
            return
        created = not self.path.exists()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, _line(producer_id, principal))
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            fsync_dir(self.path.parent)
        self._lines += 1

    def _compact(self) -> None:
        """Rewrite the journal with the bindings held, oldest first."""
        assert self.path is not None
        data = b"".join(_line(i, p) for i, p in self._owners.items())
        write_atomic(self.path, data, mode=0o600)
        self._lines = len(self._owners)
