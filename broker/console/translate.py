"""Request parts to plain values and back: query parameters and JSON bodies checked with messages a
person can act on (`BadRequest`, 400), and JSON answers."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from logstore.errors import InvalidRequestError


class BadRequest(InvalidRequestError):
    """A query parameter or JSON body the console cannot use (400, INVALID_REQUEST)."""


def json_response(payload: Mapping[str, Any], status: int = 200) -> web.Response:
    return web.json_response(payload, status=status, dumps=lambda o: json.dumps(o, ensure_ascii=False))


async def read_body(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise BadRequest("send the action's arguments as a JSON object (Content-Type: application/json)")
    try:
        body = await request.json()
    except ValueError as exc:
        raise BadRequest(f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def as_int(raw: object, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    if isinstance(raw, bool):
        raise BadRequest(f"{name} must be a whole number, not {raw!r}")
    try:
        value = int(raw) if isinstance(raw, int | str) else None
    except ValueError:
        value = None
    if value is None:
        raise BadRequest(f"{name} must be a whole number, not {raw!r}")
    if minimum is not None and value < minimum:
        raise BadRequest(f"{name} must be at least {minimum}, not {value}")
    if maximum is not None and value > maximum:
        raise BadRequest(f"{name} must be at most {maximum}, not {value}")
    return value


def as_str(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{name} must be a non-empty string")
    return value


def as_str_map(raw: object, name: str) -> dict[str, str]:
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
    ):
        raise BadRequest(f"{name} must be an object of text names to text values")
    return dict(raw)
