"""The controller's loop: while this broker holds the controller epoch, keep every partition's leader and
ISR right for the live brokers, and create topics. Decisions are the pure functions of
leader_election.py and placement.py; writes are the store's guarded transactions.

Each write compares the mod revision every partition key had in the view the decision was taken on, so
etcd refuses a decision taken on a stale view (which could bump a leader epoch twice for one failure);
after a write the loop also waits until its own watch has seen it before deciding again.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable

from logstore.broker.cluster.election import ElectionStatus, Role
from logstore.broker.cluster.election_driver import ETCD_ERRORS, ControllerElector
from logstore.broker.cluster.errors import NotControllerError, StalePartitionStateError
from logstore.broker.cluster.leader_election import initial_state, on_brokers_changed
from logstore.broker.cluster.metadata import PartitionState, TopicAssignment
from logstore.broker.cluster.placement import assign_replicas
from logstore.broker.cluster.store import MetadataStore
from logstore.broker.cluster.view import ClusterView


def reconcile(view: ClusterView, *, unclean: bool = False) -> dict[tuple[str, int], PartitionState]:
    """The partition states to write so that every partition fits the live brokers in `view`. Pure."""
    writes: dict[tuple[str, int], PartitionState] = {}
    for where, state in sorted(view.partitions.items()):
        new = on_brokers_changed(state, view.live_brokers, unclean=unclean)
        if new is not state:
            writes[where] = new
    return writes


class Controller:
    """Runs beside the election on one event loop; acts only while the elector says it is controller.

    Not thread-safe: it lives on one event loop.
    """

    def __init__(
        self,
        store: MetadataStore,
        elector: ControllerElector,
        *,
        unclean_leader_election: bool = False,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.elector = elector
        self.unclean = unclean_leader_election
        self.rng = rng or random.Random()
        self.view = ClusterView(store.layout)
        self._changed = asyncio.Event()
        self._quiet = asyncio.Condition()
        self.quiet_revision = 0  # the view revision at which the last pass found nothing to write

    async def run(self) -> None:
        self.view.replace_with(await self.store.snapshot())
        follower = asyncio.create_task(self.store.follow(self.view, self._changed))
        try:
            while True:
                status = await self.elector.wait_for(_controller)
                await self._lead(status)
                # Refused or deposed: wait for the election to move on before leading again.
                await self.elector.wait_for(_moved_on_from(status.epoch))
        finally:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower

    async def _lead(self, status: ElectionStatus) -> None:
        epoch = status.epoch
        assert epoch is not None
        while self.elector.is_controller() and self.elector.status.epoch == epoch:
            self._changed.clear()
            writes = reconcile(self.view, unclean=self.unclean)
            if writes:
                expected = {w: self.view.partition_revisions.get(w, 0) for w in writes}
                try:
                    revision = await self.store.write_partitions(epoch, writes, expected)
                except NotControllerError:
                    return
                except (StalePartitionStateError, *ETCD_ERRORS):
                    revision = self.view.revision + 1  # decide again on a view that has moved on
                await self._until_seen(revision)
                continue
            async with self._quiet:
                self.quiet_revision = self.view.revision
                self._quiet.notify_all()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), self.elector.ttl_s / 3)

    async def _until_seen(self, revision: int) -> None:
        while self.view.revision < revision and self.elector.is_controller():
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), self.elector.ttl_s / 3)

    async def wait_quiet(self, revision: int) -> None:
        """Wait until a pass over a view at or past `revision` found nothing left to write."""
        async with self._quiet:
            await self._quiet.wait_for(lambda: self.quiet_revision >= revision)

    async def create_topic(
        self, name: str, partitions: int, replication_factor: int, min_insync_replicas: int = 1
    ) -> TopicAssignment:
        """Place and create a topic (Kafka's random start index and shift), if still controller."""
        status = self.elector.status
        if not self.elector.is_controller() or status.epoch is None:
            raise NotControllerError(f"broker {self.elector.machine.broker_id} is not the controller")
        live = sorted(self.view.live_brokers)
        count = max(len(live), 1)
        replicas = assign_replicas(
            live,
            partitions,
            replication_factor,
            start_index=self.rng.randrange(count),
            shift=self.rng.randrange(count),
        )
        assignment = TopicAssignment(tuple(replicas), replication_factor, min_insync_replicas)
        states = {p: initial_state(r, self.view.live_brokers) for p, r in enumerate(replicas)}
        await self.store.create_topic(status.epoch, name, assignment, states)
        return assignment


def _controller(status: ElectionStatus) -> bool:
    return status.role is Role.CONTROLLER


def _moved_on_from(epoch: int | None) -> Callable[[ElectionStatus], bool]:
    return lambda status: not _controller(status) or status.epoch != epoch
