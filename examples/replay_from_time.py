"""Replay from a moment: find the first offset at or after a time (offsets_for_times) and seek to it.

Run against a broker started with `make run` (in another terminal):

    .venv/bin/python examples/replay_from_time.py --count 10

It produces --count "old" records, notes the time, produces --count "new" ones, then replays from that
time: only the new records come back. Without a group nothing is committed, so replays never disturb
anyone's progress.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from logstore.client import Consumer, Producer, TopicPartition

from examples._common import arguments, ensure_topic


def main() -> int:
    args = arguments(__doc__.splitlines()[0]).parse_args()
    topic = args.topic or "prices"
    ensure_topic(args.bootstrap, topic, partitions=1)
    with Producer(args.bootstrap, linger_ms=0) as producer:
        for i in range(args.count):
            producer.send(topic, f"old-{i}".encode()).get(timeout=10)
        time.sleep(0.01)  # so that "since" is strictly after the old records' millisecond timestamps
        since_ms = int(time.time() * 1000)
        for i in range(args.count):
            producer.send(topic, f"new-{i}".encode()).get(timeout=10)

    tp = TopicPartition(topic, 0)
    replayed: list[str] = []
    with Consumer(bootstrap=args.bootstrap) as consumer:
        consumer.assign([tp])
        found = consumer.offsets_for_times({tp: since_ms})[tp]
        if found is None:
            print("no record at or after that time")
            return 1
        consumer.seek(tp, found.offset)
        end = consumer.end_offsets([tp])[tp]
        deadline = time.monotonic() + args.seconds
        while consumer.position(tp) < end and time.monotonic() < deadline:
            replayed += [r.value.decode() for r in consumer.poll(timeout_ms=200).get(tp, [])]
    print(f"replayed from offset {found.offset} (time {since_ms}): {replayed}")
    return 0 if replayed == [f"new-{i}" for i in range(args.count)] else 1


if __name__ == "__main__":
    sys.exit(main())
