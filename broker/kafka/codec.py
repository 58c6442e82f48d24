"""Kafka messages through kio: request headers and bodies in, size-prefixed responses out.

kio generates one frozen dataclass per message, version and nested struct from Kafka's JSON specs.
Fields keep their names across versions, so a handler reads any version of a request the same way and
builds its answer with `build`, which fills in the fields the answered version has and drops the rest.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import io
import struct
import typing
from typing import Any

from kio.index import load_request_schema, load_response_schema
from kio.schema.request_header.v1 import RequestHeader as RequestHeaderV1
from kio.schema.request_header.v2 import RequestHeader as RequestHeaderV2
from kio.serial import entity_reader, entity_writer

_SIZE = struct.Struct(">i")
_RESPONSE_HEADER_V0 = struct.Struct(">ii")  # size prefix, correlation id
_NO_TAGGED_FIELDS = b"\0"  # response header v1's tagged fields: an unsigned varint count of 0
_API_VERSIONS_KEY = 18


class MalformedRequestError(ValueError):
    """The bytes are not a request this broker can read; the connection that sent them is closed."""


@dataclasses.dataclass(frozen=True, slots=True)
class Header:
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None


def read_header_prefix(frame: bytes) -> tuple[Header, int]:
    """The header fields every version shares (v1's layout; v2 only adds tagged fields after them)."""
    try:
        header, size = entity_reader(RequestHeaderV1)(frame, 0)
    except Exception as exc:  # kio's native reader raises several types for short or bad input
        raise MalformedRequestError(f"unreadable request header ({exc})") from None
    return Header(
        header.request_api_key, header.request_api_version, header.correlation_id, header.client_id
    ), size


@functools.cache
def request_type(api_key: int, api_version: int) -> type[Any]:
    return load_request_schema(api_key, api_version)


@functools.cache
def response_type(api_key: int, api_version: int) -> type[Any]:
    return load_response_schema(api_key, api_version)


def read_request(frame: bytes, header: Header, header_size: int) -> Any:
    """The request body for the header's key and version (a version kio knows; checked by the caller)."""
    cls = request_type(header.api_key, header.api_version)
    offset = header_size
    try:
        if cls.__flexible__:
            _, offset = entity_reader(RequestHeaderV2)(frame, 0)
        request, size = entity_reader(cls)(frame, offset)
    except Exception as exc:
        raise MalformedRequestError(f"unreadable {cls.__name__} v{header.api_version} ({exc})") from None
    if offset + size > len(frame):
        raise MalformedRequestError(
            f"{cls.__name__} v{header.api_version} is {offset + size} bytes but its frame has {len(frame)}"
        )
    # Bytes after the request are ignored, as Kafka's brokers do: librdkafka 2.16's Metadata v12 from
    # its AdminClient carries 3 more than the schema has.
    return request


def frame_response(correlation_id: int, response: Any) -> memoryview:
    """Size prefix, response header, body. The header is v0 (the correlation id) for non-flexible
    versions and for ApiVersions always (KIP-511: a client must read it before it knows the versions),
    and v1 (the correlation id and an empty set of tagged fields) for the other flexible ones.

    A view of the buffer it was written into, not a copy: a fetch answer's batches are copied once, into
    that buffer, and the transport copies only what the socket does not take at once."""
    body = io.BytesIO()
    body.write(b"\0" * _RESPONSE_HEADER_V0.size)
    cls = type(response)
    if cls.__flexible__ and cls.__api_key__ != _API_VERSIONS_KEY:
        body.write(_NO_TAGGED_FIELDS)
    entity_writer(cls)(body, response)
    data = body.getbuffer()
    _RESPONSE_HEADER_V0.pack_into(data, 0, len(data) - _SIZE.size, correlation_id)
    return data


_FIELD_TYPES: dict[type[Any], dict[str, Any]] = {}
_ELEMENTS: dict[tuple[type[Any], str], type[Any]] = {}


def _field_types(cls: type[Any]) -> dict[str, Any]:
    found = _FIELD_TYPES.get(cls)
    if found is None:
        names = {f.name for f in dataclasses.fields(cls)}
        found = {name: hint for name, hint in typing.get_type_hints(cls).items() if name in names}
        _FIELD_TYPES[cls] = found
    return found


def build(cls: type[Any], **values: Any) -> Any:
    """An instance of `cls` from the values whose names it has (a field a version lacks is dropped)."""
    fields = _field_types(cls)
    return cls(**{name: value for name, value in values.items() if name in fields})


def element(cls: type[Any], name: str) -> type[Any]:
    """The struct type of the field `name` of `cls`, or of its elements (such as a response's topics)."""
    found = _ELEMENTS.get((cls, name))
    if found is None:
        found = _element(cls, name)
        _ELEMENTS[cls, name] = found
    return found


def _element(cls: type[Any], name: str) -> type[Any]:
    hint = _field_types(cls)[name]
    for arg in typing.get_args(hint) or (hint,):
        for inner in typing.get_args(arg) or (arg,):
            if isinstance(inner, type) and dataclasses.is_dataclass(inner):
                return inner
    raise TypeError(f"{cls.__name__}.{name} holds no struct")


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def kafka_time(ms: int) -> datetime.datetime | None:
    """A Kafka timestamp (milliseconds since the epoch, -1 for none) as kio's datetime fields want it."""
    return None if ms < 0 else _EPOCH + datetime.timedelta(milliseconds=ms)
