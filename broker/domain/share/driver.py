"""The driver around the pure share-group core: clock, timer, long-polls, reads, durability, dead letters.

The core (`logstore.broker.share_machine`) decides: who is a member, which offsets a member may acquire,
what an acknowledgement does. This class gives it what it cannot have itself:

- the log: a fetch reads whole batches from where the share-partition says something is acquirable and
  hands the core the offsets they cover; batches go out as stored, records are never decoded here
  (only the dead-letter writer decodes, for the few records archived);
- durability: every share-partition a request changed is written to `__share_group_state`, one batch per
  request (one group's records share a partition of that topic). A request that carries acknowledgements
  is answered only after that batch is fsynced (through the shared `Flusher`); an acquisition only needs
  the page cache (after a kill -9 it is there, and an acquired record is persisted as available anyway);
- time: one `DeadlineTimer` at the earliest lock expiry, delayed release or session end;
- wake-ups: a long-polling ShareFetch waits on its partitions' appends and on its group's share-partition
  changes (releases, expiries, acknowledgements freeing the window), through the broker's AppendWaiters
  under keys no topic can have (a NUL byte in the name);
- topics and retention: a deleted topic's share state is forgotten (tombstones), a share-partition
  whose records retention removed starts at the log start;
- a cluster: the coordinator of a group is the leader of its `__share_group_state` partition. It keeps
  all of the group's state, takes a partition's groups up when it comes to lead it (`took_over`: their
  state is replayed from the replicated log) and drops them when it stops (`gave_up`); it reads data
  partitions through `PartitionSource`s (its own log where it leads, the leader's otherwise), and waits
  for the in-sync replicas before answering an acknowledgement. Elsewhere a fetch or acknowledgement is
  forwarded to the coordinator, and every other call answers NOT_COORDINATOR.

Not thread-safe: the broker's event loop only.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Sequence

from logstore.broker.domain.durability import Flusher
from logstore.broker.domain.errors import NotCoordinatorError, NotLeaderOrFollowerError
from logstore.broker.domain.groups.timer import DeadlineTimer, monotonic_ms
from logstore.broker.domain.replicas import Replicas
from logstore.broker.domain.share.dead_letter_gate import DeadLetterGate
from logstore.broker.domain.share.dlq import DeadLetters, DeadLetterTarget
from logstore.broker.domain.share.remote import ShareForwarder
from logstore.broker.domain.share.sources import LocalSource, PartitionSource, RemoteSources, SourceNotReady
from logstore.broker.domain.share.state_store import STATE_TOPIC, PartitionKey, ShareStateStore, Written
from logstore.broker.domain.share.values import (
    AckRange,
    AcquiredRecords,
    ConfigChange,
    ConfigEntry,
    PartitionAckOutcome,
    PartitionAcks,
    RangeOutcome,
    ShareFetchAnswer,
    ShareFetchSpec,
    ShareGroupView,
    ShareHeartbeat,
    ShareHeartbeatAnswer,
    ShareMemberView,
    SharePartitionView,
)
from logstore.broker.domain.topics import Topics
from logstore.broker.domain.waiters import AppendWaiters
from logstore.broker.share_machine import (
    GROUP_CONFIG_NAMES,
    Acknowledgement,
    AcknowledgeType,
    AckResult,
    Archived,
    GroupIdNotFoundError,
    InconsistentGroupProtocolError,
    InvalidRecordStateError,
    MemberGone,
    ShareGroupConfig,
    ShareGroupState,
    ShareMember,
    UnknownMemberIdError,
    config_to_strings,
    parse_group_config,
    reset_duration_ms,
)
from logstore.broker.share_machine.config import EARLIEST, LATEST
from logstore.broker.share_machine.membership import ShareGroups
from logstore.broker.share_machine.model import PartitionCounts
from logstore.broker.share_machine.partition import SharePartition

from logstore.errors import InvalidConfigError, InvalidRequestError, LogStoreError
from logstore.log import Log
from logstore.manager import LogManager
from logstore.records import iter_headers

log = logging.getLogger(__name__)

ACK_REPLICATION_TIMEOUT_S = 30.0
"""How long an acknowledgement waits for the in-sync replicas of its state record (in a cluster)."""
RETRY_AFTER_FAILURE_MS = 1000
"""When timeout handling hit a bug, try again this much later rather than at once."""
MIN_READ_BYTES = 16 * 1024
DEFAULT_BYTES_PER_RECORD = 256
"""A guess of the bytes per offset of a partition not read yet: reads are sized by it and the records
wanted, so taking 500 records of 100 bytes does not copy a whole megabyte out of the segment."""


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def _new_member_id() -> str:
    return uuid.uuid4().hex


def share_key(group_id: str, topic: str, partition: int) -> PartitionKey:
    """The AppendWaiters key woken when a group's share-partition has records available again."""
    return (f"{group_id}\x00{topic}", partition)


def group_key(group_id: str) -> PartitionKey:
    """The AppendWaiters key woken when a group's members or topics change."""
    return (f"{group_id}\x00", -1)


class _Changes:
    """What one request (or timer round) changed in one group: share-partitions to persist, and
    archived ranges for the dead-letter topic."""

    __slots__ = ("archived", "generation", "touched")

    def __init__(self, generation: int = 0) -> None:
        self.touched: dict[PartitionKey, SharePartition] = {}
        self.archived: list[tuple[PartitionKey, list[Archived]]] = []
        self.generation = generation
        """How many times the group's state partition had been taken up or given up when this began."""

    def add_archived(self, key: PartitionKey, archived: list[Archived]) -> None:
        if archived:
            self.archived.append((key, archived))


class ShareDomain:
    """Share groups over one LogManager. Not thread-safe: one event loop only."""

    def __init__(
        self,
        manager: LogManager,
        topics: Topics,
        waiters: AppendWaiters,
        flusher: Flusher,
        defaults: ShareGroupConfig,
        *,
        is_consumer_group: Callable[[str], bool] = lambda group_id: False,
        clock_ms: Callable[[], int] = monotonic_ms,
        wall_ms: Callable[[], int] = _wall_ms,
        member_id_factory: Callable[[], str] = _new_member_id,
        clustered: bool = False,
    ) -> None:
        self._manager = manager
        self._clustered = clustered
        """In a cluster: groups are taken up and dropped with the state topic's partitions, and data is
        read through sources (see the module's docstring)."""
        self._topics = topics
        self._waiters = waiters
        self._flusher = flusher
        self._defaults = defaults
        self._is_consumer_group = is_consumer_group
        self._clock_ms = clock_ms
        self._wall_ms = wall_ms
        self._new_member_id = member_id_factory
        self._store = ShareStateStore(manager, clustered=clustered)
        self._dead_letters = DeadLetters(topics, waiters)
        self._groups = ShareGroups(self._topic_partitions())
        self._timer = DeadlineTimer(self._on_deadline, clock_ms)
        self._partitions: dict[str, dict[PartitionKey, SharePartition]] = {}
        self._own_configs: dict[str, dict[str, str]] = {}
        self._configs: dict[str, ShareGroupConfig] = {}
        self._rotation: dict[tuple[str, str], int] = {}
        self._bytes_per_record: dict[PartitionKey, float] = {}
        self._background: set[asyncio.Future[None]] = set()
        self.forwarder: ShareForwarder | None = None
        """In a cluster: hands fetches and acknowledgements to the group's coordinator."""
        self.remote_sources: RemoteSources | None = None
        """In a cluster: the data partitions this broker does not lead, as fetched from their leaders."""
        self.dead_letter_gate: DeadLetterGate | None = None
        """In a cluster: dead letters go out through it, each before the snapshot that archives it."""
        self._check_coordinator: Callable[[str], None] = lambda group_id: None
        self._generations: dict[int, int] = {}
        """Per state partition: how many times it was taken up or given up (see `_Changes.generation`)."""
        self._unloadable: dict[int, LogStoreError] = {}
        """State partitions this broker leads but could not replay: their groups are refused."""
        self.closing = False
        """Set at shutdown: long-polls answer at once with what they have."""
        self._restore()

    # --- start-up -----------------------------------------------------------------------------------

    @property
    def replicas(self) -> Replicas:
        """The state topic's replication hooks (epochs, ISR waits); `NotReplicated` alone."""
        return self._store.replicas

    @replicas.setter
    def replicas(self, replicas: Replicas) -> None:
        self._store.replicas = replicas

    def _restore(self, partitions: Sequence[int] | None = None) -> None:
        """Know again the groups whose state the state topic (or some of its partitions) holds. In a
        cluster nothing is read at start-up: `took_over` reads each partition this broker comes to lead."""
        if self._clustered and partitions is None:
            return
        replayed = self._store.replay(partitions)
        for group_id, values in replayed.configs.items():
            try:
                self._configs[group_id] = parse_group_config(values, self._defaults)
                self._own_configs[group_id] = dict(values)
            except InvalidConfigError as exc:  # e.g. a broker default bound changed: keep what is valid
                log.warning("share group %s: ignoring its stored configuration: %s", group_id, exc)
        existing = self._topic_partitions()
        gone: dict[str, list[PartitionKey]] = {}
        for group_id, snapshots in replayed.snapshots.items():
            config = self.config(group_id)
            for key, snapshot in snapshots.items():
                topic, partition = key
                if partition >= existing.get(topic, 0):  # deleted before a crash let its tombstone land
                    gone.setdefault(group_id, []).append(key)
                    continue
                self._partitions.setdefault(group_id, {})[key] = SharePartition.restore(snapshot, config)
        for group_id, keys in gone.items():
            self._store.write_snapshots(group_id, dict.fromkeys(keys))

    def took_over(self, partition: int) -> None:
        """This broker now leads `partition` of the state topic: replay it (the previous coordinator
        wrote it; replication copied it here) and coordinate its groups. Members join again: membership
        is not replicated, and what they held is available again, its delivery counts kept. If the
        partition cannot be read, its groups are refused (naming why) until a later take-over reads it."""
        self._forget_partition(partition)
        try:
            self._restore((partition,))
        except LogStoreError as exc:
            self._forget_partition(partition)
            self._unloadable[partition] = exc
            log.error("cannot coordinate the share groups of %s-%d: %s", STATE_TOPIC, partition, exc)
            return
        groups = [g for g in set(self._partitions) | set(self._own_configs) if self._in(g, partition)]
        log.info(
            "coordinating the share groups of %s-%d now (%d with state)", STATE_TOPIC, partition, len(groups)
        )
        self._arm(self._groups.next_deadline_ms())
        for group_id in groups:
            self._arm_for_all(group_id)

    def gave_up(self, partition: int) -> None:
        """This broker stopped leading `partition` of the state topic: forget its groups (their new
        coordinator replays them) and wake their long-polls, which then answer NOT_COORDINATOR."""
        self._forget_partition(partition)

    @property
    def check_coordinator(self) -> Callable[[str], None]:
        """Raises NotCoordinatorError unless this broker coordinates the group (always does, alone), or
        the error that kept it from reading the group's state."""
        return self._coordinates

    @check_coordinator.setter
    def check_coordinator(self, check: Callable[[str], None]) -> None:
        self._check_coordinator = check

    def _coordinates(self, group_id: str) -> None:
        self._check_coordinator(group_id)
        if self._unloadable:
            failure = self._unloadable.get(self._store.partition_for(group_id))
            if failure is not None:
                raise failure

    def _in(self, group_id: str, partition: int) -> bool:
        return self._store.partition_for(group_id) == partition

    def _forget_partition(self, partition: int) -> None:
        self._generations[partition] = self._generations.get(partition, 0) + 1
        self._unloadable.pop(partition, None)
        ids = set(self._partitions) | set(self._own_configs) | set(self._groups.groups())
        for group_id in [g for g in ids if self._in(g, partition)]:
            parts = self._partitions.pop(group_id, {})
            for key in parts:
                self._bytes_per_record.pop(key, None)
                self._waiters.notify(share_key(group_id, *key))
            self._own_configs.pop(group_id, None)
            self._configs.pop(group_id, None)
            self._groups.forget_group(group_id)
            if self.dead_letter_gate is not None:
                self.dead_letter_gate.forget(group_id)
            for rotation in [r for r in self._rotation if r[0] == group_id]:
                del self._rotation[rotation]
            self._waiters.notify(group_key(group_id))

    # --- configuration -------------------------------------------------------------------------------

    def config(self, group_id: str) -> ShareGroupConfig:
        """The group's effective configuration: its own settings over the broker's defaults."""
        return self._configs.get(group_id, self._defaults)

    def intervals(self, group_id: str) -> tuple[int, int]:
        """(heartbeat interval, session timeout) of the group, in milliseconds."""
        config = self.config(group_id)
        return config.heartbeat_interval_ms, config.session_timeout_ms

    def has_group(self, group_id: str) -> bool:
        """Whether a share group of that id exists (members, state or configuration)."""
        return group_id in self._partitions or group_id in self._own_configs or self._has_members(group_id)

    def _has_members(self, group_id: str) -> bool:
        return self._groups.has_group(group_id)

    def list_groups(self) -> list[tuple[str, bool, int]]:
        """(group id, stable, member count) of every share group: with members, state or configuration."""
        ids = set(self._partitions) | set(self._own_configs) | set(self._groups.groups())
        listed = []
        for group_id in sorted(ids):
            members = self._groups.member_count(group_id)
            listed.append((group_id, members > 0, members))
        return listed

    def partition_counts(self) -> list[tuple[str, str, int, PartitionCounts]]:
        """(group, topic, partition, counts) of every share-partition a group has read, for the metrics."""
        now = self._clock_ms()
        return [
            (group_id, topic, partition, share_partition.counts(now))
            for group_id, parts in self._partitions.items()
            for (topic, partition), share_partition in parts.items()
        ]

    def _elsewhere(self, group_id: str, forwarded: bool) -> tuple[ShareForwarder, int] | None:
        """None when this broker coordinates the group; the forwarder and the coordinator's id when
        another does and the call may travel there; raises NotCoordinatorError otherwise (a call that
        was forwarded here already, or no coordinator known)."""
        try:
            self.check_coordinator(group_id)
        except NotCoordinatorError as exc:
            if forwarded or self.forwarder is None or exc.coordinator < 0:
                raise
            return self.forwarder, exc.coordinator
        return None

    def _refuse_consumer_group(self, group_id: str) -> None:
        if self._is_consumer_group(group_id):
            raise InconsistentGroupProtocolError(
                f"group {group_id!r} is a consumer group; a share group needs an id of its own"
            )

    async def alter_config(self, change: ConfigChange) -> None:
        """Set and remove group configs, all or nothing, durably; applies to new acquisitions at once."""
        group_id = change.group_id
        self.check_coordinator(group_id)
        self._refuse_consumer_group(group_id)
        values = dict(self._own_configs.get(group_id, {}))
        for name in change.delete:
            if name not in GROUP_CONFIG_NAMES:
                raise InvalidConfigError(
                    f"cannot remove unknown share group config {name!r}; known configs: "
                    f"{', '.join(GROUP_CONFIG_NAMES)}"
                )
            if name in change.set:
                raise InvalidConfigError(f"share group config {name!r} is both set and removed; choose one")
            values.pop(name, None)
        values.update(change.set)
        config = parse_group_config(values, self._defaults)
        written = self._store.write_config(group_id, values or None)
        await self._flush([written], replicated=True)
        if values:
            self._own_configs[group_id] = values
            self._configs[group_id] = config
        else:
            self._own_configs.pop(group_id, None)
            self._configs.pop(group_id, None)
        for share_partition in self._partitions.get(group_id, {}).values():
            share_partition.config = config
        log.info("share group %s: configuration %s", group_id, values or "back to the broker's defaults")

    def describe_config(self, group_id: str) -> list[ConfigEntry]:
        self.check_coordinator(group_id)
        self._refuse_consumer_group(group_id)
        own = self._own_configs.get(group_id, {})
        effective = config_to_strings(self.config(group_id))
        return [ConfigEntry(name, effective[name], name in own) for name in GROUP_CONFIG_NAMES]

    # --- membership ---------------------------------------------------------------------------------

    def heartbeat(self, request: ShareHeartbeat) -> ShareHeartbeatAnswer:
        """Join, stay or leave; raises the core's membership errors."""
        self.check_coordinator(request.group_id)
        self._refuse_consumer_group(request.group_id)
        now = self._clock_ms()
        answer = self._groups.heartbeat(
            request.group_id,
            request.member_id,
            request.member_epoch,
            list(request.topic_names),
            request.client_id,
            request.client_host,
            now,
            self.config(request.group_id),
            new_member_id=self._new_member_id(),
        )
        if answer.gone is not None:
            self._member_gone(answer.gone, now)
        self._arm(self._groups.next_deadline_ms())
        return ShareHeartbeatAnswer(
            answer.member_id,
            answer.member_epoch,
            answer.heartbeat_interval_ms,
            answer.session_timeout_ms,
            [(topic.topic, topic.partitions) for topic in answer.assignment],
        )

    async def heartbeat_anywhere(self, request: ShareHeartbeat) -> ShareHeartbeatAnswer:
        """A heartbeat as Kafka's share clients send it: librdkafka finds a share group's coordinator
        with FindCoordinator key type GROUP, which names the consumer-group coordinator of the id, and a
        broker cannot tell a share group's id from a consumer group's before the group exists. So one
        this broker does not coordinate is passed to the share coordinator (which never passes it on:
        it answers or refuses). gRPC heartbeats use `heartbeat` and answer NOT_COORDINATOR instead."""
        elsewhere = self._elsewhere(request.group_id, forwarded=False)
        if elsewhere is not None:
            forwarder, coordinator = elsewhere
            return await forwarder.heartbeat(coordinator, request)
        return self.heartbeat(request)

    def is_member(self, group_id: str, member_id: str) -> bool:
        """Whether the member is in the group now (it has not left or timed out)."""
        try:
            self._groups.member(group_id, member_id)
        except LogStoreError:
            return False
        return True

    def _member(self, group_id: str, member_id: str) -> ShareMember:
        try:
            return self._groups.member(group_id, member_id)
        except UnknownMemberIdError:
            self._refuse_consumer_group(group_id)
            if not self.has_group(group_id):  # no members, no state, no configuration: no such group
                raise GroupIdNotFoundError(f"share group {group_id!r} does not exist") from None
            raise  # it exists (with state, say after a restart) but this member is not in it

    def _member_gone(self, gone: MemberGone, now: int) -> None:
        """A member left or timed out: what it holds is released (archived at the delivery limit)."""
        self._rotation.pop((gone.group_id, gone.member_id), None)
        changes = self._changes(gone.group_id)
        for key, share_partition in self._partitions.get(gone.group_id, {}).items():
            if not share_partition.acquired_by(gone.member_id):
                continue
            archived = share_partition.release_member(gone.member_id, now)
            if archived:
                changes.touched[key] = share_partition
                changes.add_archived(key, archived)
            self._waiters.notify(share_key(gone.group_id, *key))
        self._write_in_background(gone.group_id, changes)
        self._waiters.notify(group_key(gone.group_id))
        log.info(
            "share group %s: member %s gone (%s); its records are released",
            gone.group_id,
            gone.member_id,
            gone.reason.value,
        )

    # --- fetch and acknowledge ----------------------------------------------------------------------

    async def fetch(self, spec: ShareFetchSpec, *, forwarded: bool = False) -> ShareFetchAnswer:
        """Apply the acknowledgements, then acquire records, long-polling up to `spec.max_wait_ms`.
        In a cluster, a broker that does not coordinate the group forwards the call to the one that
        does, unless it was `forwarded` here already (then NotCoordinatorError)."""
        group_id = spec.group_id
        elsewhere = self._elsewhere(group_id, forwarded)
        if elsewhere is not None:
            forwarder, coordinator = elsewhere
            return await forwarder.fetch(coordinator, spec)
        now = self._clock_ms()
        member = self._member(group_id, spec.member_id)
        changes = self._changes(group_id)
        outcomes = self._apply_acks(group_id, spec.member_id, spec.acks, now, changes) if spec.acks else []
        written: list[Written] = []
        acquired: list[AcquiredRecords] = []
        if not spec.acknowledge_only:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + spec.max_wait_ms / 1000
            while True:
                acquired = self._acquire(group_id, member, now, spec, changes)
                remaining = deadline - loop.time()
                if acquired or self.closing or remaining <= 0:
                    break
                written += await self._persist_now(
                    group_id, changes
                )  # acknowledgements, new share-partitions
                await self._waiters.wait(self._wait_keys(group_id, member), remaining)
                self.check_coordinator(group_id)  # it may have moved meanwhile: NOT_COORDINATOR, not empty
                now = self._clock_ms()
                try:
                    member = self._member(group_id, spec.member_id)
                except LogStoreError:  # removed meanwhile: answer empty, the next call learns why
                    break
        written += await self._persist_now(group_id, changes)
        if spec.acks and written:  # acquisitions alone need only the page cache
            await self._flush(written, replicated=True)
        self._arm_for(group_id, acquired)
        return ShareFetchAnswer(acquired, outcomes, self.config(group_id).record_lock_duration_ms)

    async def acknowledge(
        self, group_id: str, member_id: str, acks: Sequence[PartitionAcks], *, forwarded: bool = False
    ) -> list[PartitionAckOutcome]:
        """Apply acknowledgements without fetching; answered once they are fsynced (forwarded as
        `fetch` is)."""
        elsewhere = self._elsewhere(group_id, forwarded)
        if elsewhere is not None:
            forwarder, coordinator = elsewhere
            return await forwarder.acknowledge(coordinator, group_id, member_id, acks)
        now = self._clock_ms()
        self._member(group_id, member_id)
        changes = self._changes(group_id)
        outcomes = self._apply_acks(group_id, member_id, acks, now, changes)
        written = await self._persist_now(group_id, changes)
        if written:
            await self._flush(written, replicated=True)
        self._arm_for(group_id, ())
        return outcomes

    def _apply_acks(
        self, group_id: str, member_id: str, acks: Sequence[PartitionAcks], now: int, changes: _Changes
    ) -> list[PartitionAckOutcome]:
        outcomes = []
        parts = self._partitions.get(group_id, {})
        for entry in acks:
            key = (entry.topic, entry.partition)
            share_partition = parts.get(key)
            if share_partition is None:
                try:
                    self._topics.log(entry.topic, entry.partition)  # unknown topic or partition: say so
                except LogStoreError as exc:
                    outcomes.append(PartitionAckOutcome(entry.topic, entry.partition, error=exc))
                    continue
                error = InvalidRecordStateError(
                    f"{entry.topic}-{entry.partition}: group {group_id!r} never delivered records of this "
                    "partition; acknowledge only offsets you acquired"
                )
                outcomes.append(
                    PartitionAckOutcome(
                        entry.topic,
                        entry.partition,
                        results=[RangeOutcome(r.first_offset, r.last_offset, error) for r in entry.ranges],
                    )
                )
                continue
            outcomes.append(self._acknowledge_partition(member_id, now, entry, share_partition, changes))
            changes.touched[key] = share_partition
            self._waiters.notify(share_key(group_id, *key))
        return outcomes

    def _acknowledge_partition(
        self,
        member_id: str,
        now: int,
        entry: PartitionAcks,
        share_partition: SharePartition,
        changes: _Changes,
    ) -> PartitionAckOutcome:
        where = f"{entry.topic}-{entry.partition}"
        results: list[RangeOutcome | None] = []
        valid: list[Acknowledgement] = []
        for ack_range in entry.ranges:
            acknowledgement = _acknowledgement(ack_range)
            if acknowledgement is None:
                results.append(
                    RangeOutcome(
                        ack_range.first_offset,
                        ack_range.last_offset,
                        InvalidRequestError(
                            f"{where} [{ack_range.first_offset}, {ack_range.last_offset}]: acknowledgement "
                            f"type {ack_range.type} is unknown; use ACCEPT, RELEASE, REJECT or RENEW"
                        ),
                    )
                )
            else:
                results.append(None)
                valid.append(acknowledgement)
        if valid:
            applied, archived = share_partition.acknowledge(member_id, now, valid)
            changes.add_archived((entry.topic, entry.partition), archived)
            answers = iter(applied)
            results = [result if result is not None else _outcome(next(answers)) for result in results]
        return PartitionAckOutcome(
            entry.topic, entry.partition, results=[r for r in results if r is not None]
        )

    def _acquire(
        self, group_id: str, member: ShareMember, now: int, spec: ShareFetchSpec, changes: _Changes
    ) -> list[AcquiredRecords]:
        """Acquire up to `spec.max_records` over the member's partitions, round-robin or by priority."""
        order = [(topic.topic, partition) for topic in member.assignment for partition in topic.partitions]
        if spec.partitions is not None:
            order = [key for key in order if key in spec.partitions]
        if not order:
            return []
        if not spec.priority:
            rotation_key = (group_id, member.member_id)
            start = self._rotation.get(rotation_key, 0) % len(order)
            self._rotation[rotation_key] = start + 1
            order = order[start:] + order[:start]
        records_left = spec.max_records
        bytes_left = spec.max_bytes
        results: list[AcquiredRecords] = []
        for topic, partition in order:
            if records_left <= 0 or (results and bytes_left <= 0):
                break
            if spec.priority and results and results[-1].topic != topic:
                break  # a higher-priority topic had records: lower ones wait
            got = self._acquire_partition(
                group_id,
                member.member_id,
                topic,
                partition,
                now,
                records_left,
                bytes_left,
                changes,
                spec.record_limit,
            )
            if got is not None:
                results.append(got)
                records_left -= sum(r.last_offset - r.first_offset + 1 for r in got.ranges)
                bytes_left -= len(got.records)
        return results

    def _acquire_partition(
        self,
        group_id: str,
        member_id: str,
        topic: str,
        partition: int,
        now: int,
        records_left: int,
        bytes_left: int,
        changes: _Changes,
        record_limit: bool,
    ) -> AcquiredRecords | None:
        key = (topic, partition)
        try:
            source = self._source(topic, partition)
        except LogStoreError:
            return None
        if source is None:
            return None
        share_partition = self._share_partition(group_id, key, source, changes)
        if share_partition is None:
            return None
        if source.log_start_offset > share_partition.start_offset:
            share_partition.advance_to(source.log_start_offset)
            changes.touched[key] = share_partition
        expired = share_partition.expire(now)
        if expired:
            changes.touched[key] = share_partition
            changes.add_archived(key, expired)
        first = share_partition.next_fetch_offset(now)
        end = source.log_end_offset
        if first is None or first >= end:
            return None
        per_record = self._bytes_per_record.get(key, DEFAULT_BYTES_PER_RECORD)
        wanted = min(records_left, share_partition.config.partition_max_record_locks)
        read_bytes = max(MIN_READ_BYTES, min(bytes_left, int(wanted * per_record * 1.25)))
        try:
            data = source.read(first, read_bytes)
        except LogStoreError as exc:
            log.debug("share group %s: cannot read %s-%d at %d: %s", group_id, topic, partition, first, exc)
            return None
        batches = [(pos, header.base_offset, header.last_offset) for pos, header in iter_headers(data)]
        if not batches:
            return None
        last = min(batches[-1][2], end - 1)
        covered = last - max(first, batches[0][1]) + 1
        if covered > 0:
            self._bytes_per_record[key] = max(1.0, len(data) / covered)
        batch_lasts = () if record_limit else [batch_last for _, _, batch_last in batches]
        ranges = share_partition.acquire(member_id, now, first, last, records_left, batch_lasts)
        if not ranges:
            return None
        changes.touched[key] = share_partition
        low, high = ranges[0].first_offset, ranges[-1].last_offset
        begin = next(pos for pos, _, batch_last in batches if batch_last >= low)
        stop = len(data)
        for pos, base, _ in batches:
            if base > high:
                stop = pos
                break
        if begin or stop < len(data):
            data = data[begin:stop]
        return AcquiredRecords(topic, partition, data, ranges)

    def _share_partition(
        self, group_id: str, key: PartitionKey, source: PartitionSource, changes: _Changes
    ) -> SharePartition | None:
        """The group's share-partition of `key`, made at its starting offset on first use; None while a
        remote source cannot tell that offset yet (it is asking the leader)."""
        parts = self._partitions.setdefault(group_id, {})
        share_partition = parts.get(key)
        if share_partition is None:
            config = self.config(group_id)
            try:
                start = self._initial_offset(config, source)
            except SourceNotReady:
                return None
            share_partition = parts[key] = SharePartition(start, config)
            changes.touched[key] = share_partition  # persisted before anything is acquired from it
            log.info(
                "share group %s: starts %s-%d at offset %d (share.auto.offset.reset %s)",
                group_id,
                key[0],
                key[1],
                start,
                config.auto_offset_reset,
            )
        return share_partition

    def _initial_offset(self, config: ShareGroupConfig, source: PartitionSource) -> int:
        if config.auto_offset_reset == LATEST:
            return source.log_end_offset
        if config.auto_offset_reset == EARLIEST:
            return source.log_start_offset
        duration = reset_duration_ms(config.auto_offset_reset) or 0
        found = source.offset_for_timestamp(self._wall_ms() - duration)
        return source.log_end_offset if found is None else found

    def _source(self, topic: str, partition: int) -> PartitionSource | None:
        """Where to read a data partition: its log alone or where this broker leads it (up to the high
        watermark), the leader's copy as last fetched otherwise (None until it has answered once).
        Raises UnknownTopicError / UnknownPartitionError."""
        partition_log = self._topics.log(topic, partition)
        if not self._clustered:
            return LocalSource(partition_log)
        high_watermark = self.replicas.visible_end(topic, partition)  # None: another broker leads it
        if high_watermark is not None:
            return LocalSource(partition_log, high_watermark)
        return None if self.remote_sources is None else self.remote_sources.source(topic, partition)

    def _wait_keys(self, group_id: str, member: ShareMember) -> list[PartitionKey]:
        keys = [group_key(group_id)]
        for topic in member.assignment:
            for partition in topic.partitions:
                keys.append((topic.topic, partition))
                keys.append(share_key(group_id, topic.topic, partition))
        return keys

    # --- durability ---------------------------------------------------------------------------------

    def _persist(self, group_id: str, changes: _Changes) -> list[Written]:
        """Send archived records to the dead-letter topic, then append one batch of snapshots."""
        written: list[Written] = []
        if changes.archived and not self._clustered:  # a cluster's go through the DeadLetterGate
            target = self._dead_letter_target(group_id)
            if target is not None:
                for (topic, partition), archived in changes.archived:
                    written += self._dead_letters.send(target, topic, partition, archived)
            changes.archived = []
        if changes.touched:
            current = self._partitions.get(group_id, {})
            snapshots = {key: sp.snapshot() for key, sp in changes.touched.items() if current.get(key) is sp}
            moved = changes.generation != self._generations.get(self._store.partition_for(group_id), 0)
            if moved and len(snapshots) < len(changes.touched):
                raise NotCoordinatorError(  # its state was forgotten meanwhile: writing it would undo newer
                    f"share group {group_id!r}: its coordinator moved during this request, so what it "
                    "changed was not recorded (records it acknowledged are delivered again); find the "
                    "coordinator again and retry"
                )
            if snapshots:  # a share-partition forgotten with its deleted topic or group is not brought back
                written.append(self._store.write_snapshots(group_id, snapshots))
            changes.touched = {}
        return written

    async def _persist_now(self, group_id: str, changes: _Changes) -> list[Written]:
        """`_persist`, after (in a cluster) the dead letters of everything archived so far are out."""
        gate = self.dead_letter_gate
        if not self._clustered or gate is None:
            return self._persist(group_id, changes)
        async with gate.lock(group_id):
            await gate.drain(group_id, self._dead_letter_target(group_id))
            return self._persist(group_id, changes)  # no await since the drain: nothing archived meanwhile

    def _changes(self, group_id: str) -> _Changes:
        changes = _Changes(self._generations.get(self._store.partition_for(group_id), 0))
        if self._clustered and self.dead_letter_gate is not None:
            changes.archived = self.dead_letter_gate.pending(group_id)
        return changes

    def _dead_letter_target(self, group_id: str) -> DeadLetterTarget | None:
        config = self.config(group_id)
        if not config.dead_letter_topic:
            return None
        return DeadLetterTarget(group_id, config.dead_letter_topic, config.dead_letter_copy_record)

    async def _flush(self, written: Iterable[Written], *, replicated: bool = False) -> None:
        """fsync what was written; `replicated`: also wait for the state records to be on every in-sync
        replica (in a cluster: an acknowledgement is answered only once a failover cannot lose it)."""
        ends: dict[tuple[Log, str, int], int] = {}
        for write in written:
            key = (write.log, write.topic, write.partition)
            ends[key] = max(ends.get(key, 0), write.last_offset + 1)
        waits = [self._flusher.flush(target, end) for (target, _, _), end in ends.items()]
        if replicated and self._clustered:
            waits += [
                self._replicated(topic, partition, end)
                for (_, topic, partition), end in ends.items()
                if topic == STATE_TOPIC
            ]
        if len(waits) == 1:
            await waits[0]
        else:
            await asyncio.gather(*waits)

    async def _replicated(self, topic: str, partition: int, end: int) -> None:
        try:
            await self.replicas.replicated(topic, partition, end, ACK_REPLICATION_TIMEOUT_S)
        except NotLeaderOrFollowerError as exc:
            raise NotCoordinatorError(
                f"{topic}-{partition} moved to another broker before this change was on "
                "every in-sync replica, so it may be lost: find the coordinator again and retry (records "
                "whose acknowledgement was lost are delivered again)"
            ) from exc

    def _write_in_background(self, group_id: str, changes: _Changes) -> None:
        """Persist changes nobody waits for (timeouts, a deleted topic) and fsync them off the loop."""
        if self._clustered:
            task = asyncio.ensure_future(self._write_later(group_id, changes))
            self._background.add(task)
            task.add_done_callback(self._flush_done)
            return
        try:
            written = self._persist(group_id, changes)
        except LogStoreError:
            log.exception("share group %s: could not persist its state", group_id)
            return
        if written:
            flush = asyncio.ensure_future(self._flush(written))
            self._background.add(flush)
            flush.add_done_callback(self._flush_done)

    async def _write_later(self, group_id: str, changes: _Changes) -> None:
        try:
            written = await self._persist_now(group_id, changes)
        except LogStoreError:  # not the coordinator any more, say: the new one replays what was written
            log.warning("share group %s: could not persist its state", group_id, exc_info=True)
            return
        if written:
            await self._flush(written)

    def _flush_done(self, flush: asyncio.Future[None]) -> None:
        self._background.discard(flush)
        if not flush.cancelled() and flush.exception() is not None:
            log.error("could not fsync share-group state", exc_info=flush.exception())

    # --- timers -------------------------------------------------------------------------------------

    def _arm(self, due_ms: int | None) -> None:
        """Make the timer fire no later than `due_ms` (it is only ever armed at or before the earliest
        deadline; firing early just finds nothing due and re-arms)."""
        if due_ms is not None and (self._timer.due_ms is None or due_ms < self._timer.due_ms):
            self._timer.arm(due_ms)

    def _arm_for_all(self, group_id: str) -> None:
        for share_partition in self._partitions.get(group_id, {}).values():
            self._arm(share_partition.next_deadline_ms())

    def _arm_for(self, group_id: str, acquired: Iterable[AcquiredRecords]) -> None:
        parts = self._partitions.get(group_id, {})
        for got in acquired:
            share_partition = parts.get((got.topic, got.partition))
            if share_partition is not None:
                self._arm(share_partition.next_deadline_ms())

    def _on_deadline(self, now_ms: int) -> None:
        try:
            self._expire(now_ms)
        except Exception:  # a bug: keep the timer alive so locks still expire, but do not spin on it
            log.exception("share-group timeout handling failed; retrying in %d ms", RETRY_AFTER_FAILURE_MS)
            self._timer.arm(now_ms + RETRY_AFTER_FAILURE_MS)

    def _expire(self, now: int) -> None:
        """Remove silent members, release expired locks, wake fetches, and arm for the next deadline."""
        for gone in self._groups.tick(now):
            self._member_gone(gone, now)
        upcoming: list[int] = []
        for group_id, parts in self._partitions.items():
            changes = self._changes(group_id)
            for key, share_partition in parts.items():
                due = share_partition.next_deadline_ms()
                if due is not None and due <= now:
                    archived = share_partition.expire(now)
                    if archived:
                        changes.touched[key] = share_partition
                        changes.add_archived(key, archived)
                    self._waiters.notify(share_key(group_id, *key))
                    due = share_partition.next_deadline_ms()
                if due is not None and due > now:
                    upcoming.append(due)
            if changes.touched:
                self._write_in_background(group_id, changes)
        sessions = self._groups.next_deadline_ms()
        if sessions is not None:
            upcoming.append(max(sessions, now + 1))
        self._timer.arm(min(upcoming) if upcoming else None)

    # --- admin --------------------------------------------------------------------------------------

    def describe(self, group_id: str) -> ShareGroupView:
        self.check_coordinator(group_id)
        self._refuse_consumer_group(group_id)
        if not self.has_group(group_id):
            raise GroupIdNotFoundError(f"share group {group_id!r} does not exist")
        now = self._clock_ms()
        parts = self._partitions.get(group_id, {})
        partitions = []
        for key in sorted(parts):
            share_partition = parts[key]
            try:
                source = self._source(*key)
            except LogStoreError:
                continue
            if source is not None and source.log_start_offset > share_partition.start_offset:
                share_partition.advance_to(source.log_start_offset)
            counts = share_partition.counts(now)
            end = counts.end_offset if source is None else source.log_end_offset
            partitions.append(
                SharePartitionView(
                    key[0],
                    key[1],
                    counts.start_offset,
                    counts.end_offset,
                    end,
                    counts.in_flight,
                    counts.acquired,
                    counts.archived_total,
                    max(0, end - counts.start_offset - counts.done_in_window),
                    counts.delivery_counts,
                )
            )
        members: list[ShareMemberView] = []
        epoch = 0
        stable = False
        if self._has_members(group_id):
            description = self._groups.describe(group_id)
            epoch = description.group_epoch
            stable = description.state is ShareGroupState.STABLE
            members = [
                ShareMemberView(
                    m.member_id,
                    m.member_epoch,
                    m.client_id,
                    m.client_host,
                    m.topic_names,
                    sum(sp.acquired_by(m.member_id) for sp in parts.values()),
                )
                for m in description.members
            ]
        return ShareGroupView(
            group_id, stable, epoch, members, partitions, self.config(group_id).dead_letter_topic
        )

    async def delete_group(self, group_id: str) -> None:
        """Forget a share group without members: its state and configuration, durably."""
        self.check_coordinator(group_id)
        self._refuse_consumer_group(group_id)
        if not self.has_group(group_id):
            raise GroupIdNotFoundError(f"share group {group_id!r} does not exist")
        if self._has_members(group_id):
            self._groups.remove_group(group_id)  # raises NonEmptyGroupError while it has members
        gate = self.dead_letter_gate
        if gate is not None:  # what it archived goes out first, as a single broker's already has
            async with gate.lock(group_id):
                await gate.drain(group_id, self._dead_letter_target(group_id))
        written = []
        parts = self._partitions.pop(group_id, {})
        if parts:
            written.append(self._store.write_snapshots(group_id, dict.fromkeys(parts)))
        if self._own_configs.pop(group_id, None) is not None:
            written.append(self._store.write_config(group_id, None))
        self._configs.pop(group_id, None)
        if self.dead_letter_gate is not None:
            self.dead_letter_gate.forget(group_id)
        if written:
            await self._flush(written, replicated=True)
        log.info("deleted share group %s", group_id)

    # --- topics -------------------------------------------------------------------------------------

    def topic_changed(self, topic: str) -> None:
        """After a topic was created, deleted or grown: reassign, and forget a deleted topic's state."""
        try:
            partitions = self._topic_partitions()
            self._groups.topics_changed(partitions)
            count = partitions.get(topic, 0)
            if self.remote_sources is not None and topic not in partitions:
                self.remote_sources.forget_topic(topic)  # a topic made again must not serve the old records
            for group_id, parts in self._partitions.items():
                doomed = [key for key in parts if key[0] == topic and key[1] >= count]
                if doomed:
                    self._forget_share_partitions(group_id, parts, doomed)
            for group_id in self._groups.groups():
                self._waiters.notify(group_key(group_id))
        except Exception:  # the topic change itself is done; do not fail the call that made it
            log.exception("share groups could not follow the change of topic %s", topic)

    def _forget_share_partitions(
        self, group_id: str, parts: dict[PartitionKey, SharePartition], doomed: list[PartitionKey]
    ) -> None:
        """A deleted topic's share-partitions of one group: gone from memory, tombstones written (one
        group's failure, say it is not coordinated here any more, does not stop the others')."""
        for key in doomed:
            del parts[key]
            self._bytes_per_record.pop(key, None)
            self._waiters.notify(share_key(group_id, *key))
        try:
            written = self._store.write_snapshots(group_id, dict.fromkeys(doomed))
        except LogStoreError as exc:
            log.warning(
                "share group %s: cannot write tombstones for %d share-partitions: %s",
                group_id,
                len(doomed),
                exc,
            )
            return
        flush = asyncio.ensure_future(self._flush([written]))
        self._background.add(flush)
        flush.add_done_callback(self._flush_done)

    def _topic_partitions(self) -> dict[str, int]:
        return {info.name: info.partitions for info in self._manager.topics()}

    # --- lifecycle ----------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the timer and let long-polls answer (at shutdown); writes in flight finish via the Flusher."""
        self.closing = True
        self._timer.cancel()


def _acknowledgement(ack_range: AckRange) -> Acknowledgement | None:
    try:
        kind = AcknowledgeType(ack_range.type)
    except ValueError:
        return None
    return Acknowledgement(
        ack_range.first_offset, ack_range.last_offset, kind, ack_range.delay_ms, ack_range.not_an_attempt
    )


def _outcome(result: AckResult) -> RangeOutcome:
    return RangeOutcome(result.first_offset, result.last_offset, result.error)
