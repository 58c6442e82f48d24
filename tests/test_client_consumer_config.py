"""``ConsumerConfig``: the consumer's options checked once, frozen, with the seconds values derived once."""

from __future__ import annotations

import dataclasses

import pytest
from logstore.broker.embedded import EmbeddedBroker
from logstore.client import Consumer
from logstore.client.consumer.config import ConsumerConfig


def test_the_config_is_frozen_and_derives_seconds_once() -> None:
    config = ConsumerConfig(request_timeout_ms=2500, consumer_timeout_ms=750)
    assert (config.request_timeout_s, config.consumer_timeout_s) == (2.5, 0.75)
    assert ConsumerConfig().consumer_timeout_s == float("inf")  # iterate forever by default
    assert callable(ConsumerConfig(value_deserializer="json").value_deserializer)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.request_timeout_s = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"fetch_min_bytes": 0}, "fetch_min_bytes must be a positive int"),
        ({"max_poll_records": 1.5}, "max_poll_records must be a positive int"),
        ({"fetch_max_wait_ms": -1}, "fetch_max_wait_ms must not be negative"),
        ({"auto_offset_reset": "smallest"}, "auto_offset_reset must be one of earliest, latest, none"),
        ({"key_deserializer": "yaml"}, "key_deserializer must be a callable"),
    ],
)
def test_each_bad_option_is_refused_by_name(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ConsumerConfig(**options)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=message):
        Consumer(bootstrap="127.0.0.1:9", **options)  # type: ignore[arg-type]


def test_the_consumer_builds_its_config_from_its_keywords(broker: EmbeddedBroker) -> None:
    with Consumer(
        bootstrap_servers=broker.address, group_id="g", session_timeout_ms=10_000, request_timeout_ms=4000
    ) as consumer:
        config = consumer.config
        assert (config.bootstrap_servers, config.group_id, config.session_timeout_ms) == (
            broker.address,
            "g",
            10_000,
        )
        assert config.request_timeout_s == 4.0
    with Consumer(bootstrap=broker.address) as consumer:
        assert consumer.config.bootstrap_servers == broker.address and consumer.config.group_id is None
