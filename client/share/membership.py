"""A share consumer's membership: the heartbeat thread that joins, stays in and leaves its share group.

Share groups do not divide partitions (every member fetches from every partition of its topics), so
there is nothing to reconcile: the thread keeps the member id and epoch fresh and tells the consumer when
the broker forgot the member (its records were released: the consumer forgets what it held) or when the
group cannot be used at all (a consumer group's id). It never touches what the application sees.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

import grpc
from logstore.client.shared.backoff import Backoff
from logstore.client.shared.errors import (
    BrokerUnavailableError,
    ClientError,
    GroupError,
    GroupIdNotFoundError,
    MemberLostError,
    error_from_rpc,
    for_code,
    group_error,
)
from logstore.wire.logstore.v1 import share_pb2, share_pb2_grpc

log = logging.getLogger(__name__)

JOIN_EPOCH = 0
LEAVE_EPOCH = -1


class ShareMembership:
    """Member id and epoch of one share consumer, kept by a daemon thread. Thread-safe: the heartbeat
    thread and the consumer's thread share the consumer's lock around every field they both use."""

    def __init__(
        self,
        stub: share_pb2_grpc.ShareServiceStub,
        group_id: str,
        topics: Sequence[str],
        lock: threading.Lock,
        *,
        client_id: str,
        request_timeout_s: float,
        retry_backoff: Backoff,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.group_id = group_id
        self.topics = list(topics)
        self.changed = threading.Condition(lock)
        """Notified when the member joins, is lost, or fails; the consumer waits on it."""
        self._stub = stub
        self._client_id = client_id
        self._timeout_s = request_timeout_s
        self._backoff = retry_backoff
        self._clock = clock
        self.member_id = ""
        self.member_epoch = JOIN_EPOCH
        self.lost = False
        """Set when the broker forgot this member: the consumer drops what it held, then clears it."""
        self.fatal: ClientError | None = None
        """An error that ends the membership (raised by every poll)."""
        self.unreachable: ClientError | None = None
        """Set once the broker has not answered for request_timeout_ms (raised once by poll)."""
        self._failing_since: float | None = None
        self._failures = 0
        self._next_at = 0.0
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="logstore-share-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def joined(self) -> bool:
        return bool(self.member_id) and self.member_epoch > 0

    def rejoin(self) -> None:
        """The broker answered a fetch with UNKNOWN_MEMBER_ID (with the lock held): join again now."""
        if self.member_id:
            self.member_id, self.member_epoch = "", JOIN_EPOCH
            self.lost = True
        self._next_at = 0.0
        self.changed.notify_all()

    def _run(self) -> None:
        try:
            while True:
                with self.changed:
                    while not self._stopping and self._clock() < self._next_at:
                        self.changed.wait(self._next_at - self._clock())
                    if self._stopping:
                        return
                    joining = self.member_epoch == JOIN_EPOCH
                    request = share_pb2.ShareHeartbeatRequest(
                        group_id=self.group_id,
                        member_id=self.member_id,
                        member_epoch=self.member_epoch,
                        topic_names=self.topics if joining else (),
                        client_id=self._client_id,
                    )
                sent_at = self._clock()
                try:
                    response = self._stub.ShareHeartbeat(request, timeout=self._timeout_s)
                except grpc.RpcError as exc:
                    self._on_failure(
                        error_from_rpc(exc, f"heartbeat to share group {self.group_id!r}"), sent_at
                    )
                    continue
                with self.changed:
                    self._on_answer(response)
        except Exception as exc:  # a bug: end the membership and say so through poll()
            log.exception("the share consumer's heartbeat thread failed")
            with self.changed:
                self.fatal = GroupError(f"the share consumer's heartbeat thread failed: {exc!r}")
                self.changed.notify_all()

    def _on_failure(self, error: ClientError, sent_at: float) -> None:
        with self.changed:
            if not error.retriable:
                self.fatal = error
                self._stopping = True
                self.changed.notify_all()
                return
            now = self._clock()
            if self._failing_since is None:
                self._failing_since = sent_at
                log.warning("share group %s: cannot reach the broker, retrying: %s", self.group_id, error)
            elif self.unreachable is None and now - self._failing_since >= self._timeout_s:
                self.unreachable = BrokerUnavailableError(
                    f"share group {self.group_id!r}: no answer from the broker for "
                    f"{(now - self._failing_since) * 1000:.0f} ms (request_timeout_ms is "
                    f"{self._timeout_s * 1000:.0f}); still retrying: {error}"
                )
                self.changed.notify_all()
            self._failures += 1
            self._next_at = now + self._backoff.delay_s(self._failures)

    def _on_answer(self, response: share_pb2.ShareHeartbeatResponse) -> None:
        """Apply a heartbeat answer (with the lock held)."""
        if self._failing_since is not None:
            log.warning("share group %s: the broker answers again", self.group_id)
        self._failing_since = None
        self.unreachable = None
        now = self._clock()
        code = response.error_code
        if code:
            cls = for_code(code)
            if issubclass(cls, MemberLostError | GroupIdNotFoundError):
                log.info(
                    "share group %s: rejoining (%s)", self.group_id, response.error_message or cls.__name__
                )
                self.rejoin()
                self._failures += 1
                self._next_at = now + self._backoff.delay_s(self._failures)
                return
            self.fatal = group_error(code, response.error_message, self.group_id)
            self._stopping = True
            self.changed.notify_all()
            return
        self._failures = 0
        self.member_id = response.member_id
        self.member_epoch = response.member_epoch
        interval_s = max(response.heartbeat_interval_ms, 50) / 1000.0
        self._next_at = now + interval_s
        self.changed.notify_all()

    def leave(self) -> None:
        """Stop the thread and leave the group (what the member still holds is released by the broker)."""
        with self.changed:
            self._stopping = True
            member_id, epoch = self.member_id, self.member_epoch
            self.changed.notify_all()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(self._timeout_s)
        if not member_id or epoch == JOIN_EPOCH:
            return
        request = share_pb2.ShareHeartbeatRequest(
            group_id=self.group_id, member_id=member_id, member_epoch=LEAVE_EPOCH
        )
        try:
            self._stub.ShareHeartbeat(request, timeout=self._timeout_s)
        except grpc.RpcError as exc:
            log.warning(
                "share group %s: leaving failed (the session timeout will remove this member): %s",
                self.group_id,
                error_from_rpc(exc, "leaving"),
            )
        with self.changed:
            self.member_id, self.member_epoch = "", JOIN_EPOCH
