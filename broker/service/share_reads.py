"""The topics each share-group member subscribed to, so every ShareFetch checks Read on them again.

ShareHeartbeat checks Read on the topics it names, but a member names them only when it joins (or
changes its subscription); its fetches then deliver from whatever it was assigned. Kept here, in the
listener layer, each ShareFetch re-checks Read on the member's topics, so an ACL removed after the
member joined stops its deliveries at the next fetch (TOPIC_AUTHORIZATION_FAILED) instead of at its
next re-join.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence

LEAVE_EPOCH = -1
LIMIT = 100_000
"""Members remembered (the one heard from longest ago goes first); a member not remembered has its
topics looked up in the share group's description instead, which costs more but misses nothing."""


class ShareSubscriptions:
    """(group, member) -> the topics its last naming heartbeat subscribed to. Not thread-safe: the
    broker's event loop only."""

    def __init__(self, describe: Callable[[str, str], Sequence[str]], limit: int = LIMIT) -> None:
        self._describe = describe
        self._limit = limit
        self._topics: OrderedDict[tuple[str, str], tuple[str, ...]] = OrderedDict()

    def heard(self, group_id: str, member_id: str, member_epoch: int, topics: Sequence[str]) -> None:
        """A heartbeat the group accepted: `member_id` is the one it answered with."""
        key = (group_id, member_id)
        if member_epoch == LEAVE_EPOCH:
            self._topics.pop(key, None)
        elif topics:
            self._topics[key] = tuple(topics)
            self._topics.move_to_end(key)
            while len(self._topics) > self._limit:
                self._topics.popitem(last=False)

    def topics(self, group_id: str, member_id: str) -> tuple[str, ...]:
        found = self._topics.get((group_id, member_id))
        if found is None:
            return tuple(self._describe(group_id, member_id))
        return found
