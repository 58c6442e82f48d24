"""The consumer's pure core: which partitions it reads, and where it stands in each. No I/O, no clock.

Who changes what:
- the application (``assign``, ``seek``, ``pause``, and each record handed out) moves the *position*,
  the offset of the next record the application will get;
- the fetcher reads ahead from the *fetch offset* (the end of what it has buffered) and reports the
  high watermark and log start offset it sees.

Every seek or reset bumps the partition's *generation*: data fetched under an older generation is
stale and dropped, so a fetch that was in flight during a seek can never hand out records from the old
position. A group membership component can later drive ``assign`` (and set positions from committed
offsets) without changing anything here.
"""

from __future__ import annotations

from collections.abc import Iterable

from logstore.client.shared.types import TopicPartition

RESET_STRATEGIES = ("earliest", "latest", "none")


class PartitionState:
    """Where the consumer stands in one assigned partition."""

    __slots__ = (
        "backoff_until",
        "fetch_offset",
        "generation",
        "high_watermark",
        "log_start_offset",
        "paused",
        "position",
        "reset",
        "stalled",
    )

    def __init__(self, reset: str) -> None:
        self.position: int | None = None
        """Offset of the next record for the application; None until reset or seek decides it."""
        self.fetch_offset: int | None = None
        """Offset the next fetch starts from (the end of what is buffered); None without a position."""
        self.reset: str | None = reset
        """How to find a position: "earliest", "latest" or "none" (an error); None once it has one."""
        self.generation = 0
        self.paused = False
        self.high_watermark: int | None = None
        self.log_start_offset: int | None = None
        self.backoff_until = 0.0
        """After a retriable fetch error, no fetch for this partition before this time."""
        self.stalled = False
        """Reading stopped at a corrupt batch (at ``position``): nothing is fetched until a seek or reset."""


class SubscriptionState:
    """Assigned partitions and their positions. Not thread-safe: its Consumer's lock guards it."""

    def __init__(self, auto_offset_reset: str = "latest") -> None:
        if auto_offset_reset not in RESET_STRATEGIES:
            raise ValueError(
                f"auto_offset_reset must be one of {', '.join(RESET_STRATEGIES)}, got {auto_offset_reset!r}"
            )
        self.default_reset = auto_offset_reset
        self.partitions: dict[TopicPartition, PartitionState] = {}
        self.subscribed_topics: tuple[str, ...] = ()
        """Topics followed without a group: every partition of them is assigned, also ones added later."""

    # --- assignment -------------------------------------------------------------------------------------

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        """Make ``partitions`` the whole assignment; partitions kept keep their state, new ones need a reset."""
        wanted = [TopicPartition(*tp) for tp in partitions]
        for tp in wanted:
            if not isinstance(tp.topic, str) or not isinstance(tp.partition, int) or tp.partition < 0:
                raise ValueError(f"not a topic partition: {tp!r}")
        old = self.partitions
        self.partitions = {tp: old.get(tp) or PartitionState(self.default_reset) for tp in wanted}

    def subscribe(self, topics: Iterable[str]) -> None:
        self.subscribed_topics = tuple(dict.fromkeys(topics))

    def assignment(self) -> set[TopicPartition]:
        return set(self.partitions)

    def state(self, tp: TopicPartition) -> PartitionState:
        """The state of an assigned partition; raises KeyError (the caller words it) otherwise."""
        return self.partitions[tp]

    # --- positions ----------------------------------------------------------------------------------------

    def seek(self, tp: TopicPartition, offset: int) -> None:
        if not isinstance(offset, int) or offset < 0:
            raise ValueError(f"offset must be a non-negative int, got {offset!r}")
        state = self.partitions[tp]
        state.position = state.fetch_offset = offset
        state.reset = None
        state.generation += 1
        state.backoff_until = 0.0
        state.stalled = False

    def request_reset(self, tp: TopicPartition, strategy: str) -> None:
        """Forget the position; the next fetch round (or ``position()``) finds one with ``strategy``."""
        if strategy not in RESET_STRATEGIES:
            raise ValueError(f"reset strategy must be one of {', '.join(RESET_STRATEGIES)}, got {strategy!r}")
        state = self.partitions[tp]
        state.position = state.fetch_offset = None
        state.reset = strategy
        state.generation += 1
        state.backoff_until = 0.0
        state.stalled = False

    def back_off(self, partitions: Iterable[TopicPartition], until: float) -> None:
        """Fetch none of ``partitions`` (still assigned) before ``until``: their broker failed the call."""
        for tp in partitions:
            state = self.partitions.get(tp)
            if state is not None:
                state.backoff_until = until

    def resets_needed(self) -> list[tuple[TopicPartition, str, int]]:
        """Partitions waiting for a position by lookup: ``(tp, "earliest" | "latest", generation)``."""
        return [
            (tp, state.reset, state.generation)
            for tp, state in self.partitions.items()
            if state.reset in ("earliest", "latest")
        ]

    def without_position(self) -> list[TopicPartition]:
        """Partitions with no position and no strategy to find one (auto_offset_reset="none")."""
        return [tp for tp, state in self.partitions.items() if state.reset == "none"]

    def complete_reset(self, tp: TopicPartition, offset: int, generation: int) -> bool:
        """Apply a looked-up position, unless the partition was reassigned, seeked or reset meanwhile."""
        state = self.partitions.get(tp)
        if state is None or state.generation != generation or state.reset is None:
            return False
        state.position = state.fetch_offset = offset
        state.reset = None
        state.generation += 1
        return True

    def out_of_range(
        self, tp: TopicPartition, generation: int, log_start_offset: int, high_watermark: int
    ) -> bool:
        """A fetch found the position outside the log. Resets by ``auto_offset_reset`` and returns True, or
        returns False when the strategy is "none" (the application must be told)."""
        state = self.partitions.get(tp)
        if state is None or state.generation != generation:
            return True  # stale answer: nothing to do
        if self.default_reset == "none":
            return False
        offset = log_start_offset if self.default_reset == "earliest" else high_watermark
        state.position = state.fetch_offset = offset
        state.generation += 1
        return True

    def consumed(self, tp: TopicPartition, next_offset: int) -> None:
        """The application got records up to ``next_offset - 1``."""
        state = self.partitions.get(tp)
        if state is not None:
            state.position = next_offset

    def stall(self, tp: TopicPartition) -> None:
        """Reading ``tp`` met a corrupt batch at its position: fetch nothing more (data fetched meanwhile is
        stale) until the application seeks past it, or back to it to try again."""
        state = self.partitions.get(tp)
        if state is not None:
            state.stalled = True

    # --- fetching -------------------------------------------------------------------------------------------

    def fetchable(self, now: float) -> list[tuple[TopicPartition, PartitionState]]:
        """Partitions the fetcher may read now: with a position, not paused, not backing off."""
        return [
            (tp, state)
            for tp, state in self.partitions.items()
            if state.fetch_offset is not None
            and not state.paused
            and not state.stalled
            and state.backoff_until <= now
        ]

    def fetched(self, tp: TopicPartition, generation: int, next_fetch_offset: int) -> bool:
        """The fetcher buffered data up to ``next_fetch_offset - 1``; False if the data is stale."""
        state = self.partitions.get(tp)
        if state is None or state.generation != generation:
            return False
        state.fetch_offset = next_fetch_offset
        return True

    def is_current(self, tp: TopicPartition, generation: int) -> bool:
        state = self.partitions.get(tp)
        return state is not None and state.generation == generation and not state.paused and not state.stalled

    def update_offsets(self, tp: TopicPartition, high_watermark: int, log_start_offset: int) -> None:
        state = self.partitions.get(tp)
        if state is not None:
            if high_watermark >= 0:
                state.high_watermark = high_watermark
            if log_start_offset >= 0:
                state.log_start_offset = log_start_offset

    # --- pause ------------------------------------------------------------------------------------------------

    def pause(self, tp: TopicPartition) -> None:
        self.partitions[tp].paused = True

    def resume(self, tp: TopicPartition) -> None:
        self.partitions[tp].paused = False

    def paused(self) -> set[TopicPartition]:
        return {tp for tp, state in self.partitions.items() if state.paused}
