"""What the cluster keeps in etcd, key by key, and the JSON each key holds. Pure: no etcd here.

    <root>/controller                 {"broker_id": N}         lease-bound; its create revision is the controller epoch
    <root>/brokers/<id>               BrokerRegistration       lease-bound to that broker's own lease (liveness)
    <root>/topics/<name>              TopicAssignment          replicas per partition, replication config
    <root>/partitions/<name>/<p>      PartitionState           leader, leader epoch, ISR, partition epoch
    <root>/isr-requests/<name>/<p>    IsrRequest               a leader's ISR change, lease-bound to the leader
    <root>/topic-requests/<name>      TopicRequest             a broker asks the controller to create a topic

Only the controller writes topics/ and partitions/, and only in a transaction that compares the controller
key's create revision with its own epoch, so a deposed controller's write is refused by etcd itself.
Topic names cannot hold '/', so a key's segments never run together.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from logstore.broker.cluster.errors import ClusterMetadataError

DEFAULT_ROOT = "/logstore"
NO_LEADER = -1


@dataclass(frozen=True, slots=True)
class Layout:
    """The keys under one root prefix (one root per cluster, so tests and clusters can share an etcd)."""

    root: str = DEFAULT_ROOT

    @property
    def controller(self) -> bytes:
        return f"{self.root}/controller".encode()

    @property
    def brokers_prefix(self) -> bytes:
        return f"{self.root}/brokers/".encode()

    def broker(self, broker_id: int) -> bytes:
        return self.brokers_prefix + str(broker_id).encode()

    @property
    def topics_prefix(self) -> bytes:
        return f"{self.root}/topics/".encode()

    def topic(self, name: str) -> bytes:
        return self.topics_prefix + name.encode()

    @property
    def partitions_prefix(self) -> bytes:
        return f"{self.root}/partitions/".encode()

    def partitions_of(self, topic: str) -> bytes:
        return self.partitions_prefix + f"{topic}/".encode()

    def partition(self, topic: str, partition: int) -> bytes:
        return self.partitions_of(topic) + str(partition).encode()

    @property
    def topic_requests_prefix(self) -> bytes:
        return f"{self.root}/topic-requests/".encode()

    def topic_request(self, name: str) -> bytes:
        return self.topic_requests_prefix + name.encode()

    def parse_topic_request(self, key: bytes) -> str:
        return _strip(key, self.topic_requests_prefix)

    @property
    def isr_requests_prefix(self) -> bytes:
        return f"{self.root}/isr-requests/".encode()

    def isr_request(self, topic: str, partition: int) -> bytes:
        return self.isr_requests_prefix + f"{topic}/{partition}".encode()

    def parse_isr_request(self, key: bytes) -> tuple[str, int]:
        return self._topic_partition(key, self.isr_requests_prefix, "an ISR request")

    @property
    def topic_changes_prefix(self) -> bytes:
        return f"{self.root}/topic-changes/".encode()

    def topic_change(self, name: str) -> bytes:
        return self.topic_changes_prefix + name.encode()

    def parse_topic_change(self, key: bytes) -> str:
        return _strip(key, self.topic_changes_prefix)

    @property
    def reassignments_prefix(self) -> bytes:
        return f"{self.root}/reassignments/".encode()

    def reassignment(self, topic: str, partition: int) -> bytes:
        return self.reassignments_prefix + f"{topic}/{partition}".encode()

    def parse_reassignment(self, key: bytes) -> tuple[str, int]:
        return self._topic_partition(key, self.reassignments_prefix, "a reassignment")

    def parse_partition(self, key: bytes) -> tuple[str, int]:
        return self._topic_partition(key, self.partitions_prefix, "a partition")

    def _topic_partition(self, key: bytes, prefix: bytes, what: str) -> tuple[str, int]:
        rest = _strip(key, prefix)
        topic, _, number = rest.rpartition("/")
        if not topic or not number.isdigit():
            raise ClusterMetadataError(f"{key!r} is not {what} key under {self.root}")
        return topic, int(number)

    def parse_broker(self, key: bytes) -> int:
        rest = _strip(key, self.brokers_prefix)
        if not rest.isdigit():
            raise ClusterMetadataError(f"{key!r} is not a broker key under {self.root}")
        return int(rest)

    def parse_topic(self, key: bytes) -> str:
        return _strip(key, self.topics_prefix)


def _strip(key: bytes, prefix: bytes) -> str:
    if not key.startswith(prefix):
        raise ClusterMetadataError(f"{key!r} is not under {prefix!r}")
    return key[len(prefix) :].decode()


@dataclass(frozen=True, slots=True)
class BrokerRegistration:
    """A live broker and the addresses it advertises to clients, per listener ("grpc", "kafka")."""

    broker_id: int
    endpoints: Mapping[str, str] = field(default_factory=dict)

    def encode(self) -> bytes:
        return _dump({"broker_id": self.broker_id, "endpoints": dict(self.endpoints)})

    @classmethod
    def decode(cls, key: bytes, data: bytes) -> BrokerRegistration:
        value = _load(key, data)
        endpoints = value.get("endpoints")
        if not isinstance(endpoints, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in endpoints.items()
        ):
            raise ClusterMetadataError(f"{key!r}: endpoints must map listener names to addresses")
        return cls(_int(key, value, "broker_id"), endpoints)


@dataclass(frozen=True, slots=True)
class ControllerRecord:
    broker_id: int

    def encode(self) -> bytes:
        return _dump({"broker_id": self.broker_id})

    @classmethod
    def decode(cls, key: bytes, data: bytes) -> ControllerRecord:
        return cls(_int(key, _load(key, data), "broker_id"))


@dataclass(frozen=True, slots=True)
class TopicAssignment:
    """A topic's replica list per partition (index = partition), its replication settings, and the
    topic configs it was created with (every replica creates its log with them)."""

    replicas: tuple[tuple[int, ...], ...]
    replication_factor: int
    min_insync_replicas: int = 1
    config: Mapping[str, str] = field(default_factory=dict)
    topic_id: str = ""
    """32 hex digits the controller gives the topic, so every broker's local log has the same id (Kafka's
    topic id in Metadata); empty for topics written before ids were."""

    def encode(self) -> bytes:
        value: dict[str, Any] = {
            "replicas": [list(r) for r in self.replicas],
            "replication.factor": self.replication_factor,
            "min.insync.replicas": self.min_insync_replicas,
        }
        if self.config:
            value["config"] = dict(self.config)
        if self.topic_id:
            value["topic_id"] = self.topic_id
        return _dump(value)

    @classmethod
    def decode(cls, key: bytes, data: bytes) -> TopicAssignment:
        value = _load(key, data)
        config = value.get("config", {})
        if not isinstance(config, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in config.items()
        ):
            raise ClusterMetadataError(f"{key!r}: config must map setting names to strings")
        topic_id = value.get("topic_id", "")
        if not isinstance(topic_id, str):
            raise ClusterMetadataError(f"{key!r}: topic_id must be a string")
        return cls(
            tuple(_ids(key, r, "replicas") for r in _list(key, value, "replicas")),
            _int(key, value, "replication.factor"),
            _int(key, value, "min.insync.replicas"),
            config,
            topic_id,
        )


@dataclass(frozen=True, slots=True)
class TopicRequest:
    """A broker asks the controller to create a topic (an admin call or an auto-creation reached it);
    the controller places the replicas, creates the topic and deletes the request."""

    partitions: int
    replication_factor: int
    min_insync_replicas: int = 1
    config: Mapping[str, str] = field(default_factory=dict)

    def encode(self) -> bytes:
        return _dump(
            {
                "partitions": self.partitions,
                "replication.factor": self.replication_factor,
                "min.insync.replicas": self.min_insync_replicas,
                "config": dict(self.config),
            }
        )

    @classmethod
    def decode(cls, key: bytes, data: bytes) -> TopicRequest:
        value = _load(key, data)
        config = value.get("config", {})
        if not isinstance(config, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in config.items()
        ):
            raise ClusterMetadataError(f"{key!r}: config must map setting names to strings")
        return cls(
            _int(key, value, "partitions"),
            _int(key, value, "replication.factor"),
            _int(key, value, "min.insync.replicas"),
            config,
        )


@dataclass(frozen=True, slots=True)
class IsrRequest:
    """A partition leader asks the controller to change the ISR (Kafka's AlterPartition): valid only at
    the leader and partition epochs it names, so one decided on an old state is refused."""

    leader: int
    leader_epoch: int
    partition_epoch: int
    isr: tuple[int, ...]

    def encode(self) -> bytes:
        return _dump(
            {
                "leader": self.leader,
                "leader_epoch": self.leader_epoch,
                "partition_epoch": self.partition_epoch,
                "isr": list(self.isr),
            }
        )

    @classmethod
    def decode(cls, key: bytes, data: bytes) -> IsrRequest:
        value = _load(key, data)
        return cls(
            _int(key, value, "leader"),
            _int(key, value, "leader_epoch"),
            _int(key, value, "partition_epoch"),
            _ids(key, _list(key, value, "isr"), "isr"),
        )


class TopicChangeKind(enum.Enum):
    DELETE = "delete"
    PARTITIONS = "partitions"
    CONFIG = "config"


@dataclass(frozen=True, slots=True)
class TopicChange:
    """A broker asks the controller to delete a topic, grow it to `partitions`, or set `config` values
    (an admin call reached it; it validated the change first). One change per topic at a time; the
    controller applies it in a guarded write and deletes the request."""

    kind: TopicChangeKind
    partitions: int = 0
    config: Mapping[str, str] = field(default_factory=dict)

    def encode(self) -> bytes:
        return _dump({"kind": self.kind.value, "partitions": self.partitions, "config": dict(self.config)})

    @classmethod
    def decode(cls, key: bytes, data: bytes) -> TopicChange:
        value = _load(key, data)
        try:
            kind = TopicChangeKind(value.get("kind"))
        except ValueError:
            raise ClusterMetadataError(f"{key!r}: unknown topic change {value.get('kind')!r}") from None
        config = value.get("config", {})
        if not isinstance(config, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in config.items()
        ):
            raise ClusterMetadataError(f"{key!r}: config must map setting names to strings")
        return cls(kind, _int(key, value, "partitions"), config)


@dataclass(frozen=True, slots=True)
class Reassignment:
    """An operator asked to move a partition to the replica list `target` (`logstore topics reassign`);
    the controller moves it step by step (`leader_election.reassign`) and deletes the request when done."""

    target: tuple[int, ...]

    def encode(self) -> bytes:
        return _dump({"target": list(self.target)})

    @classmethod
    def decode(cls, key: bytes, data: bytes) -> Reassignment:
        value = _load(key, data)
        target = _ids(key, _list(key, value, "target"), "target")
        if not target or len(set(target)) != len(target):
            raise ClusterMetadataError(f"{key!r}: target must name distinct brokers, at least one")
        return cls(target)


@dataclass(frozen=True, slots=True)
class PartitionState:
    """Per partition: the leader (NO_LEADER when offline), its epoch, the ISR, and the partition epoch,
    which every change bumps so that an ISR change based on an old state is refused."""

    leader: int
    leader_epoch: int
    isr: tuple[int, ...]
    replicas: tuple[int, ...]
    partition_epoch: int = 0

    @property
    def online(self) -> bool:
        return self.leader != NO_LEADER

    def encode(self) -> bytes:
        return _dump(
            {
                "leader": self.leader,
                "leader_epoch": self.leader_epoch,
                "isr": list(self.isr),
                "replicas": list(self.replicas),
                "partition_epoch": self.partition_epoch,
            }
        )

    @classmethod
    def decode(cls, key: bytes, data: bytes) -> PartitionState:
        value = _load(key, data)
        return cls(
            _int(key, value, "leader"),
            _int(key, value, "leader_epoch"),
            _ids(key, _list(key, value, "isr"), "isr"),
            _ids(key, _list(key, value, "replicas"), "replicas"),
            _int(key, value, "partition_epoch"),
        )


def _dump(value: dict[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _load(key: bytes, data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ClusterMetadataError(f"{key!r}: not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ClusterMetadataError(f"{key!r}: expected a JSON object")
    return value


def _int(key: bytes, value: dict[str, Any], name: str) -> int:
    item = value.get(name)
    if not isinstance(item, int) or isinstance(item, bool):
        raise ClusterMetadataError(f"{key!r}: {name!r} must be an integer")
    return item


def _list(key: bytes, value: dict[str, Any], name: str) -> list[Any]:
    item = value.get(name)
    if not isinstance(item, list):
        raise ClusterMetadataError(f"{key!r}: {name!r} must be a list")
    return item


def _ids(key: bytes, items: Any, name: str) -> tuple[int, ...]:
    if not isinstance(items, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in items):
        raise ClusterMetadataError(f"{key!r}: {name!r} must be a list of broker ids")
    if len(set(items)) != len(items):
        raise ClusterMetadataError(f"{key!r}: {name!r} names a broker twice")
    return tuple(items)
