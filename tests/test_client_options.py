"""kafka-python's producer options are accepted under their names; unknown options are refused with the
close matches, on the Producer, the Consumer and the Admin client alike."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from logstore.broker.embedded import EmbeddedBroker
from logstore.client import Admin, Consumer, Producer
from logstore.client.shared.errors import ClientError

from logstore.records import GZIP, LZ4, SNAPPY, ZSTD, iter_headers
from tests.conftest import Stubs


@pytest.mark.parametrize(
    ("cls", "typo", "meant"),
    [
        (Producer, "lingerms", "'linger_ms'"),
        (Producer, "max_in_flight_requests", "'max_in_flight_requests_per_connection'"),
        (Consumer, "auto_offset_rest", "'auto_offset_reset'"),
        (Consumer, "group", "'group_id'"),
        (Admin, "request_timeout", "'request_timeout_ms'"),
    ],
)
def test_an_unknown_option_is_refused_with_the_close_matches(cls: type, typo: str, meant: str) -> None:
    with pytest.raises(TypeError) as refused:
        cls(bootstrap="127.0.0.1:9", **{typo: 1})
    message = str(refused.value)
    assert message.startswith(f"{cls.__name__} has no option {typo!r} (did you mean {meant}")
    assert "its options are: " in message and "bootstrap_servers" in message


def test_unknown_options_without_a_close_match_are_all_named() -> None:
    with pytest.raises(TypeError, match=r"Producer has no options 'api_version', 'zzz'; its options are"):
        Producer("127.0.0.1:9", zzz=1, api_version=(2, 5))  # type: ignore[call-arg]  # unknown on purpose


def batch_codecs(stubs: Stubs, topic: str) -> set[int]:
    data = stubs.fetch_one(topic, 0, 0).records
    return {header.compression for _, header in iter_headers(data)}


@pytest.mark.parametrize(
    ("name", "codec"), [("gzip", GZIP), ("snappy", SNAPPY), ("lz4", LZ4), ("zstd", ZSTD)]
)
def test_compression_type_is_kafka_pythons_name_for_compression(
    broker: EmbeddedBroker, stubs: Stubs, name: str, codec: int
) -> None:
    with Producer(broker.address, compression_type=name) as producer:
        producer.send(name, b"compressible " * 100).get(10)
    assert batch_codecs(stubs, name) == {codec}


def test_a_codec_kafka_does_not_have_is_refused_by_name() -> None:
    with pytest.raises(
        ValueError, match=r"compression_type must be 'none', 'gzip', 'snappy', 'lz4' or 'zstd', got 'brotli'"
    ):
        Producer("127.0.0.1:9", compression_type="brotli")
    with pytest.raises(ValueError, match=r"compression must be .* got 'brotli'"):
        Producer("127.0.0.1:9", compression="brotli")


def test_an_option_and_its_kafka_python_alias_must_agree() -> None:
    with pytest.raises(ValueError, match="compression='zstd' and compression_type='gzip' disagree"):
        Producer("127.0.0.1:9", compression="zstd", compression_type="gzip")


def test_max_in_flight_requests_per_connection_bounds_requests_per_partition(broker: EmbeddedBroker) -> None:
    with pytest.raises(ValueError, match="max_in_flight_requests_per_connection must be at most 5"):
        Producer(broker.address, max_in_flight_requests_per_connection=6)  # idempotent: the broker's window
    with Producer(broker.address, max_in_flight_requests_per_connection=1) as producer:
        assert producer._accumulator.max_in_flight_per_partition == 1
        producer.send("inflight", b"x").get(10)
    with Producer(
        broker.address, max_in_flight_requests_per_connection=8, enable_idempotence=False
    ) as producer:
        assert producer._accumulator.max_in_flight_per_partition == 8


class _UserAgents(grpc.GenericRpcHandler):
    """A server that records each call's user-agent and implements nothing."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def service(self, details: grpc.HandlerCallDetails) -> None:
        self.seen += [str(value) for key, value in details.invocation_metadata if key == "user-agent"]
        return None


@pytest.fixture
def user_agents() -> Iterator[tuple[str, _UserAgents]]:
    handler = _UserAgents()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), handlers=[handler])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}", handler
    server.stop(None)


def test_client_id_leads_the_user_agent_of_each_call(user_agents: tuple[str, _UserAgents]) -> None:
    address, handler = user_agents
    producer = Producer(address, client_id="billing-7", enable_idempotence=False, max_block_ms=300)
    try:
        with pytest.raises(ClientError, match="UNIMPLEMENTED"):
            producer.partitions_for("t")
    finally:
        producer.close()
    assert handler.seen and all(agent.startswith("billing-7 ") for agent in handler.seen), handler.seen
