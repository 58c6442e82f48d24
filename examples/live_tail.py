"""Live tail (pub/sub): print records as they are appended, with no group and nothing committed.

Run against a broker started with `make run` (in another terminal):

    .venv/bin/python examples/live_tail.py --seconds 30          # then produce in a third terminal:
    echo hello | .venv/bin/logstore produce news

With --count N it also produces N records itself (after the tail has started) and stops once it saw them.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from logstore.client import Producer, Tail

from examples._common import arguments, ensure_topic


def main() -> int:
    args = arguments(__doc__.splitlines()[0], count=0, seconds=30).parse_args()
    topic = args.topic or "news"
    ensure_topic(args.bootstrap, topic, partitions=1)
    tail = Tail(topic, bootstrap=args.bootstrap)  # starts at the end: only records appended from now on
    timer = threading.Timer(args.seconds, tail.close)
    timer.start()
    if args.count:
        with Producer(args.bootstrap) as producer:
            for i in range(args.count):
                producer.send(topic, f"headline {i} at {time.strftime('%H:%M:%S')}".encode())
    seen = 0
    try:
        for record in tail:
            print(
                f"{record.topic}-{record.partition}@{record.offset}: {record.value.decode(errors='replace')}"
            )
            seen += 1
            if args.count and seen >= args.count:
                break
    finally:
        timer.cancel()
        tail.close()
    return 0 if seen >= args.count else 1


if __name__ == "__main__":
    sys.exit(main())
