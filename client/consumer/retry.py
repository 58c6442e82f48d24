"""Process, retry with backoff, then park it: the dead-letter loop for consumers.

    handle = RetryingHandler(process, producer, dead_letter_topic="orders.dlt", max_attempts=3)
    process_with_retry(consumer, handle)          # or: for record in consumer: handle(record)

``RetryingHandler(record)`` calls ``handler(record)`` up to ``max_attempts`` times, sleeping an exponential
backoff (``backoff_ms`` doubling up to ``backoff_max_ms``) between attempts. If every attempt fails, the
original record goes to ``dead_letter_topic`` with its original key, value and headers, plus headers that
say why and where from:

    dlt.error.type        the exception's class, e.g. "ValueError"
    dlt.error.message     str() of the exception (at most 4096 bytes)
    dlt.original.topic    the record's topic
    dlt.original.partition, dlt.original.offset    as decimal text
    dlt.attempts          how many attempts were made

The send to the dead-letter topic is waited for, so a record is either handled or safely parked before
anything is committed. ``process_with_retry`` commits each partition's offset only after every record up to
it was handled or parked: after a crash, the records not yet committed are processed again (at least once).

Records are parked with the values the consumer handed out: with deserializers on the consumer, give the
producer matching serializers (or consume raw bytes).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from logstore.client.consumer.records import ConsumerRecord
from logstore.client.shared.backoff import Backoff
from logstore.client.shared.types import TopicPartition

log = logging.getLogger(__name__)

MAX_ERROR_MESSAGE_BYTES = 4096
HANDLED = "handled"
PARKED = "parked"


class RetryingHandler:
    """Wraps ``handler(record)`` with retries and a dead-letter topic; calling it returns HANDLED or PARKED."""

    def __init__(
        self,
        handler: Callable[[ConsumerRecord], Any],
        producer: Any,
        *,
        dead_letter_topic: str,
        max_attempts: int = 3,
        backoff_ms: float = 100,
        backoff_max_ms: float = 10_000,
        retry_on: tuple[type[BaseException], ...] = (Exception,),
        send_timeout_s: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not isinstance(max_attempts, int) or max_attempts < 1:
            raise ValueError(f"max_attempts must be an int of at least 1, got {max_attempts!r}")
        if not dead_letter_topic:
            raise ValueError("dead_letter_topic must name a topic")
        self.handler = handler
        self.producer = producer
        self.dead_letter_topic = dead_letter_topic
        self.max_attempts = max_attempts
        self.retry_on = retry_on
        self._backoff = Backoff(backoff_ms, backoff_max_ms, jitter=0.0)
        self._send_timeout_s = send_timeout_s
        self._sleep = sleep
        self.handled = 0
        self.parked = 0

    def __call__(self, record: ConsumerRecord) -> str:
        error: BaseException | None = None
        for attempt in range(1, self.max_attempts + 1):
            try:
                self.handler(record)
            except self.retry_on as exc:
                error = exc
                log.info(
                    "%s-%d@%d: attempt %d of %d failed: %r",
                    record.topic,
                    record.partition,
                    record.offset,
                    attempt,
                    self.max_attempts,
                    exc,
                )
                if attempt < self.max_attempts:
                    self._sleep(self._backoff.delay_s(attempt))
                continue
            self.handled += 1
            return HANDLED
        assert error is not None
        self.park(record, error, self.max_attempts)
        return PARKED

    def park(self, record: ConsumerRecord, error: BaseException, attempts: int) -> None:
        """Send ``record`` to the dead-letter topic with the why-and-where headers, and wait for the ack."""
        headers = list(record.headers or ()) + dead_letter_headers(record, error, attempts)
        future = self.producer.send(self.dead_letter_topic, record.value, key=record.key, headers=headers)
        future.get(timeout=self._send_timeout_s)
        self.parked += 1
        log.warning(
            "%s-%d@%d parked in %s after %d attempts: %r",
            record.topic,
            record.partition,
            record.offset,
            self.dead_letter_topic,
            attempts,
            error,
        )


def dead_letter_headers(
    record: ConsumerRecord, error: BaseException, attempts: int
) -> list[tuple[str, bytes]]:
    message = str(error).encode("utf-8", "replace")[:MAX_ERROR_MESSAGE_BYTES]
    return [
        ("dlt.error.type", type(error).__name__.encode()),
        ("dlt.error.message", message),
        ("dlt.original.topic", record.topic.encode()),
        ("dlt.original.partition", str(record.partition).encode()),
        ("dlt.original.offset", str(record.offset).encode()),
        ("dlt.attempts", str(attempts).encode()),
    ]


def process_with_retry(
    consumer: Any,
    handle: RetryingHandler,
    *,
    poll_timeout_ms: float = 1000,
    should_stop: Callable[[], bool] = lambda: False,
    max_records: int | None = None,
) -> dict[str, int]:
    """Poll, handle every record (retrying, then parking), commit, until ``should_stop()`` or
    ``max_records`` records went through. The consumer needs a group_id; commits go after each poll's
    records, per partition, to the offset after the last record handled or parked. Returns counts."""
    done = 0
    while not should_stop() and (max_records is None or done < max_records):
        limit = None if max_records is None else max_records - done
        polled = consumer.poll(timeout_ms=poll_timeout_ms, max_records=limit)
        progress: dict[TopicPartition, int] = {}
        for tp, records in polled.items():
            for record in records:
                handle(record)
                progress[tp] = record.offset + 1
                done += 1
        if progress:
            consumer.commit(progress)
    return {"handled": handle.handled, "parked": handle.parked}
