"""Per-topic configuration: Kafka's topic settings, under the same names.

Keys may be written Kafka's way (`retention.ms`) or Python's (`retention_ms`); both mean the same field.
Values arrive as strings from the command line and gRPC, so `TopicConfig.from_mapping` parses and checks
them, and `to_mapping` gives the dotted string form back for storage and display.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from logstore.errors import InvalidConfigError

DAY_MS = 24 * 60 * 60 * 1000

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
_INT32_FIELDS = ("segment_index_bytes", "index_interval_bytes", "max_message_bytes", "min_insync_replicas")
"""Kafka types these as INT; the others that are whole numbers are LONG (segment.bytes is INT in Kafka
too, but here its bound is the 32-bit unsigned index position, checked on its own)."""
_DIGITS = re.compile(r"[+-]?[0-9]+")

CLEANUP_POLICIES = ("delete", "compact", "compact,delete")
TIMESTAMP_TYPES = ("CreateTime", "LogAppendTime")


@dataclass(frozen=True)
class TopicConfig:
    """Settings of one topic. Defaults follow Kafka's, except where noted."""

    segment_bytes: int = 1024 * 1024 * 1024
    """Roll to a new segment when the active one would grow past this many bytes."""
    segment_ms: int = 7 * DAY_MS
    """Roll to a new segment when the active one's first batch is older than this."""
    segment_index_bytes: int = 10 * 1024 * 1024
    """Size of each preallocated offset index; the segment rolls when it is full."""
    index_interval_bytes: int = 4096
    """Add one sparse index entry per this many bytes of log."""
    retention_ms: int = 7 * DAY_MS
    """Delete closed segments whose newest record is older than this; -1 keeps them forever."""
    retention_bytes: int = -1
    """Delete the oldest closed segments while the partition is larger than this; -1 means no limit."""
    cleanup_policy: str = "delete"
    """'delete' (retention), 'compact' (keep the latest record per key), or 'compact,delete' (both)."""
    delete_retention_ms: int = DAY_MS
    """How long a compacted topic keeps tombstones (null values) before dropping them."""
    min_compaction_lag_ms: int = 0
    """A record stays uncompacted for at least this long after it was written."""
    min_cleanable_dirty_ratio: float = 0.5
    """Compact a log once this fraction of its closed segments has not been compacted yet."""
    max_message_bytes: int = 1024 * 1024 + 12
    """Largest record batch the topic accepts, in bytes, header included."""
    flush_interval_messages: int = -1
    """fsync after this many appended records; -1 leaves flushing to the OS and to acks=all."""
    flush_interval_ms: int = -1
    """fsync when the oldest unflushed record is this old; -1 leaves flushing to the OS."""
    message_timestamp_type: str = "CreateTime"
    """'CreateTime' keeps the producer's timestamps; 'LogAppendTime' stamps batches with broker time."""
    min_insync_replicas: int = 1
    """acks=all needs this many in-sync replicas (the broker's replication, not the engine, enforces it)."""

    _extra: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._check_positive("segment_bytes", minimum=14 + 61)
        self._check_positive("segment_ms", minimum=1)
        self._check_positive("segment_index_bytes", minimum=8 * 4)
        self._check_positive("index_interval_bytes", minimum=0)
        self._check_positive("delete_retention_ms", minimum=0)
        self._check_positive("min_compaction_lag_ms", minimum=0)
        self._check_positive("max_message_bytes", minimum=61)
        self._check_positive("min_insync_replicas", minimum=1)
        for name in ("retention_ms", "retention_bytes", "flush_interval_messages", "flush_interval_ms"):
            value = getattr(self, name)
            if value < -1 or (value == 0 and name.startswith("flush")):
                raise InvalidConfigError(
                    f"{_dotted(name)} must be -1 (off) or a positive number, not {value}"
                )
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            ceiling = INT32_MAX if f.name in _INT32_FIELDS else INT64_MAX
            if isinstance(value, int) and value > ceiling:
                kind = "a 32-bit" if ceiling == INT32_MAX else "a 64-bit"
                raise InvalidConfigError(
                    f"{_dotted(f.name)} must be at most {ceiling} (Kafka stores it as {kind} number), not {value}"
                )
        if self.segment_bytes > 0xFFFFFFFF:
            raise InvalidConfigError(
                f"segment.bytes must be at most {0xFFFFFFFF} (index positions are 32-bit), not {self.segment_bytes}"
            )
        if not (
            math.isfinite(self.min_cleanable_dirty_ratio) and 0.0 <= self.min_cleanable_dirty_ratio <= 1.0
        ):
            raise InvalidConfigError(
                f"min.cleanable.dirty.ratio must be between 0 and 1, not {self.min_cleanable_dirty_ratio}"
            )
        if self.cleanup_policy not in CLEANUP_POLICIES:
            raise InvalidConfigError(
                f"cleanup.policy must be one of {', '.join(CLEANUP_POLICIES)}, not {self.cleanup_policy!r}"
            )
        if self.message_timestamp_type not in TIMESTAMP_TYPES:
            raise InvalidConfigError(
                f"message.timestamp.type must be one of {', '.join(TIMESTAMP_TYPES)}, "
                f"not {self.message_timestamp_type!r}"
            )

    def _check_positive(self, name: str, minimum: int) -> None:
        value = getattr(self, name)
        if value < minimum:
            raise InvalidConfigError(f"{_dotted(name)} must be at least {minimum}, not {value}")

    @property
    def compact(self) -> bool:
        return "compact" in self.cleanup_policy

    @property
    def delete(self) -> bool:
        return "delete" in self.cleanup_policy

    @property
    def log_append_time(self) -> bool:
        return self.message_timestamp_type == "LogAppendTime"

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], base: TopicConfig | None = None) -> TopicConfig:
        """Build a config from `base` (or the defaults) with `values` laid over it.

        Values may be strings (as typed on a command line) or already-typed Python values.
        """
        current = dataclasses.asdict(base) if base is not None else {}
        current.pop("_extra", None)
        for raw_key, raw_value in values.items():
            key = _field_name(raw_key)
            current[key] = _parse(key, raw_value)
        return cls(**current)

    def to_mapping(self) -> dict[str, str]:
        """All settings as dotted Kafka names and string values: the form stored and shown."""
        return {_dotted(f.name): _format(getattr(self, f.name)) for f in _FIELDS}

    def to_json(self) -> dict[str, Any]:
        """All settings under their Python names with typed values, for meta.json."""
        return {f.name: getattr(self, f.name) for f in _FIELDS}


_FIELDS = [f for f in dataclasses.fields(TopicConfig) if not f.name.startswith("_")]
_TYPES = {f.name: type(getattr(TopicConfig(), f.name)) for f in _FIELDS}


def _dotted(name: str) -> str:
    return name.replace("_", ".")


def _field_name(key: str) -> str:
    name = key.strip().replace(".", "_").replace("-", "_")
    if name not in _TYPES:
        known = ", ".join(sorted(_dotted(n) for n in _TYPES))
        raise InvalidConfigError(f"unknown topic config {key!r}; known settings: {known}")
    return name


def _parse(name: str, value: Any) -> Any:
    wanted = _TYPES[name]
    if isinstance(value, wanted) and not (wanted is int and isinstance(value, bool)):
        return value
    text = str(value).strip()
    try:
        if wanted is bool:
            lowered = text.lower()
            if lowered not in ("true", "false", "1", "0"):
                raise ValueError(text)
            return lowered in ("true", "1")
        if wanted is int:
            if not _DIGITS.fullmatch(text):  # int() would also take '1_000' and non-ASCII digits
                raise ValueError(text)
            return int(text)
        if wanted is float:
            return float(text)
    except ValueError:
        kind = {"int": "whole number", "float": "number"}.get(wanted.__name__, wanted.__name__)
        raise InvalidConfigError(f"{_dotted(name)} must be a {kind}, not {text!r}") from None
    return text


def _format(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
