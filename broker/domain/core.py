"""The broker's domain, assembled: one object the service layer calls, with plain values in and out."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from logstore.broker.classic_group_machine.model import ClassicConfig
from logstore.broker.cluster.errors import InvalidReplicationFactorError
from logstore.broker.domain.cluster_admin import ClusterAdmin
from logstore.broker.domain.cluster_info import ClusterInfo, CoordinatorKind
from logstore.broker.domain.durability import Flusher
from logstore.broker.domain.errors import ShuttingDownError
from logstore.broker.domain.fetch import Reader
from logstore.broker.domain.groups import GroupDomain
from logstore.broker.domain.groups.classic import ClassicGroups
from logstore.broker.domain.groups.offset_store import DEFAULT_OFFSETS_PARTITIONS, OFFSETS_TOPIC
from logstore.broker.domain.produce import Appender
from logstore.broker.domain.producer_ids import ProducerIdAllocator, highest_producer_id
from logstore.broker.domain.replicas import Replicas
from logstore.broker.domain.share.driver import ShareDomain
from logstore.broker.domain.share.state_store import STATE_TOPIC
from logstore.broker.domain.subscribe import Room, Subscriptions
from logstore.broker.domain.topics import Topics
from logstore.broker.domain.values import (
    Acks,
    AppendOutcome,
    FetchSpec,
    OffsetAnswer,
    OffsetQuery,
    PartitionOffsets,
    PartitionRead,
    ProduceEntry,
    SubscribeStart,
    TopicView,
)
from logstore.broker.domain.waiters import AppendWaiters
from logstore.broker.group_machine.model import CoordinatorConfig
from logstore.broker.share_machine import ShareGroupConfig

from logstore.errors import InvalidRequestError, UnknownTopicError
from logstore.manager import LogManager, validate_topic_name

log = logging.getLogger(__name__)

"""(name, partitions, config, replication factor, timeout in seconds): the cluster's way to create a topic."""


class BrokerCore:
    """Topics, produce, fetch, subscribe, list offsets, producer ids, consumer and share groups over one
    LogManager.

    Not thread-safe: call it from one event loop only. `close` is two-phase with the server: `begin_shutdown` makes
    long-polls answer and subscriptions end so in-flight calls can finish; `close` then appends queued
    acks=0 data, waits for fsyncs and closes the engine (which writes the clean-shutdown marker).
    """

    def __init__(
        self,
        manager: LogManager,
        *,
        auto_create_topics: bool,
        default_partitions: int,
        max_batch_bytes: int,
        flush_threads: int,
        group_config: CoordinatorConfig | None = None,
        offsets_topic_partitions: int = DEFAULT_OFFSETS_PARTITIONS,
        share_config: ShareGroupConfig | None = None,
        clustered: bool = False,
        producer_id_space: tuple[int, int] = (1, 0),
    ) -> None:
        self.manager = manager
        self._producer_id_stride, self._producer_id_offset = producer_id_space
        """Producer ids are `n * stride + offset` for the local allocator's n: brokers of a cluster hand out
        disjoint ids (offset = broker id) without asking each other."""
        self.waiters = AppendWaiters()
        self._executor = ThreadPoolExecutor(max_workers=flush_threads, thread_name_prefix="logstore-fsync")
        self.topics = Topics(
            manager,
            self.waiters,
            auto_create=auto_create_topics,
            default_partitions=default_partitions,
            max_batch_bytes=max_batch_bytes,
        )
        self._flusher = Flusher(self._executor)
        self._appender = Appender(self.topics, self.waiters, self._flusher)
        self._reader = Reader(self.topics, self.waiters)
        self._subscriptions = Subscriptions(self.topics, self.waiters)
        self._producer_ids = ProducerIdAllocator(
            manager.data_dir,
            highest_in_logs=lambda: highest_producer_id(manager.all_logs()) // self._producer_id_stride,
            fresh=not manager.topics(),
        )
        self._groups = GroupDomain(
            manager,
            self.topics,
            self._flusher,
            group_config or CoordinatorConfig(),
            offsets_topic_partitions=offsets_topic_partitions,
            clustered=clustered,
        )
        self._groups.check_coordinator = lambda group_id: self.cluster.check_coordinator(
            CoordinatorKind.GROUP, group_id
        )
        self._share = ShareDomain(
            manager,
            self.topics,
            self.waiters,
            self._flusher,
            share_config or ShareGroupConfig(),
            is_consumer_group=lambda group_id: (
                self._groups.has_group(group_id) or self._classic.has_members(group_id)
            ),
            clustered=clustered,
        )
        self._share.check_coordinator = lambda group_id: self.cluster.check_coordinator(
            CoordinatorKind.SHARE, group_id
        )
        self._classic = ClassicGroups(
            self._groups,
            ClassicConfig(
                min_session_timeout_ms=self._groups.min_session_timeout_ms,
                max_session_timeout_ms=self._groups.max_session_timeout_ms,
            ),
            share_group=self._share.has_group,
        )
        self._groups.foreign_group = self._share.has_group
        self._groups.classic_members = self._classic.has_members
        self.topics.internal = frozenset({OFFSETS_TOPIC, STATE_TOPIC})
        self.topics.on_change = self._topic_changed
        self.shutting_down = False
        self._on_shutdown: set[Callable[[], None]] = set()
        self.cluster_admin: ClusterAdmin | None = None
        """In a cluster, the node that asks the controller for topic changes (None: made here)."""

    async def create_topic(
        self,
        name: str,
        partitions: int = 0,
        config: Mapping[str, str] | None = None,
        replication_factor: int = 0,
        timeout_s: float = 30.0,
    ) -> TopicView:
        """Create a topic: here for a single broker, through the controller in a cluster (waiting until
        every partition has a leader). `replication_factor` 0 means the broker's default."""
        self._check_running()
        if self.cluster_admin is None:
            if replication_factor > 1:
                raise InvalidReplicationFactorError(
                    f"replication factor {replication_factor} for topic {name!r}: this broker is alone "
                    "(started without --etcd), so it can hold 1 replica"
                )
            return self.topics.create(name, partitions, config)
        self.topics.refuse_internal(name, "created")
        validate_topic_name(name)
        self.topics.check_config(config or {}, replicas=None)
        await self.cluster_admin.create_topic(
            name, partitions, dict(config or {}), replication_factor, timeout_s
        )
        try:
            return self.topics.describe(name)
        except UnknownTopicError:  # this broker holds no replica of it
            count = partitions or self.topics.default_partitions
            offsets = [PartitionOffsets(p, 0, 0) for p in range(count)]
            return TopicView(name, dict(config or {}), offsets)

    async def delete_topic(self, name: str, timeout_s: float = 30.0) -> None:
        """Delete a topic: here for a single broker, through the controller on every broker of a cluster."""
        self._check_running()
        if self.cluster_admin is None:
            self.topics.delete(name)
            return
        self.topics.refuse_internal(name, "deleted")
        self.topics.info(name)  # UnknownTopicError for a topic that is not there
        await self.cluster_admin.delete_topic(name, timeout_s)

    async def add_partitions(
        self, name: str, total_partitions: int, *, validate_only: bool = False, timeout_s: float = 30.0
    ) -> TopicView:
        """Grow a topic (see `Topics.add_partitions`); in a cluster the controller places the new partitions."""
        self._check_running()
        checked = self.topics.add_partitions(
            name, total_partitions, validate_only=validate_only or self.cluster_admin is not None
        )
        if self.cluster_admin is None or validate_only or total_partitions == len(checked.partitions):
            return checked
        await self.cluster_admin.add_partitions(name, total_partitions, timeout_s)
        return self.topics.describe(name)

    async def alter_topic_config(
        self,
        name: str,
        updates: Mapping[str, str],
        reset: Sequence[str] = (),
        *,
        validate_only: bool = False,
        timeout_s: float = 30.0,
    ) -> TopicView:
        """Set and reset topic configs (see `Topics.alter_config`); in a cluster on every broker."""
        self._check_running()
        if self.cluster_admin is None:
            if not validate_only:
                self.topics.check_config(self.topics.config_changes(name, updates, reset), replicas=1)
            return self.topics.alter_config(name, updates, reset, validate_only=validate_only)
        changes = self.topics.config_changes(name, updates, reset)
        if validate_only:
            return self.topics.describe(name)
        await self.cluster_admin.alter_config(name, changes, timeout_s)
        return self.topics.describe(name)

    async def reassign_partitions(self, name: str, targets: Mapping[int, Sequence[int]]) -> None:
        """Move partitions to other brokers (`logstore topics reassign`); only a cluster has others."""
        self._check_running()
        if self.cluster_admin is None:
            raise InvalidRequestError(
                "this broker is alone (started without --etcd): there is no other broker to move partitions to"
            )
        self.topics.refuse_internal(name, "reassigned")
        await self.cluster_admin.reassign(name, targets)

    @property
    def flusher(self) -> Flusher:
        """The fsync workers (the replica fetcher flushes followers' logs by the topic's policy too)."""
        return self._flusher

    @property
    def cluster(self) -> ClusterInfo:
        """Who leads what: this broker alone (`SingleBroker`), or with `--etcd` the cluster node's view."""
        return self.topics.cluster

    @cluster.setter
    def cluster(self, cluster: ClusterInfo) -> None:
        self.topics.cluster = cluster

    @property
    def replicas(self) -> Replicas:
        """The data path's replication hooks: `NotReplicated` alone, the replica manager in a cluster."""
        return self.topics.replicas

    @replicas.setter
    def replicas(self, replicas: Replicas) -> None:
        self.topics.replicas = replicas
        self._groups.replicas = replicas
        self._share.replicas = replicas

    def leadership_changed(self, topic: str, partition: int, leading: bool) -> None:
        """This broker started (or stopped) leading a partition; the coordinators of the groups whose
        state a partition of an internal topic holds move with its leadership."""
        if topic == OFFSETS_TOPIC and leading:
            self._groups.took_over(partition)
        elif topic == STATE_TOPIC and leading:
            self._share.took_over(partition)
        elif topic == STATE_TOPIC:
            self._share.gave_up(partition)

    def when_shutting_down(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` once when the shutdown begins (now, if it has); returns the function that
        unregisters it. For calls that wait on their client rather than on the domain (ProduceStream),
        which would otherwise hold the shutdown up for its whole grace period."""
        if self.shutting_down:
            callback()
            return lambda: None
        self._on_shutdown.add(callback)
        return lambda: self._on_shutdown.discard(callback)

    def _check_running(self) -> None:
        if self.shutting_down:
            raise ShuttingDownError("the broker is shutting down; retry once it is back")

    @property
    def admin(self) -> Topics:
        """The topic registry, for admin calls; refused while shutting down."""
        self._check_running()
        return self.topics

    @property
    def groups(self) -> GroupDomain:
        """Consumer groups and committed offsets; refused while shutting down."""
        self._check_running()
        return self._groups

    @property
    def classic_groups(self) -> ClassicGroups:
        """Consumer groups of the classic protocol (the Kafka listener's JoinGroup); refused while shutting
        down."""
        self._check_running()
        return self._classic

    @property
    def share(self) -> ShareDomain:
        """Share groups (queues on the log); refused while shutting down."""
        self._check_running()
        return self._share

    def topic_exists(self, name: str) -> bool:
        """Whether the topic exists (authorization asks: a write to a missing one would create it)."""
        try:
            self.topics.manager.topic(name)
        except UnknownTopicError:
            return False
        return True

    def _topic_changed(self, name: str) -> None:
        self._groups.topic_changed(name)
        self._share.topic_changed(name)

    # --- data path --------------------------------------------------------------------------------------

    async def produce(
        self, entries: Sequence[ProduceEntry], acks: Acks, timeout_s: float
    ) -> list[AppendOutcome]:
        self._check_running()
        return await self._appender.produce(entries, acks, timeout_s)

    def append_now(self, entries: Sequence[ProduceEntry]) -> list[AppendOutcome]:
        """Append now, for acks 0 and 1 (see `Appender.append_now`)."""
        self._check_running()
        return self._appender.append_now(entries)

    def init_producer_id(self) -> tuple[int, int]:
        """A new producer id and its epoch (always 0: ids are never reused, so never bumped)."""
        self._check_running()
        local = self._producer_ids.allocate()
        return local * self._producer_id_stride + self._producer_id_offset, 0

    async def fetch(
        self, specs: Sequence[FetchSpec], *, min_bytes: int, max_wait_s: float, max_bytes: int
    ) -> list[PartitionRead]:
        self._check_running()
        return await self._reader.fetch(
            specs, min_bytes=min_bytes, max_wait_s=max_wait_s, max_bytes=max_bytes
        )

    def read_now(self, specs: Sequence[FetchSpec], max_bytes: int) -> list[PartitionRead]:
        """Read every partition once, within `max_bytes` (the first batch found is always whole). Also
        while the broker stops: a long-poll woken by the stop answers with what is there."""
        return self._reader.read(specs, max_bytes)[0]

    def watch(self, specs: Sequence[FetchSpec], waker: Callable[[], None]) -> Callable[[], None]:
        """Call `waker` inside the next append to one of the partitions of `specs` (or when the broker
        stops); returns the function that stops watching. For long-polls that are not tasks."""
        return self.waiters.watch([(spec.topic, spec.partition) for spec in specs], waker)

    def list_offsets(self, queries: Sequence[OffsetQuery]) -> list[OffsetAnswer]:
        self._check_running()
        return self._reader.list_offsets(queries)

    def subscribe(
        self, starts: Sequence[SubscribeStart], max_bytes: int, room: Room | None = None
    ) -> AsyncIterator[list[PartitionRead]]:
        """Resolve every start position now (raising if one is unusable), then stream."""
        self._check_running()
        positions = self._subscriptions.resolve(starts)
        return self._subscriptions.run(positions, max_bytes, room)

    # --- lifecycle --------------------------------------------------------------------------------------

    def committed_offsets(self) -> list[tuple[str, str, int, int]]:
        """(group, topic, partition, committed offset) of every consumer group; read-only, also while
        shutting down (the metrics read it at scrape time)."""
        return [(group, tp.topic, tp.partition, offset) for group, tp, offset in self._groups.all_committed()]

    def share_partition_counts(self) -> list[tuple[str, str, int, int, int]]:
        """(group, topic, partition, records in flight, records archived) of every share-partition."""
        return [
            (group, topic, partition, counts.in_flight, counts.archived_total)
            for group, topic, partition, counts in self._share.partition_counts()
        ]

    def begin_shutdown(self) -> None:
        """Refuse new work; wake long-polls (they answer with what they have) and end subscriptions."""
        self.shutting_down = True
        callbacks, self._on_shutdown = self._on_shutdown, set()
        for callback in callbacks:
            callback()
        self._reader.closing = True
        self._subscriptions.closing = True
        self._groups.close()
        self._classic.close()
        self._share.close()
        self.waiters.notify_all()

    async def close(self) -> None:
        """After the server has finished its calls: append queued acks=0 data, flush, close the engine."""
        self.begin_shutdown()
        self._appender.drain_unacknowledged()
        await self._flusher.wait_idle()
        await asyncio.get_running_loop().run_in_executor(self._executor, self.manager.close)
        self._executor.shutdown(wait=True)
