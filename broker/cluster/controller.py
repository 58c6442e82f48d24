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
import logging
import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace

from logstore.broker.cluster.election import ElectionStatus, Role
from logstore.broker.cluster.election_driver import ETCD_ERRORS, ControllerElector
from logstore.broker.cluster.errors import (
    InvalidReplicationFactorError,
    NotControllerError,
    StalePartitionStateError,
)
from logstore.broker.cluster.leader_election import (
    alter_isr,
    initial_state,
    on_brokers_changed,
    preferred_leader,
    reassign,
)
from logstore.broker.cluster.metadata import PartitionState, TopicAssignment, TopicChangeKind
from logstore.broker.cluster.placement import assign_replicas
from logstore.broker.cluster.store import MetadataStore, TopicExistsInClusterError
from logstore.broker.cluster.view import ClusterView

log = logging.getLogger(__name__)


def reconcile(view: ClusterView, *, unclean: bool = False) -> dict[tuple[str, int], PartitionState]:
    """The partition states to write so that every partition fits the live brokers in `view`. Pure."""
    writes: dict[tuple[str, int], PartitionState] = {}
    for where, state in sorted(view.partitions.items()):
        new = on_brokers_changed(state, view.live_brokers, unclean=unclean)
        if new is not state:
            writes[where] = new
    return writes


def rebalance_leaders(view: ClusterView, writes: dict[tuple[str, int], PartitionState]) -> int:
    """Move leadership back to each partition's first replica where it is alive, in sync and not leading
    (into `writes`, leaving partitions `writes` already changes); returns how many move. Pure."""
    moved = 0
    for where, state in sorted(view.partitions.items()):
        if where in writes or where in view.reassignments:
            continue
        new = preferred_leader(state, view.live_brokers)
        if new is not state:
            writes[where] = new
            moved += 1
    return moved


def answer_isr_requests(
    view: ClusterView, writes: dict[tuple[str, int], PartitionState]
) -> set[tuple[str, int]]:
    """Accept (into `writes`) or refuse the leaders' pending ISR changes; returns the partitions whose
    request keys to delete. Pure. A partition that `writes` already changes (its leader died, say) has its
    request refused: it was decided on the state being replaced."""
    answered: set[tuple[str, int]] = set()
    for where, request in sorted(view.isr_requests.items()):
        answered.add(where)
        state = view.partitions.get(where)
        if state is None or where in writes:
            continue
        try:
            new = alter_isr(
                state,
                leader=request.leader,
                leader_epoch=request.leader_epoch,
                partition_epoch=request.partition_epoch,
                new_isr=request.isr,
                live=view.live_brokers,
            )
        except StalePartitionStateError as exc:
            log.info("ISR change of %s-%d refused: %s", where[0], where[1], exc)
            continue
        if new is not state:
            writes[where] = new
    return answered


def answer_reassignments(
    view: ClusterView, writes: dict[tuple[str, int], PartitionState]
) -> tuple[set[tuple[str, int]], dict[str, TopicAssignment]]:
    """Take each pending reassignment one step (into `writes`); returns the finished ones (their request
    keys to delete) and the topics whose replica lists they changed. Pure. A partition `writes` already
    changes waits for the next pass; a request for a partition that no longer exists is dropped."""
    finished: set[tuple[str, int]] = set()
    topics: dict[str, TopicAssignment] = {}
    for where, request in sorted(view.reassignments.items()):
        state = view.partitions.get(where)
        assignment = view.topics.get(where[0])
        if state is None or assignment is None:
            finished.add(where)
            continue
        if where in writes:
            continue
        new = reassign(state, request.target, view.live_brokers)
        if new is not state:
            writes[where] = new
        if new.replicas == request.target:
            finished.add(where)
            current = topics.get(where[0], assignment)
            replicas = list(current.replicas)
            replicas[where[1]] = request.target
            topics[where[0]] = replace(
                current, replicas=tuple(replicas), replication_factor=max(len(r) for r in replicas)
            )
            log.info("reassignment of %s-%d to %s done", where[0], where[1], list(request.target))
    return finished, topics


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
        rebalance_interval_s: float = 0.0,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.elector = elector
        self.unclean = unclean_leader_election
        self.rebalance_interval_s = rebalance_interval_s
        self._clock = clock
        self._next_rebalance = clock() + rebalance_interval_s
        self.rng = rng or random.Random()
        self.view = ClusterView(store.layout)
        self._changed = asyncio.Event()
        self._quiet = asyncio.Condition()
        self.quiet_revision = 0  # the view revision at which the last pass found nothing to write

    async def run(self) -> None:
        self.view.replace_with(await self.store.snapshot())
        follower = asyncio.create_task(self.store.follow(self.view, self._changed), name="controller-watch")
        follower.add_done_callback(_report_watch_end)
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
            if self.rebalance_interval_s > 0 and self._clock() >= self._next_rebalance:
                self._next_rebalance = self._clock() + self.rebalance_interval_s
                moved = rebalance_leaders(self.view, writes)
                if moved:
                    log.info("moving leadership back to the preferred replica of %d partitions", moved)
            answered = answer_isr_requests(self.view, writes)
            reassigned, topics = answer_reassignments(self.view, writes)
            if writes or answered or reassigned:
                expected = {w: self.view.partition_revisions.get(w, 0) for w in writes}
                try:
                    revision = await self.store.write_partitions(
                        epoch, writes, expected, answered, reassigned=reassigned, topics=topics
                    )
                except NotControllerError:
                    return
                except (StalePartitionStateError, *ETCD_ERRORS) as exc:
                    # Decide again shortly, on the view as it is then: waiting for the view to move on
                    # could wait forever when nothing else changes (a write etcd refused, say).
                    log.warning(
                        "a controller write of %d partitions was refused (%r); deciding again",
                        len(writes),
                        exc,
                    )
                    await asyncio.sleep(self.elector.ttl_s / 6)
                    continue
                await self._until_seen(revision)
                continue
            if self.view.topic_requests or self.view.topic_changes:
                try:
                    await self._create_requested_topics()
                    await self._change_requested_topics(epoch)
                except NotControllerError:
                    return
                except (StalePartitionStateError, *ETCD_ERRORS):
                    await asyncio.sleep(self.elector.ttl_s / 6)
                continue
            async with self._quiet:
                self.quiet_revision = self.view.revision
                self._quiet.notify_all()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), self.elector.ttl_s / 3)

    async def _create_requested_topics(self) -> None:
        """Create every topic a broker asked for (placing it over the live brokers now), then drop the
        requests. A request that cannot be met (too few live brokers) is dropped with a warning: the
        asking broker checked it and times out waiting."""
        written = 0
        for name, request in sorted(self.view.topic_requests.items()):
            if name not in self.view.topics:
                try:
                    await self.create_topic(
                        name,
                        request.partitions,
                        request.replication_factor,
                        request.min_insync_replicas,
                        request.config,
                    )
                    log.info(
                        "created topic %s: %d partitions, replication factor %d",
                        name,
                        request.partitions,
                        request.replication_factor,
                    )
                except TopicExistsInClusterError:
                    pass
                except InvalidReplicationFactorError as exc:
                    log.warning("cannot create topic %s as asked: %s", name, exc)
            written = await self.store.delete_topic_request(name)
        await self._until_seen(written)

    async def _change_requested_topics(self, epoch: int) -> None:
        """Delete, grow or reconfigure the topics brokers asked to (each checked the change first); a
        change that cannot be made any more (the topic went, too few live brokers) is dropped, logged."""
        written = 0
        for name, change in sorted(self.view.topic_changes.items()):
            assignment = self.view.topics.get(name)
            if assignment is None:
                log.warning("dropping the %s change of topic %s: it does not exist", change.kind.value, name)
                written = await self.store.delete_topic_change(name)
                continue
            revision = self.view.topic_revisions.get(name, 0)
            if change.kind is TopicChangeKind.DELETE:
                written = await self.store.delete_topic(epoch, name)
                log.info("deleted topic %s", name)
            elif change.kind is TopicChangeKind.PARTITIONS:
                grown = self._grown(name, assignment, change.partitions)
                if grown is None:
                    written = await self.store.delete_topic_change(name)
                    continue
                new, states = grown
                written = await self.store.change_topic(epoch, name, new, states, revision)
                log.info("topic %s grown to %d partitions", name, change.partitions)
            else:
                config = dict(assignment.config)
                config.update(change.config)
                min_isr = int(config.get("min.insync.replicas", assignment.min_insync_replicas))
                new = replace(assignment, config=config, min_insync_replicas=min_isr)
                written = await self.store.change_topic(epoch, name, new, {}, revision)
                log.info("topic %s reconfigured: %s", name, dict(change.config))
        await self._until_seen(written)

    def _grown(
        self, name: str, assignment: TopicAssignment, total: int
    ) -> tuple[TopicAssignment, dict[int, PartitionState]] | None:
        current = len(assignment.replicas)
        live = sorted(self.view.live_brokers)
        if total <= current or assignment.replication_factor > len(live):
            log.warning(
                "cannot grow topic %s from %d to %d partitions with replication factor %d over %d live brokers",
                name,
                current,
                total,
                assignment.replication_factor,
                len(live),
            )
            return None
        count = max(len(live), 1)
        added = assign_replicas(
            live,
            total - current,
            assignment.replication_factor,
            start_index=self.rng.randrange(count),
            shift=self.rng.randrange(count),
        )
        states = {current + i: initial_state(r, self.view.live_brokers) for i, r in enumerate(added)}
        return replace(assignment, replicas=assignment.replicas + tuple(added)), states

    async def _until_seen(self, revision: int) -> None:
        """Until the watch has shown this controller its own write at `revision`, so that it does not
        decide again on the state it just replaced. Bounded: a decision on a stale view is refused by the
        guarded write anyway, so after two lease times it goes on (and says so) rather than hang."""
        deadline = asyncio.get_running_loop().time() + 2 * self.elector.ttl_s
        while self.view.revision < revision and self.elector.is_controller():
            if asyncio.get_running_loop().time() > deadline:
                log.warning(
                    "the controller's watch has not shown revision %d (it is at %d); deciding anyway",
                    revision,
                    self.view.revision,
                )
                return
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), self.elector.ttl_s / 3)

    async def wait_quiet(self, revision: int) -> None:
        """Wait until a pass over a view at or past `revision` found nothing left to write."""
        async with self._quiet:
            await self._quiet.wait_for(lambda: self.quiet_revision >= revision)

    async def create_topic(
        self,
        name: str,
        partitions: int,
        replication_factor: int,
        min_insync_replicas: int = 1,
        config: Mapping[str, str] | None = None,
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
        assignment = TopicAssignment(
            tuple(replicas), replication_factor, min_insync_replicas, dict(config or {}), uuid.uuid4().hex
        )
        states = {p: initial_state(r, self.view.live_brokers) for p, r in enumerate(replicas)}
        await self.store.create_topic(status.epoch, name, assignment, states)
        return assignment


def _controller(status: ElectionStatus) -> bool:
    return status.role is Role.CONTROLLER


def _moved_on_from(epoch: int | None) -> Callable[[ElectionStatus], bool]:
    return lambda status: not _controller(status) or status.epoch != epoch


def _report_watch_end(task: asyncio.Task[None]) -> None:
    """The controller's watch only ends when cancelled; anything else is a bug that freezes its view."""
    if not task.cancelled() and task.exception() is not None:
        log.error("the controller's metadata watch stopped: %r", task.exception(), exc_info=task.exception())
