"""Broker-wide share-group defaults: read like every other setting, held to Kafka's bounds."""

from __future__ import annotations

import pytest
from logstore.bench.cli import build_parser
from logstore.broker.settings import SettingsError, from_arguments, load


def test_share_defaults_are_kafkas() -> None:
    settings = load({}, env={})
    assert settings.share_record_lock_duration_ms == 30_000
    assert settings.share_delivery_count_limit == 5
    assert settings.share_partition_max_record_locks == 2000
    assert settings.share_session_timeout_ms == 45_000
    assert settings.share_heartbeat_interval_ms == 5_000


def test_share_defaults_come_from_the_environment_the_file_and_flags(tmp_path) -> None:
    config = tmp_path / "broker.toml"
    config.write_text("share-delivery-count-limit = 3\nshare_record_lock_duration_ms = 2000\n")
    env = {"LOGSTORE_CONFIG": str(config), "LOGSTORE_SHARE_RECORD_LOCK_DURATION_MS": "4000"}
    settings = load({}, env=env)
    assert (settings.share_delivery_count_limit, settings.share_record_lock_duration_ms) == (3, 4000)
    args = build_parser().parse_args(["serve", "--share-partition-max-record-locks", "1000"])
    assert from_arguments(args).share_partition_max_record_locks == 1000


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        (
            {"LOGSTORE_SHARE_RECORD_LOCK_DURATION_MS": "999"},
            "share_record_lock_duration_ms must be between 1000",
        ),
        (
            {"LOGSTORE_SHARE_DELIVERY_COUNT_LIMIT": "11"},
            "share_delivery_count_limit must be between 2 and 10",
        ),
        ({"LOGSTORE_SHARE_DELIVERY_COUNT_LIMIT": "1"}, "share_delivery_count_limit must be between 2 and 10"),
        (
            {"LOGSTORE_SHARE_PARTITION_MAX_RECORD_LOCKS": "99"},
            "share_partition_max_record_locks must be between",
        ),
        ({"LOGSTORE_SHARE_SESSION_TIMEOUT_MS": "10"}, "share_session_timeout_ms must be between 1000"),
        ({"LOGSTORE_SHARE_HEARTBEAT_INTERVAL_MS": "45000"}, "must be smaller than share_session_timeout_ms"),
        ({"LOGSTORE_SHARE_HEARTBEAT_INTERVAL_MS": "ten"}, "share_heartbeat_interval_ms must be an integer"),
    ],
)
def test_bad_share_defaults_are_refused_by_name(env, fragment) -> None:
    with pytest.raises(SettingsError, match=fragment):
        load({}, env=env)
