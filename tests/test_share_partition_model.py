"""SharePartition against a plain per-offset model, driven by hypothesis: every rule on random ranges,
valid and not, with time passing, members leaving, retention and restarts from the persisted snapshot.

The model keeps one entry per offset and applies the contract's rules literally; the machine keeps spans.
After every step they must agree on every offset's state, delivery count and holder, and the promises
hold: no offset held by two members, every offset done (acknowledged or archived) at most once, archived
ones reported exactly once, start_offset never going back, the window within partition_max_record_locks
(plus the rest of a batch, for the whole-batch acquisitions of Kafka's batch_optimized mode).
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from logstore.broker.share_machine import (
    Acknowledgement,
    AcknowledgeType,
    AcquiredRange,
    Archived,
    ArchiveReason,
    InvalidRecordStateError,
    RecordState,
    ShareGroupConfig,
    SharePartition,
)

from logstore.errors import InvalidRequestError

LOCK = 1_000
LIMIT = 3
MAX_LOCKS = 100
BATCH = 7
"""Offsets per batch of the log, for the whole-batch acquisitions."""
CONFIG = ShareGroupConfig(
    record_lock_duration_ms=LOCK, delivery_count_limit=LIMIT, partition_max_record_locks=MAX_LOCKS
)
MEMBERS = ("a", "b", "c")
DONE = (RecordState.ACKNOWLEDGED, RecordState.ARCHIVED)


@dataclass
class Rec:
    state: RecordState
    count: int
    member: str = ""
    deadline: int = 0  # lock deadline (ACQUIRED) or due time (AVAILABLE)


class Model:
    """The contract, one offset at a time."""

    def __init__(self, start: int) -> None:
        self.start = start
        self.end = start
        self.recs: dict[int, Rec] = {}
        self.finished: set[int] = set()  # offsets that became ACKNOWLEDGED or ARCHIVED
        self.archived: list[tuple[int, int, ArchiveReason]] = []

    def _finish(self, offset: int, state: RecordState, reason: ArchiveReason | None = None) -> None:
        assert offset not in self.finished, f"offset {offset} done twice"
        self.finished.add(offset)
        rec = self.recs[offset]
        rec.state, rec.member, rec.deadline = state, "", 0
        if reason is not None:
            self.archived.append((offset, rec.count, reason))

    def _release(self, offset: int, due: int) -> None:
        rec = self.recs[offset]
        if rec.count >= LIMIT:
            self._finish(offset, RecordState.ARCHIVED, ArchiveReason.DELIVERY_LIMIT)
        else:
            rec.state, rec.member, rec.deadline = RecordState.AVAILABLE, "", due

    def advance(self) -> None:
        while self.start < self.end and self.recs[self.start].state in DONE:
            del self.recs[self.start]
            self.start += 1

    def acquire(
        self, member: str, now: int, first: int, last: int, budget: int, whole_batches: bool = False
    ) -> list[tuple[int, int]]:
        got: list[tuple[int, int]] = []
        if budget <= 0 or last < first:
            return got
        for offset in range(max(first, self.start), min(last, self.end - 1) + 1):
            rec = self.recs[offset]
            if len(got) < budget and rec.state is RecordState.AVAILABLE and rec.deadline <= now:
                rec.state, rec.member, rec.deadline = RecordState.ACQUIRED, member, now + LOCK
                rec.count += 1
                got.append((offset, rec.count))
        if first <= self.end <= last:
            new_from = self.end
            while self.end <= last and len(got) < budget and self.end - self.start < MAX_LOCKS:
                self.recs[self.end] = Rec(RecordState.ACQUIRED, 1, member, now + LOCK)
                got.append((self.end, 1))
                self.end += 1
            if whole_batches and self.end > new_from:  # a limit cut a batch: the rest of it comes too
                batch_end = (self.end - 1) // BATCH * BATCH + BATCH - 1
                while self.end <= min(batch_end, last):
                    self.recs[self.end] = Rec(RecordState.ACQUIRED, 1, member, now + LOCK)
                    got.append((self.end, 1))
                    self.end += 1
        return got

    def holds(self, member: str, now: int, first: int, last: int) -> bool:
        return all(
            offset in self.recs
            and self.recs[offset].state is RecordState.ACQUIRED
            and self.recs[offset].member == member
            and self.recs[offset].deadline > now
            for offset in range(first, last + 1)
        )

    def acknowledge(self, member: str, now: int, acks: list[Acknowledgement]) -> list[type[Exception] | None]:
        outcome: list[type[Exception] | None] = []
        for position, ack in enumerate(acks):
            first, last = ack.first_offset, ack.last_offset
            others = [other for p, other in enumerate(acks) if p != position]
            if (
                last < first
                or first < 0
                or (
                    ack.type == AcknowledgeType.RELEASE
                    and not 0 <= ack.delay_ms <= CONFIG.max_release_delay_ms
                )
                or any(
                    other.first_offset <= last and first <= other.last_offset and _well_formed(other)
                    for other in others
                )
            ):
                outcome.append(InvalidRequestError)
            elif not self.holds(member, now, first, last):
                outcome.append(InvalidRecordStateError)
            else:
                outcome.append(None)
                for offset in range(first, last + 1):
                    rec = self.recs[offset]
                    if ack.type == AcknowledgeType.ACCEPT:
                        self._finish(offset, RecordState.ACKNOWLEDGED)
                    elif ack.type == AcknowledgeType.REJECT:
                        self._finish(offset, RecordState.ARCHIVED, ArchiveReason.REJECTED)
                    elif ack.type == AcknowledgeType.RENEW:
                        rec.deadline = now + LOCK
                    else:
                        if ack.not_an_attempt:
                            rec.count = max(rec.count - 1, 0)
                        self._release(offset, now + ack.delay_ms if ack.delay_ms > 0 else 0)
        self.advance()
        return outcome

    def expire(self, now: int) -> None:
        for offset, rec in self.recs.items():
            if rec.state is RecordState.ACQUIRED and rec.deadline <= now:
                self._release(offset, 0)
            elif rec.state is RecordState.AVAILABLE and rec.deadline <= now:
                rec.deadline = 0
        self.advance()

    def release_member(self, member: str) -> None:
        for offset, rec in self.recs.items():
            if rec.state is RecordState.ACQUIRED and rec.member == member:
                self._release(offset, 0)
        self.advance()

    def advance_to(self, log_start: int) -> None:
        if log_start <= self.start:
            return
        for offset in range(self.start, min(log_start, self.end)):
            del self.recs[offset]
        self.start = log_start
        self.end = max(self.end, log_start)
        self.advance()

    def restart(self) -> None:
        for rec in self.recs.values():
            if rec.state in (RecordState.ACQUIRED, RecordState.AVAILABLE):
                rec.state, rec.member, rec.deadline = RecordState.AVAILABLE, "", 0


def _well_formed(ack: Acknowledgement) -> bool:
    """Whether an ack takes part in the overlap check (malformed ones are refused on their own)."""
    if ack.last_offset < ack.first_offset or ack.first_offset < 0:
        return False
    return not (ack.type == AcknowledgeType.RELEASE and not 0 <= ack.delay_ms <= CONFIG.max_release_delay_ms)


def _expand_acquired(ranges: list[AcquiredRange]) -> list[tuple[int, int]]:
    previous_last = -1
    out: list[tuple[int, int]] = []
    for r in ranges:
        assert r.first_offset > previous_last and r.first_offset <= r.last_offset, ranges
        previous_last = r.last_offset
        out.extend((offset, r.delivery_count) for offset in range(r.first_offset, r.last_offset + 1))
    return out


def _expand_archived(ranges: list[Archived]) -> list[tuple[int, int, ArchiveReason]]:
    return [(o, r.delivery_count, r.reason) for r in ranges for o in range(r.first_offset, r.last_offset + 1)]


kinds = st.sampled_from(list(AcknowledgeType))
members = st.sampled_from(MEMBERS)


class SharePartitionVersusModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0
        self.machine = SharePartition(5, CONFIG)
        self.model = Model(5)
        self.reported_archived: set[int] = set()
        self.lowest_start = 5

    def _record_archived(self, archived: list[Archived]) -> None:
        expanded = _expand_archived(archived)
        offsets = [offset for offset, _, _ in expanded]
        assert len(set(offsets)) == len(offsets), archived
        assert not self.reported_archived & set(offsets), "an offset archived twice"
        self.reported_archived |= set(offsets)

    @initialize(budget=st.integers(1, 120))
    def first_fetch(self, budget: int) -> None:
        got = self.machine.acquire("a", self.now, 5, 200, budget)
        assert _expand_acquired(got) == self.model.acquire("a", self.now, 5, 200, budget)

    @rule(member=members, data=st.data(), budget=st.integers(0, 120))
    def acquire(self, member: str, data: st.DataObject, budget: int) -> None:
        first = data.draw(st.integers(max(0, self.model.start - 5), self.model.end + 5))
        last = first + data.draw(st.integers(-1, 150))
        got = self.machine.acquire(member, self.now, first, last, budget)
        expected = self.model.acquire(member, self.now, first, last, budget)
        assert _expand_acquired(got) == expected

    @rule(member=members, data=st.data(), budget=st.integers(0, 120))
    def acquire_more(self, member: str, data: st.DataObject, budget: int) -> None:
        self.acquire(member, data, budget)  # a second rule: fetches are frequent

    @rule(member=members, data=st.data(), budget=st.integers(0, 120))
    def acquire_whole_batches(self, member: str, data: st.DataObject, budget: int) -> None:
        """Kafka's batch_optimized mode: the log is in batches of BATCH offsets; limits are soft at their ends."""
        first = data.draw(st.integers(max(0, self.model.start - 5), self.model.end + 5))
        last = first + data.draw(st.integers(-1, 150))
        batch_lasts = list(range(BATCH - 1, last + BATCH, BATCH))
        got = self.machine.acquire(member, self.now, first, last, budget, batch_lasts)
        expected = self.model.acquire(member, self.now, first, last, budget, whole_batches=True)
        assert _expand_acquired(got) == expected

    def _held_runs(self, member: str) -> list[tuple[int, int]]:
        """Runs of offsets `member` holds, with a valid lock or one just expired."""
        runs: list[tuple[int, int]] = []
        for offset in range(self.model.start, self.model.end):
            rec = self.model.recs[offset]
            if rec.state is RecordState.ACQUIRED and rec.member == member:
                if runs and runs[-1][1] == offset - 1:
                    runs[-1] = (runs[-1][0], offset)
                else:
                    runs.append((offset, offset))
        return runs

    @rule(member=members, data=st.data())
    def acknowledge(self, member: str, data: st.DataObject) -> None:
        acks: list[Acknowledgement] = []
        runs = self._held_runs(member)
        for _ in range(data.draw(st.integers(1, 3))):
            if runs and data.draw(st.integers(0, 7)) > 0:  # mostly a part of what the member holds
                run = data.draw(st.integers(0, len(runs) - 1))
                run_first, run_last = runs.pop(run)
                first = data.draw(st.integers(run_first, run_last))
                last = data.draw(st.integers(first, run_last))
                runs.extend(r for r in ((run_first, first - 1), (last + 1, run_last)) if r[0] <= r[1])
            else:  # anything, often not held, malformed or overlapping
                first = data.draw(st.integers(max(0, self.model.start - 10), self.model.end + 5))
                last = first + data.draw(st.integers(-2, 40))
            kind = data.draw(kinds)
            delay = data.draw(
                st.one_of(st.just(0), st.integers(1, 500), st.integers(-5, CONFIG.max_release_delay_ms + 5))
            )
            acks.append(Acknowledgement(first, last, kind, delay, data.draw(st.booleans())))
        results, archived = self.machine.acknowledge(member, self.now, acks)
        expected = self.model.acknowledge(member, self.now, acks)
        assert [None if r.error is None else type(r.error) for r in results] == expected, (acks, results)
        assert [(r.first_offset, r.last_offset) for r in results] == [
            (a.first_offset, a.last_offset) for a in acks
        ]
        self._record_archived(archived)

    @rule(member=members, data=st.data())
    def acknowledge_more(self, member: str, data: st.DataObject) -> None:
        self.acknowledge(member, data)  # a second rule: acknowledgements are frequent

    @rule(step=st.one_of(st.integers(0, 300), st.just(LOCK), st.integers(0, 3 * LOCK)), expire=st.booleans())
    def pass_time(self, step: int, expire: bool) -> None:
        self.now += step
        if expire:
            self._record_archived(self.machine.expire(self.now))
            self.model.expire(self.now)

    @rule()
    def expire_at_the_next_deadline(self) -> None:
        deadline = self.machine.next_deadline_ms()
        waiting = [
            rec.deadline
            for rec in self.model.recs.values()
            if rec.state is RecordState.ACQUIRED or (rec.state is RecordState.AVAILABLE and rec.deadline > 0)
        ]
        assert deadline == (min(waiting) if waiting else None)
        if deadline is not None:
            self.now = max(self.now, deadline)
            self._record_archived(self.machine.expire(self.now))
            self.model.expire(self.now)
            assert self.machine.next_deadline_ms() is None or self.machine.next_deadline_ms() > self.now  # type: ignore[operator]

    @rule(member=members)
    def release_member(self, member: str) -> None:
        self._record_archived(self.machine.release_member(member, self.now))
        self.model.release_member(member)

    @rule(data=st.data())
    def retention(self, data: st.DataObject) -> None:
        log_start = data.draw(st.integers(max(0, self.model.start - 3), self.model.end + 3))
        self.machine.advance_to(log_start)
        self.model.advance_to(log_start)

    @rule()
    def restart(self) -> None:
        snapshot = self.machine.snapshot()
        self.machine = SharePartition.restore(snapshot, CONFIG)
        self.model.restart()
        assert self.machine.snapshot() == snapshot

    @invariant()
    def agree_on_every_offset(self) -> None:
        machine, model = self.machine, self.model
        assert (machine.start_offset, machine.end_offset) == (model.start, model.end)
        for offset in range(model.start, model.end):
            rec = model.recs[offset]
            assert machine.state_of(offset) == (rec.state, rec.count, rec.member), offset
        assert machine.state_of(model.start - 1) is None and machine.state_of(model.end) is None

    @invariant()
    def deadlines_match(self) -> None:
        waiting = [
            rec.deadline
            for rec in self.model.recs.values()
            if rec.state is RecordState.ACQUIRED or (rec.state is RecordState.AVAILABLE and rec.deadline > 0)
        ]
        assert self.machine.next_deadline_ms() == (min(waiting) if waiting else None)
        due = [
            o
            for o, r in self.model.recs.items()
            if r.state is RecordState.AVAILABLE and r.deadline <= self.now
        ]
        room = self.model.end - self.model.start < MAX_LOCKS
        expected = min(due) if due else (self.model.end if room else None)
        assert self.machine.next_fetch_offset(self.now) == expected

    @invariant()
    def the_window_only_moves_forward_and_stays_bounded(self) -> None:
        assert self.machine.start_offset >= self.lowest_start
        self.lowest_start = self.machine.start_offset
        # past the limit only by the rest of a batch a limit cut (whole-batch acquisitions)
        assert self.machine.end_offset - self.machine.start_offset <= MAX_LOCKS + BATCH - 1

    @invariant()
    def archived_reports_match_the_model_exactly_once(self) -> None:
        assert self.reported_archived == {offset for offset, _, _ in self.model.archived}

    @invariant()
    def counts_and_holdings_match(self) -> None:
        recs = self.model.recs.values()
        counts = self.machine.counts(self.now)
        assert counts.in_flight == sum(1 for r in recs if r.state not in DONE)
        assert counts.done_in_window == sum(1 for r in recs if r.state in DONE)
        assert counts.acquired == sum(
            1 for r in recs if r.state is RecordState.ACQUIRED and r.deadline > self.now
        )
        assert counts.archived_total == len(self.model.archived)
        for member in MEMBERS:
            held = sum(1 for r in recs if r.state is RecordState.ACQUIRED and r.member == member)
            assert self.machine.acquired_by(member) == held

    @invariant()
    def spans_stay_fewer_than_offsets(self) -> None:
        assert self.machine.span_count <= max(1, self.machine.end_offset - self.machine.start_offset)


SharePartitionVersusModel.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_share_partition_against_the_model = SharePartitionVersusModel.TestCase
