"""Kafka share sessions (KIP-932): which partitions a share consumer fetches from, and its request epoch.

A share consumer opens a session with epoch 0 and the partitions it wants, then sends epochs 1, 2, ...
naming only the partitions it adds (`topics`) or drops (`forgotten_topics_data`); epoch -1 ends the
session with its last acknowledgements. The broker keeps one session per (group, member), as Kafka does;
the records themselves are the share group's, not the session's. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from logstore.errors import LogStoreError, UnknownTopicError

OPEN_EPOCH = 0
"""A request that opens a new session (replacing the member's old one)."""
FINAL_EPOCH = -1
"""A request that acknowledges and ends the session, fetching nothing."""
MAX_EPOCH = 2**31 - 1

DEFAULT_MAX_SESSIONS = 2000
"""Kafka's `group.share.max.share.sessions` default: sessions kept at once by this broker."""

SessionKey = tuple[str, str]
"""(group id, member id)."""
TopicPartition = tuple[str, int]
"""A partition as the session names it: (topic id as 32 hex digits, partition)."""


class UnknownTopicIdError(UnknownTopicError):
    """UNKNOWN_TOPIC_ID: a session or an acknowledgement names a topic id no topic has (deleted, or never
    existed)."""


class ShareSessionNotFoundError(LogStoreError):
    """SHARE_SESSION_NOT_FOUND: the member has no session here; the client opens one with epoch 0."""


class InvalidShareSessionEpochError(LogStoreError):
    """INVALID_SHARE_SESSION_EPOCH: the request's epoch is not the session's next one."""


class ShareSessionLimitReachedError(LogStoreError):
    """SHARE_SESSION_LIMIT_REACHED: the broker holds as many sessions as it may."""


@dataclass(slots=True)
class ShareSession:
    next_epoch: int = 1
    partitions: set[TopicPartition] = field(default_factory=set)


class ShareSessions:
    """Every share session of this broker, at most `max_sessions` of them."""

    def __init__(
        self, is_live: Callable[[SessionKey], bool], max_sessions: int = DEFAULT_MAX_SESSIONS
    ) -> None:
        """`is_live` says whether a session's member is still in its group: at the limit, sessions of
        members that timed out without ending them make room."""
        self._is_live = is_live
        self._max_sessions = max_sessions
        self._sessions: dict[SessionKey, ShareSession] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def advance(
        self,
        key: SessionKey,
        epoch: int,
        added: Iterable[TopicPartition] = (),
        forgotten: Iterable[TopicPartition] = (),
    ) -> ShareSession:
        """The session a request with `epoch` works in, after its partition changes.

        Epoch 0 opens a new one (an old one of the member is replaced); -1 returns the session without
        changing it (the caller ends it with `close` once the acknowledgements are applied); any other
        epoch must be the session's next, which then moves on by one."""
        session = self._sessions.get(key)
        if epoch == OPEN_EPOCH:
            if session is None and len(self._sessions) >= self._max_sessions:
                for stale in [k for k in self._sessions if not self._is_live(k)]:
                    del self._sessions[stale]
            if session is None and len(self._sessions) >= self._max_sessions:
                raise ShareSessionLimitReachedError(
                    f"this broker holds {self._max_sessions} share sessions, its limit; close idle share "
                    "consumers, or retry once members leave"
                )
            session = self._sessions[key] = ShareSession()
        elif session is None:
            raise ShareSessionNotFoundError(
                f"member {key[1]!r} of share group {key[0]!r} has no share session on this broker (it was "
                "closed, or the broker restarted); open one with epoch 0"
            )
        elif epoch == FINAL_EPOCH:
            return session
        elif epoch != session.next_epoch:
            raise InvalidShareSessionEpochError(
                f"share session of member {key[1]!r} in group {key[0]!r} expected epoch "
                f"{session.next_epoch}, got {epoch}; open a new session with epoch 0"
            )
        else:
            session.next_epoch = 1 if epoch == MAX_EPOCH else epoch + 1
        session.partitions.update(added)
        session.partitions.difference_update(forgotten)
        return session

    def close(self, key: SessionKey) -> None:
        self._sessions.pop(key, None)

    def drop_member(self, group_id: str, member_id: str) -> None:
        """The member left its group: its session goes with it."""
        self._sessions.pop((group_id, member_id), None)
