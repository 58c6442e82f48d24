"""Topic and broker settings as config-describing clients want them: each value and where it comes from.

A topic stores its whole effective config, not its overrides, so the source of a value is read off by
comparison: a value other than the broker's default was set on the topic; one equal to it comes from the
broker's own topic defaults (`[topic_defaults]`) if those differ from Kafka's, else it is Kafka's default.
A value set on the topic equal to the broker's default therefore reads as the default: it behaves as one.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from logstore.broker.domain.topics import Topics

from logstore.config import TopicConfig

BROKER_SYNONYMS: dict[str, str] = {
    "segment.bytes": "log.segment.bytes",
    "segment.ms": "log.roll.ms",
    "segment.index.bytes": "log.index.size.max.bytes",
    "index.interval.bytes": "log.index.interval.bytes",
    "retention.ms": "log.retention.ms",
    "retention.bytes": "log.retention.bytes",
    "cleanup.policy": "log.cleanup.policy",
    "delete.retention.ms": "log.cleaner.delete.retention.ms",
    "min.compaction.lag.ms": "log.cleaner.min.compaction.lag.ms",
    "min.cleanable.dirty.ratio": "log.cleaner.min.cleanable.ratio",
    "max.message.bytes": "message.max.bytes",
    "flush.interval.messages": "log.flush.interval.messages",
    "flush.interval.ms": "log.flush.interval.ms",
    "message.timestamp.type": "log.message.timestamp.type",
    "min.insync.replicas": "min.insync.replicas",
}
"""Each topic setting's name as a broker-wide default, as Kafka names them (its topic config synonyms)."""


class ConfigSource(enum.Enum):
    """Where a value comes from, in Kafka's terms (DescribeConfigs' config_source)."""

    TOPIC = "topic"
    """Set on the topic (Kafka's DYNAMIC_TOPIC_CONFIG)."""
    BROKER = "broker"
    """The broker's settings, fixed at start (STATIC_BROKER_CONFIG)."""
    DEFAULT = "default"
    """Kafka's default, nobody set it (DEFAULT_CONFIG)."""


@dataclass(frozen=True, slots=True)
class ConfigEntry:
    name: str
    value: str
    source: ConfigSource
    read_only: bool
    synonyms: tuple[ConfigEntry, ...] = ()
    """The same setting under the names it is also known by, most specific first (this entry too)."""


def topic_configs(topics: Topics, name: str) -> list[ConfigEntry]:
    """Every setting of topic `name`, with its source and synonyms; UnknownTopicError if there is none."""
    values = topics.info(name).config.to_mapping()
    broker = topics.manager.default_config.to_mapping()
    kafka = TopicConfig().to_mapping()
    entries = []
    for key, value in values.items():
        chain = []
        if value != broker[key]:
            chain.append(ConfigEntry(key, value, ConfigSource.TOPIC, read_only=False))
        if broker[key] != kafka[key]:
            chain.append(ConfigEntry(BROKER_SYNONYMS[key], broker[key], ConfigSource.BROKER, read_only=False))
        chain.append(ConfigEntry(BROKER_SYNONYMS[key], kafka[key], ConfigSource.DEFAULT, read_only=False))
        entries.append(ConfigEntry(key, value, chain[0].source, read_only=False, synonyms=tuple(chain)))
    return entries


def broker_configs(topics: Topics, node_id: int) -> list[ConfigEntry]:
    """The broker's settings that have a Kafka name; all read-only (they are fixed when it starts)."""
    kafka = TopicConfig().to_mapping()
    values: list[tuple[str, str, str]] = [
        ("broker.id", str(node_id), "-1"),
        ("auto.create.topics.enable", _bool(topics.auto_create), "true"),
        ("num.partitions", str(topics.default_partitions), "1"),
    ]
    for key, value in topics.manager.default_config.to_mapping().items():
        values.append((BROKER_SYNONYMS[key], value, kafka[key]))
    entries = []
    for key, value, default in values:
        source = ConfigSource.DEFAULT if value == default else ConfigSource.BROKER
        entry = ConfigEntry(key, value, source, read_only=True)
        entries.append(ConfigEntry(key, value, source, read_only=True, synonyms=(entry,)))
    return entries


def _bool(value: bool) -> str:
    return "true" if value else "false"
