"""The asyncio driver of the controller election over etcd (aetcd): leases, the campaign transaction,
keep-alives and watching the controller key. Decisions are the state machine's (election.py).

Resilience without trusting a watch stream: a follower re-reads the key at least every third of the TTL,
and a controller whose keep-alives fail keeps its role only until its lease deadline passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import aetcd
import aetcd.exceptions
from logstore.broker.cluster.election import ControllerElection, ElectionStatus, Role
from logstore.broker.cluster.metadata import ControllerRecord, Layout

log = logging.getLogger(__name__)

ETCD_ERRORS = (aetcd.exceptions.ClientError, asyncio.TimeoutError)


def monotonic_ms() -> int:
    return time.monotonic_ns() // 1_000_000


class ControllerElector:
    """Runs one broker's election until `stop()`; `status` and `on_change` tell the broker its role.

    Not thread-safe: it lives on one event loop.
    """

    def __init__(
        self,
        client: aetcd.Client,
        broker_id: int,
        *,
        layout: Layout | None = None,
        lease_ttl_s: int = 6,
        clock: Callable[[], int] = monotonic_ms,
        on_change: Callable[[ElectionStatus], None] | None = None,
    ) -> None:
        self.client = client
        self.layout = layout or Layout()
        self.machine = ControllerElection(broker_id)
        self.ttl_s = lease_ttl_s
        self.clock = clock
        self.on_change = on_change
        self._stopped = asyncio.Event()
        self._changed = asyncio.Condition()
        self._last: ElectionStatus = self.machine.status

    @property
    def status(self) -> ElectionStatus:
        return self.machine.status

    def is_controller(self) -> bool:
        return self.machine.is_controller(self.clock())

    async def wait_for(self, predicate: Callable[[ElectionStatus], bool]) -> ElectionStatus:
        """Wait until the status satisfies `predicate` (tests and the broker's controller task use it)."""
        async with self._changed:
            await self._changed.wait_for(lambda: predicate(self.machine.status))
            return self.machine.status

    async def stop(self) -> None:
        """Stop campaigning and give the lease back, so another broker takes over at once."""
        self._stopped.set()

    async def run(self) -> None:
        try:
            while not self._stopped.is_set():
                try:
                    await self._round()
                except ETCD_ERRORS as exc:
                    log.warning("controller election: etcd: %s", exc)
                    self.machine.tick(self.clock())
                    await self._publish()
                    await self._sleep(self._interval_s())
                if self.machine.role is Role.DEPOSED:
                    self.machine.start_over()
                    await self._publish()
        finally:
            await self._give_back()

    async def _round(self) -> None:
        machine = self.machine
        if machine.role is Role.NO_LEASE:
            sent = self.clock()
            lease = await self.client.lease(self.ttl_s)
            machine.lease_granted(lease.id, lease.ttl * 1000, sent)
        elif machine.role is Role.CANDIDATE:
            await self._campaign()
        elif machine.role is Role.CONTROLLER:
            await self._sleep(self._interval_s())
            await self._keep_alive()
            if machine.role is Role.CONTROLLER:
                found = await self.client.get(self.layout.controller)
                machine.controller_seen(*self._holder(found))
        elif machine.role is Role.FOLLOWER:
            await self._watch_once()
            await self._keep_alive()
        await self._publish()

    async def _campaign(self) -> None:
        key = self.layout.controller
        tx = self.client.transactions
        record = ControllerRecord(self.machine.broker_id).encode()
        won, answers = await self.client.transaction(
            compare=[tx.create(key) == 0],
            success=[tx.put(key, record, lease=self.machine.lease_id)],
            failure=[tx.get(key)],
        )
        if won:
            self.machine.campaign_won(answers[0].response_put.header.revision)
            log.info("broker %d is controller, epoch %s", self.machine.broker_id, self.machine.epoch)
            return
        if not answers[0]:  # the key went between compare and read: campaign again
            return
        value, meta = answers[0][0]
        holder = ControllerRecord.decode(key, value).broker_id
        self.machine.campaign_lost(holder, meta.create_revision, meta.lease)

    async def _keep_alive(self) -> None:
        lease_id = self.machine.lease_id
        if lease_id is None:
            return
        sent = self.clock()
        reply = await self.client.refresh_lease(lease_id)
        self.machine.lease_kept_alive(reply.TTL * 1000, sent)

    async def _watch_once(self) -> None:
        """Follower: wait (at most a third of the TTL) for the controller key to change, then re-read it."""
        key = self.layout.controller
        found = await self.client.get(key)
        self.machine.controller_seen(*self._holder(found))
        if self.machine.role is not Role.FOLLOWER or found is None:
            return
        watch = await self.client.watch(key, start_revision=found.header.revision + 1)
        try:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._first_event(watch), self._interval_s())
        finally:
            with contextlib.suppress(*ETCD_ERRORS):
                await watch.cancel()
        found = await self.client.get(key)
        self.machine.controller_seen(*self._holder(found))

    @staticmethod
    async def _first_event(watch: object) -> None:
        async for _ in watch:  # type: ignore[attr-defined]
            return

    def _holder(self, found: object) -> tuple[int | None, int | None]:
        if found is None:
            return None, None
        value = found.value  # type: ignore[attr-defined]
        return ControllerRecord.decode(self.layout.controller, value).broker_id, found.create_revision  # type: ignore[attr-defined]

    async def _give_back(self) -> None:
        lease_id = self.machine.lease_id
        if lease_id is not None:
            with contextlib.suppress(*ETCD_ERRORS):
                await self.client.revoke_lease(lease_id)
            self.machine.lease_lost()
            if self.machine.role is Role.DEPOSED:
                self.machine.start_over()
        await self._publish()

    async def _publish(self) -> None:
        status = self.machine.status
        if status == self._last:
            return
        self._last = status
        if self.on_change is not None:
            self.on_change(status)
        async with self._changed:
            self._changed.notify_all()

    def _interval_s(self) -> float:
        return self.ttl_s / 3

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stopped.wait(), seconds)
