"""Records as the console shows them: every byte string from the log is untrusted, so each becomes JSON
text the page only ever puts into the DOM with textContent. Pure."""

from __future__ import annotations

import json
from typing import Any

from logstore.records import Record

MAX_SHOWN_BYTES = 64 * 1024
"""A key, value or header longer than this is cut (and says so): the table is for looking, not export."""


def render_bytes(data: bytes | None) -> dict[str, Any]:
    """How to show `data`: {"kind": "null"}, {"kind": "json", "text": pretty JSON}, {"kind": "text"} for
    UTF-8 text, or {"kind": "hex"} otherwise; with `size` and `truncated`."""
    if data is None:
        return {"kind": "null", "text": "", "size": 0, "truncated": False}
    shown = data[:MAX_SHOWN_BYTES]
    truncated = len(data) > MAX_SHOWN_BYTES
    try:
        text = shown.decode("utf-8")
    except UnicodeDecodeError:
        return {"kind": "hex", "text": shown.hex(" "), "size": len(data), "truncated": truncated}
    if not truncated and text.strip()[:1] in ("{", "["):
        try:
            parsed = json.loads(text)
        except ValueError:
            pass
        else:
            return {
                "kind": "json",
                "text": json.dumps(parsed, indent=2, ensure_ascii=False),
                "size": len(data),
                "truncated": False,
            }
    return {"kind": "text", "text": text, "size": len(data), "truncated": truncated}


def render_record(record: Record) -> dict[str, Any]:
    return {
        "offset": record.offset,
        "timestamp_ms": record.timestamp,
        "key": render_bytes(record.key),
        "value": render_bytes(record.value),
        "headers": [{"key": key, "value": render_bytes(value)} for key, value in record.headers],
    }
