"""A consumer's group membership driver: a heartbeat thread, plus the steps that must run in the
application's thread (rebalance callbacks, commits, taking and releasing partitions).

Threads, and why: the heartbeat thread only talks to the broker and updates the pure ``Membership`` core;
anything that touches what the application sees runs in ``poll()`` (``run_pending``), as in Kafka's
consumers. So a revoked partition keeps being served until the application's next poll, which commits its
position (with auto-commit), calls ``on_partitions_revoked`` and only then lets the heartbeat thread report
the release: the next owner starts exactly where this one stopped, and no record is handed out twice.
Lost partitions (a fenced or unknown member) are different: they are no longer ours, so the heartbeat
thread drops them at once, without committing, and ``on_partitions_lost`` runs at the next poll.

Everything shares the consumer's lock; user callbacks and RPCs run without it.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import grpc
from logstore.client.consumer.fetcher import Fetcher
from logstore.client.consumer.subscription import SubscriptionState
from logstore.client.groups.membership import (
    HeartbeatPlan,
    Membership,
    Partitions,
    Reconciliation,
    Subscription,
)
from logstore.client.groups.rpc import (
    NO_OFFSET,
    OUTSIDE_MEMBER_EPOCH,
    OUTSIDE_MEMBER_ID,
    check_commit,
    commit,
    commit_request,
    fetch_committed,
    group_stub,
    heartbeat_answer,
    heartbeat_request,
)
from logstore.client.shared.backoff import Backoff
from logstore.client.shared.connection import Connection
from logstore.client.shared.errors import (
    ClientError,
    CommitFailedError,
    GroupError,
    UnknownTopicError,
    error_from_rpc,
)
from logstore.client.shared.metadata import describe_topic
from logstore.client.shared.types import TopicPartition
from logstore.wire.logstore.v1 import group_pb2

log = logging.getLogger(__name__)

UNKNOWN_TOPIC_WARNING_INTERVAL_S = 60.0
"""How often a subscribed topic that does not exist is warned about (Kafka's clients warn on every
metadata refresh; once a minute is enough to be seen without flooding the log)."""

_NOTHING_TO_SEND = HeartbeatPlan("", 0, None, None, "", "", 0)
"""A poll timeout of a member with no epoch yet: nothing to tell the broker."""

CommitCallback = Callable[[dict[TopicPartition, int], Exception | None], None]


class ConsumerRebalanceListener:
    """Told when partitions come and go (kafka-python's shape). Methods run in the thread that calls
    ``poll()`` (or ``close()``), so they may use the consumer: commit, seek, position."""

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Before partitions move to another member; with auto-commit their positions are committed already."""

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        """After new partitions were taken on, with positions set from committed offsets."""

    def on_partitions_lost(self, lost: set[TopicPartition]) -> None:
        """Partitions taken away without a revoke (this member was fenced or timed out): another member may
        own them already, so do not commit for them. By default calls on_partitions_revoked."""
        self.on_partitions_revoked(lost)


class GroupCoordinator:
    """One consumer's link to its group: membership, committed offsets and auto-commit.

    Thread-safe with its one Consumer: its heartbeat thread and the consumer's share the consumer's lock.
    """

    def __init__(
        self,
        group_id: str,
        connection: Connection,
        state: SubscriptionState,
        fetcher: Fetcher,
        *,
        instance_id: str | None,
        server_assignor: str | None,
        rebalance_timeout_ms: int,
        client_id: str,
        enable_auto_commit: bool,
        auto_commit_interval_ms: float,
        request_timeout_s: float,
        retry_backoff: Backoff,
        session_timeout_ms: int | None = None,
        heartbeat_interval_ms: int | None = None,
        max_poll_interval_ms: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not isinstance(group_id, str) or not group_id:
            raise ValueError(f"group_id must be a non-empty string, got {group_id!r}")
        if auto_commit_interval_ms <= 0:
            raise ValueError(f"auto_commit_interval_ms must be positive, got {auto_commit_interval_ms}")
        for name, value in (
            ("session_timeout_ms", session_timeout_ms),
            ("heartbeat_interval_ms", heartbeat_interval_ms),
            ("max_poll_interval_ms", max_poll_interval_ms),
        ):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
                raise ValueError(f"{name} must be a positive int (milliseconds) or None, got {value!r}")
        if (
            session_timeout_ms is not None
            and heartbeat_interval_ms is not None
            and heartbeat_interval_ms >= session_timeout_ms
        ):
            raise ValueError(
                f"heartbeat_interval_ms ({heartbeat_interval_ms}) must be smaller than session_timeout_ms "
                f"({session_timeout_ms}), or the member times out between heartbeats"
            )
        self.group_id = group_id
        self._stub = group_stub(connection, group_id, request_timeout_s)  # to its coordinator
        self._connection = connection
        self._state = state
        self._fetcher = fetcher
        self._lock = fetcher.lock
        self._wake = threading.Condition(self._lock)
        self._clock = clock
        self._timeout_s = request_timeout_s
        self._client_id = client_id
        self.enable_auto_commit = enable_auto_commit
        self._auto_commit_s = auto_commit_interval_ms / 1000.0
        self._next_auto_commit = clock() + self._auto_commit_s
        self._last_committed: dict[TopicPartition, int] = {}
        self._membership = Membership(
            group_id,
            retry_backoff,
            instance_id=instance_id or "",
            server_assignor=server_assignor or "",
            rebalance_timeout_ms=rebalance_timeout_ms,
            requested_session_timeout_ms=session_timeout_ms or 0,
            max_heartbeat_interval_s=heartbeat_interval_ms / 1000.0 if heartbeat_interval_ms else None,
        )
        self._max_poll_s = max_poll_interval_ms / 1000.0 if max_poll_interval_ms else None
        self._in_poll = False
        self._last_poll = clock()
        self._listener = ConsumerRebalanceListener()
        self._lost: list[Partitions] = []
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._retry_reconcile_at = 0.0
        self._unreachable_since: float | None = None
        """When the first of the heartbeats failing in a row was sent (None: the last one was answered)."""
        self._unreachable: ClientError | None = None
        """The error poll() raises once the broker has been unreachable for request_timeout_ms."""
        self._topic_warned_at: dict[str, float] = {}

    # --- subscription ----------------------------------------------------------------------------------------

    @property
    def subscribed(self) -> bool:
        return self._membership.subscription is not None

    def subscription(self) -> Subscription | None:
        return self._membership.subscription

    def subscribe(
        self, topics: Iterable[str], pattern: str | None, listener: ConsumerRebalanceListener | None
    ) -> None:
        """Join (or change the subscription of) the group; partitions arrive through poll()."""
        wanted = Subscription(tuple(dict.fromkeys(topics)), pattern or "")
        if listener is not None:
            self._listener = listener
        with self._lock:
            self._membership.subscribe(wanted, self._clock())
            self._wake.notify()
        self._start_heartbeats()

    def _start_heartbeats(self) -> None:
        """Start the heartbeat thread, once."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._heartbeat_loop, name="logstore-heartbeat", daemon=True
                )
                self._thread.start()

    def unsubscribe(self) -> None:
        """Leave the group (committing and revoking what is owned), and forget the subscription."""
        self._leave()
        with self._lock:
            self._membership.unsubscribed()
            self._state.assign(())
            self._fetcher.clear()
            self._fetcher.interrupt()

    # --- the application's thread ---------------------------------------------------------------------------

    def has_work(self) -> bool:
        """Whether poll() should stop waiting and call ``run_pending`` (called with the lock held)."""
        m = self._membership
        return (
            bool(self._lost)
            or m.fatal is not None
            or self._unreachable is not None
            or (m.reconciliation_pending and m.active and self._clock() >= self._retry_reconcile_at)
        )

    def poll(self, take: Callable[[int, float], dict], limit: int, timeout_s: float) -> dict:
        """``take`` records as the consumer does, running group work before and whenever it comes up."""
        deadline = self._poll_begins(timeout_s)
        try:
            while True:
                self.run_pending()
                records = take(limit, self._take_wait(deadline))
                if records or self._clock() >= deadline:
                    return records
        finally:
            self._poll_ends()

    def _poll_begins(self, timeout_s: float) -> float:
        """A poll starts (it rejoins after a max_poll_interval_ms timeout); its deadline."""
        deadline = self._clock() + timeout_s
        with self._lock:
            self._in_poll = True  # a poll that waits is no sign of a stuck application
            self._membership.polled(self._clock())
            self._wake.notify()
        return deadline

    def _take_wait(self, deadline: float) -> float:
        """How long a poll's take may wait: until the deadline, or the next auto-commit."""
        now = self._clock()
        wait = deadline - now
        if self.enable_auto_commit:  # wake for the next auto-commit even while no record comes
            wait = min(wait, self._next_auto_commit - now)
        return max(0.0, wait)

    def _poll_ends(self) -> None:
        with self._lock:
            self._in_poll = False
            self._last_poll = self._clock()
            self._wake.notify()

    def run_pending(self) -> None:
        """Callbacks for lost partitions, one reconciliation step, auto-commit; raises a fatal error."""
        step = self._pending_step()
        if step is not None:
            self._reconcile(step)
        if self._auto_commit_due():
            self._commit_positions(None, quiet=True)

    def _pending_step(self) -> Reconciliation | None:
        """run_pending's first part, for both drivers: lost-partition callbacks, the fatal and unreachable
        errors raised, and the reconciliation step to carry out (if any)."""
        with self._lock:
            lost, self._lost = self._lost, []
            fatal = self._membership.fatal
            step = (
                self._membership.take_reconciliation() if self._clock() >= self._retry_reconcile_at else None
            )
        try:
            for tps in lost:
                if tps:
                    self._tell(self._listener.on_partitions_lost, set(tps))
            if fatal is not None:
                raise fatal
            with self._lock:
                unreachable, self._unreachable = self._unreachable, None
                if unreachable is not None:  # raised once per request_timeout_ms while the broker stays away
                    self._unreachable_since = self._clock()
            if unreachable is not None:
                raise unreachable
        except BaseException:
            if step is not None:
                with self._lock:
                    self._membership.abandon(step)
            raise
        return step

    def _tell(self, callback: Callable[[set[TopicPartition]], object], tps: set[TopicPartition]) -> None:
        """Run a listener callback (the asyncio driver also awaits what an ``async def`` one returns)."""
        callback(tps)

    def _auto_commit_due(self) -> bool:
        """Whether an auto-commit is due now (the next one is then scheduled)."""
        if self.enable_auto_commit and self._clock() >= self._next_auto_commit:
            self._next_auto_commit = self._clock() + self._auto_commit_s
            return True
        return False

    def _reconcile(self, step: Reconciliation) -> None:
        try:
            if step.revoke:
                if self.enable_auto_commit:
                    self._commit_positions(step.revoke, quiet=True)
                self._listener.on_partitions_revoked(set(step.revoke))
                self._revoked(step)
            committed: dict[TopicPartition, int] = {}
            if step.assign:
                try:
                    committed = fetch_committed(self._stub, self.group_id, step.assign, self._timeout_s)
                except ClientError as exc:
                    self._committed_unavailable(exc)
                    return
            added = self._assigned(step, committed)
            if added:
                self._listener.on_partitions_assigned(added)
        finally:
            with self._lock:
                self._membership.abandon(step)  # no-op once reconciled; else taken again next poll

    def _revoked(self, step: Reconciliation) -> None:
        """The application released ``step.revoke`` (committed, callback run): stop reading them."""
        m = self._membership
        with self._lock:
            if m.is_current(step):
                self._drop(step.revoke)
                m.revoked(step, self._clock())
                self._wake.notify()

    def _committed_unavailable(self, exc: ClientError) -> None:
        """The committed offsets of a step's new partitions could not be fetched: retry the step later."""
        if not exc.retriable:
            raise exc
        log.warning("group %s: cannot fetch committed offsets yet (will retry): %s", self.group_id, exc)
        self._retry_reconcile_at = self._clock() + self._membership.heartbeat_interval_s

    def _assigned(self, step: Reconciliation, committed: Mapping[TopicPartition, int]) -> set[TopicPartition]:
        """Take on ``step.assign`` from their committed offsets; the partitions added (for the callback)."""
        m = self._membership
        with self._lock:
            if not m.is_current(step):
                return set()
            self._state.assign([*self._state.partitions, *step.assign])
            for tp in step.assign:
                offset = committed.get(tp, NO_OFFSET)
                if offset >= 0:
                    self._state.seek(tp, offset)
                    self._last_committed[tp] = offset
            self._fetcher.interrupt()
            m.reconciled(step, self._clock())
            self._wake.notify()
            return set(step.assign)

    def _drop(self, tps: Iterable[TopicPartition]) -> None:
        """Stop reading ``tps`` (with the lock held)."""
        gone = set(tps)
        self._state.assign([tp for tp in self._state.partitions if tp not in gone])
        self._fetcher.clear(gone)
        self._fetcher.interrupt()
        for tp in gone:
            self._last_committed.pop(tp, None)

    # --- commits ----------------------------------------------------------------------------------------------

    def positions(self, tps: Iterable[TopicPartition] | None = None) -> dict[TopicPartition, int]:
        """Positions (next record to hand out) of the assigned partitions that have one."""
        with self._lock:
            return self.positions_locked(tps)

    def _identity(self) -> tuple[str, int]:
        """Who a commit comes from (with the lock held). A subscribed consumer always commits as the member
        it is, with the epoch it has: while it rejoins (epoch 0, after being fenced or timed out) the broker
        then refuses its commits like any stale member's, instead of taking them as commits from outside
        the group, which an empty group accepts. Only assign() consumers commit from outside."""
        m = self._membership
        if m.subscription is None:
            return OUTSIDE_MEMBER_ID, OUTSIDE_MEMBER_EPOCH
        if not m.member_id:
            raise CommitFailedError(
                f"group {self.group_id!r}: this consumer has not joined the group yet (no member id from the "
                "broker), so it owns no partitions and may not commit; commit once poll() has assigned "
                "partitions, or use a consumer with assign() to commit from outside the group"
            )
        return m.member_id, m.member_epoch

    def commit(self, offsets: Mapping[TopicPartition, Any] | None = None) -> None:
        """Commit ``offsets`` (next record to read, per partition), or the positions of everything assigned."""
        request = self._commit_request(offsets)
        if request is None:
            return
        commit(self._stub, request, self._timeout_s)
        self._committed(request)

    def _commit_request(
        self, offsets: Mapping[TopicPartition, Any] | None
    ) -> group_pb2.CommitOffsetsRequest | None:
        """The CommitOffsets for ``offsets`` (None: every position), as this member; None if empty."""
        wanted = self.positions() if offsets is None else _offsets(offsets)
        if not wanted:
            return None
        with self._lock:
            member_id, epoch = self._identity()
        return commit_request(self.group_id, member_id, epoch, wanted)

    def _committed(self, request: group_pb2.CommitOffsetsRequest) -> None:
        """``request`` was accepted: remember its offsets (auto-commit sends only what moved since)."""
        with self._lock:
            self._last_committed.update(
                {TopicPartition(o.topic, o.partition): o.offset for o in request.offsets}
            )

    def commit_async(
        self, offsets: Mapping[TopicPartition, Any] | None = None, callback: CommitCallback | None = None
    ) -> concurrent.futures.Future:
        """Commit without waiting; the future (and ``callback(offsets, error_or_None)``, called from a gRPC
        thread) tells how it went."""
        wanted = self.positions() if offsets is None else _offsets(offsets)
        done: concurrent.futures.Future = concurrent.futures.Future()
        if not wanted:
            done.set_result(wanted)
            if callback is not None:
                callback(wanted, None)
            return done
        try:
            with self._lock:
                member_id, epoch = self._identity()
        except CommitFailedError as exc:
            done.set_exception(exc)
            if callback is not None:
                callback(wanted, exc)
            return done
        request = commit_request(self.group_id, member_id, epoch, wanted)
        call = self._stub.CommitOffsets.future(request, timeout=self._timeout_s)

        def finished(call: grpc.Future) -> None:
            error: Exception | None = None
            try:
                check_commit(call.result(), self.group_id)
            except grpc.RpcError as exc:
                error = error_from_rpc(exc, f"committing offsets of group {self.group_id!r}")
            except ClientError as exc:
                error = exc
            if error is None:
                with self._lock:
                    self._last_committed.update(wanted)
                done.set_result(wanted)
            else:
                done.set_exception(error)
            if callback is not None:
                try:
                    callback(wanted, error)
                except Exception:
                    log.exception("a commit_async callback failed")

        call.add_done_callback(finished)
        return done

    def _commit_positions(self, tps: Iterable[TopicPartition] | None, *, quiet: bool) -> None:
        """Commit positions that moved since the last commit; ``quiet`` logs failures instead of raising."""
        changed = self._moved(tps)
        if not changed:
            return
        try:
            self.commit(changed)
        except (CommitFailedError, GroupError, ClientError) as exc:
            if not quiet:
                raise
            self._auto_commit_failed(changed, exc)

    def _moved(self, tps: Iterable[TopicPartition] | None) -> dict[TopicPartition, int]:
        """Positions (of ``tps``, or all) that moved since the last commit."""
        with self._lock:
            positions = self.positions_locked(tps)
            return {tp: o for tp, o in positions.items() if self._last_committed.get(tp) != o}

    def _auto_commit_failed(self, changed: Mapping[TopicPartition, int], exc: Exception) -> None:
        log.warning("group %s: auto-commit of %d partitions failed: %s", self.group_id, len(changed), exc)

    def positions_locked(self, tps: Iterable[TopicPartition] | None) -> dict[TopicPartition, int]:
        wanted = self._state.partitions if tps is None else tps
        return {
            tp: state.position
            for tp in wanted
            if (state := self._state.partitions.get(tp)) is not None and state.position is not None
        }

    def committed(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int | None]:
        found = fetch_committed(self._stub, self.group_id, tps, self._timeout_s)
        return {tp: (offset if offset >= 0 else None) for tp, offset in found.items()}

    # --- the heartbeat thread ---------------------------------------------------------------------------------

    def _heartbeat_loop(self) -> None:
        m = self._membership
        try:
            while True:
                plan: HeartbeatPlan | None = None
                with self._lock:
                    while True:
                        if self._stopping:
                            return
                        leave = self._poll_timed_out()
                        if leave is not None:
                            break
                        plan = m.plan(self._clock())
                        if plan is not None:
                            break
                        self._wake.wait(self._idle_wait())
                if plan is None:
                    if leave is not None:
                        self._send_leave(leave)
                    continue
                request = heartbeat_request(self.group_id, plan, self._client_id)
                sent_at = self._clock()
                try:
                    response = self._stub.Heartbeat(request, timeout=self._timeout_s)
                except grpc.RpcError as exc:
                    self._heartbeat_failed(
                        error_from_rpc(exc, f"heartbeat to group {self.group_id!r}"), sent_at
                    )
                    continue
                missing = self._heartbeat_answered(response, plan)
                self._warn_unknown_topics(missing)
        except Exception as exc:  # a bug: stop the membership and tell the application through poll()
            log.exception("the consumer's heartbeat thread failed")
            with self._lock:
                m.fatal = GroupError(f"the consumer's heartbeat thread failed: {exc!r}")
                self._wake_poll()

    def _heartbeat_failed(self, error: ClientError, sent_at: float) -> None:
        """A heartbeat got no answer: tell the core (it backs off) and wake a waiting poll."""
        with self._lock:
            if error.retriable:
                self._note_unreachable(error, sent_at)
            else:
                log.error("group %s: heartbeat failed: %s", self.group_id, error)
            self._membership.on_failure(self._clock(), error.retriable, error)
            self._wake_poll()

    def _heartbeat_answered(self, response: group_pb2.HeartbeatResponse, plan: HeartbeatPlan) -> list[str]:
        """Give the core a heartbeat's answer; drop lost partitions; the subscribed topics to check."""
        with self._lock:
            if self._unreachable_since is not None:
                log.warning("group %s: the broker answers again", self.group_id)
            self._unreachable_since = None
            self._unreachable = None
            outcome = self._membership.on_answer(heartbeat_answer(response), plan, self._clock())
            if outcome.lost:
                log.info(
                    "group %s: lost %d partitions (%s)",
                    self.group_id,
                    len(outcome.lost),
                    response.error_message or "fatal error",
                )
                self._drop(outcome.lost)
                self._lost.append(outcome.lost)
            if self.has_work():
                self._wake_poll()
            return self._unassigned_topics()

    def _wake_poll(self) -> None:
        """Wake a poll that waits for records (lock held): group work came up."""
        self._fetcher.data_ready.notify_all()

    def _poll_due_in(self) -> float | None:
        """Seconds until this member counts as stuck (max_poll_interval_ms without a poll; with the lock
        held); None while that cannot happen (inside poll(), not joined, or no limit)."""
        m = self._membership
        if self._max_poll_s is None or self._in_poll or not m.active or not m.member_id:
            return None
        return self._last_poll + self._max_poll_s - self._clock()

    def _idle_wait(self) -> float | None:
        waits = [
            w
            for w in (self._membership.next_heartbeat_in(self._clock()), self._poll_due_in())
            if w is not None
        ]
        return max(0.0, min(waits)) if waits else None

    def _poll_timed_out(self) -> HeartbeatPlan | None:
        """Leave the group if the application has not called poll() for max_poll_interval_ms, as Kafka's
        heartbeat thread does (with the lock held): its partitions go to the other members instead of
        waiting for a consumer that may be stuck. Returns the leave heartbeat to send, if any."""
        due = self._poll_due_in()
        if due is None or due > 0:
            return None
        plan, lost = self._membership.poll_timed_out()
        log.warning(
            "group %s: poll() was not called for %.0f ms (max_poll_interval_ms): leaving the group so that "
            "its other members take over %d partitions; the next poll() rejoins. Handle fewer records per "
            "poll (max_poll_records) or raise max_poll_interval_ms if processing takes this long",
            self.group_id,
            (self._clock() - self._last_poll) * 1000,
            len(lost),
        )
        if lost:
            self._drop(lost)
            self._lost.append(lost)  # on_partitions_lost at the next poll; nothing is committed
        self._wake_poll()
        return plan or _NOTHING_TO_SEND

    def _send_leave(self, plan: HeartbeatPlan) -> None:
        if plan is _NOTHING_TO_SEND:
            return
        try:
            self._stub.Heartbeat(
                heartbeat_request(self.group_id, plan, self._client_id), timeout=self._timeout_s
            )
        except grpc.RpcError as exc:
            self._leave_failed(exc)

    def _leave_failed(self, exc: grpc.RpcError) -> None:
        log.warning(
            "group %s: leaving failed (the session timeout will remove this member): %s",
            self.group_id,
            error_from_rpc(exc, "leaving"),
        )

    def _note_unreachable(self, error: ClientError, sent_at: float) -> None:
        """A heartbeat got no answer (with the lock held): warn at the first failure of a streak, and
        have poll() raise once the broker has been away for request_timeout_ms."""
        now = self._clock()
        if self._unreachable_since is None:
            self._unreachable_since = sent_at
            log.warning("group %s: cannot reach the broker, retrying: %s", self.group_id, error)
            return
        if self._unreachable is None and now - self._unreachable_since >= self._timeout_s:
            self._unreachable = type(error)(
                f"group {self.group_id!r}: no answer from the broker for "
                f"{(now - self._unreachable_since) * 1000:.0f} ms (request_timeout_ms is "
                f"{self._timeout_s * 1000:.0f}); still retrying: {error}"
            )
            log.error("%s", self._unreachable)

    def _unassigned_topics(self) -> list[str]:
        """Subscribed topics (by name) of which this member owns no partition and that were not checked in
        the last UNKNOWN_TOPIC_WARNING_INTERVAL_S (with the lock held)."""
        subscription = self._membership.subscription
        if subscription is None:
            return []
        now = self._clock()
        owned = {tp.topic for tp in self._membership.assignment}
        due = [
            topic
            for topic in subscription.topics
            if topic not in owned
            and now - self._topic_warned_at.get(topic, -UNKNOWN_TOPIC_WARNING_INTERVAL_S)
            >= UNKNOWN_TOPIC_WARNING_INTERVAL_S
        ]
        for topic in due:
            self._topic_warned_at[topic] = now
        return due

    def _warn_unknown_topics(self, topics: list[str]) -> None:
        """Warn about subscribed topics that do not exist, as Kafka's clients warn of
        UNKNOWN_TOPIC_OR_PARTITION: the member waits for them to be created (without the lock)."""
        for topic in topics:
            try:
                describe_topic(self._connection, topic, self._timeout_s)
            except UnknownTopicError:
                log.warning(
                    "group %s: subscribed topic %r does not exist (UNKNOWN_TOPIC_OR_PARTITION); waiting for "
                    "it to be created (e.g. `logstore topics create %s`)",
                    self.group_id,
                    topic,
                    topic,
                )
            except ClientError as exc:
                log.debug("group %s: cannot check topic %r: %s", self.group_id, topic, exc)

    # --- leaving ----------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Commit (with auto-commit), revoke and leave the group; stop the heartbeat thread."""
        if not self.subscribed and self.enable_auto_commit:
            self._commit_positions(None, quiet=True)  # assign() mode: commit from outside the group
        self._leave()
        with self._lock:
            self._stopping = True
            self._wake.notify()

    def _leave(self) -> None:
        owned, active = self._owned()
        if active and owned:
            if self.enable_auto_commit:
                self._commit_positions(owned, quiet=True)
            self._revoke_on_leave(owned)
        with self._lock:
            self._stopping = True
            self._wake.notify()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(self._timeout_s)
        self._thread = None
        plan = self._leave_plan(owned)
        if plan is not None:
            self._send_leave(plan)

    def _owned(self) -> tuple[Partitions, bool]:
        """Before leaving: what is owned (committed and revoked first), and whether the member is active."""
        with self._lock:
            return self._membership.release_all(), self._membership.active

    def _revoke_on_leave(self, owned: Partitions) -> None:
        try:
            self._listener.on_partitions_revoked(set(owned))
        except Exception:
            log.exception("on_partitions_revoked failed while leaving group %s", self.group_id)

    def _leave_plan(self, owned: Partitions) -> HeartbeatPlan | None:
        """The heartbeat task or thread has stopped: drop ``owned``; the leave heartbeat to send."""
        with self._lock:
            self._stopping = False
            plan = self._membership.leave_plan()
            self._drop(owned)
        return plan


def _offsets(offsets: Mapping[TopicPartition, Any]) -> dict[TopicPartition, int]:
    """Offsets given as ints or as objects with ``.offset`` (kafka-python's OffsetAndMetadata)."""
    return {
        TopicPartition(*tp): (value.offset if hasattr(value, "offset") else value)
        for tp, value in offsets.items()
    }
