"""The driver around the pure group coordinator and the offset store: clock, timer, durability, topics.

The coordinator (`logstore.broker.group_machine`) decides and the offset store (`__consumer_offsets`) remembers; this
class gives them what they cannot have themselves:

- time: a monotonic clock, and one timer armed at the coordinator's next session or rebalance deadline,
  so a silent member is removed when its session ends, not when someone next happens to call;
- durability: a commit is answered only after its record is fsynced, through the shared `Flusher` (the
  fsync runs on a worker thread, never on the event loop);
- topics: every create, delete and growth of a topic reaches the coordinator, and a deleted topic's
  committed offsets are forgotten;
- restarts: groups found in the offset store at start-up are known again (listed, describable,
  deletable); membership is rebuilt from heartbeats.

Heartbeats are the hot path: a steady one (same epoch, owning exactly its assignment) costs one
coordinator call and no timer work. That is safe because the timer is only ever armed at or before the
earliest deadline, and a steady heartbeat can only push its own member's deadline later.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from logstore.broker.domain.durability import Flusher
from logstore.broker.domain.errors import NotCoordinatorError
from logstore.broker.domain.groups import reset
from logstore.broker.domain.groups.offset_store import OFFSETS_TOPIC, OffsetAndMetadata, OffsetStore
from logstore.broker.domain.groups.timer import DeadlineTimer, monotonic_ms
from logstore.broker.domain.groups.values import (
    CommitOutcome,
    Committed,
    GroupView,
    OffsetCommitEntry,
    PartitionProgress,
    PartitionScope,
    ResetOutcome,
    ResetSpec,
)
from logstore.broker.domain.replicas import Replicas
from logstore.broker.domain.topics import Topics
from logstore.broker.group_machine.coordinator import GroupCoordinator
from logstore.broker.group_machine.errors import GroupIdNotFoundError, NonEmptyGroupError
from logstore.broker.group_machine.model import (
    CoordinatorConfig,
    GroupListing,
    GroupState,
    HeartbeatRequest,
    HeartbeatResponse,
    MemberRemoved,
    TopicPartition,
)
from logstore.broker.group_machine.validation import check_group_id
from logstore.broker.share_machine.errors import InconsistentGroupProtocolError

from logstore.errors import InvalidRequestError, LogStoreError
from logstore.log import Log
from logstore.manager import LogManager

COMMIT_REPLICATION_TIMEOUT_S = 30.0
"""How long a commit waits for the in-sync replicas of its offsets partition (in a cluster)."""

log = logging.getLogger(__name__)

MAX_METADATA_BYTES = 4096
"""Longest metadata string stored with a committed offset (Kafka's offset.metadata.max.bytes)."""
RETRY_AFTER_FAILURE_MS = 1000
"""When timeout handling hit a bug, try again this much later rather than at once."""


class GroupDomain:
    """Consumer groups and committed offsets over one LogManager. Not thread-safe: one event loop only."""

    def __init__(
        self,
        manager: LogManager,
        topics: Topics,
        flusher: Flusher,
        config: CoordinatorConfig,
        *,
        offsets_topic_partitions: int,
        clock_ms: Callable[[], int] = monotonic_ms,
        clustered: bool = False,
    ) -> None:
        self._manager = manager
        self._topics = topics
        self._flusher = flusher
        self._config = config
        self._clock_ms = clock_ms
        self._store = OffsetStore(manager, offsets_topic_partitions)
        self._coordinator = GroupCoordinator(config, topic_partitions=self._topic_partitions())
        self._timer = DeadlineTimer(self._on_deadline, clock_ms)
        self._background_flushes: set[asyncio.Future[None]] = set()
        self.check_coordinator: Callable[[str], None] = lambda group_id: None
        """Raise NotCoordinatorError unless this broker coordinates the group (always does, alone)."""
        if not clustered:
            # A topic deleted just before a crash may have left offsets whose tombstones were not durable.
            committed_topics = {tp.topic for group in self._store.groups() for tp in self._store.fetch(group)}
            for topic in sorted(committed_topics - set(self._topic_partitions())):
                self._forget_topic(topic)
            for group_id in self._store.groups():
                self._coordinator.ensure_group(group_id)
        # In a cluster, groups are taken up partition by partition as this broker comes to lead the
        # internal topic's partitions (`took_over`), and a follower's copy is never written here.
        self.foreign_group: Callable[[str], bool] = lambda group_id: False
        """Whether an id belongs to a group of another kind (a share group): such ids are refused here."""
        self.classic_members: Callable[[str], bool] = lambda group_id: False
        """Whether a classic group (Kafka's JoinGroup protocol) of that id has members: a consumer of this
        protocol cannot join it, nor commit from outside it, until they are gone."""

    @property
    def replicas(self) -> Replicas:
        """The offsets topic's replication hooks (epochs, ISR waits); `NotReplicated` alone."""
        return self._store.replicas

    @replicas.setter
    def replicas(self, replicas: Replicas) -> None:
        self._store.replicas = replicas

    def coordinates(self, group_id: str) -> bool:
        """Whether this broker coordinates the group now."""
        try:
            self.check_coordinator(group_id)
        except NotCoordinatorError:
            return False
        return True

    def took_over(self, partition: int) -> None:
        """This broker now leads `partition` of the offsets topic: read the commits its log holds (the
        previous coordinator wrote them; replication copied them here) and know those groups again."""
        self._store.reload_partition(partition)
        groups = self._store.groups_in(partition)
        for group_id in groups:
            self._coordinator.ensure_group(group_id)
        log.info(
            "coordinating the consumer groups of %s-%d now (%d with committed offsets)",
            OFFSETS_TOPIC,
            partition,
            len(groups),
        )
        self._expire()

    @property
    def session_timeout_ms(self) -> int:
        return self._config.session_timeout_ms

    @property
    def min_session_timeout_ms(self) -> int:
        return self._config.min_session_timeout_ms

    @property
    def max_session_timeout_ms(self) -> int:
        return self._config.max_session_timeout_ms

    @property
    def heartbeat_interval_ms(self) -> int:
        return self._config.heartbeat_interval_ms

    # --- membership ---------------------------------------------------------------------------------

    def has_group(self, group_id: str) -> bool:
        """Whether a consumer group of that id exists (members or committed offsets)."""
        return self._coordinator.describe_group(group_id).state is not GroupState.DEAD

    def has_members(self, group_id: str) -> bool:
        """Whether the group has members now (a group of committed offsets only has none)."""
        return bool(self._coordinator.describe_group(group_id).members)

    def _refuse_foreign(self, group_id: str, *, classic: bool = True) -> None:
        if self.foreign_group(group_id):
            raise InconsistentGroupProtocolError(
                f"group {group_id!r} is a share group; a consumer group needs an id of its own"
            )
        if classic and self.classic_members(group_id):
            raise InconsistentGroupProtocolError(
                f"group {group_id!r} has members of the classic protocol (Kafka's JoinGroup, as "
                "kafka-python and librdkafka speak by default); consumers of both protocols cannot share "
                "one group: use another group id, or stop those consumers first"
            )

    def heartbeat(self, request: HeartbeatRequest) -> HeartbeatResponse:
        """Join, stay or leave; raises the coordinator's errors (see `GroupCoordinator.heartbeat`)."""
        self.check_coordinator(request.group_id)
        self._refuse_foreign(request.group_id)
        response = self._coordinator.heartbeat(request, self._clock_ms())
        if self._timer.due_ms is None or not _is_steady(request, response):
            self._timer.arm(self._coordinator.next_deadline_ms())
        return response

    def _on_deadline(self, now_ms: int) -> None:
        try:
            self._expire(now_ms)
        except Exception:  # a bug: keep the timer alive so sessions still end, but do not spin on it
            log.exception("consumer-group timeout handling failed; retrying in %d ms", RETRY_AFTER_FAILURE_MS)
            self._timer.arm(now_ms + RETRY_AFTER_FAILURE_MS)

    def _expire(self, now_ms: int | None = None) -> None:
        """Apply every timeout that is due, log the removals, and arm the timer for the next one."""
        result = self._coordinator.tick(self._clock_ms() if now_ms is None else now_ms)
        for removed in result.removed:
            _log_removal(removed)
        self._timer.arm(result.next_deadline_ms)

    # --- offsets ------------------------------------------------------------------------------------

    async def commit(
        self, group_id: str, member_id: str, member_epoch: int, entries: Sequence[OffsetCommitEntry]
    ) -> list[CommitOutcome]:
        """Store the valid entries in one batch and return once it is fsynced.

        Raises the coordinator's fencing errors before anything is written; a member commits with its
        id and current epoch, anyone else with member id "" and epoch -1 while the group is empty.
        """
        self.check_coordinator(group_id)
        self._refuse_foreign(group_id)
        self._coordinator.validate_commit(group_id, member_id, member_epoch, self._clock_ms())
        return await self.store_commits(group_id, entries)

    def validate_outside_commit(self, group_id: str) -> None:
        """Refuse a commit from outside group management while this protocol's group has members."""
        self.check_coordinator(group_id)
        self._coordinator.validate_commit(group_id, "", -1, self._clock_ms())

    async def store_commits(self, group_id: str, entries: Sequence[OffsetCommitEntry]) -> list[CommitOutcome]:
        """Store the valid entries of a commit its protocol has already allowed; returns once fsynced."""
        self.check_coordinator(group_id)
        outcomes = []
        valid: dict[TopicPartition, OffsetAndMetadata] = {}
        for entry in entries:
            error = self._check_entry(entry)
            if error is None:
                valid[TopicPartition(entry.topic, entry.partition)] = OffsetAndMetadata(
                    entry.offset, entry.metadata
                )
            outcomes.append(CommitOutcome(entry.topic, entry.partition, error))
        if valid:
            await self._write(group_id, valid)
        return outcomes

    def _check_entry(self, entry: OffsetCommitEntry) -> LogStoreError | None:
        where = f"{entry.topic}-{entry.partition}"
        try:
            self._topics.log(entry.topic, entry.partition)
            if entry.offset < 0:
                raise InvalidRequestError(
                    f"{where}: a committed offset is the next offset to consume and cannot be negative "
                    f"({entry.offset})"
                )
            size = len(entry.metadata.encode())
            if size > MAX_METADATA_BYTES:
                raise InvalidRequestError(
                    f"{where}: offset metadata is {size} bytes; at most {MAX_METADATA_BYTES} are stored"
                )
        except LogStoreError as error:
            return error
        return None

    async def _write(self, group_id: str, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        self._refuse_foreign(group_id, classic=False)  # each protocol's commits check their own group
        write = self._store.commit(group_id, offsets)
        self._coordinator.ensure_group(group_id)
        await self._flusher.flush(write.log, write.last_offset + 1)
        await self._store.replicated(write, COMMIT_REPLICATION_TIMEOUT_S)
        self._store.apply(write)  # shown only once durable (and, in a cluster, on every in-sync replica)

    def fetch_offsets(self, group_id: str, scope: PartitionScope) -> list[Committed]:
        """Committed offsets of the partitions in `scope` (offset -1 if none); all of them if it is empty."""
        check_group_id(group_id)
        self.check_coordinator(group_id)
        committed = self._store.fetch(group_id)
        if not scope:
            return [_committed(tp, committed[tp]) for tp in sorted(committed)]
        found = []
        for topic, numbers in scope:
            if not numbers:
                numbers = range(self._partition_count(topic))
            for number in numbers:
                tp = TopicPartition(topic, number)
                found.append(_committed(tp, committed.get(tp)))
        return found

    def _partition_count(self, topic: str) -> int:
        try:
            return self._manager.topic(topic).partitions
        except LogStoreError:
            return 0

    # --- admin --------------------------------------------------------------------------------------

    def all_committed(self) -> list[tuple[str, TopicPartition, int]]:
        """(group, partition, committed offset) of every group, for the metrics' lag at scrape time."""
        return [
            (group_id, tp, committed.offset)
            for group_id in self._store.groups()
            for tp, committed in self._store.fetch(group_id).items()
        ]

    def list_groups(self) -> list[GroupListing]:
        self._expire()
        return [g for g in self._coordinator.list_groups() if self.coordinates(g.group_id)]

    def describe_group(self, group_id: str) -> GroupView:
        """The group, its members, and per partition the committed offset, log end offset and lag."""
        check_group_id(group_id)
        self.check_coordinator(group_id)
        self._expire()
        description = self._coordinator.describe_group(group_id)
        if description.state is GroupState.DEAD:
            raise GroupIdNotFoundError(f"group {group_id!r} does not exist")
        holders = {
            tp: member.member_id
            for member in description.members
            for tp in member.assigned_partitions | member.pending_revocation
        }
        committed = self._store.fetch(group_id)
        progress = []
        for tp in sorted(set(committed) | set(holders)):
            offset = committed[tp].offset if tp in committed else -1
            try:
                end = self._topics.visible_end(
                    tp.topic, tp.partition, self._topics.log(tp.topic, tp.partition)
                )
            except LogStoreError:
                end = -1
            progress.append(
                PartitionProgress(
                    tp.topic,
                    tp.partition,
                    committed_offset=offset,
                    metadata=committed[tp].metadata if tp in committed else "",
                    log_end_offset=end,
                    lag=end - offset if offset >= 0 and end >= 0 else -1,
                    member_id=holders.get(tp, ""),
                )
            )
        return GroupView(description, progress)

    async def delete_group(self, group_id: str) -> None:
        """Forget a group without members, and delete its committed offsets (durably)."""
        check_group_id(group_id)
        self.check_coordinator(group_id)
        self._expire()
        if self.classic_members(group_id):
            raise NonEmptyGroupError(
                f"group {group_id!r} has active members (classic protocol); stop its consumers (or wait "
                "for their session timeout) before deleting it"
            )
        try:
            self._coordinator.delete_group(group_id)
        except GroupIdNotFoundError:
            if not self._store.fetch(group_id):
                raise
        written = self._store.delete_group(group_id)
        if written is not None:
            await self._flusher.flush(written.log, written.last_offset + 1)
            await self._store.replicated(written, COMMIT_REPLICATION_TIMEOUT_S)
            self._store.apply(written)
        log.info("deleted consumer group %s", group_id)

    async def reset_offsets(
        self, group_id: str, scope: PartitionScope, spec: ResetSpec, *, dry_run: bool
    ) -> list[ResetOutcome]:
        """Move the committed offsets of a group without members; all partitions in scope or none."""
        check_group_id(group_id)
        self.check_coordinator(group_id)
        reset.check_spec(spec)
        self._expire()
        group = self._coordinator.describe_group(group_id)
        if group.members or self.classic_members(group_id):
            raise NonEmptyGroupError(
                f"group {group_id!r} has active members; offsets can only be reset "
                "while the group has none: stop its consumers (or wait for their session timeout) first"
            )
        if not scope and group.state is GroupState.DEAD:
            raise GroupIdNotFoundError(
                f"group {group_id!r} does not exist; name the topics (and partitions) to set its offsets"
            )
        committed = self._store.fetch(group_id)
        partitions = reset.partitions_in_scope(self._topics, scope, committed)
        outcomes = reset.plan(self._topics, partitions, committed, spec)
        if outcomes and not dry_run:
            await self._write(
                group_id,
                {TopicPartition(o.topic, o.partition): OffsetAndMetadata(o.new_offset) for o in outcomes},
            )
            log.info("reset offsets of group %s on %d partitions (%s)", group_id, len(outcomes), spec)
        return outcomes

    # --- topics -------------------------------------------------------------------------------------

    def topic_changed(self, topic: str) -> None:
        """After a topic was created, deleted or grown: reassign, and forget a deleted topic's offsets."""
        try:
            partitions = self._topic_partitions()
            rebalanced = self._coordinator.update_topics(partitions, self._clock_ms())
            if rebalanced:
                log.info("topic %s changed: new target assignment for groups %s", topic, list(rebalanced))
            if topic not in partitions:
                self._forget_topic(topic)
            self._expire()
        except Exception:  # the topic change itself is done; do not fail the call that made it
            log.exception("consumer groups could not follow the change of topic %s", topic)

    def _topic_partitions(self) -> dict[str, int]:
        return {info.name: info.partitions for info in self._manager.topics()}

    def _forget_topic(self, topic: str) -> None:
        """Tombstone every group's offsets of a deleted topic, so a new topic of that name starts clean."""
        self._store.forget_topic(topic, writable=self.coordinates)
        for number in range(self._manager.topic(OFFSETS_TOPIC).partitions):
            partition_log = self._manager.log(OFFSETS_TOPIC, number)
            if partition_log.flushed_offset < partition_log.log_end_offset:
                self._flush_in_background(partition_log)

    def _flush_in_background(self, partition_log: Log) -> None:
        flush = asyncio.ensure_future(self._flusher.flush(partition_log, partition_log.log_end_offset))
        self._background_flushes.add(flush)
        flush.add_done_callback(self._flush_done)

    def _flush_done(self, flush: asyncio.Future[None]) -> None:
        self._background_flushes.discard(flush)
        if not flush.cancelled() and flush.exception() is not None:
            log.error("could not fsync deleted offsets in %s", OFFSETS_TOPIC, exc_info=flush.exception())

    # --- lifecycle ----------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the timer (at shutdown); commits in flight finish through the Flusher."""
        self._timer.cancel()


def _is_steady(request: HeartbeatRequest, response: HeartbeatResponse) -> bool:
    """A heartbeat that changed nothing but its member's session deadline (which only moves later)."""
    return (
        request.member_epoch > 0
        and response.member_epoch == request.member_epoch
        and request.owned_partitions is not None
        and frozenset(request.owned_partitions) == response.assignment
    )


def _committed(tp: TopicPartition, found: OffsetAndMetadata | None) -> Committed:
    if found is None:
        return Committed(tp.topic, tp.partition)
    return Committed(tp.topic, tp.partition, found.offset, found.metadata, found.commit_timestamp_ms)


def _log_removal(removed: MemberRemoved) -> None:
    log.info(
        "group %s: removed member %s%s (%s); its partitions move to the others",
        removed.group_id,
        removed.member_id,
        f" (instance {removed.instance_id})" if removed.instance_id else "",
        removed.reason.value,
    )
