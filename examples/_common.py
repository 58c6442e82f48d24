"""What every example shares: its command-line flags and making sure its topic exists."""

from __future__ import annotations

import argparse
import contextlib

from logstore.client import Admin
from logstore.client.shared.errors import TopicExistsError


def arguments(description: str, *, count: int = 10, seconds: float = 10.0) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--bootstrap", default="127.0.0.1:9093", help="the broker (default: 127.0.0.1:9093)")
    parser.add_argument("--topic", default=None, help="topic to use (default: one per example)")
    parser.add_argument("--count", type=int, default=count, help="records to produce")
    parser.add_argument("--seconds", type=float, default=seconds, help="give up after this long")
    return parser


def ensure_topic(bootstrap: str, name: str, partitions: int) -> None:
    with Admin(bootstrap) as admin, contextlib.suppress(TopicExistsError):
        admin.create_topic(name, partitions)
