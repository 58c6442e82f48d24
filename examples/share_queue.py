"""Share-group work queue: workers take tasks one by one from every partition, ack each, dead-letter poison.

Run against a broker started with `make run` (in another terminal):

    .venv/bin/python examples/share_queue.py --workers 3 --count 30
    LOGSTORE_BOOTSTRAP=127.0.0.1:9192 .venv/bin/python examples/share_queue.py

This is RabbitMQ's work queue on the log (Kafka's share groups, KIP-932). --workers threads each run a
ShareConsumer of the share group "task-workers" in explicit mode: every member may get records from every
partition, so there can be more workers than partitions. Each task is acknowledged on its own:
ACCEPT (basic_ack) when done, RELEASE (basic_nack with requeue) when it failed and should be tried
again, REJECT (basic_reject without requeue) when it can never work. One task in the run always fails:
after share.delivery.count.limit deliveries (set to 3 here, RabbitMQ's x-delivery-limit) it is archived
to the dead-letter topic "tasks.dlq" (the dead-letter exchange), with headers saying where it came from
and why. Look at it with:

    .venv/bin/logstore consume tasks.dlq --from-beginning --print-headers --timeout-ms 2000

The group keeps its place like a durable queue: a second run picks up only the tasks produced since.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a clone without installing

from logstore.client import AcknowledgeType, Admin, Consumer, Producer, ShareConsumer, TopicPartition

from examples._common import arguments, ensure_topic

GROUP = "task-workers"


def main() -> int:
    parser = arguments(__doc__.splitlines()[0], count=30, seconds=30.0)
    parser.add_argument("--workers", type=int, default=3)
    parser.set_defaults(bootstrap=os.environ.get("LOGSTORE_BOOTSTRAP", "127.0.0.1:9093"))
    args = parser.parse_args()
    if args.count < 3:
        parser.error("--count must be at least 3 (one poison task, one malformed, one that works)")
    topic = args.topic or "tasks"
    dead_letters = f"{topic}.dlq"
    ensure_topic(args.bootstrap, topic, partitions=2)
    ensure_topic(args.bootstrap, dead_letters, partitions=1)
    with Admin(args.bootstrap) as admin:  # group settings, before the first worker joins (kept by the broker)
        admin.alter_group_config(
            GROUP,
            {
                "share.auto.offset.reset": "earliest",  # a new group starts at the topic's beginning
                "share.delivery.count.limit": "3",
                "share.record.lock.duration.ms": "10000",  # a dead worker's task comes back after 10 s
                "errors.deadletterqueue.topic.name": dead_letters,
            },
        )
    run_id = str(time.time_ns())  # tasks left by earlier runs are done but not counted
    poison, malformed = f"{run_id}:task-1:poison", f"{run_id}:task-2:malformed"
    done: Counter[str] = Counter()
    poison_deliveries: list[int] = []
    lock = threading.Lock()
    stop = threading.Event()

    def handle(task: str) -> None:
        if task.endswith(":poison"):
            raise RuntimeError(f"{task} failed")  # a transient-looking failure that never goes away
        time.sleep(0.001)  # the work

    def worker(name: str) -> None:
        with ShareConsumer(
            topic, group_id=GROUP, bootstrap=args.bootstrap, acknowledgement_mode="explicit"
        ) as consumer:
            while not stop.is_set():
                for record in consumer.poll(timeout_ms=200):
                    task = record.value.decode()
                    if task.endswith(":malformed"):
                        consumer.acknowledge(record, AcknowledgeType.REJECT)  # never retried
                        continue
                    try:
                        handle(task)
                    except RuntimeError:
                        if task.startswith(run_id):
                            with lock:
                                poison_deliveries.append(record.delivery_count)
                        consumer.acknowledge(record, AcknowledgeType.RELEASE)  # try again
                        continue
                    consumer.acknowledge(record, AcknowledgeType.ACCEPT)
                    if task.startswith(run_id):
                        with lock:
                            done[name] += 1
                consumer.commit_sync()  # the acks are on the broker's disk once this returns

    threads = [threading.Thread(target=worker, args=(f"worker-{n}",)) for n in range(args.workers)]
    for thread in threads:
        thread.start()
    with Producer(args.bootstrap) as producer:
        for i in range(args.count):
            task = {1: poison, 2: malformed}.get(i, f"{run_id}:task-{i}")
            producer.send(topic, task.encode(), key=str(i).encode())
    expected = args.count - 2
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        with lock:
            if sum(done.values()) >= expected and len(poison_deliveries) >= 3:
                break
        time.sleep(0.05)
    stop.set()
    for thread in threads:
        thread.join()
    parked = dead_lettered(args.bootstrap, dead_letters, {poison, malformed}, deadline)
    for name, count in sorted(done.items()):
        print(f"{name} accepted {count} tasks")
    print(
        f"{sum(done.values())} of {expected} tasks accepted; the poison task was delivered {poison_deliveries}"
    )
    for task, reason in sorted(parked.items()):
        print(f"dead-lettered {task}: {reason}")
    ok = sum(done.values()) == expected and sorted(poison_deliveries) == [1, 2, 3]
    return 0 if ok and parked == {poison: "DELIVERY_LIMIT", malformed: "REJECTED"} else 1


def dead_lettered(bootstrap: str, topic: str, wanted: set[str], deadline: float) -> dict[str, str]:
    """This run's tasks found in the dead-letter topic, with the reason header the broker gave them."""
    found: dict[str, str] = {}
    with Consumer(bootstrap=bootstrap, auto_offset_reset="earliest") as reader:
        reader.assign([TopicPartition(topic, 0)])
        while time.monotonic() < deadline and len(found) < len(wanted):
            for records in reader.poll(timeout_ms=200).values():
                for record in records:
                    value = (record.value or b"").decode()
                    if value in wanted:
                        found[value] = dict(record.headers)["__dlq.errors.reason"].decode()
    return found


if __name__ == "__main__":
    sys.exit(main())
