"""A share group's configuration: Kafka's group config names, their bounds, and parsing from strings.

Group configs arrive as strings (AlterGroupConfig, the CLI, `__share_group_state`); `parse_group_config`
turns the ones a group sets into a `ShareGroupConfig` on top of the broker's defaults, refusing unknown
names and out-of-range values with an `InvalidConfigError` that names the key, the value and what is
allowed.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from logstore.errors import InvalidConfigError, InvalidTopicError
from logstore.manager import validate_topic_name

RECORD_LOCK_DURATION_MS: Final = "share.record.lock.duration.ms"
DELIVERY_COUNT_LIMIT: Final = "share.delivery.count.limit"
PARTITION_MAX_RECORD_LOCKS: Final = "share.partition.max.record.locks"
AUTO_OFFSET_RESET: Final = "share.auto.offset.reset"
SESSION_TIMEOUT_MS: Final = "share.session.timeout.ms"
HEARTBEAT_INTERVAL_MS: Final = "share.heartbeat.interval.ms"
DEAD_LETTER_TOPIC: Final = "errors.deadletterqueue.topic.name"
DEAD_LETTER_COPY_RECORD: Final = "errors.deadletterqueue.copy.record.enable"

GROUP_CONFIG_NAMES: tuple[str, ...] = (
    RECORD_LOCK_DURATION_MS,
    DELIVERY_COUNT_LIMIT,
    PARTITION_MAX_RECORD_LOCKS,
    AUTO_OFFSET_RESET,
    SESSION_TIMEOUT_MS,
    HEARTBEAT_INTERVAL_MS,
    DEAD_LETTER_TOPIC,
    DEAD_LETTER_COPY_RECORD,
)
"""Every share group config, by Kafka's name, in the order of `ShareGroupConfig`'s fields."""

_FIELD_OF: dict[str, str] = dict(
    zip(
        GROUP_CONFIG_NAMES,
        (
            "record_lock_duration_ms",
            "delivery_count_limit",
            "partition_max_record_locks",
            "auto_offset_reset",
            "session_timeout_ms",
            "heartbeat_interval_ms",
            "dead_letter_topic",
            "dead_letter_copy_record",
        ),
        strict=True,
    )
)

# Kafka's bounds (KIP-932 group configs); the heartbeat interval is also bounded by the session timeout.
_INT_BOUNDS: dict[str, tuple[int, int]] = {
    RECORD_LOCK_DURATION_MS: (1_000, 3_600_000),
    DELIVERY_COUNT_LIMIT: (2, 10),
    PARTITION_MAX_RECORD_LOCKS: (100, 10_000),
    SESSION_TIMEOUT_MS: (1_000, 3_600_000),
    HEARTBEAT_INTERVAL_MS: (100, 3_600_000),
}

MAX_RELEASE_DELAY_MS: Final = 3_600_000
"""A RELEASE's delay_ms may be 0..min(12 x share.record.lock.duration.ms, this)."""

LATEST: Final = "latest"
EARLIEST: Final = "earliest"
BY_DURATION_PREFIX: Final = "by_duration:"
_INTEGER = re.compile(r"-?[0-9]+")
# Java's Duration.parse, which Kafka uses for by_duration: days, hours, minutes, seconds (with a fraction).
_ISO_DURATION = re.compile(
    r"P(?:(?P<d>[0-9]+)D)?(?:T(?:(?P<h>[0-9]+)H)?(?:(?P<m>[0-9]+)M)?(?:(?P<s>[0-9]+)(?:\.(?P<f>[0-9]{1,9}))?S)?)?",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class ShareGroupConfig:
    """The effective configuration of one share group (the broker's defaults, overridden per group).

    Constructing one checks every bound, so a config in hand is always valid."""

    record_lock_duration_ms: int = 30_000
    """How long a member holds an acquired record before it is released (share.record.lock.duration.ms)."""
    delivery_count_limit: int = 5
    """Deliveries after which a released record is archived instead (share.delivery.count.limit)."""
    partition_max_record_locks: int = 2000
    """Most offsets in a share-partition's window, the queue's prefetch (share.partition.max.record.locks)."""
    auto_offset_reset: str = LATEST
    """Where a share-partition starts: latest | earliest | by_duration:<ISO-8601> (share.auto.offset.reset)."""
    session_timeout_ms: int = 45_000
    """A member silent this long is removed and its records released (share.session.timeout.ms)."""
    heartbeat_interval_ms: int = 5_000
    """How often members heartbeat (share.heartbeat.interval.ms); below the session timeout."""
    dead_letter_topic: str = ""
    """Where archived records go, "" for nowhere (errors.deadletterqueue.topic.name)."""
    dead_letter_copy_record: bool = True
    """Whether dead letters carry the key, value and headers (errors.deadletterqueue.copy.record.enable)."""

    def __post_init__(self) -> None:
        for name, (low, high) in _INT_BOUNDS.items():
            value = getattr(self, _FIELD_OF[name])
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise InvalidConfigError(f"{name} must be between {low} and {high}, not {value!r}")
        if self.heartbeat_interval_ms >= self.session_timeout_ms:
            raise InvalidConfigError(
                f"{HEARTBEAT_INTERVAL_MS} must be below {SESSION_TIMEOUT_MS} ({self.session_timeout_ms}), "
                f"not {self.heartbeat_interval_ms}: members would time out between heartbeats"
            )
        reset_duration_ms(self.auto_offset_reset)  # raises for a bad value
        if self.dead_letter_topic:
            _check_dead_letter_topic(self.dead_letter_topic)
        if not isinstance(self.dead_letter_copy_record, bool):
            raise InvalidConfigError(
                f"{DEAD_LETTER_COPY_RECORD} must be true or false, not {self.dead_letter_copy_record!r}"
            )

    @property
    def max_release_delay_ms(self) -> int:
        """The largest delay_ms a RELEASE may ask for."""
        return min(12 * self.record_lock_duration_ms, MAX_RELEASE_DELAY_MS)


def _check_dead_letter_topic(topic: str) -> None:
    try:
        validate_topic_name(topic)
    except InvalidTopicError as error:
        raise InvalidConfigError(
            f"{DEAD_LETTER_TOPIC} {topic!r} is not a valid topic name: {error}"
        ) from None
    if topic.startswith("__"):
        raise InvalidConfigError(
            f"{DEAD_LETTER_TOPIC} {topic!r} names an internal topic (starting with '__'); use another name"
        )


def reset_duration_ms(auto_offset_reset: str) -> int | None:
    """The duration of a ``by_duration:<ISO-8601>`` reset in milliseconds; None for latest and earliest.

    Raises `InvalidConfigError` for anything else."""
    if auto_offset_reset in (LATEST, EARLIEST):
        return None
    allowed = f"latest, earliest or {BY_DURATION_PREFIX}<ISO-8601 duration such as PT1H or P1D>"
    if not isinstance(auto_offset_reset, str) or not auto_offset_reset.startswith(BY_DURATION_PREFIX):
        raise InvalidConfigError(f"{AUTO_OFFSET_RESET} must be {allowed}, not {auto_offset_reset!r}")
    text = auto_offset_reset[len(BY_DURATION_PREFIX) :]
    match = _ISO_DURATION.fullmatch(text)
    if match is None or text.upper() in ("P", "PT") or text.upper().endswith("T"):
        raise InvalidConfigError(f"{AUTO_OFFSET_RESET} must be {allowed}, not {auto_offset_reset!r}")
    days, hours, minutes, seconds = (int(match.group(g) or 0) for g in "dhms")
    fraction_ms = int((match.group("f") or "0").ljust(9, "0")[:3])
    return (((days * 24 + hours) * 60 + minutes) * 60 + seconds) * 1000 + fraction_ms


def _parse_int(name: str, text: str) -> int:
    if not isinstance(text, str) or not _INTEGER.fullmatch(text.strip()):
        low, high = _INT_BOUNDS[name]
        raise InvalidConfigError(f"{name} must be an integer between {low} and {high}, not {text!r}")
    return int(text)


def _parse_bool(name: str, text: str) -> bool:
    lowered = text.strip().lower() if isinstance(text, str) else ""
    if lowered not in ("true", "false"):
        raise InvalidConfigError(f"{name} must be true or false, not {text!r}")
    return lowered == "true"


def parse_group_config(values: Mapping[str, str], defaults: ShareGroupConfig) -> ShareGroupConfig:
    """`defaults` with the group's own settings `values` (Kafka names -> strings) applied on top.

    All or nothing: the first unknown name or bad value raises `InvalidConfigError` naming it."""
    changes: dict[str, object] = {}
    for name, text in values.items():
        field = _FIELD_OF.get(name)
        if field is None:
            raise InvalidConfigError(
                f"unknown share group config {name!r}; known configs: {', '.join(GROUP_CONFIG_NAMES)}"
            )
        if name in _INT_BOUNDS:
            changes[field] = _parse_int(name, text)
        elif name == DEAD_LETTER_COPY_RECORD:
            changes[field] = _parse_bool(name, text)
        elif isinstance(text, str):
            changes[field] = text.strip()
        else:
            raise InvalidConfigError(f"{name} must be a string, not {text!r}")
    return dataclasses.replace(defaults, **changes)  # type: ignore[arg-type]


def config_to_strings(config: ShareGroupConfig) -> dict[str, str]:
    """Every config of `config` as Kafka name -> string, in `GROUP_CONFIG_NAMES` order."""
    result: dict[str, str] = {}
    for name in GROUP_CONFIG_NAMES:
        value = getattr(config, _FIELD_OF[name])
        result[name] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return result
