"""One share-partition: the state of (group, topic, partition) as a window of offsets kept in spans.

The window [start_offset, end_offset) holds every offset delivered to the group and not yet known done
below it; offsets below start_offset are done (acknowledged, archived or gone to retention), offsets from
end_offset on were never delivered. Inside, a sorted list of spans covers the window without gaps, each a
run of offsets with one state, delivery count, member and deadline. Acquiring or acknowledging a range
splits at most the two spans at its ends and touches the spans in between, and neighbours that become
equal merge again, so a consumer acknowledging ranges costs a few list operations per range however many
records they hold (300k records/s must be cheap). The window never grows past
``partition_max_record_locks`` offsets, so a span list stays short.

Rules (Kafka's KIP-932, with the contract's additions):

- acquiring raises the delivery count by one and locks the offsets for ``record_lock_duration_ms``;
- a lock is valid while ``now_ms < deadline``; an acknowledgement of an expired lock is refused
  (`InvalidRecordStateError`) even before `expire` ran;
- a release (RELEASE, lock expiry, member gone) makes the offsets available again, or archives them
  (DELIVERY_LIMIT) when their delivery count has reached ``delivery_count_limit``; RELEASE with
  ``not_an_attempt`` first takes the count back down by one, and ``delay_ms`` keeps them unavailable
  until ``now_ms + delay_ms``;
- REJECT archives (REJECTED); ACCEPT acknowledges; RENEW moves the lock deadline to now + lock duration;
- start_offset then moves past every done offset at the front of the window, and never goes back.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence

from logstore.broker.share_machine.config import ShareGroupConfig
from logstore.broker.share_machine.errors import InvalidRecordStateError
from logstore.broker.share_machine.model import (
    Acknowledgement,
    AcknowledgeType,
    AckResult,
    AcquiredRange,
    Archived,
    ArchiveReason,
    PartitionCounts,
    PartitionSnapshot,
    PersistedSpan,
    RecordState,
)

from logstore.errors import InvalidRequestError, LogStoreError

_AVAILABLE = RecordState.AVAILABLE
_ACQUIRED = RecordState.ACQUIRED
_ACKNOWLEDGED = RecordState.ACKNOWLEDGED
_ARCHIVED = RecordState.ARCHIVED
_DONE = (_ACKNOWLEDGED, _ARCHIVED)
_PERSISTED_STATES = (_AVAILABLE, _ACKNOWLEDGED, _ARCHIVED)


class _Span:
    """A run of offsets [first, last] in one state. ``deadline`` is the lock deadline of an ACQUIRED span
    and the time an AVAILABLE span becomes acquirable (0: now); ``member`` is the holder of an ACQUIRED
    span, "" otherwise. Done spans keep their delivery count (for the snapshot) but no member or deadline."""

    __slots__ = ("count", "deadline", "first", "last", "member", "state")

    def __init__(
        self, first: int, last: int, state: RecordState, count: int, member: str, deadline: int
    ) -> None:
        self.first = first
        self.last = last
        self.state = state
        self.count = count
        self.member = member
        self.deadline = deadline

    def copy(self, first: int, last: int) -> _Span:
        return _Span(first, last, self.state, self.count, self.member, self.deadline)

    def same_as(self, other: _Span) -> bool:
        return (
            self.state is other.state
            and self.count == other.count
            and self.member == other.member
            and self.deadline == other.deadline
        )

    def __repr__(self) -> str:  # for test failures
        return f"_Span({self.first}..{self.last} {self.state.name} n={self.count} {self.member!r} t={self.deadline})"


def _first(span: _Span) -> int:
    return span.first


def _add_archived(archived: list[Archived], first: int, last: int, count: int, reason: ArchiveReason) -> None:
    if archived:
        previous = archived[-1]
        if (
            previous.last_offset + 1 == first
            and previous.delivery_count == count
            and previous.reason is reason
        ):
            archived[-1] = Archived(previous.first_offset, last, count, reason)
            return
    archived.append(Archived(first, last, count, reason))


class SharePartition:
    """The record states of one (group, topic, partition); see the module docstring for the rules.

    ``config`` may be replaced at any time (alter-config): the new values count for what happens next,
    locks already held keep their deadlines."""

    __slots__ = ("_archived_total", "_end", "_spans", "_start", "config")

    def __init__(self, start_offset: int, config: ShareGroupConfig) -> None:
        if not isinstance(start_offset, int) or start_offset < 0:
            raise InvalidRequestError(f"a share-partition starts at an offset >= 0, not {start_offset!r}")
        self.config = config
        self._start = start_offset
        self._end = start_offset
        self._spans: list[_Span] = []
        self._archived_total = 0

    @classmethod
    def restore(cls, snapshot: PartitionSnapshot, config: ShareGroupConfig) -> SharePartition:
        """The share-partition `snapshot` describes, as after a restart: nobody holds anything, and
        delayed releases are available at once. Raises `InvalidRequestError` for an inconsistent snapshot."""
        partition = cls(snapshot.start_offset, config)
        expected = snapshot.start_offset
        for persisted in snapshot.spans:
            if (
                persisted.first_offset != expected
                or persisted.last_offset < persisted.first_offset
                or persisted.state not in _PERSISTED_STATES
                or persisted.delivery_count < 0
            ):
                raise InvalidRequestError(
                    f"share-partition snapshot span {persisted} does not continue at offset {expected} "
                    "with a valid state and delivery count"
                )
            span = _Span(
                persisted.first_offset,
                persisted.last_offset,
                persisted.state,
                persisted.delivery_count,
                "",
                0,
            )
            if partition._spans and partition._spans[-1].same_as(span):
                partition._spans[-1].last = span.last
            else:
                partition._spans.append(span)
            expected = persisted.last_offset + 1
        if expected != snapshot.end_offset or snapshot.archived_total < 0:
            raise InvalidRequestError(
                f"share-partition snapshot spans end at {expected}, not at its end offset {snapshot.end_offset}"
            )
        partition._end = snapshot.end_offset
        partition._archived_total = snapshot.archived_total
        partition._advance_start()
        return partition

    @property
    def start_offset(self) -> int:
        """Every offset below is done for the group (or gone to retention)."""
        return self._start

    @property
    def end_offset(self) -> int:
        """The first offset never delivered to the group."""
        return self._end

    # reading

    def next_fetch_offset(self, now_ms: int) -> int | None:
        """Where a read should start to find something acquirable: the first available offset whose delay
        has passed, else end_offset while the window has room, else None (full, nothing available)."""
        for span in self._spans:
            if span.state is _AVAILABLE and span.deadline <= now_ms:
                return span.first
        if self._end - self._start < self.config.partition_max_record_locks:
            return self._end
        return None

    def next_deadline_ms(self) -> int | None:
        """The earliest lock deadline or delayed-release due time; None when nothing waits for time."""
        waiting = [
            span.deadline
            for span in self._spans
            if span.state is _ACQUIRED or (span.state is _AVAILABLE and span.deadline > 0)
        ]
        return min(waiting) if waiting else None

    def counts(self, now_ms: int) -> PartitionCounts:
        in_flight = acquired = done = 0
        deliveries: dict[int, int] = {}
        for span in self._spans:
            size = span.last - span.first + 1
            if span.state in _DONE:
                done += size
            else:
                in_flight += size
                deliveries[span.count] = deliveries.get(span.count, 0) + size
                if span.state is _ACQUIRED and span.deadline > now_ms:
                    acquired += size
        return PartitionCounts(
            self._start,
            self._end,
            in_flight,
            acquired,
            self._archived_total,
            done,
            tuple(sorted(deliveries.items())),
        )

    def acquired_by(self, member_id: str) -> int:
        """How many offsets `member_id` holds now (locks past their deadline count until `expire` runs)."""
        return sum(
            span.last - span.first + 1
            for span in self._spans
            if span.state is _ACQUIRED and span.member == member_id
        )

    @property
    def span_count(self) -> int:
        """How many spans the window is kept in (the cost of a scan; for tests and benchmarks)."""
        return len(self._spans)

    def state_of(self, offset: int) -> tuple[RecordState, int, str] | None:
        """(state, delivery count, holder or "") of an offset inside the window; None outside it. For
        tests and diagnostics."""
        if not self._start <= offset < self._end:
            return None
        span = self._spans[bisect_right(self._spans, offset, key=_first) - 1]
        return span.state, span.count, span.member

    def snapshot(self) -> PartitionSnapshot:
        """The persisted form: acquired spans become available with their counts, delays are dropped."""
        persisted: list[PersistedSpan] = []
        for span in self._spans:
            state = _AVAILABLE if span.state is _ACQUIRED else span.state
            if persisted and persisted[-1].state is state and persisted[-1].delivery_count == span.count:
                previous = persisted[-1]
                persisted[-1] = PersistedSpan(previous.first_offset, span.last, state, span.count)
            else:
                persisted.append(PersistedSpan(span.first, span.last, state, span.count))
        return PartitionSnapshot(self._start, self._end, tuple(persisted), self._archived_total)

    # acquiring

    def acquire(
        self,
        member_id: str,
        now_ms: int,
        first_offset: int,
        last_offset: int,
        max_records: int,
        batch_lasts: Sequence[int] = (),
    ) -> list[AcquiredRange]:
        """Locks for `member_id`, in offset order and at most `max_records` in all: the available offsets
        of [first_offset, last_offset] inside the window whose delay has passed (offsets others hold are
        skipped), then new offsets from end_offset up to last_offset while the window has room. The
        driver read batches covering [first_offset, last_offset]; new offsets are taken only when that
        range reaches end_offset, so none is acquired that the reader did not see.

        `batch_lasts` (ascending last offsets of the batches read) makes both limits soft at batch
        boundaries, as Kafka's SharePartition is: when `max_records` or the window cuts new offsets
        inside a batch, the rest of that batch is taken too (the window then exceeds
        partition_max_record_locks by less than a batch until acknowledgements shrink it). A batch
        larger than the window would otherwise be read and sent whole on every fetch for a slice of it.

        Returns ascending ranges, split where delivery counts differ."""
        if not isinstance(member_id, str) or not member_id:
            raise InvalidRequestError("acquiring needs a member id")
        if max_records <= 0 or last_offset < first_offset:
            return []
        lock_until = now_ms + self.config.record_lock_duration_ms
        budget = max_records
        acquired: list[AcquiredRange] = []
        low = max(first_offset, self._start)
        high = min(last_offset, self._end - 1)
        if low <= high:
            # first collect the pieces (inside single spans), then split and mark each
            pieces: list[tuple[int, int]] = []
            index = bisect_right(self._spans, low, key=_first) - 1
            spans = self._spans
            while index < len(spans) and budget > 0:
                span = spans[index]
                if span.first > high:
                    break
                if span.state is _AVAILABLE and span.deadline <= now_ms:
                    a = max(span.first, low)
                    b = min(span.last, high, a + budget - 1)
                    pieces.append((a, b))
                    budget -= b - a + 1
                index += 1
            for a, b in pieces:
                i, j = self._isolate(a, b)
                span = self._spans[i]  # one span: a piece lies inside one
                span.state = _ACQUIRED
                span.count += 1
                span.member = member_id
                span.deadline = lock_until
                self._add_acquired(acquired, a, b, span.count)
                self._coalesce(i, j)
        if budget > 0 and first_offset <= self._end <= last_offset:
            room = self.config.partition_max_record_locks - (self._end - self._start)
            taken = min(last_offset - self._end + 1, room, budget)
            if taken > 0:
                a = self._end
                if batch_lasts:
                    taken = _to_batch_end(a + taken - 1, last_offset, batch_lasts) - a + 1
                self._spans.append(_Span(a, a + taken - 1, _ACQUIRED, 1, member_id, lock_until))
                self._end = a + taken
                self._add_acquired(acquired, a, a + taken - 1, 1)
                self._coalesce(len(self._spans) - 1, len(self._spans))
        return acquired

    @staticmethod
    def _add_acquired(acquired: list[AcquiredRange], first: int, last: int, count: int) -> None:
        if acquired and acquired[-1].last_offset + 1 == first and acquired[-1].delivery_count == count:
            acquired[-1] = AcquiredRange(acquired[-1].first_offset, last, count)
        else:
            acquired.append(AcquiredRange(first, last, count))

    # acknowledging and releasing

    def acknowledge(
        self, member_id: str, now_ms: int, acks: Sequence[Acknowledgement]
    ) -> tuple[list[AckResult], list[Archived]]:
        """Applies each acknowledgement all or nothing, in request order; one result per ack.

        A malformed ack (last < first, an unknown type, a RELEASE delay outside
        0..config.max_release_delay_ms, a range overlapping another of the same call) fails with
        `InvalidRequestError`; one whose offsets `member_id` does not all hold under a valid lock fails
        with `InvalidRecordStateError`. Returns the results and the ranges archived."""
        invalid = self._malformed(acks)
        results: list[AckResult] = []
        archived: list[Archived] = []
        for position, ack in enumerate(acks):
            error: LogStoreError | None = invalid.get(position)
            if error is None:
                error = self._check_held(member_id, now_ms, ack.first_offset, ack.last_offset)
            if error is None:
                self._apply(ack, now_ms, archived)
            results.append(AckResult(ack.first_offset, ack.last_offset, error))
        self._advance_start()
        return results, archived

    def _malformed(self, acks: Sequence[Acknowledgement]) -> dict[int, LogStoreError]:
        invalid: dict[int, LogStoreError] = {}
        max_delay = self.config.max_release_delay_ms
        for position, ack in enumerate(acks):
            first, last = ack.first_offset, ack.last_offset
            if not isinstance(first, int) or not isinstance(last, int) or last < first or first < 0:
                invalid[position] = InvalidRequestError(
                    f"acknowledged range {first}..{last} is malformed: it needs 0 <= first_offset <= last_offset"
                )
            elif ack.type not in AcknowledgeType.__members__.values():
                invalid[position] = InvalidRequestError(
                    f"acknowledgement type {ack.type!r} of range {first}..{last} is unknown; use ACCEPT, "
                    "RELEASE, REJECT or RENEW"
                )
            elif ack.type == AcknowledgeType.RELEASE and not 0 <= ack.delay_ms <= max_delay:
                invalid[position] = InvalidRequestError(
                    f"delay_ms {ack.delay_ms} of range {first}..{last} is outside 0..{max_delay} (at most "
                    "12 x share.record.lock.duration.ms and at most 1 hour)"
                )
        ordered = sorted(
            (ack.first_offset, ack.last_offset, p) for p, ack in enumerate(acks) if p not in invalid
        )
        highest_last = -1
        for k, (first, last, position) in enumerate(ordered):
            overlaps = first <= highest_last or (k + 1 < len(ordered) and ordered[k + 1][0] <= last)
            highest_last = max(highest_last, last)
            if overlaps:
                invalid[position] = InvalidRequestError(
                    f"acknowledged range {first}..{last} overlaps another range of the same request"
                )
        return invalid

    def _check_held(self, member_id: str, now_ms: int, first: int, last: int) -> LogStoreError | None:
        if first < self._start:
            return InvalidRecordStateError(
                f"offsets {first}..{last} are not held by member {member_id!r}: offsets below "
                f"{self._start} are already acknowledged or archived"
            )
        if last >= self._end:
            return InvalidRecordStateError(
                f"offsets {first}..{last} are not held by member {member_id!r}: offsets from {self._end} "
                "on were never acquired"
            )
        spans = self._spans
        index = bisect_right(spans, first, key=_first) - 1
        while index < len(spans) and spans[index].first <= last:
            span = spans[index]
            if span.state is not _ACQUIRED or span.member != member_id:
                why = "acquired by another member" if span.state is _ACQUIRED else span.state.name.lower()
                return InvalidRecordStateError(
                    f"offsets {first}..{last} are not all held by member {member_id!r}: "
                    f"{max(first, span.first)}..{min(last, span.last)} are {why}"
                )
            if span.deadline <= now_ms:
                return InvalidRecordStateError(
                    f"offsets {first}..{last} are no longer held by member {member_id!r}: the lock on "
                    f"{max(first, span.first)}..{min(last, span.last)} expired "
                    f"{now_ms - span.deadline} ms ago (share.record.lock.duration.ms)"
                )
            index += 1
        return None

    def _apply(self, ack: Acknowledgement, now_ms: int, archived: list[Archived]) -> None:
        i, j = self._isolate(ack.first_offset, ack.last_offset)
        kind = ack.type
        for span in self._spans[i:j]:
            if kind == AcknowledgeType.ACCEPT:
                span.state, span.member, span.deadline = _ACKNOWLEDGED, "", 0
            elif kind == AcknowledgeType.REJECT:
                self._archive(span, ArchiveReason.REJECTED, archived)
            elif kind == AcknowledgeType.RENEW:
                span.deadline = now_ms + self.config.record_lock_duration_ms
            else:
                if ack.not_an_attempt:
                    span.count = max(span.count - 1, 0)
                self._release(span, now_ms + ack.delay_ms if ack.delay_ms > 0 else 0, archived)
        self._coalesce(i, j)

    def _archive(self, span: _Span, reason: ArchiveReason, archived: list[Archived]) -> None:
        span.state, span.member, span.deadline = _ARCHIVED, "", 0
        self._archived_total += span.last - span.first + 1
        _add_archived(archived, span.first, span.last, span.count, reason)

    def _release(self, span: _Span, due_ms: int, archived: list[Archived]) -> None:
        if span.count >= self.config.delivery_count_limit:
            self._archive(span, ArchiveReason.DELIVERY_LIMIT, archived)
        else:
            span.state, span.member, span.deadline = _AVAILABLE, "", due_ms

    def expire(self, now_ms: int) -> list[Archived]:
        """Releases every lock past its deadline (counted: at the limit the offsets are archived) and makes
        delayed releases that are due plainly available. Returns what was archived."""
        archived: list[Archived] = []
        changed = False
        for span in self._spans:
            if span.state is _ACQUIRED and span.deadline <= now_ms:
                self._release(span, 0, archived)
                changed = True
            elif span.state is _AVAILABLE and 0 < span.deadline <= now_ms:
                span.deadline = 0
                changed = True
        if changed:
            self._coalesce(0, len(self._spans))
            self._advance_start()
        return archived

    def release_member(self, member_id: str, now_ms: int) -> list[Archived]:
        """The member left or timed out: everything it holds is released (counted as an attempt)."""
        archived: list[Archived] = []
        changed = False
        for span in self._spans:
            if span.state is _ACQUIRED and span.member == member_id:
                self._release(span, 0, archived)
                changed = True
        if changed:
            self._coalesce(0, len(self._spans))
            self._advance_start()
        return archived

    def advance_to(self, log_start_offset: int) -> None:
        """Retention deleted the records below `log_start_offset`: the window starts there at least, and
        whatever state it had below is forgotten (locks on them too)."""
        if log_start_offset <= self._start:
            return
        if log_start_offset >= self._end:
            self._spans.clear()
            self._start = self._end = log_start_offset
            return
        i = self._split(log_start_offset)
        del self._spans[:i]
        self._start = log_start_offset
        self._advance_start()

    # spans

    def _split(self, offset: int) -> int:
        """Makes a span begin at `offset` (inside the window or at its end); returns that span's index."""
        spans = self._spans
        if offset >= self._end:
            return len(spans)
        index = bisect_right(spans, offset, key=_first) - 1
        span = spans[index]
        if span.first == offset:
            return index
        spans.insert(index + 1, span.copy(offset, span.last))
        span.last = offset - 1
        return index + 1

    def _isolate(self, first: int, last: int) -> tuple[int, int]:
        """Splits so that spans[i:j] cover exactly [first, last] (inside the window)."""
        i = self._split(first)
        j = self._split(last + 1)
        return i, j

    def _coalesce(self, i: int, j: int) -> None:
        """Merges equal neighbours among spans[i - 1 : j + 1] (the ones a change at spans[i:j] touched)."""
        spans = self._spans
        low = max(i - 1, 0)
        high = min(j + 1, len(spans))
        if high - low < 2:
            return
        merged = [spans[low]]
        for span in spans[low + 1 : high]:
            previous = merged[-1]
            if previous.last + 1 == span.first and previous.same_as(span):
                previous.last = span.last
            else:
                merged.append(span)
        if len(merged) != high - low:
            spans[low:high] = merged

    def _advance_start(self) -> None:
        spans = self._spans
        done = 0
        while done < len(spans) and spans[done].state in _DONE:
            done += 1
        if done:
            self._start = spans[done - 1].last + 1
            del spans[:done]


def _to_batch_end(last: int, limit: int, batch_lasts: Sequence[int]) -> int:
    """`last` moved up to the end of the batch holding it (never past `limit`)."""
    index = bisect_left(batch_lasts, last)
    if index == len(batch_lasts):
        return last
    return max(last, min(batch_lasts[index], limit))
