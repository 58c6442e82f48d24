"""What one share-group member holds per partition, and its acknowledgements coalesced into ranges.

A pure core (no I/O, no clock): the consumer records what each fetch acquired (``hold``), what the
application decided per record (``acknowledge``), and asks for the ranges to send (``flush``). Offsets are
kept as ranges, never as an object per record; a record's outcome is one small int in a dict, so that
accepting 300,000 records a second costs a dict store each. Outcomes with the same type, delay and
attempt flag on contiguous offsets become one range on the wire.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from logstore.client.shared.errors import IllegalStateError


class AcknowledgeType(enum.IntEnum):
    """What a member decides about a record (the numbers are the wire's ``AcknowledgeType``)."""

    ACCEPT = 1
    """Processed: the record is done for the group."""
    RELEASE = 2
    """Give it back: delivered again (after ``delay_ms``), or archived once at the delivery limit."""
    REJECT = 3
    """Unprocessable: archived at once (to the dead-letter topic, if the group has one)."""
    RENEW = 4
    """Still working: the lock is extended; the record must still be acknowledged later."""


_TYPES = frozenset(int(t) for t in AcknowledgeType)
ACCEPT = int(AcknowledgeType.ACCEPT)
RELEASE = int(AcknowledgeType.RELEASE)
RENEW = int(AcknowledgeType.RENEW)
_NOT_AN_ATTEMPT = 1 << 3
RELEASE_NOT_AN_ATTEMPT = RELEASE | _NOT_AN_ATTEMPT
"""What close() gives back: released without counting a delivery attempt."""


def outcome(type_: int, delay_ms: int = 0, not_an_attempt: bool = False) -> int:
    """One int for (type, delay, attempt flag): cheap to store per record and to compare."""
    if type_ not in _TYPES:
        raise ValueError(f"acknowledgement type must be an AcknowledgeType, got {type_!r}")
    if not isinstance(delay_ms, int) or isinstance(delay_ms, bool) or delay_ms < 0:
        raise ValueError(f"delay_ms must be a non-negative int (milliseconds), got {delay_ms!r}")
    if (delay_ms or not_an_attempt) and type_ != RELEASE:
        raise ValueError("delay_ms and not_an_attempt apply to AcknowledgeType.RELEASE only")
    return type_ | (_NOT_AN_ATTEMPT if not_an_attempt else 0) | (delay_ms << 4)


class AckRange(NamedTuple):
    """Contiguous offsets with the same outcome, as sent on the wire."""

    first_offset: int
    last_offset: int
    type: AcknowledgeType
    delay_ms: int = 0
    not_an_attempt: bool = False

    @classmethod
    def of(cls, first: int, last: int, code: int) -> AckRange:
        return cls(first, last, AcknowledgeType(code & 7), code >> 4, bool(code & _NOT_AN_ATTEMPT))


def merge(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, with touching or overlapping ranges joined."""
    out: list[tuple[int, int]] = []
    for first, last in sorted(ranges):
        if out and first <= out[-1][1] + 1:
            if last > out[-1][1]:
                out[-1] = (out[-1][0], last)
        else:
            out.append((first, last))
    return out


class PartitionLedger:
    """One partition's acquired offsets this member still holds, and the outcomes not sent yet.

    ``gaps`` are held offsets without a record (compaction, transaction markers): they are accepted with
    the next flush. ``unsettled`` counts records handed out without a final outcome (explicit mode's
    check); ``renewed`` are those held on purpose past a poll (RENEW sent, no final outcome yet).
    """

    __slots__ = ("acks", "gaps", "held", "renewed", "returns", "unsettled")

    def __init__(self) -> None:
        self.held: list[tuple[int, int]] = []
        self.gaps: set[int] = set()
        self.acks: dict[int, int] = {}
        self.unsettled = 0
        self.renewed: set[int] = set()
        self.returns: list[tuple[int, int, int]] = []

    def give_back(self, ranges: Iterable[tuple[int, int]]) -> None:
        """Acquired offsets the member never saw (past the batches returned): released with the next
        flush, not counted as an attempt."""
        self.returns.extend((first, last, RELEASE_NOT_AN_ATTEMPT) for first, last in ranges)

    def flush(self, implicit: bool) -> list[tuple[int, int, int]]:
        """The (first, last, outcome) ranges to send now, ascending (see ``_flush_held``)."""
        returns, self.returns = self.returns, []
        out = self._flush_held(implicit)
        return sorted([*out, *returns]) if returns else out

    def hold(self, ranges: Sequence[tuple[int, int]], gaps: Iterable[tuple[int, int]], records: int) -> None:
        """A fetch acquired ``ranges``; ``records`` records were handed out from them, ``gaps`` had none."""
        self.held = merge([*self.held, *ranges]) if self.held else merge(ranges)
        for first, last in gaps:
            self.gaps.update(range(first, last + 1))
        self.unsettled += records

    def holds(self, offset: int) -> bool:
        for first, last in self.held:  # noqa: SIM110  # a plain loop: no generator frame per acknowledgement
            if first <= offset <= last:
                return True
        return False

    def acknowledge(self, offset: int, code: int) -> None:
        """Record the application's outcome for the record at ``offset`` (sent with the next flush).

        Runs once per record: the checks are inlined (no method call, no generator)."""
        acks = self.acks
        previous = acks.get(offset)
        if previous is not None and previous & 7 != RENEW:
            raise IllegalStateError(
                f"offset {offset} was acknowledged already ({AckRange.of(0, 0, previous).type.name})"
            )
        for first, last in self.held:
            if first <= offset <= last:
                break
        else:
            first = -1
        if first < 0 or (self.gaps and offset in self.gaps):
            raise IllegalStateError(
                f"offset {offset} is not held by this consumer (not delivered by poll(), or acknowledged and sent already)"
            )
        acks[offset] = code
        if code & 7 == RENEW:
            self.renewed.add(offset)
        else:
            self.unsettled -= 1
            if self.renewed:
                self.renewed.discard(offset)

    def settle(self, offset: int, code: int) -> None:
        """``acknowledge(offset, code)`` unless ``offset`` has a final outcome already, sent or not (or is
        not held any more); a RENEWed offset takes it. Implicit acceptance of one record handed out."""
        previous = self.acks.get(offset)
        if previous is not None and previous & 7 != RENEW:
            return
        if offset in self.gaps or not self.holds(offset):
            return
        self.acknowledge(offset, code)

    def unacknowledged(self) -> int:
        """Records handed out that have neither a final outcome nor a renewed lock."""
        return self.unsettled - len(self.renewed)

    def _flush_held(self, implicit: bool) -> list[tuple[int, int, int]]:
        """The ranges to send for held offsets, ascending, and what stays held afterwards.

        ``implicit``: every held offset without an outcome is accepted (Kafka's implicit mode; a pending
        RENEW counts as ACCEPT too, since the next poll says the record is done). Otherwise only offsets
        with an outcome, and gaps (accepted), are sent; RENEWed offsets stay held."""
        held, acks, gaps = self.held, self.acks, self.gaps
        if not held:
            return []
        if implicit and not acks:  # the hot path: accept everything, one range per held range
            self._clear()
            return [(first, last, ACCEPT) for first, last in held]
        size = sum(last - first + 1 for first, last in held)
        if len(acks) + len(gaps) == size and set(acks.values()) <= {ACCEPT}:  # everything accepted
            self._clear()
            return [(first, last, ACCEPT) for first, last in held]
        if not implicit and not acks and not gaps:
            return []
        out: list[tuple[int, int, int]] = []
        kept: list[tuple[int, int]] = []
        get = acks.get
        for first, last in held:
            run_first, run_code = first, -1
            keep_first = -1
            for offset in range(first, last + 1):
                code = get(offset)
                if code is None:
                    code = ACCEPT if implicit or offset in gaps else 0
                elif implicit and code & 7 == RENEW:
                    code = ACCEPT
                if code != run_code:
                    if run_code > 0:
                        out.append((run_first, offset - 1, run_code))
                    run_first, run_code = offset, code
                stays = code == 0 or code & 7 == RENEW
                if stays and keep_first < 0:
                    keep_first = offset
                elif not stays and keep_first >= 0:
                    kept.append((keep_first, offset - 1))
                    keep_first = -1
            if run_code > 0:
                out.append((run_first, last, run_code))
            if keep_first >= 0:
                kept.append((keep_first, last))
        self.held = kept
        self.acks = {}
        self.gaps = set()
        if implicit:
            self.unsettled = 0
            self.renewed = set()
        return out

    def release_all(self) -> list[tuple[int, int, int]]:
        """Everything still held after a flush, released without counting an attempt (close)."""
        out = sorted([*self.returns, *((first, last, RELEASE_NOT_AN_ATTEMPT) for first, last in self.held)])
        self._clear()
        return out

    def forget(self) -> None:
        """The broker released everything this member held (it was fenced or timed out)."""
        self._clear()

    def _clear(self) -> None:
        self.held = []
        self.acks = {}
        self.gaps = set()
        self.unsettled = 0
        self.renewed = set()
        self.returns = []
