"""``AsyncGroupCoordinator``: the threaded ``GroupCoordinator``'s state and steps, driven on the event loop.

What a member decides is the pure ``Membership`` core (``client/groups/membership.py``) and the threaded
coordinator's locked steps (``_pending_step``, ``_revoked``, ``_assigned``, ``_heartbeat_answered``,
``_commit_request``, ...), shared as they are. Only the I/O differs: a heartbeat task instead of the
heartbeat thread, and Heartbeat, CommitOffsets and FetchOffsets awaited on ``grpc.aio``. Rebalance steps
run in ``poll_async`` (called by ``AsyncConsumer.getmany``), as in the threaded ``poll``: a revoked
partition is committed and released only once the application asks for more records.

A listener's methods may be plain or ``async def`` (aiokafka's): what they return is awaited.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, cast

import grpc
import grpc.aio
from logstore.client.aio.coordinator import AioCoordinator
from logstore.client.consumer.fetcher import Fetcher
from logstore.client.groups.coordinator import CoordinatorStub
from logstore.client.groups.driver import _NOTHING_TO_SEND, GroupCoordinator
from logstore.client.groups.membership import HeartbeatPlan, Reconciliation
from logstore.client.groups.rpc import (
    check_commit,
    committed_offsets,
    heartbeat_request,
    partition_set,
)
from logstore.client.shared.connection import channel_options
from logstore.client.shared.errors import (
    ClientError,
    CommitFailedError,
    GroupError,
    IllegalStateError,
    error_from_rpc,
)
from logstore.client.shared.types import TopicPartition
from logstore.wire.logstore.v1 import group_pb2, group_pb2_grpc

log = logging.getLogger(__name__)


class _Kick:
    """Stands in for the threaded coordinator's Condition: ``notify`` wakes the heartbeat task. Not
    thread-safe (an asyncio Event): the shared steps call it on the loop, with the lock held."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def notify(self) -> None:
        self.event.set()

    notify_all = notify


class AsyncGroupCoordinator(GroupCoordinator):
    """One ``AsyncConsumer``'s link to its group. Thread-safe as far as its event loop goes: only that loop
    calls it, and the shared steps still take the consumer's lock (uncontended: no other thread)."""

    def __init__(
        self,
        group_id: str,
        connection: Any,
        state: Any,
        fetcher: Fetcher,
        channel: grpc.aio.Channel,
        ready: Callable[[], None],
        **options: Any,
    ) -> None:
        super().__init__(group_id, connection, state, fetcher, **options)
        self._aio = AioCoordinator(
            cast(CoordinatorStub, self._stub),  # group_stub(connection, group_id) made one
            connection,
            group_pb2_grpc.GroupServiceStub,
            channel,
            channel_options(1024 * 1024, 64 * 1024 * 1024),
        )
        """The group's coordinator: the bootstrap broker's stub for a broker alone."""
        self._ready = ready
        """Wakes a getmany waiting for records (group work came up)."""
        self._kick = _Kick()
        self._wake = self._kick  # type: ignore[assignment]  # the shared steps notify the task
        self._task: asyncio.Task[None] | None = None
        self._owed: list[Awaitable[object]] = []
        """What ``async def`` listener callbacks returned inside the shared steps, awaited next."""

    # --- the coordinator -------------------------------------------------------------------------------------

    async def _call(self, method: str, request: Any) -> Any:
        """One group call to the coordinator; an answer or status saying it moved makes the next call
        look it up again (this one still fails, and is retried as the threaded client's)."""
        return await self._aio.call(method, request, self._timeout_s)

    # --- the application's side ------------------------------------------------------------------------------

    def _start_heartbeats(self) -> None:
        """Start the heartbeat task, once (on the running loop)."""
        if self._task is None:
            self._task = asyncio.create_task(self._heartbeats(), name="logstore-aio-heartbeat")

    def unsubscribe(self) -> None:
        """Refused: the threaded leave blocks on RPCs, and AsyncConsumer leaves the group in ``stop()``."""
        raise IllegalStateError("an AsyncConsumer leaves its group with stop(); it has no unsubscribe()")

    async def poll_async(
        self, take: Callable[[int, float], Awaitable[dict]], limit: int, timeout_s: float
    ) -> dict:
        """``take`` records as the consumer does, running group work before and whenever it comes up."""
        deadline = self._poll_begins(timeout_s)
        try:
            while True:
                await self.run_pending_async()
                records = await take(limit, self._take_wait(deadline))
                if records or self._clock() >= deadline:
                    return records
        finally:
            self._poll_ends()

    async def run_pending_async(self) -> None:
        """Lost-partition callbacks, one reconciliation step, auto-commit; raises a fatal error."""
        try:
            step = self._pending_step()
        finally:
            await self._pay_owed()
        if step is not None:
            await self._reconcile_async(step)
        if self._auto_commit_due():
            await self._commit_positions_async(None, quiet=True)

    async def _reconcile_async(self, step: Reconciliation) -> None:
        """The threaded ``_reconcile``, its calls awaited (a cancel leaves the step to be taken again)."""
        try:
            if step.revoke:
                if self.enable_auto_commit:
                    await self._commit_positions_async(step.revoke, quiet=True)
                await _listen(self._listener.on_partitions_revoked, set(step.revoke))
                self._revoked(step)
            committed: dict[TopicPartition, int] = {}
            if step.assign:
                try:
                    committed = await self._fetch_committed(step.assign)
                except ClientError as exc:
                    self._committed_unavailable(exc)
                    return
            added = self._assigned(step, committed)
            if added:
                await _listen(self._listener.on_partitions_assigned, added)
        finally:
            with self._lock:
                self._membership.abandon(step)  # no-op once reconciled; else taken again next poll

    def _tell(self, callback: Callable[[set[TopicPartition]], object], tps: set[TopicPartition]) -> None:
        result = callback(tps)
        if inspect.isawaitable(result):
            self._owed.append(result)

    async def _pay_owed(self) -> None:
        owed, self._owed = self._owed, []
        for result in owed:
            await result

    def _wake_poll(self) -> None:
        self._ready()

    # --- commits ---------------------------------------------------------------------------------------------

    async def acommit(self, offsets: Mapping[TopicPartition, Any] | None = None) -> None:
        """Commit ``offsets`` (next record to read, per partition), or the positions of everything assigned."""
        request = self._commit_request(offsets)
        if request is None:
            return
        try:
            response = await self._call("CommitOffsets", request)
        except grpc.RpcError as exc:
            raise error_from_rpc(exc, f"committing offsets of group {self.group_id!r}") from None
        check_commit(response, self.group_id)
        self._committed(request)

    async def _commit_positions_async(self, tps: Iterable[TopicPartition] | None, *, quiet: bool) -> None:
        changed = self._moved(tps)
        if not changed:
            return
        try:
            await self.acommit(changed)
        except (CommitFailedError, GroupError, ClientError) as exc:
            if not quiet:
                raise
            self._auto_commit_failed(changed, exc)

    async def _fetch_committed(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        wanted = list(tps)
        if not wanted:
            return {}
        request = group_pb2.FetchOffsetsRequest(group_id=self.group_id, partitions=partition_set(wanted))
        try:
            response = await self._call("FetchOffsets", request)
        except grpc.RpcError as exc:
            raise error_from_rpc(exc, f"fetching committed offsets of group {self.group_id!r}") from None
        return committed_offsets(response)

    async def acommitted(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int | None]:
        found = await self._fetch_committed(tps)
        return {tp: (offset if offset >= 0 else None) for tp, offset in found.items()}

    # --- the heartbeat task ----------------------------------------------------------------------------------

    async def _heartbeats(self) -> None:
        """The threaded heartbeat loop: each heartbeat the core plans, sent when due, its answer fed back."""
        m = self._membership
        try:
            while True:
                with self._lock:
                    if self._stopping:
                        return
                    leave = self._poll_timed_out()
                    plan = m.plan(self._clock()) if leave is None else None
                    wait = self._idle_wait() if leave is None and plan is None else 0.0
                if leave is not None:
                    await self._send_leave_async(leave)
                    continue
                if plan is None:
                    kick = self._kick.event = asyncio.Event()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(kick.wait(), wait)
                    continue
                request = heartbeat_request(self.group_id, plan, self._client_id)
                sent_at = self._clock()
                try:
                    response = await self._call("Heartbeat", request)
                except grpc.RpcError as exc:
                    self._heartbeat_failed(
                        error_from_rpc(exc, f"heartbeat to group {self.group_id!r}"), sent_at
                    )
                    continue
                missing = self._heartbeat_answered(response, plan)
                if missing:  # rare (once a minute per missing topic): a metadata lookup in a thread
                    await asyncio.to_thread(self._warn_unknown_topics, missing)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug: stop the membership and tell the application through poll
            log.exception("the consumer's heartbeat task failed")
            with self._lock:
                m.fatal = GroupError(f"the consumer's heartbeat task failed: {exc!r}")
                self._wake_poll()

    async def _send_leave_async(self, plan: HeartbeatPlan) -> None:
        if plan is _NOTHING_TO_SEND:
            return
        try:
            await self._call("Heartbeat", heartbeat_request(self.group_id, plan, self._client_id))
        except grpc.RpcError as exc:
            self._leave_failed(exc)

    # --- leaving ---------------------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Commit (with auto-commit), revoke and leave the group; stop the heartbeat task."""
        if not self.subscribed and self.enable_auto_commit:
            await self._commit_positions_async(None, quiet=True)  # assign() mode: from outside the group
        owned, active = self._owned()
        if active and owned:
            if self.enable_auto_commit:
                await self._commit_positions_async(owned, quiet=True)
            try:
                await _listen(self._listener.on_partitions_revoked, set(owned))
            except Exception:
                log.exception("on_partitions_revoked failed while leaving group %s", self.group_id)
        with self._lock:
            self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        plan = self._leave_plan(owned)
        with self._lock:
            self._stopping = True
        if plan is not None:
            await self._send_leave_async(plan)
        await self._aio.aclose()


async def _listen(callback: Callable[[set[TopicPartition]], object], tps: set[TopicPartition]) -> None:
    """Call a listener method, awaiting it if it is ``async def``."""
    result = callback(tps)
    if inspect.isawaitable(result):
        await result


__all__ = ["AsyncGroupCoordinator"]
