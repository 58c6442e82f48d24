"""proto/README.md is the contract for clients in other languages, so its figures are checked here: the
partitioning test vectors against the client's partitioner and the broker's, and the worked batch
example byte for byte against the codec and against what PublishRecords stores."""

from __future__ import annotations

import re
from pathlib import Path

import mmh3
from logstore.broker.service.publish import build_batches, key_partition
from logstore.client.producer.partitioner import key_partition as client_key_partition
from logstore.wire.logstore.v1 import common_pb2, produce_pb2

from logstore.records import Record, build_batch
from tests.conftest import Stubs

README = Path(__file__).resolve().parent.parent / "proto" / "README.md"
COUNTS = (1, 3, 7, 100)


def section(name: str) -> str:
    match = re.search(f"<!-- {name} -->\n(.*?)<!-- /{name} -->", README.read_text(), re.DOTALL)
    assert match, f"proto/README.md has no <!-- {name} --> section"
    return match.group(1)


def vectors() -> list[tuple[bytes, int, list[int]]]:
    rows = []
    for line in section("partition-vectors").splitlines()[2:]:
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        key = re.fullmatch(r"`(.*)`(?: \(empty\))?", cells[0])
        assert key, line
        rows.append((key.group(1).encode(), int(cells[1]), [int(cell) for cell in cells[2:]]))
    return rows


def example_bytes() -> bytes:
    block = section("example-batch").strip().removeprefix("```").removesuffix("```")
    # each line: hex groups separated by single spaces, then two or more spaces and a comment
    return bytes.fromhex("".join(re.split(r"\s{2,}", line.strip())[0] for line in block.strip().splitlines()))


EXAMPLE = Record(0, 1_700_000_000_000, key=b"k", value=b"hi", headers=[("h", b"v")])


def test_the_partition_vectors_are_the_partitioners() -> None:
    rows = vectors()
    assert len(rows) >= 6
    for key, hashed, partitions in rows:
        assert mmh3.hash(key, 0, False) == hashed, key
        assert partitions == [client_key_partition(key, n) for n in COUNTS], key
        assert partitions == [key_partition(key, n) for n in COUNTS], key


def test_the_example_batch_is_what_the_codec_and_publish_records_build() -> None:
    example = example_bytes()
    assert len(example) == 75
    assert example == build_batch([EXAMPLE])
    message = common_pb2.Record(
        key=b"k",
        value=b"hi",
        headers=[common_pb2.RecordHeader(key="h", value=b"v")],
        timestamp_ms=1_700_000_000_000,
    )
    assert build_batches([message], now_ms=0, max_batch_bytes=1_000_000) == example


def test_the_broker_stores_the_example_batch_as_documented(stubs: Stubs) -> None:
    message = common_pb2.Record(
        key=b"k",
        value=b"hi",
        headers=[common_pb2.RecordHeader(key="h", value=b"v")],
        timestamp_ms=1_700_000_000_000,
    )
    request = produce_pb2.PublishRecordsRequest(topic="example", partition=0, records=[message])
    assert stubs.produce.PublishRecords(request).results[0].base_offset == 0
    assert stubs.fetch_one("example", 0, 0).records == example_bytes()
