"""The broker over the topic list: refusing to start on a lost or corrupt meta.json (as a real process),
`--recover-metadata`, the per-topic partition limit, internal topics and config ranges over gRPC."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from logstore.bench.cli import build_parser
from logstore.broker.domain.groups.offset_store import OFFSETS_TOPIC
from logstore.broker.embedded import BrokerProcess, EmbeddedBroker
from logstore.broker.errors import mapping_for
from logstore.broker.settings import Settings, SettingsError, from_arguments, load
from logstore.wire.logstore.v1 import admin_pb2 as pb
from logstore.wire.logstore.v1 import common_pb2 as common

from logstore.errors import InvalidPartitionCountError
from logstore.manager import META_FILE
from logstore.records import build_batch


def rpc_error(call, request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(request)
    return caught.value


def topic_names(stubs) -> list[str]:
    return [t.name for t in stubs.admin.ListTopics(pb.ListTopicsRequest()).topics]


# --- refusing to start, as a process --------------------------------------------------------------------


FREE_PORTS = ("--port", "0", "--kafka-port", "0")


def run_broker(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m logstore.broker` over `data_dir`, expected to refuse to start (so it exits by itself)."""
    return subprocess.run(
        [sys.executable, "-m", "logstore.broker", "--data-dir", str(data_dir), *FREE_PORTS, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def stopped_data_dir(tmp_path: Path, connect) -> Path:
    """A data directory a broker stopped cleanly, with topic `orders` (2 partitions, one record)."""
    data_dir = tmp_path / "data"
    broker = EmbeddedBroker.on(data_dir).start()
    stubs = connect(broker)
    stubs.create_topic("orders", 2, **{"retention.ms": "3600000"})
    assert stubs.produce_one("orders", 1, build_batch([b"kept"])).error_code == 0
    broker.stop()
    return data_dir


@pytest.mark.slow
def test_a_broker_without_meta_json_refuses_to_start_and_recover_metadata_brings_the_data_back(
    stopped_data_dir: Path, tmp_path: Path, connect
) -> None:
    (stopped_data_dir / META_FILE).unlink()
    refused = run_broker(stopped_data_dir)
    assert refused.returncode == 1
    assert "cannot start:" in refused.stderr and "Traceback" not in refused.stderr
    assert META_FILE in refused.stderr and "--recover-metadata" in refused.stderr
    assert (stopped_data_dir / "orders-1").is_dir()

    process = BrokerProcess(stopped_data_dir, tmp_path / "broker.log", args=["--recover-metadata"])
    process.start()
    stubs = connect(process)
    assert stubs.values("orders", 1) == [b"kept"]
    described = stubs.admin.DescribeTopic(pb.DescribeTopicRequest(name="orders")).topic
    assert (len(described.partitions), described.config["retention.ms"]) == (2, "-1")
    offsets = stubs.admin.DescribeTopic(pb.DescribeTopicRequest(name=OFFSETS_TOPIC)).topic
    assert offsets.config["cleanup.policy"] == "compact", "the broker knows its internal topic's config"
    assert process.terminate() == 0
    assert "rebuilt topic orders with 2 partitions" in process.log_text()
    assert json.loads((stopped_data_dir / META_FILE).read_text())["topics"]["orders"]["partitions"] == 2


@pytest.mark.slow
@pytest.mark.parametrize(
    "content", [b"", b'{"version": 1, "topics": {"orders": {"partitions": "2"', b"[1, 2]"]
)
def test_a_broker_with_a_corrupt_meta_json_refuses_to_start_with_a_message(
    stopped_data_dir: Path, content: bytes
) -> None:
    (stopped_data_dir / META_FILE).write_bytes(content)
    refused = run_broker(stopped_data_dir)
    assert refused.returncode == 1
    assert "cannot start:" in refused.stderr and "Traceback" not in refused.stderr
    assert str(stopped_data_dir / META_FILE) in refused.stderr
    assert (stopped_data_dir / META_FILE).read_bytes() == content, "nothing is rewritten over it"


# --- settings ---------------------------------------------------------------------------------------------


def test_max_partitions_per_topic_and_recover_metadata_settings(tmp_path: Path) -> None:
    args = build_parser().parse_args(["serve", "--max-partitions-per-topic", "50", "--recover-metadata"])
    settings = from_arguments(args)
    assert (settings.max_partitions_per_topic, settings.recover_metadata) == (50, True)
    assert load({}, env={}).max_partitions_per_topic == 1000
    assert load({}, env={"LOGSTORE_MAX_PARTITIONS_PER_TOPIC": "9"}).max_partitions_per_topic == 9
    with pytest.raises(SettingsError, match="max_partitions_per_topic must be between 1 and 10000"):
        Settings(max_partitions_per_topic=10_001)
    with pytest.raises(
        SettingsError, match=r"default_partitions \(5\) is more than max_partitions_per_topic"
    ):
        Settings(max_partitions_per_topic=4, default_partitions=5)
    with pytest.raises(SettingsError, match="offsets_topic_partitions"):
        Settings(max_partitions_per_topic=4)  # __consumer_offsets has 8
    # rebuilding the topic list is a decision per start, never a standing setting
    assert load({}, env={"LOGSTORE_RECOVER_METADATA": "true"}).recover_metadata is False
    config = tmp_path / "b.toml"
    config.write_text("recover_metadata = true\n")
    with pytest.raises(SettingsError, match="command-line flag only"):
        load({"config": config}, env={})


# --- the partition limit ----------------------------------------------------------------------------------


def test_create_topic_with_ten_thousand_partitions_is_refused_and_harms_nothing(stubs) -> None:
    stubs.create_topic("small", 2)
    refused = rpc_error(stubs.admin.CreateTopic, pb.CreateTopicRequest(name="huge", partitions=10_000))
    assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "between 1 and 1000" in str(refused.details())
    grow = pb.CreatePartitionsRequest(name="small", total_partitions=10_000)
    assert rpc_error(stubs.admin.CreatePartitions, grow).code() == grpc.StatusCode.INVALID_ARGUMENT
    assert topic_names(stubs) == ["small"]
    assert stubs.produce_one("small", 1, build_batch([b"fine"])).error_code == 0
    assert mapping_for(InvalidPartitionCountError("x")).code == common.ERROR_CODE_INVALID_PARTITIONS


def test_the_partition_limit_is_a_broker_setting(start_broker, connect) -> None:
    stubs = connect(start_broker(max_partitions_per_topic=8))
    assert rpc_error(stubs.admin.CreateTopic, pb.CreateTopicRequest(name="t", partitions=9)).code() == (
        grpc.StatusCode.INVALID_ARGUMENT
    )
    stubs.create_topic("t", 8)
    assert topic_names(stubs) == ["t"]


# --- internal topics and config ranges --------------------------------------------------------------------


def test_clients_cannot_reconfigure_consumer_offsets(stubs) -> None:
    before = stubs.admin.DescribeTopic(pb.DescribeTopicRequest(name=OFFSETS_TOPIC)).topic.config
    for request in (
        pb.AlterTopicConfigRequest(name=OFFSETS_TOPIC, set={"max.message.bytes": "100"}),
        pb.AlterTopicConfigRequest(name=OFFSETS_TOPIC, set={"retention.ms": "1"}),
        pb.AlterTopicConfigRequest(name=OFFSETS_TOPIC, reset=["cleanup.policy"]),
    ):
        refused = rpc_error(stubs.admin.AlterTopicConfig, request)
        assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "internal" in str(refused.details()) and "reconfigured" in str(refused.details())
    assert stubs.admin.DescribeTopic(pb.DescribeTopicRequest(name=OFFSETS_TOPIC)).topic.config == before


@pytest.mark.parametrize(
    ("setting", "value", "complaint"),
    [
        ("retention.ms", str(2**63), "at most 9223372036854775807"),
        ("retention.ms", "-2", "must be -1"),
        ("retention.bytes", str(2**64), "at most"),
        ("segment.ms", "0", "at least 1"),
        ("segment.bytes", "13", "at least"),
        ("segment.index.bytes", str(2**31), "at most 2147483647"),
        ("max.message.bytes", "10", "at least 61"),
        ("delete.retention.ms", "-1", "at least 0"),
        ("min.cleanable.dirty.ratio", "nan", "between 0 and 1"),
        ("retention.ms", "1_000", "whole number"),
    ],
)
def test_config_values_out_of_range_are_refused(stubs, setting: str, value: str, complaint: str) -> None:
    stubs.create_topic("t", 1)
    before = stubs.admin.DescribeTopic(pb.DescribeTopicRequest(name="t")).topic.config
    refused = rpc_error(
        stubs.admin.AlterTopicConfig, pb.AlterTopicConfigRequest(name="t", set={setting: value})
    )
    assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert setting in str(refused.details()) and complaint in str(refused.details())
    created = rpc_error(stubs.admin.CreateTopic, pb.CreateTopicRequest(name="u", config={setting: value}))
    assert created.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert stubs.admin.DescribeTopic(pb.DescribeTopicRequest(name="t")).topic.config == before
    assert topic_names(stubs) == ["t"]
