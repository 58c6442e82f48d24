"""A share consumer's membership: the pure ``ShareMember`` core, and the heartbeat thread that drives it.

Share groups do not divide partitions (every member fetches from every partition of its topics), so
there is nothing to reconcile: the member keeps its id and epoch fresh and tells the consumer when the
broker forgot it (its records were released: the consumer forgets what it held) or when the group cannot
be used at all (a consumer group's id). It never touches what the application sees.

``ShareMember`` takes ``now`` and does no I/O, so the threaded ``ShareConsumer`` (``ShareMembership``,
below) and ``logstore.client.aio.AsyncShareConsumer`` (a task on the event loop) drive the same core.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import grpc
from logstore.client.groups.coordinator import moved
from logstore.client.shared.backoff import Backoff
from logstore.client.shared.errors import (
    BrokerUnavailableError,
    ClientError,
    GroupError,
    GroupIdNotFoundError,
    MemberLostError,
    error_from_code,
    error_from_rpc,
    for_code,
    group_error,
)
from logstore.wire.logstore.v1 import share_pb2, share_pb2_grpc

log = logging.getLogger(__name__)

JOIN_EPOCH = 0
LEAVE_EPOCH = -1
MIN_HEARTBEAT_INTERVAL_S = 0.05


class SharePlan(NamedTuple):
    """What the next ShareHeartbeat carries (the topics only on a join)."""

    member_id: str
    member_epoch: int
    topics: tuple[str, ...]


def heartbeat_request(group_id: str, plan: SharePlan, client_id: str) -> share_pb2.ShareHeartbeatRequest:
    return share_pb2.ShareHeartbeatRequest(
        group_id=group_id,
        member_id=plan.member_id,
        member_epoch=plan.member_epoch,
        topic_names=plan.topics,
        client_id=client_id,
    )


@dataclass
class ShareMember:
    """One share consumer's member id, epoch and heartbeat pace, as a pure state machine: ``plan`` what to
    send when ``due_in(now)`` is 0, then ``on_answer`` or ``on_failure``. Not thread-safe: its driver
    guards it (the thread driver with the consumer's lock, the asyncio one by its single loop).

    The methods that change something worth a log line return it (the driver logs; the core does no I/O).
    """

    group_id: str
    topics: tuple[str, ...]
    backoff: Backoff
    timeout_s: float
    member_id: str = ""
    member_epoch: int = JOIN_EPOCH
    lost: bool = False
    """Set when the broker forgot this member: the consumer drops what it held, then clears it."""
    fatal: ClientError | None = None
    """An error that ends the membership (raised by every poll)."""
    unreachable: ClientError | None = None
    """Set once the broker has not answered for request_timeout_ms (raised once by poll)."""
    stopping: bool = False
    _failing_since: float | None = field(default=None, repr=False)
    _failures: int = field(default=0, repr=False)
    _next_at: float = field(default=0.0, repr=False)

    @property
    def joined(self) -> bool:
        return bool(self.member_id) and self.member_epoch > 0

    def raise_errors(self) -> None:
        """Raise the error that ended the membership, or (once) the broker being unreachable."""
        if self.fatal is not None:
            raise self.fatal
        unreachable, self.unreachable = self.unreachable, None
        if unreachable is not None:
            raise unreachable

    def due_in(self, now: float) -> float | None:
        """Seconds until the next heartbeat is due (0: now); None once stopping."""
        if self.stopping:
            return None
        return max(0.0, self._next_at - now)

    def plan(self) -> SharePlan:
        joining = self.member_epoch == JOIN_EPOCH
        return SharePlan(self.member_id, self.member_epoch, self.topics if joining else ())

    def rejoin(self) -> None:
        """The broker answered with UNKNOWN_MEMBER_ID (a fetch or a heartbeat): join again now."""
        if self.member_id:
            self.member_id, self.member_epoch = "", JOIN_EPOCH
            self.lost = True
        self._next_at = 0.0

    def on_failure(self, error: ClientError, sent_at: float, now: float) -> str | None:
        """The heartbeat got no answer: back off (or stop, if ``error`` is not retriable)."""
        if not error.retriable:
            self.fatal = error
            self.stopping = True
            return None
        note = None
        if self._failing_since is None:
            self._failing_since = sent_at
            note = f"share group {self.group_id}: cannot reach the broker, retrying: {error}"
        elif self.unreachable is None and now - self._failing_since >= self.timeout_s:
            self.unreachable = BrokerUnavailableError(
                f"share group {self.group_id!r}: no answer from the broker for "
                f"{(now - self._failing_since) * 1000:.0f} ms (request_timeout_ms is "
                f"{self.timeout_s * 1000:.0f}); still retrying: {error}"
            )
        self._failures += 1
        self._next_at = now + self.backoff.delay_s(self._failures)
        return note

    def on_answer(self, response: share_pb2.ShareHeartbeatResponse, now: float) -> str | None:
        """Adopt a heartbeat answer. One saying the broker does not coordinate the group (it moved, or
        none does for a moment) is retried as a failure: the stub finds the coordinator again."""
        code = response.error_code
        if code:
            error = error_from_code(code, response.error_message, where=f"share group {self.group_id!r}")
            if moved(error):
                return self.on_failure(error, now, now)
        note = None
        if self._failing_since is not None:
            note = f"share group {self.group_id}: the broker answers again"
        self._failing_since = None
        self.unreachable = None
        if code:
            cls = for_code(code)
            if issubclass(cls, MemberLostError | GroupIdNotFoundError):
                self.rejoin()
                self._failures += 1
                self._next_at = now + self.backoff.delay_s(self._failures)
                return f"share group {self.group_id}: rejoining ({response.error_message or cls.__name__})"
            self.fatal = group_error(code, response.error_message, self.group_id)
            self.stopping = True
            return None
        self._failures = 0
        self.member_id = response.member_id
        self.member_epoch = response.member_epoch
        self._next_at = now + max(response.heartbeat_interval_ms / 1000.0, MIN_HEARTBEAT_INTERVAL_S)
        return note

    def leave_plan(self) -> SharePlan | None:
        """Stop; the heartbeat that leaves the group, if the member ever joined. Afterwards it is no one."""
        self.stopping = True
        member_id, epoch = self.member_id, self.member_epoch
        self.member_id, self.member_epoch = "", JOIN_EPOCH
        if not member_id or epoch == JOIN_EPOCH:
            return None
        return SharePlan(member_id, LEAVE_EPOCH, ())

    def leave_failed(self, error: ClientError) -> str:
        return (
            f"share group {self.group_id}: leaving failed (the session timeout will remove this member): "
            f"{error}"
        )


class ShareMembership:
    """The heartbeat thread of one threaded share consumer, over its ``ShareMember`` (``member``).
    Thread-safe: the heartbeat thread and the consumer's thread share the consumer's lock (``changed``)
    around the member."""

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
        self.member = ShareMember(group_id, tuple(topics), retry_backoff, request_timeout_s)
        self.changed = threading.Condition(lock)
        """Notified when the member joins, is lost, or fails; the consumer waits on it."""
        self._stub = stub
        self._client_id = client_id
        self._timeout_s = request_timeout_s
        self._clock = clock
        self._thread = threading.Thread(target=self._run, name="logstore-share-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def rejoin(self) -> None:
        """The broker answered a fetch with UNKNOWN_MEMBER_ID (with the lock held): join again now."""
        self.member.rejoin()
        self.changed.notify_all()

    def _run(self) -> None:
        member = self.member
        try:
            while True:
                with self.changed:
                    while (wait := member.due_in(self._clock())) is not None and wait > 0:
                        self.changed.wait(wait)
                    if member.stopping:
                        return
                    request = heartbeat_request(self.group_id, member.plan(), self._client_id)
                sent_at = self._clock()
                try:
                    response = self._stub.ShareHeartbeat(request, timeout=self._timeout_s)
                except grpc.RpcError as exc:
                    error = error_from_rpc(exc, f"heartbeat to share group {self.group_id!r}")
                    with self.changed:
                        note = member.on_failure(error, sent_at, self._clock())
                        self.changed.notify_all()
                else:
                    with self.changed:
                        note = member.on_answer(response, self._clock())
                        self.changed.notify_all()
                if note:
                    log.warning("%s", note)
        except Exception as exc:  # a bug: end the membership and say so through poll()
            log.exception("the share consumer's heartbeat thread failed")
            with self.changed:
                member.fatal = GroupError(f"the share consumer's heartbeat thread failed: {exc!r}")
                self.changed.notify_all()

    def leave(self) -> None:
        """Stop the thread and leave the group (what the member still holds is released by the broker)."""
        with self.changed:
            self.member.stopping = True
            self.changed.notify_all()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(self._timeout_s)
        with self.changed:
            plan = self.member.leave_plan()
        if plan is None:
            return
        try:
            self._stub.ShareHeartbeat(
                heartbeat_request(self.group_id, plan, self._client_id), timeout=self._timeout_s
            )
        except grpc.RpcError as exc:
            log.warning("%s", self.member.leave_failed(error_from_rpc(exc, "leaving")))
