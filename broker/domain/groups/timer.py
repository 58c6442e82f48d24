"""One timer on the event loop for the coordinator's next session or rebalance timeout."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


def monotonic_ms() -> int:
    """The coordinator's clock: it only measures intervals, so it must never jump."""
    return time.monotonic_ns() // 1_000_000


class DeadlineTimer:
    """Calls `callback(now_ms)` once when a deadline falls due; arming again replaces the deadline.

    No polling: one `call_later` handle at a time. The loop may fire a handle a hair before its time, so
    the callback gets at least the deadline it was armed for as "now".
    """

    def __init__(self, callback: Callable[[int], None], clock_ms: Callable[[], int] = monotonic_ms) -> None:
        self._callback = callback
        self._clock_ms = clock_ms
        self._handle: asyncio.TimerHandle | None = None
        self._due_ms: int | None = None

    @property
    def due_ms(self) -> int | None:
        """The deadline armed, or None."""
        return self._due_ms

    def arm(self, due_ms: int | None) -> None:
        """Fire at `due_ms` (None: not at all), instead of any deadline armed before."""
        if due_ms == self._due_ms:
            return
        self.cancel()
        if due_ms is None:
            return
        delay_s = max(0, due_ms - self._clock_ms()) / 1000
        self._handle = asyncio.get_running_loop().call_later(delay_s, self._fire)
        self._due_ms = due_ms

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = None
        self._due_ms = None

    def _fire(self) -> None:
        due = self._due_ms
        self._handle = None
        self._due_ms = None
        assert due is not None
        self._callback(max(self._clock_ms(), due))
