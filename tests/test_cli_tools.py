"""The console tools refuse what they cannot do instead of doing something else, and explain every flag."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest
from logstore.bench.cli import build_parser
from logstore.broker.embedded import EmbeddedBroker
from logstore.client import Admin, Producer

from tests.test_cli_console import assert_one_line_error, logstore


def options(parser: argparse.ArgumentParser, path: str = "logstore") -> Iterator[tuple[str, argparse.Action]]:
    """Every argument of every (sub)command, with the command line that reaches it."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from options(sub, f"{path} {name}")
        elif not isinstance(action, argparse._HelpAction | argparse._VersionAction):
            yield path, action


def test_every_argument_of_every_command_has_help() -> None:
    found = list(options(build_parser()))
    assert len(found) > 50  # the walk reached the subcommands
    missing = [f"{path} {'/'.join(a.option_strings) or a.dest}" for path, a in found if not a.help]
    assert missing == []


@pytest.mark.parametrize("count", ["0", "-2"])
def test_topics_create_refuses_a_partition_count_below_one(broker: EmbeddedBroker, count: str) -> None:
    done = logstore(
        "topics", "create", "t", "--partitions", count, "--bootstrap", broker.address, check=False
    )
    assert_one_line_error(done, f"--partitions must be at least 1, got {count}")
    with Admin(broker.address) as admin:
        assert admin.list_topics() == {}


def test_topics_create_without_partitions_takes_the_brokers_default(start_broker: object) -> None:
    broker = start_broker(default_partitions=3)  # type: ignore[operator]
    done = logstore("topics", "create", "t", "--bootstrap", broker.address)
    assert done.stdout == b"created topic t with 3 partitions\n"


def test_dump_log_takes_no_bootstrap() -> None:
    assert b"--bootstrap" not in logstore("dump-log", "--help").stdout
    done = logstore("dump-log", "x.log", "--bootstrap", "127.0.0.1:9093", check=False)
    assert done.returncode == 2 and b"unrecognized arguments: --bootstrap" in done.stderr


@pytest.fixture
def indexed_segment(start_broker: object) -> Path:
    """A partition directory whose first segment has several offset and time index entries."""
    broker = start_broker(topic_defaults={"index.interval.bytes": "100"})  # type: ignore[operator]
    with Admin(broker.address) as admin:
        admin.create_topic("idx", 1)
    with Producer(broker.address, linger_ms=0) as producer:
        for i in range(6):
            producer.send("idx", b"v" * 150, timestamp_ms=1_000 + i).get(10)
    broker.stop()  # the segment is sealed: the index files are trimmed to their entries
    return Path(broker.settings.data_dir) / "idx-0"


def test_dump_log_of_an_offset_index_prints_and_checks_its_entries(indexed_segment: Path) -> None:
    done = logstore("dump-log", str(indexed_segment / "00000000000000000000.index"))
    lines = done.stdout.decode().splitlines()
    entries = [line for line in lines if line.startswith("offset: ")]
    assert entries and all(" position: " in line for line in entries)
    assert lines[-1] == f"Summary: {len(entries)} entries (offset index, base offset 0), in order"


def test_dump_log_of_a_time_index_prints_its_entries(indexed_segment: Path) -> None:
    done = logstore("dump-log", str(indexed_segment / "00000000000000000000.timeindex"))
    lines = done.stdout.decode().splitlines()
    entries = [line for line in lines if line.startswith("timestamp: ")]
    assert entries and entries[-1] == "timestamp: 1005 offset: 5"
    assert lines[-1].startswith(f"Summary: {len(entries)} entries (time index, base offset 0)")


def test_dump_log_of_an_index_that_does_not_match_its_log_fails(
    indexed_segment: Path, tmp_path: Path
) -> None:
    index = (indexed_segment / "00000000000000000000.index").read_bytes()
    copy = tmp_path / "00000000000000000000.index"
    copy.write_bytes(index[:4] + (int.from_bytes(index[4:8], "big") + 1).to_bytes(4, "big") + index[8:])
    (tmp_path / "00000000000000000000.log").write_bytes(
        (indexed_segment / "00000000000000000000.log").read_bytes()
    )
    done = logstore("dump-log", str(copy), check=False)
    out = done.stdout.decode()
    assert done.returncode == 1
    assert "Mismatch: offset " in out and "the batch there starts at offset" in out


def test_dump_log_refuses_a_file_that_is_not_whole_index_entries(tmp_path: Path) -> None:
    bad = tmp_path / "00000000000000000000.timeindex"
    bad.write_bytes(b"\1" * 13)
    done = logstore("dump-log", str(bad), check=False)
    assert done.returncode == 1
    assert b"13 bytes are not whole 12-byte entries: not a time index" in done.stdout
