"""``ProducerConfig``: the producer's options checked once, frozen, with the seconds values derived once;
and the accumulator's own state (flush, close, memory waiters, producer id) changed only through it."""

from __future__ import annotations

import dataclasses

import pytest
from logstore.broker.embedded import EmbeddedBroker
from logstore.client import Producer
from logstore.client.producer.accumulator import Accumulator
from logstore.client.producer.config import ProducerConfig

from logstore.records import GZIP, NONE, ZSTD


def test_the_config_is_frozen_and_derives_seconds_once() -> None:
    config = ProducerConfig(
        linger_ms=7, delivery_timeout_ms=90_000, request_timeout_ms=20_000, max_block_ms=1500
    )
    assert (config.linger_s, config.delivery_timeout_s, config.request_timeout_s, config.max_block_s) == (
        0.007,
        90.0,
        20.0,
        1.5,
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.linger_ms = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.linger_s = 1.0  # type: ignore[misc]


def test_options_with_several_spellings_are_normalised() -> None:
    assert ProducerConfig(acks="all").acks == -1
    assert ProducerConfig(acks="0").acks == 0
    assert ProducerConfig(acks=0).idempotent is False  # no acknowledgements: no idempotence by default
    assert ProducerConfig(acks=1).idempotent is True
    assert (ProducerConfig().compression, ProducerConfig(compression_type=None).compression_type) == (
        NONE,
        "none",
    )
    assert ProducerConfig(compression_type="zstd").compression == ZSTD
    assert callable(ProducerConfig(value_serializer="json").value_serializer)
    assert ProducerConfig(interceptors=[]).interceptors == ()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"acks": 2}, "acks must be 0, 1 or 'all'"),
        ({"compression_type": "lz5"}, "compression_type must be 'none', 'gzip', 'snappy', 'lz4' or 'zstd'"),
        ({"acks": 0, "enable_idempotence": True}, "enable_idempotence needs acknowledgements"),
        (
            {"max_in_flight_requests_per_connection": 0},
            "max_in_flight_requests_per_connection must be an integer",
        ),
        ({"max_in_flight_requests_per_connection": 6}, "must be at most 5"),
        ({"retries": -1}, "retries must be None"),
        ({"delivery_timeout_ms": 1000}, "delivery_timeout_ms \\(1000\\) must be at least"),
        ({"batch_size": 0}, "batch_size must be positive"),
        ({"max_request_size": 100}, "max_request_size \\(100\\) must be at least batch_size"),
        ({"buffer_memory": 100}, "buffer_memory \\(100\\) must be at least batch_size"),
        ({"key_serializer": "yaml"}, "key_serializer must be a callable"),
    ],
)
def test_each_bad_option_is_refused_by_name(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ProducerConfig(**options)  # type: ignore[arg-type]


def test_an_error_names_the_option_as_the_caller_spelled_it() -> None:
    with pytest.raises(ValueError, match="max_in_flight must be at most 5"):
        ProducerConfig(
            max_in_flight_requests_per_connection=6,
            spelled={"max_in_flight_requests_per_connection": "max_in_flight"},
        )
    with pytest.raises(ValueError, match="max_in_flight must be at most 5"):
        Producer("127.0.0.1:9", max_in_flight=6)
    with pytest.raises(ValueError, match=r"compression must be .* got 'snappy2'"):
        Producer("127.0.0.1:9", compression="snappy2")


def test_the_producer_builds_its_config_from_its_keywords(broker: EmbeddedBroker) -> None:
    with Producer(broker.address, compression="gzip", max_in_flight=2, linger_ms=20, acks="all") as producer:
        config = producer.config
        assert config.bootstrap_servers == broker.address
        assert (config.compression_type, config.compression) == ("gzip", GZIP)
        assert config.max_in_flight_requests_per_connection == 2
        assert (config.linger_s, config.acks, producer.acks) == (0.02, -1, -1)
        assert producer._accumulator.config is config
    with Producer(bootstrap_servers=broker.address, compression_type="zstd") as producer:
        assert (producer.config.bootstrap_servers, producer.config.compression_type) == (
            broker.address,
            "zstd",
        )


def test_flush_close_and_memory_waiters_hurry_every_batch_through_the_accumulator() -> None:
    accumulator = Accumulator(ProducerConfig(batch_size=1000, linger_ms=60_000, delivery_timeout_ms=200_000))

    partitions = iter(range(100))

    def ready() -> int:
        accumulator.append("t", next(partitions), b"v", None, (), 1, 0.0)
        batches, _ = accumulator.drain(0.0)
        return len(batches)

    assert ready() == 1  # nothing in flight: sent at once
    assert ready() == 0  # lingering while a request is in flight
    accumulator.add_memory_waiter()
    assert ready() == 2  # the lingering batch and the new one
    accumulator.remove_memory_waiter()
    assert ready() == 0
    outcomes = accumulator.begin_flush()
    assert len(outcomes) == 4  # three in flight, one open: what flush() waits for
    assert ready() == 2
    accumulator.end_flush()
    assert ready() == 0
    accumulator.close()
    assert ready() == 2


def test_the_producer_id_is_set_through_the_accumulator() -> None:
    accumulator = Accumulator(ProducerConfig(linger_ms=0))
    assert accumulator.producer_id == -1
    accumulator.set_producer_id(42, 3)
    accumulator.append("t", 0, b"v", None, (), 1, 0.0)
    (batch,), _ = accumulator.drain(0.0)
    assert batch.built_as == (42, 3, 0) and batch.epoch == 3
    with pytest.raises(AttributeError):
        accumulator.producer_id = 7  # type: ignore[misc]
