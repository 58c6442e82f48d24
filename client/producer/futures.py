"""Futures for sent records: one cheap object per record, one shared outcome per batch.

``send()`` is the producer's hot path, so a record's future is three slots pointing at its batch's
``BatchOutcome`` (where the offset, error, wake-up event and callbacks live) plus its offset delta and
timestamp. It offers both kafka-python's API (``get``, ``add_callback``, ``add_errback``,
``succeeded``, ``failed``, ``is_done``) and ``concurrent.futures.Future``'s (``result``, ``exception``,
``done``, ``add_done_callback``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from logstore.client.shared.errors import ClientError
from logstore.client.shared.types import RecordMetadata

log = logging.getLogger(__name__)

_PENDING = object()
# Guards registering callbacks against finishing: rare, short, and cheaper than a lock per batch.
_CALLBACKS_LOCK = threading.Lock()


class BatchOutcome:
    """The fate of one batch: its base offset and append time, or the error that ended it.

    Thread-safe: the sender thread completes it once; any thread may wait on it or add callbacks.
    """

    __slots__ = ("_callbacks", "_event", "append_time", "base_offset", "error", "partition", "topic")

    def __init__(self, topic: str, partition: int) -> None:
        self.topic = topic
        self.partition = partition
        self.base_offset: Any = _PENDING
        self.append_time = -1
        self.error: BaseException | None = None
        self._event = threading.Event()
        self._callbacks: list[tuple[RecordFuture, Callable[..., Any], int]] | None = None

    @property
    def done(self) -> bool:
        return self._event.is_set()

    def resolve(self, base_offset: int, append_time: int = -1) -> None:
        """Mark the batch written at ``base_offset`` (-1 with acks=0) and run waiting callbacks."""
        self.base_offset = base_offset
        self.append_time = append_time
        self._finish()

    def fail(self, error: BaseException) -> None:
        """Mark the batch failed and run waiting callbacks."""
        self.error = error
        self.base_offset = -1
        self._finish()

    def wait(self, timeout: float | None) -> bool:
        return self._event.wait(timeout)

    def _finish(self) -> None:
        with _CALLBACKS_LOCK:
            self._event.set()
            callbacks, self._callbacks = self._callbacks, None
        if callbacks:
            for future, fn, kind in callbacks:
                future._run(fn, kind)

    def _add(self, future: RecordFuture, fn: Callable[..., Any], kind: int) -> None:
        with _CALLBACKS_LOCK:
            if not self._event.is_set():
                if self._callbacks is None:
                    self._callbacks = []
                self._callbacks.append((future, fn, kind))
                return
        future._run(fn, kind)


_ON_SUCCESS, _ON_ERROR, _ON_DONE = 0, 1, 2


class RecordFuture:
    """The future of one sent record, resolving to its ``RecordMetadata``.

    Three slots: the batch's outcome, the record's offset delta and its timestamp. The hot path in
    ``send()`` makes one with ``object.__new__`` and three slot stores (no ``__init__`` frame), which is
    cheaper than any tuple-based or keyword-built object. It compares and hashes by identity.
    """

    __slots__ = ("_delta", "_outcome", "_timestamp")

    def __init__(self, outcome: BatchOutcome, delta: int, timestamp: int) -> None:
        self._outcome = outcome
        self._delta = delta
        self._timestamp = timestamp

    # --- state ------------------------------------------------------------------------------------------

    def done(self) -> bool:
        return self._outcome.done

    @property
    def is_done(self) -> bool:
        return self._outcome.done

    def succeeded(self) -> bool:
        return self._outcome.done and self._outcome.error is None

    def failed(self) -> bool:
        return self._outcome.done and self._outcome.error is not None

    def cancel(self) -> bool:
        """Records cannot be taken back once sent; like a running concurrent future, this returns False."""
        return False

    def cancelled(self) -> bool:
        return False

    def running(self) -> bool:
        return not self._outcome.done

    # --- results ----------------------------------------------------------------------------------------

    @property
    def value(self) -> RecordMetadata | None:
        """The metadata once the record succeeded, else None (kafka-python's ``Future.value``)."""
        return self._metadata() if self.succeeded() else None

    @property
    def exception_value(self) -> BaseException | None:
        return self._outcome.error

    def get(self, timeout: float | None = None) -> RecordMetadata:
        """Wait up to ``timeout`` seconds (None: forever) and return the metadata, or raise the error.

        Raises ``TimeoutError`` if the record is still in flight when the time is up.
        """
        outcome = self._outcome
        if not outcome.wait(timeout):
            raise TimeoutError(
                f"record to {outcome.topic}-{outcome.partition} not acknowledged within {timeout} s; "
                "it is still being sent (call get() again, or flush())"
            )
        if outcome.error is not None:
            raise outcome.error
        return self._metadata()

    def result(self, timeout: float | None = None) -> RecordMetadata:
        """``concurrent.futures.Future.result``: the same as ``get``."""
        return self.get(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        outcome = self._outcome
        if not outcome.wait(timeout):
            raise TimeoutError(
                f"record to {outcome.topic}-{outcome.partition} still in flight after {timeout} s"
            )
        return outcome.error

    def _metadata(self) -> RecordMetadata:
        outcome = self._outcome
        offset = outcome.base_offset
        timestamp = self._timestamp
        if offset >= 0:
            offset += self._delta
        if outcome.append_time >= 0:
            timestamp = outcome.append_time
        return RecordMetadata(outcome.topic, outcome.partition, offset, timestamp)

    # --- callbacks --------------------------------------------------------------------------------------

    def add_callback(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> RecordFuture:
        """Call ``fn(*args, metadata, **kwargs)`` when the record succeeds (at once if it has)."""
        self._outcome._add(self, _bind(fn, args, kwargs), _ON_SUCCESS)
        return self

    def add_errback(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> RecordFuture:
        """Call ``fn(*args, exception, **kwargs)`` when the record fails (at once if it has)."""
        self._outcome._add(self, _bind(fn, args, kwargs), _ON_ERROR)
        return self

    def add_both(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> RecordFuture:
        self.add_callback(fn, *args, **kwargs)
        return self.add_errback(fn, *args, **kwargs)

    def add_done_callback(self, fn: Callable[[RecordFuture], Any]) -> None:
        """Call ``fn(future)`` when the record is done either way (``concurrent.futures`` style)."""
        self._outcome._add(self, fn, _ON_DONE)

    def _run(self, fn: Callable[..., Any], kind: int) -> None:
        error = self._outcome.error
        try:
            if kind == _ON_DONE:
                fn(self)
            elif kind == _ON_SUCCESS and error is None:
                fn(self._metadata())
            elif kind == _ON_ERROR and error is not None:
                fn(error)
        except Exception:
            log.exception("a producer callback raised; the producer carries on")

    def __repr__(self) -> str:
        outcome = self._outcome
        if not outcome.done:
            state = "pending"
        elif outcome.error is not None:
            state = f"failed: {outcome.error!r}"
        else:
            state = repr(self._metadata())
        return f"<RecordFuture {outcome.topic}-{outcome.partition} {state}>"


def _bind(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Callable[..., Any]:
    if not args and not kwargs:
        return fn
    return lambda value: fn(*args, value, **kwargs)


_new = object.__new__


def new_future(outcome: BatchOutcome, delta: int, timestamp: int) -> RecordFuture:
    """A record's future without running ``__init__`` (for the accumulator; ``send()`` inlines this)."""
    future = _new(RecordFuture)
    future._outcome = outcome
    future._delta = delta
    future._timestamp = timestamp
    return future


def failed_future(topic: str, partition: int, error: ClientError, timestamp: int = -1) -> RecordFuture:
    """A future that has already failed, for a record refused before it reached a batch."""
    outcome = BatchOutcome(topic, partition)
    outcome.fail(error)
    return RecordFuture(outcome, 0, timestamp)
