"""What a share-group member holds across partitions, shared by ``ShareConsumer`` and ``AsyncShareConsumer``.

``Holdings`` keeps one pure ``PartitionLedger`` (``acks.py``) per partition and turns ShareFetch answers
into held records and the application's decisions into acknowledgement ranges. It does no I/O: the two
consumers differ only in how they send the requests and wait for the answers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from logstore.client.groups.coordinator import moved
from logstore.client.share.acks import AcknowledgeType, PartitionLedger, outcome
from logstore.client.share.records import Acquired, ShareRecord, share_record_class, take_records
from logstore.client.share.rpc import Pending, failures
from logstore.client.shared.backoff import Backoff
from logstore.client.shared.errors import (
    ClientError,
    GroupIdNotFoundError,
    IllegalStateError,
    MemberLostError,
    SerializationError,
    error_from_code,
    for_code,
    group_error,
)
from logstore.client.shared.serde import Deserializer
from logstore.client.shared.types import TopicPartition
from logstore.wire.logstore.v1 import share_pb2

log = logging.getLogger(__name__)

AcknowledgementCommitCallback = Callable[[dict[TopicPartition, set[int]], Exception | None], None]
"""Kafka's AcknowledgementCommitCallback: told, per partition, of offsets whose acknowledgement the
broker answered, with the error if it refused them (None when applied). Runs in the thread (or on the
event loop) that polls, commits or closes."""

Ranges = dict[TopicPartition, list[tuple[int, int, int]]]


class Holdings:
    """The ledgers of one member, by partition and by record class (a record's class names its topic,
    partition and delivery count, so ``acknowledge`` finds the ledger without a lookup per field). Not
    thread-safe: used from its consumer's thread or event loop only."""

    def __init__(self, group_id: str) -> None:
        self.group_id = group_id
        self.ledgers: dict[TopicPartition, PartitionLedger] = {}
        self._by_class: dict[type, PartitionLedger] = {}

    def take(self, response: share_pb2.ShareFetchResponse) -> list[ShareRecord] | None:
        """The records of a ShareFetch answer, now held. None when the broker forgot this member (rejoin;
        what it held was released); a group error that ends the membership is raised."""
        code = response.error_code
        if code:
            if issubclass(for_code(code), MemberLostError | GroupIdNotFoundError):
                return None
            error = error_from_code(code, response.error_message, where=f"share group {self.group_id!r}")
            if moved(error):  # the coordinator moved (or none for a moment): the fetch is retried
                raise error
            raise group_error(code, response.error_message, self.group_id)
        out: list[ShareRecord] = []
        for part in response.partitions:
            tp = TopicPartition(part.topic, part.partition)
            if part.error_code:
                log.warning(
                    "share group %s: %s: %s",
                    self.group_id,
                    tp,
                    part.error_message or f"error {part.error_code}",
                )
                continue
            ranges = [Acquired(r.first_offset, r.last_offset, r.delivery_count) for r in part.acquired_ranges]
            if not ranges:
                continue
            taken = take_records(part.topic, part.partition, part.records, ranges)
            ledger = self.ledgers.get(tp)
            if ledger is None:
                ledger = self.ledgers[tp] = PartitionLedger()
            for r in ranges:
                self._by_class[share_record_class(part.topic, part.partition, r.delivery_count)] = ledger
            ledger.hold(taken.held, taken.gaps, len(taken.records))
            if taken.missing:
                ledger.give_back(taken.missing)
            out.extend(taken.records)
        return out

    def acknowledge(self, record: ShareRecord, type: AcknowledgeType | int, delay_ms: int = 0) -> None:
        """Record the application's decision about one record (sent with the next flush)."""
        ledger = self._by_class.get(record.__class__)
        if ledger is None:
            raise IllegalStateError(
                f"{record.topic}-{record.partition} offset {record.offset}: not a record this consumer "
                "holds (not delivered by its poll())"
            )
        if delay_ms:
            ledger.acknowledge(record.offset, outcome(int(type), delay_ms))
            return
        code = type + 0  # a plain int, without Enum's Python-level __hash__
        if not 0 < code < 5:
            raise ValueError(f"acknowledgement type must be an AcknowledgeType, got {type!r}")
        ledger.acknowledge(record.offset, code)

    def settle(self, record: ShareRecord, code: int) -> None:
        """Give ``record`` the outcome ``code`` unless the application decided already (a final outcome
        sent or not); a RENEWed record gets it too. For implicit acceptance record by record."""
        ledger = self._by_class.get(record.__class__)
        if ledger is not None:
            ledger.settle(record.offset, code)

    def flush(self, implicit: bool) -> Ranges:
        """Every partition's ranges to send now (see ``PartitionLedger.flush``)."""
        out = {}
        for tp, ledger in self.ledgers.items():
            ranges = ledger.flush(implicit)
            if ranges:
                out[tp] = ranges
        return out

    def unacknowledged(self) -> int:
        return sum(ledger.unacknowledged() for ledger in self.ledgers.values())

    def release_all(self, pending: Ranges) -> Ranges:
        """``pending`` plus everything still held, released without counting an attempt (close)."""
        out = dict(pending)
        for tp, ledger in self.ledgers.items():
            back = ledger.release_all()
            if back:
                out[tp] = sorted([*out.get(tp, ()), *back])
        return out

    def forget(self) -> None:
        """The broker released everything this member held (it was fenced or timed out)."""
        for ledger in self.ledgers.values():
            ledger.forget()


def refused_by(response: share_pb2.ShareAcknowledgeResponse, pending: Pending, group_id: str) -> dict:
    """The partitions of ``pending`` whose acknowledgements ``response`` refused, with the error."""
    if response.error_code:
        return dict.fromkeys(pending, group_error(response.error_code, response.error_message, group_id))
    return {tp: errors[0][1] for tp, errors in failures(response.results).items()}


class SentAcks:
    """One ShareAcknowledge on its way: its ``call`` (a grpc future for ``ShareConsumer``, an asyncio
    task for ``AsyncShareConsumer``), the ``request`` and what it carries. One refused as a whole because
    the coordinator moved or could not be reached (``moved``) goes again, after the backoff, until
    request_timeout_ms has passed since it was first sent: ``settle`` says so and the consumer sends
    ``request`` again at ``retry_at``. (Records of a member whose coordinator moved are available again
    there: their ranges come back INVALID_RECORD_STATE, refused as for an expired lock.) Not thread-safe:
    its consumer's thread or loop only."""

    __slots__ = ("attempts", "call", "callback", "first_at", "last_error", "pending", "request", "retry_at")

    def __init__(
        self,
        call: Any,
        request: share_pb2.ShareAcknowledgeRequest,
        pending: Pending,
        callback: AcknowledgementCommitCallback | None,
        now: float,
    ) -> None:
        self.call: Any = call
        """None while waiting to be sent again (at ``retry_at``)."""
        self.request = request
        self.pending = pending
        self.callback = callback
        self.first_at = now
        self.attempts = 1
        self.retry_at = now
        self.last_error: ClientError | None = None

    def settle(
        self,
        answer: share_pb2.ShareAcknowledgeResponse | ClientError,
        now: float,
        backoff: Backoff,
        timeout_s: float,
    ) -> dict[TopicPartition, Exception] | None:
        """The refused partitions of an answer (or of the call's failure), or None when it is to be sent
        again (``call`` is None, ``retry_at`` set)."""
        if isinstance(answer, ClientError):
            error: ClientError | None = answer
        elif answer.error_code:
            group_id = self.request.group_id
            error = error_from_code(
                answer.error_code, answer.error_message, where=f"share group {group_id!r}"
            )
        else:
            error = None
        if error is not None and moved(error) and now - self.first_at < timeout_s:
            self.call, self.last_error = None, error
            self.retry_at = now + backoff.delay_s(self.attempts)
            log.debug("share group %s: acknowledgements go again: %s", self.request.group_id, error)
            self.attempts += 1
            return None
        if isinstance(answer, ClientError):
            return dict.fromkeys(self.pending, answer)
        return refused_by(answer, self.pending, self.request.group_id)

    def given_up(self) -> dict[TopicPartition, Exception]:
        """The refusal of acknowledgements waiting to be sent again when the wait for them ends."""
        error = self.last_error or ClientError("the acknowledgements were not sent again")
        return dict.fromkeys(self.pending, error)


def report(
    group_id: str,
    pending: Pending,
    refused: dict[TopicPartition, Exception],
    callback: AcknowledgementCommitCallback | None,
) -> None:
    """Tell ``callback`` (or the log, without one) how the acknowledgements ``pending`` went."""
    if callback is None:
        for tp, error in refused.items():
            log.warning("share group %s: %s: acknowledgement refused: %s", group_id, tp, error)
        return
    for tp, ranges in pending.items():
        offsets = {o for first, last, _ in ranges for o in range(first, last + 1)}
        try:
            callback({tp: offsets}, refused.get(tp))
        except Exception:
            log.exception("share group %s: the acknowledgement commit callback failed", group_id)


def deserialized(
    records: list[ShareRecord], kd: Deserializer | None, vd: Deserializer | None
) -> list[ShareRecord]:
    """``records`` with their keys and values deserialized in place."""
    if kd is None and vd is None:
        return records
    try:
        for record in records:
            if kd is not None:
                record.key = kd(record.key)
            if vd is not None:
                record.value = vd(record.value)
    except Exception as exc:
        raise SerializationError(
            f"deserializing a record of {record.topic}-{record.partition} offset "
            f"{record.offset} failed: {exc!r}"
        ) from exc
    return records


def fetch_request(group_id: str, member_id: str, options: Any) -> share_pb2.ShareFetchRequest:
    """The ShareFetch of one poll; ``options`` is the consumer's ``ShareConsumerConfig``."""
    return share_pb2.ShareFetchRequest(
        group_id=group_id,
        member_id=member_id,
        max_wait_ms=options.fetch_max_wait_ms,
        max_records=options.max_poll_records,
        max_bytes=options.fetch_max_bytes,
        priority=options.priority,
        acquire_mode=options.acquire_mode,
    )


class FetchRetry:
    """When the next ShareFetch may go after failed ones (pure: ``now`` passed in). A failure that is not
    retriable is raised; so is one once fetches have failed for request_timeout_ms (then the count starts
    over, and the consumer keeps retrying). Not thread-safe: its consumer's thread or loop only."""

    def __init__(self, group_id: str, backoff: Backoff, timeout_s: float) -> None:
        self.group_id = group_id
        self.retry_at = 0.0
        self._backoff = backoff
        self._timeout_s = timeout_s
        self._failures = 0
        self._failing_since: float | None = None

    def succeeded(self) -> None:
        self._failures = 0
        self._failing_since = None

    def failed(self, error: ClientError, now: float) -> None:
        if not error.retriable:
            raise error
        self._failures += 1
        self.retry_at = now + self._backoff.delay_s(self._failures)
        if self._failing_since is None:
            self._failing_since = now
            log.warning("share group %s: fetch failed, retrying: %s", self.group_id, error)
        elif now - self._failing_since >= self._timeout_s:
            self._failing_since = None
            raise type(error)(
                f"share group {self.group_id!r}: fetches failing for request_timeout_ms "
                f"({self._timeout_s * 1000:.0f} ms): {error}"
            )
