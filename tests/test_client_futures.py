"""Record futures: kafka-python's and concurrent.futures' APIs over one shared batch outcome."""

from __future__ import annotations

import pytest
from logstore.client.producer.futures import BatchOutcome, RecordFuture, failed_future
from logstore.client.shared.errors import NotAvailableError
from logstore.client.shared.types import RecordMetadata


def test_metadata_is_the_batch_offset_plus_the_delta() -> None:
    outcome = BatchOutcome("t", 2)
    first, third = RecordFuture(outcome, 0, 100), RecordFuture(outcome, 2, 102)
    assert not first.done() and first.running() and first.value is None
    outcome.resolve(40)
    assert first.get(0) == RecordMetadata("t", 2, 40, 100)
    assert third.result(0) == RecordMetadata("t", 2, 42, 102)
    assert third.succeeded() and third.is_done and not third.failed() and third.exception() is None


def test_log_append_time_replaces_the_record_timestamp_and_acks_0_has_no_offset() -> None:
    outcome = BatchOutcome("t", 0)
    outcome.resolve(-1, 555)
    assert RecordFuture(outcome, 3, 100).get(0) == RecordMetadata("t", 0, -1, 555)


def test_get_raises_the_error_or_times_out() -> None:
    outcome = BatchOutcome("t", 0)
    future = RecordFuture(outcome, 0, 1)
    with pytest.raises(TimeoutError, match="still being sent"):
        future.get(0.001)
    outcome.fail(NotAvailableError("partition closing"))
    with pytest.raises(NotAvailableError):
        future.get()
    assert future.failed() and isinstance(future.exception(0), NotAvailableError)
    assert "failed" in repr(future)


def test_callbacks_before_and_after_completion() -> None:
    outcome = BatchOutcome("t", 1)
    future = RecordFuture(outcome, 1, 7)
    seen: list[object] = []
    future.add_callback(seen.append)
    future.add_callback(lambda tag, md: seen.append((tag, md.offset)), "tagged")
    future.add_errback(seen.append)
    future.add_done_callback(lambda f: seen.append(f is future))
    assert seen == []
    outcome.resolve(10)
    assert seen == [RecordMetadata("t", 1, 11, 7), ("tagged", 11), True]
    future.add_callback(lambda md: seen.append("late"))
    assert seen[-1] == "late"


def test_errbacks_and_a_raising_callback_does_not_stop_the_others() -> None:
    outcome = BatchOutcome("t", 0)
    future = RecordFuture(outcome, 0, 1)
    seen: list[object] = []

    def broken(_: object) -> None:
        raise RuntimeError("user bug")

    future.add_errback(broken)
    future.add_errback(lambda e: seen.append(type(e)))
    future.add_callback(seen.append)
    outcome.fail(NotAvailableError("x"))
    assert seen == [NotAvailableError]


def test_failed_future() -> None:
    future = failed_future("t", 0, NotAvailableError("no"), 5)
    assert future.done() and future.failed()
    assert future.cancel() is False and future.cancelled() is False
