"""A broker's membership in an etcd-coordinated cluster (`logstore serve --broker-id N --etcd URL`).

It registers the broker under a lease (its liveness), runs the controller election and the controller's
loop (only one broker acts at a time), follows the cluster metadata into a `ClusterView`, hands every
change to the `ReplicaManager`, and sends the leaders' ISR changes to the controller through etcd. It is
the broker's `ClusterInfo`: the listeners answer Metadata and FindCoordinator from it, and the domain asks
it `check_leader` before every client read or write.

A broker that cannot keep its lease alive (etcd unreachable for a session timeout) stops leading at once:
its registration expires on etcd's side at about the same time, and the controller moves its partitions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

import aetcd
import grpc
import mmh3
from logstore.broker.cluster.controller import Controller
from logstore.broker.cluster.election_driver import ETCD_ERRORS, ControllerElector
from logstore.broker.cluster.errors import ClusterMetadataError, InvalidReplicationFactorError
from logstore.broker.cluster.metadata import (
    NO_LEADER,
    BrokerRegistration,
    Layout,
    Reassignment,
    TopicChange,
    TopicChangeKind,
    TopicRequest,
)
from logstore.broker.cluster.store import BrokerSession, MetadataStore
from logstore.broker.cluster.view import ClusterView
from logstore.broker.domain.cluster_info import (
    NO_BROKER,
    BrokerNode,
    CoordinatorKind,
    PartitionLeadership,
    not_coordinator,
    not_leader,
)
from logstore.broker.domain.core import BrokerCore
from logstore.broker.domain.errors import NotLeaderOrFollowerError, RequestTimedOutError
from logstore.broker.domain.groups.offset_store import OFFSETS_TOPIC, OFFSETS_TOPIC_CONFIG
from logstore.broker.domain.share.dead_letter_gate import DeadLetterGate
from logstore.broker.domain.share.state_store import STATE_TOPIC, STATE_TOPIC_CONFIG
from logstore.broker.replication.dead_letters import ClusterDeadLetters
from logstore.broker.replication.remote_reads import RemoteReads
from logstore.broker.replication.replica_manager import ReplicaManager
from logstore.broker.replication.share_forward import GrpcShareForwarder
from logstore.broker.settings import Settings

from logstore.errors import (
    InvalidConfigError,
    InvalidRequestError,
    TopicExistsError,
    UnknownPartitionError,
    UnknownTopicError,
)
from logstore.manager import validate_topic_name

log = logging.getLogger(__name__)

REPLICA_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]
ISR_INTERVAL_S = 0.25
"""How often leaders look for followers to drop from or add to the ISR."""
REGISTER_RETRY_S = 0.5


def monotonic_ms() -> int:
    return time.monotonic_ns() // 1_000_000


class ClusterNode:
    """This broker in its cluster. Not thread-safe: it lives on the broker's event loop."""

    clustered = True

    def __init__(self, core: BrokerCore, settings: Settings, endpoints: Mapping[str, str]) -> None:
        self.core = core
        self.settings = settings
        self.broker_id = settings.broker_id
        self.layout = Layout(settings.cluster_root)
        self.ttl_s = max(1, round(settings.broker_session_timeout_ms / 1000))
        self.registration = BrokerRegistration(self.broker_id, dict(endpoints))
        self.view = ClusterView(self.layout)
        self._client: aetcd.Client | None = None
        self.store: MetadataStore | None = None
        self.session: BrokerSession | None = None
        self.elector: ControllerElector | None = None
        self.controller: Controller | None = None
        self.replicas: ReplicaManager | None = None
        self._session_valid_until_ms = 0
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._channels: dict[tuple[int, str], grpc.aio.Channel] = {}
        self._creating: set[str] = set()
        self.remote_reads: RemoteReads | None = None
        """The data partitions other brokers lead, read for the share groups coordinated here."""

    # --- lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Register (waiting out a previous life's lease), read the metadata, start following it."""
        host, _, port = self.settings.etcd_endpoints[0].rpartition(":")
        self._client = aetcd.Client(host=host, port=int(port), timeout=max(2, self.ttl_s))
        self.store = MetadataStore(self._client, self.layout)
        self.session = BrokerSession(self._client, self.registration, layout=self.layout, ttl_s=self.ttl_s)
        await self._register()
        self.view.replace_with(await self.store.snapshot())
        self.elector = ControllerElector(
            self._client, self.broker_id, layout=self.layout, lease_ttl_s=self.ttl_s
        )
        self.controller = Controller(
            self.store,
            self.elector,
            unclean_leader_election=self.settings.unclean_leader_election,
            rebalance_interval_s=self.settings.leader_imbalance_check_interval_ms / 1000,
        )
        self.replicas = ReplicaManager(
            self.core,
            self.broker_id,
            channel_to=self._replica_channel,
            session_alive=self.session_alive,
            replica_lag_time_max_ms=self.settings.replica_lag_time_max_ms,
            isr_request_timeout_ms=3 * self.ttl_s * 1000,
            clock_ms=monotonic_ms,
        )
        self.core.cluster = self
        self.core.replicas = self.replicas
        self.core.topics.remote_create = self._auto_create
        self.core.cluster_admin = self
        self.remote_reads = RemoteReads(
            self._leader_of, self._replica_channel, self.core.waiters, monotonic_ms
        )
        self.core.share.remote_sources = self.remote_reads
        self.core.share.forwarder = GrpcShareForwarder(self._replica_channel)
        self.core.share.dead_letter_gate = DeadLetterGate(
            ClusterDeadLetters(
                self._leader_of, self._partitions_of, self._replica_channel, self._create_dead_letter_topic
            )
        )
        self.replicas.apply(self.view)
        self._spawn(self.store.follow(self.view, self._changed), "etcd-watch")
        self._spawn(self._apply_changes(), "cluster-apply")
        self._spawn(self._keep_session(), "broker-session")
        self._spawn(self.elector.run(), "controller-election")
        self._spawn(self.controller.run(), "controller")
        self._spawn(self._isr_changes(), "isr-changes")
        log.info(
            "broker %d joined the cluster at %s (%s): %d live brokers, %d topics, controller %s",
            self.broker_id,
            self.settings.etcd,
            self.layout.root,
            len(self.view.brokers),
            len(self.view.topics),
            self.view.controller if self.view.controller is not None else "not elected yet",
        )

    async def stop(self) -> None:
        """Give up leadership and the registration (so others take over at once), then close."""
        if self.replicas is not None:
            self.replicas.step_down_all("the broker is stopping")
        if self.elector is not None:
            await self.elector.stop()
        for task in self._tasks:
            if task.get_name() != "controller-election":
                task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, *ETCD_ERRORS):
                await asyncio.wait_for(task, self.ttl_s)
        self._tasks.clear()
        if self.replicas is not None:
            await self.replicas.close()
        if self.remote_reads is not None:
            await self.remote_reads.close()
        if self.session is not None:
            await self.session.close()
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
        if self._client is not None:
            await self._client.close()

    def _spawn(self, work: Coroutine[Any, Any, Any], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        task.add_done_callback(_report_crash)
        self._tasks.append(task)

    async def _register(self) -> None:
        """Register; a key left by this broker's previous life (kill -9) lives until its lease expires,
        so keep trying for a little over a session timeout before giving up."""
        assert self.session is not None and self._client is not None
        deadline = time.monotonic() + 2 * self.ttl_s + 5
        warned = False
        while True:
            try:
                sent = monotonic_ms()
                await self.session.register()
                self._session_valid_until_ms = sent + self.ttl_s * 1000
                return
            except ClusterMetadataError as exc:
                if time.monotonic() > deadline:
                    raise
                if not warned:
                    log.warning("%s; waiting for it to expire (a previous run of this broker?)", exc)
                    warned = True
            except ETCD_ERRORS as exc:
                if time.monotonic() > deadline:
                    raise ClusterMetadataError(
                        f"cannot reach etcd at {self.settings.etcd}: {exc}; start etcd or fix --etcd"
                    ) from None
            await asyncio.sleep(REGISTER_RETRY_S)

    # --- the session --------------------------------------------------------------------------------

    def session_alive(self) -> bool:
        """Whether etcd surely still holds this broker's registration (erring on the safe side)."""
        return monotonic_ms() < self._session_valid_until_ms

    async def _keep_session(self) -> None:
        assert self.session is not None
        stepped_down = False
        while True:
            await asyncio.sleep(self.ttl_s / 3)
            try:
                sent = monotonic_ms()
                if await self.session.keep_alive():
                    self._session_valid_until_ms = sent + self.ttl_s * 1000
                else:
                    log.warning("broker %d's registration expired in etcd; registering again", self.broker_id)
                    self._step_down("the etcd registration expired")
                    await self._register()
            except ETCD_ERRORS as exc:
                log.debug("keep-alive of broker %d failed: %s", self.broker_id, exc)
            except ClusterMetadataError as exc:
                log.warning("cannot register again: %s", exc)
            if not self.session_alive():
                if not stepped_down:
                    self._step_down("etcd has not answered for a session timeout")
                    stepped_down = True
            elif stepped_down:
                stepped_down = False
                log.info("broker %d is in touch with etcd again", self.broker_id)
                self._changed.set()

    def _step_down(self, why: str) -> None:
        if self.replicas is not None:
            self.replicas.step_down_all(why)

    # --- following the metadata ---------------------------------------------------------------------

    async def _apply_changes(self) -> None:
        assert self.replicas is not None
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), 1.0)
            self._changed.clear()
            self.replicas.apply(self.view)

    async def _isr_changes(self) -> None:
        assert self.replicas is not None and self.store is not None and self.session is not None
        while True:
            await asyncio.sleep(ISR_INTERVAL_S)
            lease = self.session.lease_id
            if lease is None or not self.session_alive():
                continue
            for (topic, partition), request in self.replicas.isr_proposals():
                log.info(
                    "asking the controller to change the ISR of %s-%d to %s",
                    topic,
                    partition,
                    list(request.isr),
                )
                try:
                    await self.store.request_isr(topic, partition, request, lease)
                except ETCD_ERRORS as exc:
                    log.warning("could not send the ISR change of %s-%d: %s", topic, partition, exc)

    def _leader_of(self, topic: str, partition: int) -> int | None:
        state = self.view.partitions.get((topic, partition))
        return None if state is None else state.leader

    def _partitions_of(self, topic: str) -> int | None:
        assignment = self.view.topics.get(topic)
        return None if assignment is None else len(assignment.replicas)

    async def _create_dead_letter_topic(self, name: str) -> None:
        """A share group's dead-letter topic, made on first use with one partition (as a single broker
        does) and the cluster's default replication factor (fewer while fewer brokers are live)."""
        factor = max(1, min(self.settings.default_replication_factor, len(self.view.brokers)))
        min_isr = min(self.settings.min_insync_replicas, factor)
        await self.create_topic(name, 1, {"min.insync.replicas": str(min_isr)}, factor, timeout_s=30)
        log.info("created dead-letter topic %s with 1 partition, replication factor %d", name, factor)

    def _replica_channel(self, broker_id: int) -> grpc.aio.Channel | None:
        return self._channel(broker_id, "grpc", REPLICA_CHANNEL_OPTIONS)

    def _channel(
        self, broker_id: int, listener: str, options: list[tuple[str, int]]
    ) -> grpc.aio.Channel | None:
        registration = self.view.brokers.get(broker_id)
        address = registration.endpoints.get(listener) if registration is not None else None
        if not address:
            return None
        key = (broker_id, address)
        channel = self._channels.get(key)
        if channel is None:
            channel = grpc.aio.insecure_channel(address, options=options)
            self._channels[key] = channel
        return channel

    # --- creating topics ----------------------------------------------------------------------------

    async def create_topic(
        self, name: str, partitions: int, config: Mapping[str, str], replication_factor: int, timeout_s: float
    ) -> None:
        """Ask the controller to create a topic and wait until its partitions have leaders."""
        assert self.store is not None
        validate_topic_name(name)
        factor = replication_factor or self.settings.default_replication_factor
        live = len(self.view.brokers)
        if not 1 <= factor <= live:
            raise InvalidReplicationFactorError(
                f"replication factor {factor} for topic {name!r}: there are {live} live brokers; "
                f"ask for 1 to {live}"
            )
        settings = dict(config)
        settings.setdefault("min.insync.replicas", str(self.settings.min_insync_replicas))
        min_isr = int(settings["min.insync.replicas"])
        if min_isr > factor:
            raise InvalidReplicationFactorError(
                f"min.insync.replicas {min_isr} for topic {name!r} is more than its {factor} replicas: "
                "no acks=all write could ever succeed"
            )
        if name in self.view.topics:
            raise TopicExistsError(f"topic {name!r} already exists")
        request = TopicRequest(partitions or self.core.topics.default_partitions, factor, min_isr, settings)
        await self.store.request_topic(name, request)
        await self.wait_for_leaders(name, timeout_s)

    async def wait_for_leaders(self, name: str, timeout_s: float) -> None:
        await self._wait_until(
            lambda: self._has_leaders(name),
            timeout_s,
            f"topic {name!r} was asked for but its partitions have no leaders after {timeout_s:.0f} s",
        )

    async def _wait_until(self, done: Callable[[], bool], timeout_s: float, failure: str) -> None:
        """Until the cluster metadata satisfies `done` (then the local replicas follow it at once), or
        RequestTimedOutError naming `failure`."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not done():
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise RequestTimedOutError(f"{failure}; is a controller elected (logstore cluster status)?")
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.2))
        if self.replicas is not None:
            self.replicas.apply(self.view)

    async def _request_change(self, name: str, change: TopicChange) -> None:
        assert self.store is not None
        if name not in self.view.topics:
            raise UnknownTopicError(f"topic {name!r} does not exist in the cluster")
        if not await self.store.request_topic_change(name, change):
            raise ClusterMetadataError(
                f"another change of topic {name!r} is in progress in the cluster; retry when it is done"
            )

    async def delete_topic(self, name: str, timeout_s: float) -> None:
        await self._request_change(name, TopicChange(TopicChangeKind.DELETE))
        await self._wait_until(
            lambda: name not in self.view.topics,
            timeout_s,
            f"topic {name!r} is not deleted after {timeout_s:.0f} s",
        )

    async def add_partitions(self, name: str, total_partitions: int, timeout_s: float) -> None:
        live = len(self.view.brokers)
        factor = self.view.topics[name].replication_factor if name in self.view.topics else 0
        if factor > live:
            raise InvalidReplicationFactorError(
                f"topic {name!r} has replication factor {factor} but {live} brokers are live; new "
                "partitions cannot be placed until more are"
            )
        await self._request_change(name, TopicChange(TopicChangeKind.PARTITIONS, partitions=total_partitions))
        await self._wait_until(
            lambda: (
                name in self.view.topics
                and len(self.view.topics[name].replicas) >= total_partitions
                and self._has_leaders(name)
            ),
            timeout_s,
            f"topic {name!r} has not grown to {total_partitions} partitions after {timeout_s:.0f} s",
        )

    async def alter_config(self, name: str, changes: Mapping[str, str], timeout_s: float) -> None:
        wanted = dict(changes)
        min_isr = wanted.get("min.insync.replicas")
        assignment = self.view.topics.get(name)
        if min_isr is not None and assignment is not None and int(min_isr) > assignment.replication_factor:
            raise InvalidConfigError(
                f"min.insync.replicas {min_isr} is more than topic {name!r}'s {assignment.replication_factor} "
                "replicas: no acks=all write could ever succeed"
            )

        def applied() -> bool:
            assignment = self.view.topics.get(name)
            if assignment is None:
                return False
            if min_isr is not None and assignment.min_insync_replicas != int(min_isr):
                return False
            return all(assignment.config.get(k) == v for k, v in wanted.items())

        await self._request_change(name, TopicChange(TopicChangeKind.CONFIG, config=dict(changes)))
        await self._wait_until(
            applied, timeout_s, f"topic {name!r} is not reconfigured after {timeout_s:.0f} s"
        )

    async def reassign(self, name: str, targets: Mapping[int, Sequence[int]]) -> None:
        """Validate every target (existing partitions, distinct live brokers), then ask for them all."""
        assert self.store is not None
        assignment = self.view.topics.get(name)
        if assignment is None:
            raise UnknownTopicError(f"topic {name!r} does not exist in the cluster")
        if not targets:
            raise InvalidRequestError("a reassignment names at least one partition and its new replicas")
        for partition, target in sorted(targets.items()):
            where = f"{name}-{partition}"
            if not 0 <= partition < len(assignment.replicas):
                raise UnknownPartitionError(
                    f"topic {name!r} has {len(assignment.replicas)} partitions; there is no partition {partition}"
                )
            if not target or len(set(target)) != len(target):
                raise InvalidReplicationFactorError(
                    f"{where}: the new replicas must be distinct brokers, at least one"
                )
            missing = sorted(set(target) - set(self.view.brokers))
            if missing:
                raise InvalidReplicationFactorError(
                    f"{where}: brokers {missing} are not live in the cluster (live: {sorted(self.view.brokers)})"
                )
        for partition, target in sorted(targets.items()):
            await self.store.request_reassignment(name, partition, Reassignment(tuple(target)))
            log.info("asked to move %s-%d to brokers %s", name, partition, list(target))

    def _has_leaders(self, name: str) -> bool:
        assignment = self.view.topics.get(name)
        if assignment is None:
            return False
        states = [self.view.partitions.get((name, p)) for p in range(len(assignment.replicas))]
        return all(s is not None and s.leader != NO_LEADER for s in states)

    def _auto_create(self, topic: str) -> None:
        """A produce or metadata request named an unknown topic and auto-creation is on: ask the
        controller for it in the background and tell the client to retry."""
        if topic in self.view.topics:
            raise not_leader(topic, 0, self.leadership(topic, 0), self.broker_id)
        if topic not in self._creating:
            self._creating.add(topic)
            self._spawn(self._create_in_background(topic, 0, {}, 0), f"create-{topic}")
        raise NotLeaderOrFollowerError(f"topic {topic!r} is being created in the cluster; retry shortly")

    async def _create_in_background(
        self, topic: str, partitions: int, config: dict[str, str], replication_factor: int
    ) -> None:
        try:
            await self.create_topic(topic, partitions, config, replication_factor, timeout_s=30)
        except TopicExistsError:
            pass
        except Exception as exc:  # reported; the client's retry asks again
            log.warning("auto-creating topic %s failed: %s", topic, exc)
        finally:
            self._creating.discard(topic)

    # --- ClusterInfo --------------------------------------------------------------------------------

    def brokers(self) -> list[BrokerNode]:
        return [BrokerNode(r.broker_id, dict(r.endpoints)) for _, r in sorted(self.view.brokers.items())]

    def controller_id(self) -> int:
        return NO_BROKER if self.view.controller is None else self.view.controller

    def leadership(self, topic: str, partition: int) -> PartitionLeadership | None:
        state = self.view.partitions.get((topic, partition))
        if state is None:
            return None
        return PartitionLeadership(state.leader, state.leader_epoch, state.replicas, state.isr)

    def check_leader(self, topic: str, partition: int) -> None:
        if self.replicas is not None and (topic, partition) in self.replicas.leaders and self.session_alive():
            return
        if topic not in self.view.topics:
            raise UnknownTopicError(f"topic {topic!r} does not exist in the cluster")
        assignment = self.view.topics[topic]
        if not 0 <= partition < len(assignment.replicas):
            raise UnknownPartitionError(
                f"topic {topic!r} has {len(assignment.replicas)} partitions; there is no partition {partition}"
            )
        raise not_leader(topic, partition, self.leadership(topic, partition), self.broker_id)

    def coordinator(self, kind: CoordinatorKind, key: str) -> int:
        """The leader of the group's partition of its internal topic. The first lookup in a new cluster
        asks the controller for the internal topic (Kafka creates `__consumer_offsets` the same way) and
        answers NO_BROKER, so the client retries until its partitions have leaders."""
        where = self._group_partition(kind, key)
        state = None if where is None else self.view.partitions.get(where)
        return NO_BROKER if state is None else state.leader

    def check_coordinator(self, kind: CoordinatorKind, key: str) -> None:
        """Only the partition's leader as the replica manager runs it (its commits reloaded, its session
        alive) coordinates; the view saying so is not enough."""
        where = self._group_partition(kind, key)
        state = None if where is None else self.view.partitions.get(where)
        coordinator = NO_BROKER if state is None else state.leader
        leading = self.replicas is not None and where in self.replicas.leaders
        if coordinator == self.broker_id and leading and self.session_alive():
            return
        if coordinator == self.broker_id:  # elected here, not taken up yet (or the session lapsed)
            coordinator = NO_BROKER
        raise not_coordinator(kind, key, coordinator, self.broker_id)

    def _group_partition(self, kind: CoordinatorKind, key: str) -> tuple[str, int] | None:
        """The internal-topic partition that holds group `key`'s state; None (and the topic asked for)
        while the cluster has no such topic yet."""
        topic = OFFSETS_TOPIC if kind is CoordinatorKind.GROUP else STATE_TOPIC
        assignment = self.view.topics.get(topic)
        if assignment is None:
            self._create_internal_topic(topic)
            return None
        return topic, coordinator_partition(key, len(assignment.replicas))

    def _create_internal_topic(self, topic: str) -> None:
        """Ask for an internal topic with this broker's local partition count and configs, replicated
        `internal_replication_factor` times (fewer while the cluster has fewer live brokers)."""
        if topic in self._creating or self.store is None:
            return
        live = len(self.view.brokers)
        if live == 0:
            return
        factor = min(self.settings.internal_replication_factor, live)
        if factor < self.settings.internal_replication_factor:
            log.warning(
                "creating internal topic %s with replication factor %d: only %d brokers are live (wanted %d)",
                topic,
                factor,
                live,
                self.settings.internal_replication_factor,
            )
        info = self.core.topics.manager.topic(topic)
        config = OFFSETS_TOPIC_CONFIG if topic == OFFSETS_TOPIC else STATE_TOPIC_CONFIG
        self._creating.add(topic)
        self._spawn(
            self._create_in_background(topic, info.partitions, dict(config), factor), f"create-{topic}"
        )


def coordinator_partition(key: str, partitions: int) -> int:
    """The internal-topic partition of a group: murmur3 of its id, as `OffsetStore.partition_for` places
    its commits, so the coordinator is the leader of the partition that holds them."""
    return int(mmh3.hash(key.encode(), seed=0, signed=False)) % partitions


def _report_crash(task: asyncio.Task[Any]) -> None:
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        log.error("cluster task %s stopped: %r", task.get_name(), error, exc_info=error)
