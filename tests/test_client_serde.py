"""Serializers by name and a schema-version header that lets old records be read in the new shape."""

from __future__ import annotations

import pytest
from logstore.client.shared.errors import SerializationError
from logstore.client.shared.serde import (
    SCHEMA_VERSION_HEADER,
    VersionedJson,
    bytes_serializer,
    json_deserializer,
    json_serializer,
    resolve_deserializer,
    resolve_serializer,
    schema_headers,
    schema_version,
    string_deserializer,
    string_serializer,
)


class FakeRecord:
    def __init__(self, value: bytes | None, headers: list[tuple[str, bytes | None]]) -> None:
        self.value = value
        self.headers = headers


def test_named_serializers_round_trip() -> None:
    assert resolve_serializer("bytes", "v") is None and resolve_deserializer(None, "v") is None
    to_str, from_str = resolve_serializer("str", "v"), resolve_deserializer("str", "v")
    assert to_str is string_serializer and from_str is string_deserializer
    assert from_str(to_str("héllo")) == "héllo"
    to_json, from_json = resolve_serializer("json", "v"), resolve_deserializer("json", "v")
    assert to_json is not None and from_json is not None
    assert to_json({"a": [1, "é"]}) == '{"a":[1,"é"]}'.encode()
    assert from_json(b'{"a": 1}') == {"a": 1}
    custom = str.encode
    assert resolve_serializer(custom, "v") is custom


def test_none_stays_a_tombstone() -> None:
    for fn in (string_serializer, string_deserializer, json_serializer, json_deserializer, bytes_serializer):
        assert fn(None) is None


def test_bad_input_says_what_to_do() -> None:
    with pytest.raises(ValueError, match="value_serializer must be a callable or one of bytes, json, str"):
        resolve_serializer("xml", "value_serializer")
    with pytest.raises(SerializationError, match="configure a serializer"):
        bytes_serializer("text")
    with pytest.raises(SerializationError, match="needs a str"):
        string_serializer(b"x")  # type: ignore[arg-type]
    with pytest.raises(SerializationError, match="not UTF-8"):
        string_deserializer(b"\xff")
    with pytest.raises(SerializationError, match="cannot encode"):
        json_serializer({1, 2})
    with pytest.raises(SerializationError, match="not JSON"):
        json_deserializer(b"{")


def test_schema_version_header() -> None:
    assert schema_headers(3) == [(SCHEMA_VERSION_HEADER, b"3")]
    assert schema_version([("other", b"x"), (SCHEMA_VERSION_HEADER, b"12")]) == 12
    assert schema_version([]) == 1 and schema_version(None, default=0) == 0
    with pytest.raises(SerializationError, match="not an integer"):
        schema_version([(SCHEMA_VERSION_HEADER, b"v2")])


def test_versioned_json_upgrades_old_records_step_by_step() -> None:
    codec = VersionedJson(
        3,
        upgrades={
            1: lambda v: {**v, "currency": "EUR"},
            2: lambda v: {"id": v["id"], "price": {"amount": v["amount"], "currency": v["currency"]}},
        },
    )
    value, headers = codec.encode({"id": 1, "price": {"amount": 5, "currency": "USD"}})
    assert codec.decode(FakeRecord(value, headers)) == {"id": 1, "price": {"amount": 5, "currency": "USD"}}
    unversioned = FakeRecord(b'{"id": 2, "amount": 9}', [])
    assert codec.decode(unversioned) == {"id": 2, "price": {"amount": 9, "currency": "EUR"}}
    version_2 = FakeRecord(b'{"id": 3, "amount": 1, "currency": "GBP"}', schema_headers(2))
    assert codec.decode(version_2)["price"] == {"amount": 1, "currency": "GBP"}


def test_versioned_json_refuses_newer_records_and_gaps() -> None:
    codec = VersionedJson(1)
    with pytest.raises(SerializationError, match="newer than this reader"):
        codec.decode(FakeRecord(b"{}", schema_headers(2)))
    with pytest.raises(ValueError, match="missing: \\[2\\]"):
        VersionedJson(3, upgrades={1: lambda v: v})
    with pytest.raises(ValueError, match="start at 1"):
        VersionedJson(0)
