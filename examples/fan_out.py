"""Fan-out: two consumer groups read the same topic; EACH group sees every record.

Run against a broker started with `make run` (in another terminal):

    .venv/bin/python examples/fan_out.py --count 10

"billing" and "audit" are independent groups (think: two services). Each keeps its own committed offsets,
so each gets the whole stream; within a group, members would share it (see work_queue.py).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from logstore.client import Consumer, Producer

from examples._common import arguments, ensure_topic


def main() -> int:
    args = arguments(__doc__.splitlines()[0]).parse_args()
    topic = args.topic or "events"
    ensure_topic(args.bootstrap, topic, partitions=3)
    run_id = str(time.time_ns())
    groups = {
        name: Consumer(
            topic, group_id=f"{name}-{run_id}", bootstrap=args.bootstrap, auto_offset_reset="earliest"
        )
        for name in ("billing", "audit")
    }
    try:
        with Producer(args.bootstrap) as producer:
            for i in range(args.count):
                producer.send(topic, f"{run_id}:event-{i}".encode())
        seen: dict[str, set[bytes]] = {name: set() for name in groups}
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline and any(len(s) < args.count for s in seen.values()):
            for name, consumer in groups.items():
                for records in consumer.poll(timeout_ms=100).values():
                    seen[name].update(r.value for r in records if r.value.startswith(run_id.encode()))
    finally:
        for consumer in groups.values():
            consumer.close()
    for name, values in seen.items():
        print(f"group {name} saw {len(values)} of {args.count} records")
    return 0 if all(len(s) == args.count for s in seen.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
