"""Share group configs: Kafka's names and bounds, parsed from strings all or nothing."""

from __future__ import annotations

import dataclasses

import pytest
from logstore.broker.share_machine import (
    GROUP_CONFIG_NAMES,
    MAX_RELEASE_DELAY_MS,
    ShareGroupConfig,
    config_to_strings,
    parse_group_config,
    reset_duration_ms,
)

from logstore.errors import InvalidConfigError

DEFAULTS = ShareGroupConfig()


def test_the_names_are_kafkas_in_field_order() -> None:
    assert GROUP_CONFIG_NAMES == (
        "share.record.lock.duration.ms",
        "share.delivery.count.limit",
        "share.partition.max.record.locks",
        "share.auto.offset.reset",
        "share.session.timeout.ms",
        "share.heartbeat.interval.ms",
        "errors.deadletterqueue.topic.name",
        "errors.deadletterqueue.copy.record.enable",
    )
    assert len(GROUP_CONFIG_NAMES) == len(dataclasses.fields(ShareGroupConfig))


def test_defaults_round_trip_through_strings() -> None:
    strings = config_to_strings(DEFAULTS)
    assert list(strings) == list(GROUP_CONFIG_NAMES)
    assert strings["share.record.lock.duration.ms"] == "30000"
    assert strings["errors.deadletterqueue.copy.record.enable"] == "true"
    assert parse_group_config(strings, ShareGroupConfig(delivery_count_limit=3)) == DEFAULTS


def test_group_values_override_the_defaults_and_leave_the_rest() -> None:
    config = parse_group_config(
        {
            "share.record.lock.duration.ms": "2000",
            "share.delivery.count.limit": "3",
            "errors.deadletterqueue.topic.name": "tasks.dlq",
            "errors.deadletterqueue.copy.record.enable": "FALSE",
            "share.auto.offset.reset": "earliest",
        },
        DEFAULTS,
    )
    assert config == dataclasses.replace(
        DEFAULTS,
        record_lock_duration_ms=2000,
        delivery_count_limit=3,
        dead_letter_topic="tasks.dlq",
        dead_letter_copy_record=False,
        auto_offset_reset="earliest",
    )
    assert parse_group_config({}, DEFAULTS) is DEFAULTS or parse_group_config({}, DEFAULTS) == DEFAULTS


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("share.record.lock.duration.ms", "999", "between 1000 and 3600000"),
        ("share.record.lock.duration.ms", "3600001", "between 1000 and 3600000"),
        ("share.record.lock.duration.ms", "1e3", "integer"),
        ("share.delivery.count.limit", "1", "between 2 and 10"),
        ("share.delivery.count.limit", "11", "between 2 and 10"),
        ("share.partition.max.record.locks", "99", "between 100 and 10000"),
        ("share.partition.max.record.locks", "10001", "between 100 and 10000"),
        ("share.session.timeout.ms", "999", "between 1000 and 3600000"),
        ("share.heartbeat.interval.ms", "99", "between 100"),
        ("share.heartbeat.interval.ms", "45000", "below share.session.timeout.ms"),
        ("share.auto.offset.reset", "newest", "latest, earliest or by_duration"),
        ("share.auto.offset.reset", "by_duration:1h", "latest, earliest or by_duration"),
        ("share.auto.offset.reset", "by_duration:PT", "latest, earliest or by_duration"),
        ("share.auto.offset.reset", "by_duration:-PT1H", "latest, earliest or by_duration"),
        ("errors.deadletterqueue.topic.name", "bad name", "not a valid topic name"),
        ("errors.deadletterqueue.topic.name", "__dlq", "internal topic"),
        ("errors.deadletterqueue.copy.record.enable", "yes", "true or false"),
        ("share.unknown", "1", "unknown share group config"),
    ],
)
def test_bad_values_are_refused_naming_key_value_and_range(name: str, value: str, words: str) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        parse_group_config({name: value}, DEFAULTS)
    message = str(caught.value)
    assert words in message
    assert name in message
    if name != "share.unknown":
        assert value in message


def test_the_heartbeat_is_checked_against_the_resulting_session_timeout() -> None:
    with pytest.raises(InvalidConfigError, match=r"share.heartbeat.interval.ms must be below"):
        parse_group_config({"share.session.timeout.ms": "3000"}, DEFAULTS)
    config = parse_group_config(
        {"share.session.timeout.ms": "3000", "share.heartbeat.interval.ms": "1000"}, DEFAULTS
    )
    assert (config.session_timeout_ms, config.heartbeat_interval_ms) == (3000, 1000)


def test_constructing_a_config_checks_it_too() -> None:
    with pytest.raises(InvalidConfigError, match=r"share\.delivery\.count\.limit"):
        ShareGroupConfig(delivery_count_limit=1)


@pytest.mark.parametrize(
    ("reset", "expected"),
    [
        ("latest", None),
        ("earliest", None),
        ("by_duration:PT1H", 3_600_000),
        ("by_duration:P1D", 86_400_000),
        ("by_duration:pt30m", 1_800_000),
        ("by_duration:P1DT2H3M4.5S", ((26 * 60 + 3) * 60 + 4) * 1000 + 500),
        ("by_duration:PT0S", 0),
    ],
)
def test_reset_durations(reset: str, expected: int | None) -> None:
    assert reset_duration_ms(reset) == expected


def test_the_release_delay_bound_is_twelve_locks_at_most_an_hour() -> None:
    assert ShareGroupConfig(record_lock_duration_ms=2000).max_release_delay_ms == 24_000
    assert DEFAULTS.max_release_delay_ms == 360_000
    assert ShareGroupConfig(record_lock_duration_ms=400_000).max_release_delay_ms == MAX_RELEASE_DELAY_MS
    assert MAX_RELEASE_DELAY_MS == 3_600_000
