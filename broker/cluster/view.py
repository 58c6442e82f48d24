"""A broker's picture of the cluster metadata, rebuilt from etcd's keys and kept current by watch events.
Pure: `apply(key, value)` for a put, `apply(key, None)` for a delete.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from logstore.broker.cluster.metadata import (
    BrokerRegistration,
    ControllerRecord,
    IsrRequest,
    Layout,
    PartitionState,
    Reassignment,
    TopicAssignment,
    TopicChange,
    TopicRequest,
)


@dataclass(slots=True)
class ClusterView:
    """Not thread-safe: one watcher task updates it on one event loop."""

    layout: Layout = field(default_factory=Layout)
    revision: int = 0
    controller: int | None = None
    controller_epoch: int | None = None
    brokers: dict[int, BrokerRegistration] = field(default_factory=dict)
    topics: dict[str, TopicAssignment] = field(default_factory=dict)
    partitions: dict[tuple[str, int], PartitionState] = field(default_factory=dict)
    # The mod revision of each partition's key: a write decided on this view compares it, so a decision
    # taken on a stale view is refused by etcd (Kafka's ZooKeeper version check).
    partition_revisions: dict[tuple[str, int], int] = field(default_factory=dict)
    topic_revisions: dict[str, int] = field(default_factory=dict)
    """The mod revision of each topic's key, which a topic change's write compares."""
    isr_requests: dict[tuple[str, int], IsrRequest] = field(default_factory=dict)
    """Leaders' pending ISR changes, which the controller accepts or refuses (and deletes)."""
    topic_requests: dict[str, TopicRequest] = field(default_factory=dict)
    """Topics brokers asked the controller to create."""
    topic_changes: dict[str, TopicChange] = field(default_factory=dict)
    """Deletions, growth and config changes brokers asked the controller for."""
    reassignments: dict[tuple[str, int], Reassignment] = field(default_factory=dict)
    """Partitions an operator asked to move to other brokers; the controller deletes each when done."""

    def apply(self, key: bytes, value: bytes | None, create_revision: int = 0, mod_revision: int = 0) -> None:
        layout = self.layout
        if key == layout.controller:
            record = None if value is None else ControllerRecord.decode(key, value)
            self.controller = None if record is None else record.broker_id
            self.controller_epoch = None if record is None else create_revision
        elif key.startswith(layout.brokers_prefix):
            broker_id = layout.parse_broker(key)
            if value is None:
                self.brokers.pop(broker_id, None)
            else:
                self.brokers[broker_id] = BrokerRegistration.decode(key, value)
        elif key.startswith(layout.topics_prefix):
            topic = layout.parse_topic(key)
            if value is None:
                self.topics.pop(topic, None)
                self.topic_revisions.pop(topic, None)
            else:
                self.topics[topic] = TopicAssignment.decode(key, value)
                self.topic_revisions[topic] = mod_revision
        elif key.startswith(layout.topic_requests_prefix):
            name = layout.parse_topic_request(key)
            if value is None:
                self.topic_requests.pop(name, None)
            else:
                self.topic_requests[name] = TopicRequest.decode(key, value)
        elif key.startswith(layout.isr_requests_prefix):
            where = layout.parse_isr_request(key)
            if value is None:
                self.isr_requests.pop(where, None)
            else:
                self.isr_requests[where] = IsrRequest.decode(key, value)
        elif key.startswith(layout.topic_changes_prefix):
            name = layout.parse_topic_change(key)
            if value is None:
                self.topic_changes.pop(name, None)
            else:
                self.topic_changes[name] = TopicChange.decode(key, value)
        elif key.startswith(layout.reassignments_prefix):
            where = layout.parse_reassignment(key)
            if value is None:
                self.reassignments.pop(where, None)
            else:
                self.reassignments[where] = Reassignment.decode(key, value)
        elif key.startswith(layout.partitions_prefix):
            where = layout.parse_partition(key)
            if value is None:
                self.partitions.pop(where, None)
                self.partition_revisions.pop(where, None)
            else:
                self.partitions[where] = PartitionState.decode(key, value)
                self.partition_revisions[where] = mod_revision

    def replace_with(self, fresh: ClusterView) -> None:
        """Take a fresh snapshot's contents (after a broken watch), keeping this object for its readers."""
        self.revision = fresh.revision
        self.controller = fresh.controller
        self.controller_epoch = fresh.controller_epoch
        self.brokers = fresh.brokers
        self.topics = fresh.topics
        self.partitions = fresh.partitions
        self.partition_revisions = fresh.partition_revisions
        self.topic_revisions = fresh.topic_revisions
        self.isr_requests = fresh.isr_requests
        self.topic_requests = fresh.topic_requests
        self.reassignments = fresh.reassignments
        self.topic_changes = fresh.topic_changes

    @property
    def live_brokers(self) -> frozenset[int]:
        return frozenset(self.brokers)

    def under_replicated(self) -> list[tuple[str, int]]:
        """Partitions whose ISR is smaller than their replica list (what `cluster status` will flag)."""
        return sorted(w for w, s in self.partitions.items() if len(s.isr) < len(s.replicas))
