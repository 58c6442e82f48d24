"""Exponential backoff with jitter, as Kafka's clients do it (KIP-580)."""

from __future__ import annotations

import random


class Backoff:
    """Delay before retry number ``attempt`` (1 for the first retry): ``initial * 2**(attempt - 1)``, capped
    at ``maximum``, then spread by +-``jitter`` so that many clients do not retry in step."""

    def __init__(
        self, initial_ms: float, maximum_ms: float, *, jitter: float = 0.2, rng: random.Random | None = None
    ) -> None:
        if initial_ms < 0 or maximum_ms < 0:
            raise ValueError(f"backoff times must not be negative, got {initial_ms} and {maximum_ms} ms")
        if not 0 <= jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), got {jitter}")
        self.initial_ms = initial_ms
        self.maximum_ms = max(maximum_ms, initial_ms)
        self.jitter = jitter
        self._rng = rng or random.Random()

    def delay_s(self, attempt: int) -> float:
        """Seconds to wait before retry ``attempt`` (attempts below 1 count as 1)."""
        exponent = min(max(attempt, 1) - 1, 32)
        base = min(self.initial_ms * (1 << exponent), self.maximum_ms)
        if self.jitter:
            base *= self._rng.uniform(1 - self.jitter, 1 + self.jitter)
        return base / 1000.0
