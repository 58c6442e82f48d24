"""Serializers for keys and values, and a schema-version header so a message format can evolve.

A serializer is any callable ``value -> bytes | None``, a deserializer any ``bytes | None -> value``
(kafka-python's convention). The producer and consumer also accept the names "bytes" (the default:
bytes in, bytes out), "str" (UTF-8) and "json".

Evolving a format: ``VersionedJson`` writes a ``schema.version`` header with every value and, when
reading, upgrades older versions one step at a time with functions you provide, so consumers always
see the current shape while old records stay readable.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from logstore.client.shared.errors import SerializationError

Serializer = Callable[[Any], bytes | bytearray | memoryview | None]
"""Bytes-like values pass through as they are; the record builder copies them once into the batch."""
Deserializer = Callable[[bytes | None], Any]
Header = tuple[str, bytes | None]

SCHEMA_VERSION_HEADER = "schema.version"


def bytes_serializer(value: Any) -> bytes | bytearray | memoryview | None:
    """Pass bytes (and None, a tombstone) through; refuse anything else with a hint."""
    if value is None or isinstance(value, bytes | bytearray | memoryview):
        return value
    raise SerializationError(
        f"got a {type(value).__name__} where bytes were expected: pass bytes, or configure a serializer "
        "(e.g. value_serializer='str' or 'json')"
    )


def string_serializer(value: str | None) -> bytes | None:
    """UTF-8 encode a str (None stays None)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise SerializationError(f"the 'str' serializer needs a str, got {type(value).__name__}")
    return value.encode("utf-8")


def string_deserializer(data: bytes | None) -> str | None:
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SerializationError(f"the 'str' deserializer got bytes that are not UTF-8: {exc}") from None


def json_serializer(value: Any) -> bytes | None:
    """Compact JSON in UTF-8 (None stays None, a tombstone, rather than becoming b"null")."""
    if value is None:
        return None
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise SerializationError(
            f"the 'json' serializer cannot encode this {type(value).__name__}: {exc}"
        ) from None


def json_deserializer(data: bytes | None) -> Any:
    if data is None:
        return None
    try:
        return json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise SerializationError(f"the 'json' deserializer got bytes that are not JSON: {exc}") from None


SERIALIZERS: dict[str, Serializer | None] = {"bytes": None, "str": string_serializer, "json": json_serializer}
DESERIALIZERS: dict[str, Deserializer | None] = {
    "bytes": None,
    "str": string_deserializer,
    "json": json_deserializer,
}


def resolve_serializer(spec: str | Serializer | None, what: str) -> Serializer | None:
    """The callable for a serializer given by name or as a callable; None means bytes pass through."""
    return _resolve(spec, SERIALIZERS, what)


def resolve_deserializer(spec: str | Deserializer | None, what: str) -> Deserializer | None:
    """The callable for a deserializer given by name or as a callable; None means bytes as they are."""
    return _resolve(spec, DESERIALIZERS, what)


def _resolve(spec: Any, known: Mapping[str, Any], what: str) -> Any:
    if spec is None or callable(spec):
        return spec
    if isinstance(spec, str) and spec in known:
        return known[spec]
    raise ValueError(f"{what} must be a callable or one of {', '.join(sorted(known))}, got {spec!r}")


class _HasHeaders(Protocol):
    @property
    def headers(self) -> Sequence[Header]: ...

    @property
    def value(self) -> Any: ...


def schema_headers(version: int) -> list[Header]:
    """The headers that mark a record's value as written with schema ``version``."""
    return [(SCHEMA_VERSION_HEADER, str(version).encode("ascii"))]


def schema_version(headers: Sequence[Header] | None, default: int = 1) -> int:
    """The schema version in a record's headers, or ``default`` for records written without one."""
    for key, value in headers or ():
        if key == SCHEMA_VERSION_HEADER and value is not None:
            try:
                return int(value)
            except ValueError:
                raise SerializationError(
                    f"{SCHEMA_VERSION_HEADER} header is not an integer: {value!r}"
                ) from None
    return default


class VersionedJson:
    """JSON values tagged with a schema version, upgraded on read.

    ``upgrades[n]`` turns a decoded version-``n`` value into version ``n + 1``; reading a version-``v``
    record applies ``upgrades[v]``, ``upgrades[v + 1]``, ... up to ``version``. Records without the header
    count as version 1.

        orders = VersionedJson(2, upgrades={1: lambda v: {**v, "currency": "EUR"}})
        value, headers = orders.encode({"id": 7, "amount": 5, "currency": "USD"})
        producer.send("orders", value, headers=headers)
        ...
        order = orders.decode(record)  # a dict of version 2, whatever version the record was
    """

    def __init__(self, version: int, upgrades: Mapping[int, Callable[[Any], Any]] | None = None) -> None:
        if version < 1:
            raise ValueError(f"schema versions start at 1, got {version}")
        self.version = version
        self.upgrades = dict(upgrades or {})
        missing = [n for n in range(1, version) if n not in self.upgrades]
        if missing and self.upgrades:
            raise ValueError(f"upgrades must cover every version below {version}; missing: {missing}")

    def encode(self, value: Any) -> tuple[bytes | None, list[Header]]:
        """The serialized value and the headers to send with it."""
        return json_serializer(value), schema_headers(self.version)

    def decode(self, record: _HasHeaders) -> Any:
        """The record's value in the current version (the record's ``value`` must still be bytes)."""
        found = schema_version(record.headers)
        if found > self.version:
            raise SerializationError(
                f"record has schema version {found}, newer than this reader's {self.version}: upgrade the reader"
            )
        value = json_deserializer(record.value)
        for step in range(found, self.version):
            upgrade = self.upgrades.get(step)
            if upgrade is None:
                raise SerializationError(f"no upgrade from schema version {step} to {step + 1}")
            value = upgrade(value)
        return value


def serialize(
    serializer: Serializer, data: Any, what: str, topic: str
) -> bytes | bytearray | memoryview | None:
    """A key or value through its producer's serializer; a failure becomes SerializationError naming the
    serializer and the topic (shared by the threaded and the asyncio producer)."""
    try:
        return serializer(data)
    except SerializationError:
        raise
    except Exception as exc:
        raise SerializationError(f"{what}_serializer failed on a {what} for {topic!r}: {exc!r}") from exc
