"""The topic registry over the engine's LogManager, with the broker's own rules on top.

Those rules: topic auto-creation on produce, a default partition count, no shrinking, and a per-topic
batch size limit (max.message.bytes) that never exceeds what fits in one request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping

from logstore.broker.domain.cluster_info import ClusterInfo, SingleBroker
from logstore.broker.domain.errors import CannotShrinkTopicError, InternalTopicError
from logstore.broker.domain.replicas import NotReplicated, Replicas
from logstore.broker.domain.values import PartitionOffsets, TopicSummary, TopicView
from logstore.broker.domain.waiters import AppendWaiters

from logstore.config import TopicConfig
from logstore.errors import InvalidConfigError, TopicExistsError, UnknownTopicError
from logstore.log import Log
from logstore.manager import LogManager, TopicInfo, validate_topic_name

log = logging.getLogger(__name__)

HIGH_WATERMARK = -1
"""DeleteRecords' offset for "everything written so far"."""


class Topics:
    """Create, describe, grow, reconfigure and delete topics; find a partition's Log."""

    def __init__(
        self,
        manager: LogManager,
        waiters: AppendWaiters,
        *,
        auto_create: bool,
        default_partitions: int,
        max_batch_bytes: int,
    ) -> None:
        self.manager = manager
        self._waiters = waiters
        self.auto_create = auto_create
        self.default_partitions = default_partitions
        self.max_batch_bytes = max_batch_bytes
        """The largest max.message.bytes a topic may have: a bigger batch would not fit in a request."""
        self.internal: frozenset[str] = frozenset()
        """Topics the broker keeps for itself: not listed, and never produced to, deleted, grown or
        reconfigured by clients."""
        self.on_change: Callable[[str], None] = lambda name: None
        """Called with a topic's name after it is created (also automatically), deleted or grown."""
        self.cluster: ClusterInfo = SingleBroker()
        """Who leads what; the client-facing data path asks `check_leader` before it appends or reads."""
        self.replicas: Replicas = NotReplicated()
        """Leader epochs, high watermarks and acks=all waits (a no-op for a single broker)."""
        self.remote_create: Callable[[str], None] | None = None
        """In a cluster, topics are created by the controller: an unknown topic a produce would
        auto-create is handed to this (which starts the creation and raises a retriable error)."""

    # --- admin ------------------------------------------------------------------------------------------

    def create(self, name: str, partitions: int = 0, config: Mapping[str, str] | None = None) -> TopicView:
        """Create a topic; `partitions` 0 means the default count."""
        validate_topic_name(name)
        config = dict(config or {})
        self.check_config(config, replicas=1)
        self.manager.create_topic(name, partitions or self.default_partitions, config)
        self.on_change(name)
        return self.describe(name)

    def delete(self, name: str) -> None:
        self.refuse_internal(name, "deleted")
        partitions = self.info(name).partitions
        self.manager.delete_topic(name)
        self._wake(name, range(partitions))
        self.on_change(name)

    def list(self) -> list[TopicSummary]:
        return [
            TopicSummary(info.name, info.partitions)
            for info in self.manager.topics()
            if info.name not in self.internal
        ]

    def describe(self, name: str, allow_auto_create: bool = False) -> TopicView:
        """A topic's config and per-partition offsets; `allow_auto_create` creates it as a produce would."""
        if allow_auto_create:
            self.refuse_internal(name, "auto-created")
            try:
                self.info(name)
            except UnknownTopicError:
                self._auto_create(name, "a producer's metadata request")
        info = self.info(name)
        partitions = []
        for number in range(info.partitions):
            partition_log = self.manager.log(name, number)
            partitions.append(
                PartitionOffsets(
                    number, partition_log.log_start_offset, self.visible_end(name, number, partition_log)
                )
            )
        return TopicView(info.name, info.config.to_mapping(), partitions, info.topic_id)

    def ids(self) -> dict[str, str]:
        """Each client-visible topic's id (32 hex digits) by name, for protocols that name topics by id."""
        return {info.name: info.topic_id for info in self.manager.topics() if info.name not in self.internal}

    def add_partitions(self, name: str, total_partitions: int, *, validate_only: bool = False) -> TopicView:
        """Grow a topic to `total_partitions`; `validate_only` checks everything and changes nothing."""
        current = self.info(name).partitions
        if total_partitions < current:
            raise CannotShrinkTopicError(
                f"topic {name!r} has {current} partitions and cannot shrink to {total_partitions}: "
                f"that would drop stored data; ask for more than {current}, or create a new topic"
            )
        self.refuse_internal(name, "grown")
        if validate_only:
            self.manager.check_partition_count(name, total_partitions)
            return self.describe(name)
        self.manager.add_partitions(name, total_partitions)
        self.on_change(name)
        return self.describe(name)

    def alter_config(
        self,
        name: str,
        updates: Mapping[str, str],
        reset: Iterable[str] = (),
        *,
        validate_only: bool = False,
    ) -> TopicView:
        """Set some settings and return others (`reset`) to the broker's defaults; `validate_only`
        checks the result and changes nothing.

        Internal topics are refused: `max.message.bytes=100` on `__consumer_offsets` would fail every
        commit and `retention.ms=1` would wipe every group's offsets."""
        changes = self.config_changes(name, updates, reset)
        if not validate_only:
            self.manager.alter_config(name, changes)
        return self.describe(name)

    def config_changes(
        self, name: str, updates: Mapping[str, str], reset: Iterable[str] = ()
    ) -> dict[str, str]:
        """The settings to store for an alter-config call, resets as the defaults' values; raises if the
        result would be invalid. Changes nothing."""
        self.refuse_internal(name, "reconfigured")
        info = self.info(name)
        changes = dict(updates)
        defaults = self.manager.default_config.to_mapping()
        for key in reset:
            dotted = key.strip().replace("_", ".").replace("-", ".")
            if dotted not in defaults:
                raise InvalidConfigError(
                    f"cannot reset unknown topic config {key!r}; known settings: {', '.join(sorted(defaults))}"
                )
            if any(k.strip().replace("_", ".").replace("-", ".") == dotted for k in changes):
                raise InvalidConfigError(f"topic config {key!r} is both set and reset; choose one")
            changes[dotted] = defaults[dotted]
        self._check_batch_limit(TopicConfig.from_mapping(changes, base=info.config))
        return changes

    def delete_records(self, name: str, partition: int, before: int) -> int:
        """Delete a partition's records below offset `before` (-1: all of them, up to the high watermark);
        returns the partition's new log start offset (Kafka's low watermark)."""
        self.refuse_internal(name, "trimmed")
        self.cluster.check_leader(name, partition)
        partition_log = self.log(name, partition)
        return partition_log.delete_records_before(
            self.visible_end(name, partition, partition_log) if before == HIGH_WATERMARK else before
        )

    def check_config(self, config: Mapping[str, str], *, replicas: int | None) -> TopicConfig:
        """The topic config `config` makes over the broker's defaults; raises if it is invalid here or
        asks acks=all for more in-sync replicas than the topic has (`replicas`; None: the cluster checks
        that against the replication factor it settles on)."""
        checked = TopicConfig.from_mapping(config, base=self.manager.default_config)
        self._check_batch_limit(checked)
        if replicas is not None and checked.min_insync_replicas > replicas:
            alone = " (this broker is alone, started without --etcd)" if replicas == 1 else ""
            raise InvalidConfigError(
                f"min.insync.replicas {checked.min_insync_replicas} is more than the topic's {replicas} "
                f"replicas{alone}: no acks=all write could ever succeed"
            )
        return checked

    def _check_batch_limit(self, config: TopicConfig) -> None:
        if config.max_message_bytes > self.max_batch_bytes:
            raise InvalidConfigError(
                f"max.message.bytes {config.max_message_bytes} is larger than this broker accepts "
                f"({self.max_batch_bytes}, from its max request size); a batch that large could never be "
                "produced. Use a smaller value or raise the broker's max_request_bytes"
            )

    def refuse_internal(self, name: str, change: str) -> None:
        if name in self.internal:
            raise InternalTopicError(
                f"topic {name!r} is internal to the broker and cannot be {change} by clients; it may only be read"
            )

    def _wake(self, name: str, partitions: Iterable[int]) -> None:
        for number in partitions:
            self._waiters.notify((name, number))

    def info(self, name: str) -> TopicInfo:
        """The topic's metadata. A name that breaks the rules is reported as such, not as unknown."""
        try:
            return self.manager.topic(name)
        except UnknownTopicError:
            validate_topic_name(name)
            raise

    # --- data path --------------------------------------------------------------------------------------

    def log(self, topic: str, partition: int) -> Log:
        """The partition's Log. A name that breaks the rules is reported as such, not as unknown."""
        try:
            return self.manager.log(topic, partition)
        except UnknownTopicError:
            validate_topic_name(topic)
            raise

    def visible_end(self, topic: str, partition: int, partition_log: Log) -> int:
        """Where clients' reads end: the high watermark in a cluster, the log end for a single broker."""
        end = self.replicas.visible_end(topic, partition)
        return partition_log.log_end_offset if end is None else end

    def log_for_produce(self, topic: str, partition: int) -> Log:
        """The partition's Log, creating the topic first if it is unknown and auto-creation is on."""
        self.refuse_internal(topic, "produced to")
        try:
            return self.log(topic, partition)
        except UnknownTopicError:
            self._auto_create(topic, "a produce request")
        return self.manager.log(topic, partition)

    def _auto_create(self, topic: str, reason: str) -> None:
        """Create an unknown topic with the broker's defaults, if this broker auto-creates topics."""
        if self.auto_create and self.remote_create is not None:
            self.remote_create(topic)  # raises: the topic is being created by the controller
        if not self.auto_create:
            raise UnknownTopicError(
                f"topic {topic!r} does not exist and this broker does not create topics automatically; "
                "create it first"
            ) from None
        try:
            info: TopicInfo = self.manager.create_topic(topic, self.default_partitions)
            log.info("auto-created topic %s with %d partitions for %s", topic, info.partitions, reason)
            self.on_change(topic)
        except TopicExistsError:
            pass  # created meanwhile by another request: just use it
