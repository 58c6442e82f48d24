"""Which local partitions this broker leads or follows, and the transitions between the two, from the
cluster view (Kafka's ReplicaManager). It is the domain's `Replicas` (leader epochs, high watermarks,
acks=all waits) and the leader side of the replica fetch.

Every view change is applied whole (`apply`): every topic of the cluster gets its local logs here
(created with the topic's configs; empty where this broker holds no replica), a partition whose leader is this broker at a new leader epoch gets a
fresh `LeaderReplica`, one led elsewhere is followed by that broker's `ReplicaFetcher`. A leader whose etcd
session may have lapsed (`session_alive` false) stops leading at once: the controller is moving its
partitions, and it must not accept writes meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import grpc
from logstore.broker.cluster.metadata import NO_LEADER, IsrRequest, PartitionState, TopicAssignment
from logstore.broker.cluster.view import ClusterView
from logstore.broker.domain.core import BrokerCore
from logstore.broker.domain.errors import (
    FencedLeaderEpochError,
    NotLeaderOrFollowerError,
    RequestTimedOutError,
    UnknownLeaderEpochError,
)
from logstore.broker.replication.fetcher import ReplicaFetcher
from logstore.broker.replication.leader import LeaderReplica

from logstore.config import TopicConfig
from logstore.errors import LogStoreError, OffsetOutOfRangeError, TopicExistsError
from logstore.log import Log

log = logging.getLogger(__name__)

PartitionKey = tuple[str, int]


class ReplicaManager:
    """Leaders and followers of this broker's replicas. Not thread-safe: the broker's loop."""

    def __init__(
        self,
        core: BrokerCore,
        broker_id: int,
        *,
        channel_to: Callable[[int], grpc.aio.Channel | None],
        session_alive: Callable[[], bool],
        replica_lag_time_max_ms: int,
        isr_request_timeout_ms: int,
        clock_ms: Callable[[], int],
    ) -> None:
        self.core = core
        self.broker_id = broker_id
        self._channel_to = channel_to
        self._session_alive = session_alive
        self._lag_ms = replica_lag_time_max_ms
        self._isr_request_timeout_ms = isr_request_timeout_ms
        self._clock_ms = clock_ms
        self.leaders: dict[PartitionKey, LeaderReplica] = {}
        self.followed: dict[PartitionKey, int] = {}
        """Partition -> the leader this broker follows it from."""
        self.fetchers: dict[int, ReplicaFetcher] = {}
        self._topics_seen: set[str] = set()
        self._replica_of: set[PartitionKey] = set()
        """Partitions this broker was a replica of in a view this process applied: only those are emptied
        when a reassignment takes the broker out (never on a view that merely does not list it, nor for
        a removal that happened while it was down: that copy stays)."""
        self._applied: dict[str, TopicAssignment] = {}
        """The assignment each local topic was last made to match: `apply` runs every second, and a topic
        whose assignment has not changed since needs no look at its logs or configs."""
        self._view: ClusterView | None = None

    # --- the domain's Replicas ----------------------------------------------------------------------

    def leader_epoch(self, topic: str, partition: int) -> int | None:
        leader = self.leaders.get((topic, partition))
        return None if leader is None else leader.leader_epoch

    def appended(self, topic: str, partition: int, end_offset: int) -> None:
        """Every leader append comes here (produce, commits, share state), so followers long-polling the
        partition are woken by each one, not only by client produce (which wakes its readers too)."""
        leader = self.leaders.get((topic, partition))
        if leader is None:
            return
        if leader.appended(end_offset):
            self._publish(leader)
        else:
            self.core.waiters.notify((topic, partition))

    def visible_end(self, topic: str, partition: int) -> int | None:
        leader = self.leaders.get((topic, partition))
        return None if leader is None else leader.high_watermark

    def check_acks_all(self, topic: str, partition: int) -> None:
        leader = self.leaders.get((topic, partition))
        if leader is not None:
            leader.check_acks_all()

    async def replicated(self, topic: str, partition: int, end_offset: int, timeout_s: float) -> None:
        leader = self.leaders.get((topic, partition))
        if leader is None:
            raise NotLeaderOrFollowerError(
                f"{topic}-{partition}: this broker stopped leading it before the write was replicated; "
                "retry on the new leader (an idempotent retry is deduplicated)"
            )
        try:
            await asyncio.wait_for(leader.replicated(end_offset), timeout_s)
        except TimeoutError:
            raise RequestTimedOutError(
                f"{topic}-{partition}: written, but not on every in-sync replica within {timeout_s:g} s "
                f"(in sync: {sorted(leader.tracker.isr)}); it may still be, so retry (idempotently)"
            ) from None

    # --- the leader side of replica fetches ---------------------------------------------------------

    def leader_for_fetch(
        self, replica_id: int, topic: str, partition: int, current_epoch: int
    ) -> LeaderReplica:
        """The partition's leader state for a follower's fetch, or the error that refuses it."""
        leader = self.leaders.get((topic, partition))
        if leader is None or not self._session_alive():
            raise NotLeaderOrFollowerError(f"{topic}-{partition}: broker {self.broker_id} does not lead it")
        if replica_id not in leader.tracker.followers:
            raise NotLeaderOrFollowerError(
                f"{topic}-{partition}: broker {replica_id} is not a replica of it ({leader.tracker.replicas})"
            )
        if current_epoch < leader.leader_epoch:
            raise FencedLeaderEpochError(
                f"{topic}-{partition}: leader epoch {current_epoch} is older than the leader's {leader.leader_epoch}"
            )
        if current_epoch > leader.leader_epoch:
            raise UnknownLeaderEpochError(
                f"{topic}-{partition}: leader epoch {current_epoch} is newer than the leader's {leader.leader_epoch}"
            )
        return leader

    def follower_fetched(self, leader: LeaderReplica, replica_id: int, fetch_offset: int, log_: Log) -> None:
        """Record a follower's position (it fetches from its log end); raises OffsetOutOfRangeError
        for an offset outside the leader's log."""
        if not log_.log_start_offset <= fetch_offset <= log_.log_end_offset:
            raise OffsetOutOfRangeError(
                f"{leader.name}: follower {replica_id} fetches from {fetch_offset}, outside the leader's "
                f"log {log_.log_start_offset}..{log_.log_end_offset}",
                log_start_offset=log_.log_start_offset,
                log_end_offset=log_.log_end_offset,
            )
        if leader.follower_fetched(replica_id, fetch_offset, self._clock_ms()):
            self._publish(leader)

    # --- applying the cluster view -------------------------------------------------------------------

    def apply(self, view: ClusterView) -> None:
        """Make the local replicas match `view`: create logs, lead, follow or let go."""
        self._view = view
        for topic, assignment in view.topics.items():
            # Every topic, also where no replica is here: the groups this broker coordinates need every
            # topic's partitions for their assignments and commits.
            if self._applied.get(topic) == assignment:
                continue
            try:
                self._ensure_local_topic(
                    topic, len(assignment.replicas), assignment.config, assignment.topic_id
                )
            except LogStoreError as exc:  # one topic's trouble must not stop the others' replication
                log.error("cannot make the local log of topic %s as the cluster says: %s", topic, exc)
                continue
            self._applied[topic] = assignment
        self._forget_deleted_topics(view)
        alive = self._session_alive()
        if not alive and self.leaders:
            log.warning(
                "stepping down as leader of %d partitions: etcd has not confirmed this broker's session "
                "for a session timeout (the controller is moving them)",
                len(self.leaders),
            )
        wanted_leaders: set[PartitionKey] = set()
        wanted_followed: dict[PartitionKey, tuple[int, int]] = {}
        removed: list[PartitionKey] = []
        for key, state in view.partitions.items():
            if self.broker_id not in state.replicas:
                if key in self._replica_of:
                    removed.append(key)
                continue
            self._replica_of.add(key)
            if state.leader == self.broker_id:
                if alive:
                    wanted_leaders.add(key)
                    self._lead(key, state, view)
            elif state.leader != NO_LEADER:
                wanted_followed[key] = (state.leader, state.leader_epoch)
        for key in list(self.leaders):
            if key not in wanted_leaders:
                self._stop_leading(key)
        for key, (leader_id, epoch) in wanted_followed.items():
            self._follow(key, leader_id, epoch)
        for key in list(self.followed):
            if key not in wanted_followed:
                self._stop_following(key)
        for key in removed:
            self._drop_removed_replica(key)

    def _drop_removed_replica(self, key: PartitionKey) -> None:
        """A reassignment took this broker out of the partition's replicas (the controller wrote its
        final replica list, and every replica in it is in sync): its copy is of no use and its disk is
        wanted back, so the local log is emptied, as Kafka deletes a removed replica. It stays, empty at
        offset 0, as every broker's log of every topic does; should the broker be made a replica again it
        copies the partition afresh from the leader's log start."""
        self._replica_of.discard(key)
        partition_log = self._local_log(key)
        if partition_log is None or partition_log.log_end_offset == 0:
            return
        dropped = partition_log.log_end_offset - partition_log.log_start_offset
        try:
            partition_log.truncate_fully_and_start_at(0)
        except LogStoreError as exc:
            log.warning("%s-%d: cannot empty the removed replica's log: %s", key[0], key[1], exc)
            return
        log.info(
            "%s-%d: this broker is no longer one of its replicas; emptied its local copy (%d offsets)",
            key[0],
            key[1],
            dropped,
        )

    def step_down_all(self, why: str) -> None:
        """Stop leading everything at once (the etcd session may have lapsed)."""
        if self.leaders:
            log.warning("stepping down as leader of %d partitions: %s", len(self.leaders), why)
        for key in list(self.leaders):
            self._stop_leading(key)

    def isr_proposals(self) -> list[tuple[PartitionKey, IsrRequest]]:
        """ISR changes the leaders want now (the node sends them to the controller through etcd)."""
        now = self._clock_ms()
        proposals = []
        for key, leader in self.leaders.items():
            request = leader.isr_proposal(now, self._isr_request_timeout_ms)
            if request is not None:
                proposals.append((key, request))
        return proposals

    async def close(self) -> None:
        self.step_down_all("the broker is stopping")
        for fetcher in list(self.fetchers.values()):
            await fetcher.stop()
        self.fetchers.clear()
        self.followed.clear()

    # --- transitions ---------------------------------------------------------------------------------

    def _lead(self, key: PartitionKey, state: PartitionState, view: ClusterView) -> None:
        current = self.leaders.get(key)
        assignment = view.topics.get(key[0])
        if current is not None and assignment is not None:
            current.tracker.min_insync_replicas = assignment.min_insync_replicas
        if current is not None and current.leader_epoch == state.leader_epoch:
            if current.state_changed(
                state, request_pending=key in view.isr_requests, now_ms=self._clock_ms()
            ):
                self._publish(current)
            return
        if current is not None:
            self._stop_leading(key)
        self._stop_following(key)
        partition_log = self._local_log(key)
        if partition_log is None:
            return
        assignment = view.topics.get(key[0])
        min_isr = assignment.min_insync_replicas if assignment is not None else 1
        hw = partition_log.high_watermark
        leader = LeaderReplica(
            key[0],
            key[1],
            self.broker_id,
            state,
            log_end_offset=partition_log.log_end_offset,
            high_watermark=0 if hw is None else hw,
            now_ms=self._clock_ms(),
            min_insync_replicas=min_isr,
            replica_lag_time_max_ms=self._lag_ms,
        )
        self.leaders[key] = leader
        leader.appended(partition_log.log_end_offset)  # an ISR of one: everything is replicated
        self._publish(leader)
        self.core.leadership_changed(key[0], key[1], leading=True)
        log.info(
            "leading %s-%d at epoch %d from offset %d (ISR %s, high watermark %d)",
            key[0],
            key[1],
            state.leader_epoch,
            partition_log.log_end_offset,
            list(state.isr),
            leader.high_watermark,
        )

    def _stop_leading(self, key: PartitionKey) -> None:
        leader = self.leaders.pop(key, None)
        if leader is not None:
            leader.close()
            self.core.waiters.notify(key)
            self.core.leadership_changed(key[0], key[1], leading=False)

    def _follow(self, key: PartitionKey, leader_id: int, epoch: int) -> None:
        partition_log = self._local_log(key)
        if partition_log is None:
            return
        previous = self.followed.get(key)
        if previous is not None and previous != leader_id:
            self.fetchers[previous].unfollow(key)
        fetcher = self.fetchers.get(leader_id)
        if fetcher is None:
            channel = self._channel_to(leader_id)
            if channel is None:
                return  # the leader's registration is not in the view yet: next view change
            fetcher = ReplicaFetcher(self.broker_id, leader_id, channel, on_appended=self._follower_appended)
            fetcher.start()
            self.fetchers[leader_id] = fetcher
        if previous is None or previous != leader_id:
            log.info("following %s-%d from broker %d at epoch %d", key[0], key[1], leader_id, epoch)
        fetcher.follow(key, partition_log, epoch)
        self.followed[key] = leader_id

    def _stop_following(self, key: PartitionKey) -> None:
        leader_id = self.followed.pop(key, None)
        if leader_id is not None and leader_id in self.fetchers:
            self.fetchers[leader_id].unfollow(key)

    def _follower_appended(self, partition_log: Log, nbytes: int) -> None:
        """A follower append of `nbytes`: honour the topic's flush policy off the loop."""
        if nbytes and partition_log.flush_due(self._clock_ms()):
            task = asyncio.ensure_future(self.core.flusher.flush(partition_log, partition_log.log_end_offset))
            task.add_done_callback(_log_flush_failure)

    def _publish(self, leader: LeaderReplica) -> None:
        """The high watermark moved: keep it on the log (checkpointed) and wake readers."""
        partition_log = self._local_log((leader.topic, leader.partition))
        if partition_log is not None:
            partition_log.set_high_watermark(leader.high_watermark)
        self.core.waiters.notify((leader.topic, leader.partition))

    # --- local logs ----------------------------------------------------------------------------------

    def _local_log(self, key: PartitionKey) -> Log | None:
        try:
            return self.core.topics.manager.log(*key)
        except LogStoreError:
            return None

    def _ensure_local_topic(
        self, topic: str, partitions: int, config: dict[str, str] | object, topic_id: str = ""
    ) -> None:
        manager = self.core.topics.manager
        self._topics_seen.add(topic)
        try:
            info = manager.topic(topic)
        except LogStoreError:
            try:
                manager.create_topic(
                    topic,
                    partitions,
                    dict(config) if isinstance(config, dict) else None,
                    topic_id=topic_id or None,
                )
            except TopicExistsError:
                return
            log.info("created the local log of %s (%d partitions) for its replicas here", topic, partitions)
            self.core.topics.on_change(topic)
            return
        if topic_id and info.topic_id != topic_id and topic not in self.core.topics.internal:
            # An earlier topic of this name, deleted from the cluster while this broker was away: its
            # records must not mix into the new topic's partitions (Kafka's topic ids, KIP-516).
            for key in [k for k in self.leaders if k[0] == topic]:
                self._stop_leading(key)
            for key in [k for k in self.followed if k[0] == topic]:
                self._stop_following(key)
            log.warning(
                "topic %s here has id %s but the cluster's topic of that name is %s: the local one was "
                "deleted from the cluster while this broker was away; deleting it and starting the new one",
                topic,
                info.topic_id,
                topic_id,
            )
            manager.delete_topic(topic)
            self.core.topics.on_change(topic)
            self._ensure_local_topic(topic, partitions, config, topic_id)
            return
        if info.partitions < partitions:
            manager.add_partitions(topic, partitions)
            self.core.topics.on_change(topic)
        if isinstance(config, dict) and config:
            self._follow_config(topic, info.config, config)

    def _follow_config(self, topic: str, local: TopicConfig, config: dict[str, str]) -> None:
        """Topic configs changed through the controller reach every broker's local log here."""
        try:
            wanted = TopicConfig.from_mapping(config, base=local).to_mapping()
        except LogStoreError as exc:
            log.warning("topic %s: the cluster's configs %s do not apply here: %s", topic, config, exc)
            return
        have = local.to_mapping()
        changes = {k: v for k, v in wanted.items() if have.get(k) != v}
        if changes:
            self.core.topics.manager.alter_config(topic, changes)
            log.info("topic %s reconfigured here as the cluster says: %s", topic, changes)

    def _forget_deleted_topics(self, view: ClusterView) -> None:
        """A topic seen in the cluster during this process's life and deleted from it since is deleted
        here too. Local topics the cluster never named are left alone (never delete on absence)."""
        for topic in sorted(self._topics_seen - set(view.topics)):
            self._topics_seen.discard(topic)
            self._applied.pop(topic, None)
            self._replica_of = {key for key in self._replica_of if key[0] != topic}
            for key in [k for k in self.leaders if k[0] == topic]:
                self._stop_leading(key)
            for key in [k for k in self.followed if k[0] == topic]:
                self._stop_following(key)
            try:
                self.core.topics.manager.delete_topic(topic)
            except LogStoreError as exc:
                log.warning("topic %s was deleted from the cluster but not here: %s", topic, exc)
                continue
            log.info("deleted the local log of %s: the topic was deleted from the cluster", topic)
            self.core.topics.on_change(topic)


def _log_flush_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("flushing a follower's log failed: %s", task.exception())
