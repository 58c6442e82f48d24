"""Settings: flags over LOGSTORE_* environment over the TOML file over defaults; bad values named."""

from __future__ import annotations

from pathlib import Path

import pytest
from logstore.bench.cli import build_parser
from logstore.broker.server import grpc_options
from logstore.broker.settings import MiB, Settings, SettingsError, from_arguments, load


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_defaults_listen_on_loopback_with_auto_creation() -> None:
    settings = load({}, env={})
    assert (settings.host, settings.port, settings.data_dir) == ("127.0.0.1", 9093, Path("data"))
    assert (settings.kafka_port, settings.serves_kafka) == (9092, True), "Kafka's port, gRPC beside it"
    assert settings.auto_create_topics and settings.default_partitions == 1


def test_flags_beat_environment_beats_file_beats_defaults(tmp_path) -> None:
    config = _write(
        tmp_path / "broker.toml",
        'port = 1111\nhost = "0.0.0.0"\ndefault-partitions = 3\nauto_create_topics = false\n'
        '[topic_defaults]\n"retention.ms" = 1000\n"segment.ms" = 60000\n',
    )
    env = {"LOGSTORE_CONFIG": str(config), "LOGSTORE_PORT": "2222", "LOGSTORE_DEFAULT_PARTITIONS": "5"}
    settings = load({"port": 3333}, env=env)
    assert settings.port == 3333
    assert settings.default_partitions == 5
    assert settings.host == "0.0.0.0"
    assert settings.auto_create_topics is False
    assert settings.data_dir == Path("data")
    topic = settings.topic_config()
    assert (topic.retention_ms, topic.segment_ms) == (1000, 60000)


def test_command_line_flags(tmp_path) -> None:
    args = build_parser().parse_args(
        ["serve", "--data-dir", str(tmp_path), "--port", "0", "--no-auto-create-topics", "--log-level", "debug",
         "--topic-default", "retention.ms=5000", "--topic-default", "segment.bytes=1048576"]
    )  # fmt: skip
    settings = from_arguments(args)
    assert (settings.data_dir, settings.port, settings.auto_create_topics) == (tmp_path, 0, False)
    assert settings.log_level == "DEBUG"
    assert dict(settings.topic_defaults) == {"retention.ms": "5000", "segment.bytes": "1048576"}


def test_flag_topic_defaults_merge_over_the_file(tmp_path, monkeypatch) -> None:
    config = _write(tmp_path / "b.toml", '[topic_defaults]\n"retention.ms" = 1\n"segment.ms" = 2\n')
    monkeypatch.setenv("LOGSTORE_CONFIG", str(config))
    args = build_parser().parse_args(["serve", "--topic-default", "retention.ms=9"])
    assert dict(from_arguments(args).topic_defaults) == {"retention.ms": "9", "segment.ms": "2"}


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"LOGSTORE_PORT": "ninety"}, "LOGSTORE_PORT: port must be an integer"),
        ({"LOGSTORE_PORT": "70000"}, "port must be between 0 and 65535"),
        ({"LOGSTORE_AUTO_CREATE_TOPICS": "perhaps"}, "must be true or false"),
        ({"LOGSTORE_DEFAULT_PARTITIONS": "0"}, "default_partitions must be between 1"),
        ({"LOGSTORE_LOG_LEVEL": "LOUD"}, "log_level must be one of"),
        ({"LOGSTORE_MAX_REQUEST_BYTES": str(512 * 1024)}, "does not fit in a request"),
        ({"LOGSTORE_CONFIG": "/nonexistent/broker.toml"}, "cannot read config file"),
    ],
)
def test_bad_values_name_the_setting_and_the_source(env, fragment) -> None:
    with pytest.raises(SettingsError, match=fragment):
        load({}, env=env)


def test_bad_config_files_are_explained(tmp_path) -> None:
    with pytest.raises(SettingsError, match="unknown setting 'colour'"):
        load({"config": _write(tmp_path / "a.toml", 'colour = "blue"\n')}, env={})
    with pytest.raises(SettingsError, match="not valid TOML"):
        load({"config": _write(tmp_path / "b.toml", "port = \n")}, env={})
    with pytest.raises(SettingsError, match="topic_defaults: unknown topic config"):
        load({"config": _write(tmp_path / "c.toml", '[topic_defaults]\n"retention.weeks" = 1\n')}, env={})


def test_grpc_limits_follow_the_request_limit() -> None:
    settings = Settings(max_request_bytes=8 * MiB, fetch_max_bytes=32 * MiB)
    options = dict(grpc_options(settings))
    assert options["grpc.max_receive_message_length"] == 8 * MiB
    assert options["grpc.max_send_message_length"] > 32 * MiB
    assert settings.max_batch_bytes < 8 * MiB


def test_answer_budgets_and_connection_timeouts_are_settings_with_kafka_s_defaults() -> None:
    settings = load({}, env={"LOGSTORE_QUEUED_MAX_RESPONSE_BYTES_PER_CONNECTION": str(8 * MiB)})
    assert settings.queued_max_response_bytes == 256 * MiB
    assert settings.queued_max_response_bytes_per_connection == 8 * MiB
    assert settings.connections_max_idle_ms == 600_000, "Kafka's connections.max.idle.ms"
    with pytest.raises(SettingsError, match="queued_max_response_bytes_per_connection must be between"):
        Settings(queued_max_response_bytes=16 * MiB, queued_max_response_bytes_per_connection=32 * MiB)
    options = dict(grpc_options(Settings(keepalive_time_ms=5000, keepalive_timeout_ms=2000)))
    assert options["grpc.keepalive_time_ms"] == 5000
    assert options["grpc.keepalive_timeout_ms"] == options["grpc.http2.ping_timeout_ms"] == 2000
    assert options["grpc.max_connection_idle_ms"] == 600_000


def test_auth_settings_come_from_flags_environment_or_file(tmp_path: Path) -> None:
    args = build_parser().parse_args(["serve", "--require-auth", "--super-users", "User:admin, User:ops"])
    settings = from_arguments(args)
    assert settings.require_auth and settings.super_user_list == ("User:admin", "User:ops")
    env = {"LOGSTORE_REQUIRE_AUTH": "true", "LOGSTORE_SUPER_USERS": "User:root"}
    assert load(env=env).super_user_list == ("User:root",)
    assert not load(env={}).require_auth
    for bad in ("admin", "User:", "User:*", "Group:x"):
        with pytest.raises(SettingsError, match="super_users"):
            load(env={"LOGSTORE_SUPER_USERS": bad})
