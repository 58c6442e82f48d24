"""A tiny JSON client for the console's /api/ (urllib: the tests' view is a script's view)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any, Protocol

ACTION_HEADERS = {"Content-Type": "application/json", "X-Logstore-Console": "1"}


def call(
    base: str, method: str, path: str, body: object = None, headers: dict[str, str] | None = None
) -> tuple[int, Any, dict[str, str]]:
    """(status, decoded JSON, response headers) of one request to `base + path`."""
    data = json.dumps(body).encode() if body is not None else None
    sent = dict(ACTION_HEADERS if method != "GET" else {})
    sent.update(headers or {})
    request = urllib.request.Request(base + path, data=data, method=method, headers=sent)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read()), dict(answer.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), dict(error.headers)


class Polling(Protocol):
    def poll(self, timeout_ms: int = ...) -> Any: ...


def poll_records(consumer: Polling, count: int) -> None:
    """Poll (logstore's Consumer or kafka-python's) until `count` records came; bounded, it fails rather
    than hangs."""
    got = 0
    deadline = time.monotonic() + 60
    while got < count:
        assert time.monotonic() < deadline, f"only {got} of {count} records came"
        got += sum(len(records) for records in consumer.poll(timeout_ms=100).values())
