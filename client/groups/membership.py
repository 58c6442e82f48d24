"""A consumer's group membership as a pure state machine: heartbeat plans in, broker answers in, decisions
out. No I/O, no threads, no clock of its own (every call takes ``now`` in seconds).

The broker computes assignments (KIP-848 style); the member only says who it is, what it subscribes to
and what it owns. The life of a member here:

- ``plan(now)`` says whether a heartbeat is due and what it carries (a join with the subscription while
  the epoch is 0; otherwise member id, epoch and the partitions owned right now). One heartbeat is in
  flight at a time: the driver answers each plan with ``on_answer`` or ``on_failure``.
- ``on_answer`` adopts the member id, epoch and pace and keeps the complete assignment. When it differs
  from what is owned, ``take_reconciliation()`` hands out one ``Reconciliation`` (revoke these, then
  assign those) for the application's thread to carry out; ``reconciled()`` records that it is done, and
  a heartbeat is due at once when partitions were released (their next owner waits for it).
- Errors: UNKNOWN_MEMBER_ID and FENCED_MEMBER_EPOCH lose every partition (``Answer.lost``, no commit) and
  rejoin with epoch 0; the fatal codes stop the membership (``fatal``); a failed call backs off.
- ``leave_plan()`` is the last heartbeat (epoch -1, or -2 for a static member).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from logstore.client.shared.backoff import Backoff
from logstore.client.shared.errors import ClientError, GroupError, MemberLostError, for_code, group_error
from logstore.client.shared.types import TopicPartition

JOIN_EPOCH = 0
LEAVE_EPOCH = -1
STATIC_LEAVE_EPOCH = -2
DEFAULT_HEARTBEAT_INTERVAL_S = 3.0
"""Pace before the broker has said its own (only the join comes before that)."""

Partitions = frozenset[TopicPartition]
EMPTY: Partitions = frozenset()


@dataclass(frozen=True)
class Subscription:
    """Topics by name and/or a regular expression that must match a whole topic name."""

    topics: tuple[str, ...] = ()
    pattern: str = ""


@dataclass(frozen=True)
class HeartbeatPlan:
    """What the next Heartbeat carries."""

    member_id: str
    member_epoch: int
    subscription: Subscription | None
    """Sent on a join and after the subscription changed; None keeps the broker's."""
    owned: Partitions | None
    """What the member owns now; None on a join (which must own nothing)."""
    instance_id: str
    server_assignor: str
    rebalance_timeout_ms: int
    session_timeout_ms: int = 0
    """The member's own session timeout (0: the broker's)."""


@dataclass(frozen=True)
class HeartbeatAnswer:
    """A Heartbeat answer as plain values."""

    error_code: int
    error_message: str
    member_id: str
    member_epoch: int
    heartbeat_interval_ms: int
    session_timeout_ms: int
    assignment: Partitions


@dataclass(frozen=True)
class Reconciliation:
    """One step from what is owned towards the assignment: release ``revoke`` first, then take ``assign``."""

    revoke: Partitions
    assign: Partitions
    generation: int
    """The membership generation it belongs to; a loss in between makes it stale."""


@dataclass(frozen=True)
class AnswerOutcome:
    """What the driver must do right away after an answer."""

    lost: Partitions = EMPTY
    """Partitions taken away without a revoke (fenced or unknown member): drop them, commit nothing."""
    fatal: ClientError | None = None


@dataclass
class Membership:
    """One consumer's membership in one group. Not thread-safe: its Consumer's lock guards it."""

    group_id: str
    backoff: Backoff
    instance_id: str = ""
    server_assignor: str = ""
    rebalance_timeout_ms: int = 0
    requested_session_timeout_ms: int = 0
    """Sent in every heartbeat (0: the broker's group_session_timeout_ms)."""
    max_heartbeat_interval_s: float | None = None
    """The client's heartbeat_interval_ms: heartbeat at least this often, even if the broker allows less."""
    member_id: str = ""
    member_epoch: int = JOIN_EPOCH
    heartbeat_interval_s: float = DEFAULT_HEARTBEAT_INTERVAL_S
    session_timeout_s: float | None = None
    owned: Partitions = EMPTY
    assignment: Partitions = EMPTY
    """The latest complete assignment from the broker."""
    fatal: ClientError | None = None
    subscription: Subscription | None = None
    _subscription_changed: bool = False
    _next_heartbeat_at: float = 0.0
    _in_flight: bool = False
    _failures: int = 0
    _generation: int = 0
    _reconciling: Reconciliation | None = None
    _left: bool = False
    stale: bool = False
    """Left the group because the application stopped calling poll() (max_poll_interval_ms); rejoins at
    the next poll."""

    def __post_init__(self) -> None:
        self.heartbeat_interval_s = self._paced(self.heartbeat_interval_s)

    def _paced(self, interval_s: float) -> float:
        cap = self.max_heartbeat_interval_s
        return interval_s if cap is None else min(interval_s, cap)

    # --- what the application asks ----------------------------------------------------------------------------

    def subscribe(self, subscription: Subscription, now: float) -> None:
        """Follow ``subscription`` from the next heartbeat on, which is due at once."""
        if not subscription.topics and not subscription.pattern:
            raise ValueError("a group subscription needs topic names or a pattern")
        self.subscription = subscription
        self._subscription_changed = True
        self._next_heartbeat_at = now

    @property
    def active(self) -> bool:
        """Whether the member should be heartbeating (subscribed, not left, not failed)."""
        return self.subscription is not None and not self._left and self.fatal is None and not self.stale

    # --- heartbeats ----------------------------------------------------------------------------------------------

    def plan(self, now: float) -> HeartbeatPlan | None:
        """The heartbeat to send now, or None (not due, one in flight, or not active)."""
        if not self.active or self._in_flight or now < self._next_heartbeat_at:
            return None
        self._in_flight = True
        joining = self.member_epoch == JOIN_EPOCH
        send_subscription = joining or self._subscription_changed
        self._subscription_changed = False
        return HeartbeatPlan(
            member_id=self.member_id,
            member_epoch=self.member_epoch,
            subscription=self.subscription if send_subscription else None,
            owned=None if joining else self.owned,
            instance_id=self.instance_id,
            server_assignor=self.server_assignor if joining else "",
            rebalance_timeout_ms=self.rebalance_timeout_ms,
            session_timeout_ms=self.requested_session_timeout_ms,
        )

    def next_heartbeat_in(self, now: float) -> float | None:
        """Seconds until ``plan`` has something to send (0: now); None while nothing can be sent."""
        if not self.active or self._in_flight:
            return None
        return max(0.0, self._next_heartbeat_at - now)

    def on_answer(self, answer: HeartbeatAnswer, plan: HeartbeatPlan, now: float) -> AnswerOutcome:
        """Adopt a heartbeat answer."""
        self._in_flight = False
        if answer.heartbeat_interval_ms > 0:
            self.heartbeat_interval_s = self._paced(answer.heartbeat_interval_ms / 1000.0)
        if answer.session_timeout_ms > 0:
            self.session_timeout_s = answer.session_timeout_ms / 1000.0
        code = answer.error_code
        kind = for_code(code)
        if issubclass(kind, MemberLostError):
            return self._lose(now)
        if issubclass(kind, GroupError) and kind.fatal:
            self.fatal = group_error(code, answer.error_message, self.group_id)
            lost, self.owned, self.assignment = self.owned, EMPTY, EMPTY
            self._generation += 1
            self._reconciling = None
            return AnswerOutcome(lost=lost, fatal=self.fatal)
        if code != 0:  # a code this client does not know: try again later, as after a failed call
            self._fail(now)
            return AnswerOutcome()
        self._failures = 0
        self.member_id = answer.member_id or self.member_id
        self.member_epoch = answer.member_epoch
        self.assignment = answer.assignment
        self._next_heartbeat_at = now + self.heartbeat_interval_s
        return AnswerOutcome()

    def on_failure(self, now: float, retriable: bool, error: ClientError | None = None) -> None:
        """The heartbeat call failed (no answer): back off and try again; a non-retriable failure with an
        error is fatal."""
        self._in_flight = False
        if not retriable and error is not None:
            self.fatal = error
            return
        self._fail(now)

    def _fail(self, now: float) -> None:
        self._failures += 1
        self._next_heartbeat_at = now + self.backoff.delay_s(self._failures)

    def _lose(self, now: float) -> AnswerOutcome:
        lost = self.owned
        self.owned = self.assignment = EMPTY
        self.member_epoch = JOIN_EPOCH
        self._generation += 1
        self._reconciling = None
        self._next_heartbeat_at = now
        return AnswerOutcome(lost=lost)

    # --- reconciliation ------------------------------------------------------------------------------------------

    def take_reconciliation(self) -> Reconciliation | None:
        """The next step towards the assignment, once (None while one is being carried out or none is needed)."""
        if self._reconciling is not None or self.fatal is not None or self._left:
            return None
        revoke = self.owned - self.assignment
        assign = self.assignment - self.owned
        if not revoke and not assign:
            return None
        self._reconciling = Reconciliation(revoke, assign, self._generation)
        return self._reconciling

    @property
    def reconciliation_pending(self) -> bool:
        """Whether the application has a step to carry out (or is carrying one out)."""
        return self._reconciling is not None or (
            self.fatal is None and not self._left and self.owned != self.assignment
        )

    def is_current(self, step: Reconciliation) -> bool:
        """Whether ``step`` still stands (no partitions were lost since it was handed out)."""
        return step is self._reconciling and step.generation == self._generation

    def abandon(self, step: Reconciliation) -> None:
        """``step`` was not finished (an error): hand out a fresh one next time. No-op once reconciled."""
        if self._reconciling is step:
            self._reconciling = None

    def revoked(self, step: Reconciliation, now: float) -> None:
        """The application released ``step.revoke``: report it at once."""
        if not self.is_current(step):
            return
        self.owned = self.owned - step.revoke
        if step.revoke:
            self._next_heartbeat_at = now

    def reconciled(self, step: Reconciliation, now: float) -> None:
        """The application carried out ``step`` (revoke and assign)."""
        if not self.is_current(step):
            return
        self.revoked(step, now)
        self.owned = self.owned | step.assign
        self._reconciling = None

    # --- leaving ----------------------------------------------------------------------------------------------------

    def leave_plan(self) -> HeartbeatPlan | None:
        """The heartbeat that leaves the group (None if the member never joined or already left). Afterwards
        the member sends nothing more."""
        if self._left or not self.member_id or self.fatal is not None:
            self._left = True
            return None
        self._left = True
        static = bool(self.instance_id)
        return HeartbeatPlan(
            member_id=self.member_id,
            member_epoch=STATIC_LEAVE_EPOCH if static else LEAVE_EPOCH,
            subscription=None,
            owned=None,
            instance_id=self.instance_id,
            server_assignor="",
            rebalance_timeout_ms=0,
        )

    def poll_timed_out(self) -> tuple[HeartbeatPlan | None, Partitions]:
        """The application did not call poll() for max_poll_interval_ms: leave the group (the heartbeat
        returned, if any, to send now) and lose every partition (no commit: the application may be stuck
        half-way through a record). Nothing is sent again until ``polled()``."""
        plan = None
        if self.active and self.member_id and self.member_epoch > 0:
            plan = HeartbeatPlan(
                member_id=self.member_id,
                member_epoch=STATIC_LEAVE_EPOCH if self.instance_id else LEAVE_EPOCH,
                subscription=None,
                owned=None,
                instance_id=self.instance_id,
                server_assignor="",
                rebalance_timeout_ms=0,
            )
        lost = self.owned
        self.owned = self.assignment = EMPTY
        self.member_epoch = JOIN_EPOCH
        self._generation += 1
        self._reconciling = None
        self.stale = True
        return plan, lost

    def polled(self, now: float) -> None:
        """The application called poll(): a member that left for a poll timeout rejoins now."""
        if self.stale:
            self.stale = False
            self._subscription_changed = True
            self._next_heartbeat_at = now

    def release_all(self) -> Partitions:
        """Before leaving: what is owned now, which the application commits and revokes."""
        return self.owned

    def unsubscribed(self) -> None:
        """After a leave for an unsubscribe(): start over as a new member on the next subscribe()."""
        self.subscription = None
        self.member_id = ""
        self.member_epoch = JOIN_EPOCH
        self.owned = self.assignment = EMPTY
        self._generation += 1
        self._reconciling = None
        self._left = False
        self._in_flight = False
        self.stale = False


def partitions(entries: Iterable[tuple[str, Iterable[int]]]) -> Partitions:
    """``[(topic, [partition, ...]), ...]`` as a frozenset of TopicPartition."""
    return frozenset(TopicPartition(topic, p) for topic, numbers in entries for p in numbers)
