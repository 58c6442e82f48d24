"""Waiting for a state a test cannot be notified of (a waiter registered inside the broker, a position a
background thread resets), instead of sleeping a fixed time and hoping it came."""

from __future__ import annotations

import time
from collections.abc import Callable

from logstore.broker.embedded import EmbeddedBroker


def wait_until(condition: Callable[[], object], what: str, timeout_s: float = 10.0) -> None:
    """Return as soon as ``condition()`` is true; fail with ``what`` if it is not within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout_s} s waiting until {what}"
        time.sleep(0.005)


def broker_waiters(broker: EmbeddedBroker) -> int:
    """How many fetches and subscriptions are parked inside an EmbeddedBroker, waiting for data."""
    core = broker.server.core
    assert core is not None, "the broker is not started"
    return int(broker.run(lambda: len(core.waiters)))
