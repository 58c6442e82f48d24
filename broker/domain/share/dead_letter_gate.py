"""A cluster's dead letters, kept at least once.

On a single broker (`dlq.py`) a dead letter is appended to the local dead-letter topic in the same step
as the snapshot that archives its record. In a cluster it is a produce to another broker's partition (a
round trip), so every group's archived ranges wait in the gate's `pending` list from the moment they are
archived, and `drain` sends all of them before a snapshot of the group is taken: a snapshot that says
"archived" is written only once its dead letter is on the dead-letter topic, and a crash in between
delivers the record again (and dead-letters it again).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Protocol

from logstore.broker.domain.share.dlq import DeadLetterTarget
from logstore.broker.share_machine.model import Archived

log = logging.getLogger(__name__)

ArchivedRanges = list[tuple[tuple[str, int], list[Archived]]]
"""((topic, partition), archived spans) in the order they were archived."""


class RemoteDeadLetters(Protocol):
    """Produces a group's dead letters to the dead-letter topic's leaders (creating the topic through
    the controller), reading the archived records from their partitions' leaders. Raises when it could
    not within its time."""

    async def send(
        self, target: DeadLetterTarget, topic: str, partition: int, archived: Sequence[Archived]
    ) -> None: ...


class DeadLetterGate:
    """Per group: the archived ranges not sent yet, and the lock its state writes take. Not thread-safe:
    the broker's loop."""

    def __init__(self, sender: RemoteDeadLetters) -> None:
        self._sender = sender
        self._pending: dict[str, ArchivedRanges] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def pending(self, group_id: str) -> ArchivedRanges:
        """The group's list of archived ranges not sent yet: changes append to it as they archive."""
        return self._pending.setdefault(group_id, [])

    def lock(self, group_id: str) -> asyncio.Lock:
        """Held while the group's dead letters are sent and its snapshot is written, so two requests'
        writes never overtake each other's dead letters."""
        return self._locks.setdefault(group_id, asyncio.Lock())

    async def drain(self, group_id: str, target: DeadLetterTarget | None) -> None:
        """Send every pending range of the group, oldest first. A range leaves the list only once sent
        (a cancelled drain leaves the rest for the next). With no target (the group has no dead-letter
        topic) they are dropped, as on a single broker. After a failure (logged: the sender retried for
        its time) the rest of this drain is dropped too, so an unreachable topic costs one timeout per
        drain, not one per range, and does not stall the group's acknowledgements."""
        pending = self._pending.get(group_id)
        failed: BaseException | None = None
        while pending:
            (topic, partition), archived = pending[0]
            if target is not None and failed is None:
                try:
                    await self._sender.send(target, topic, partition, archived)
                except Exception as exc:
                    failed = exc
            if failed is not None and target is not None:
                log.warning(
                    "share group %s: %d archived ranges of %s-%d not sent to dead-letter topic %s "
                    "(dropped): %s",
                    group_id,
                    len(archived),
                    topic,
                    partition,
                    target.topic,
                    failed,
                )
            pending.pop(0)

    def forget(self, group_id: str) -> None:
        self._pending.pop(group_id, None)
        self._locks.pop(group_id, None)
