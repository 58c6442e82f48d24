"""Retry, then dead-letter: process each record, retry failures with backoff, park the hopeless ones.

Run against a broker started with `make run` (in another terminal):

    .venv/bin/python examples/dead_letter.py --count 10

Every third record is "poison" (the handler raises on it). After --attempts tries it goes to the topic
"payments.dlt" with its key, value and headers, plus headers saying why (dlt.error.type, .message), where
from (dlt.original.topic, .partition, .offset) and how many attempts. Offsets are committed only once a
record is handled or parked. Look at the parked records with:

    .venv/bin/logstore consume payments.dlt --from-beginning --print-headers --timeout-ms 2000
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from logstore.client import Consumer, ConsumerRecord, Producer, TopicPartition
from logstore.client.consumer.retry import RetryingHandler, process_with_retry

from examples._common import arguments, ensure_topic


def main() -> int:
    parser = arguments(__doc__.splitlines()[0])
    parser.add_argument("--attempts", type=int, default=3)
    args = parser.parse_args()
    topic = args.topic or "payments"
    dead_letters = f"{topic}.dlt"
    ensure_topic(args.bootstrap, topic, partitions=1)
    ensure_topic(args.bootstrap, dead_letters, partitions=1)
    group = f"payments-{time.time_ns()}"
    tp = TopicPartition(topic, 0)
    with Consumer(bootstrap=args.bootstrap, group_id=group) as setup:
        # A fresh group starts where the topic ends now (a commit from outside, before any member joins),
        # so it sees this run's records only.
        setup.commit({tp: setup.end_offsets([tp])[tp]})

    def charge(record: ConsumerRecord) -> None:
        if record.value.endswith(b"poison"):
            raise ValueError(f"cannot charge {record.value.decode()}")
        print(f"charged {record.value.decode()}")

    with Producer(args.bootstrap) as producer:
        for i in range(args.count):
            producer.send(
                topic, f"payment-{i}{':poison' if i % 3 == 2 else ''}".encode(), key=str(i).encode()
            )
        producer.flush()
        handle = RetryingHandler(
            charge,
            producer,
            dead_letter_topic=dead_letters,
            max_attempts=args.attempts,
            backoff_ms=10,
            backoff_max_ms=100,
        )
        with Consumer(topic, group_id=group, bootstrap=args.bootstrap, enable_auto_commit=False) as consumer:
            counts = process_with_retry(
                consumer,
                handle,
                max_records=args.count,
                poll_timeout_ms=200,
                should_stop=_timer(args.seconds),
            )
    print(f"handled {counts['handled']}, parked {counts['parked']} in {dead_letters}")
    expected_parked = sum(1 for i in range(args.count) if i % 3 == 2)
    return 0 if counts == {"handled": args.count - expected_parked, "parked": expected_parked} else 1


def _timer(seconds: float) -> Callable[[], bool]:
    deadline = time.monotonic() + seconds
    return lambda: time.monotonic() > deadline


if __name__ == "__main__":
    sys.exit(main())
