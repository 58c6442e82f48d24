"""Work queue: several workers in ONE consumer group share the jobs; each job goes to exactly one worker.

Run against a broker started with `make run` (in another terminal):

    .venv/bin/python examples/work_queue.py --workers 3 --count 30

It produces --count jobs, starts --workers threads that each consume as a member of group "workers", and
prints which worker did how many jobs. Committed offsets mean a restarted worker does not redo jobs.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a clone without installing

from logstore.client import Consumer, Producer

from examples._common import arguments, ensure_topic


def main() -> int:
    parser = arguments(__doc__.splitlines()[0], count=30)
    parser.add_argument("--workers", type=int, default=3)
    args = parser.parse_args()
    topic = args.topic or "jobs"
    ensure_topic(args.bootstrap, topic, partitions=args.workers * 2)
    run_id = str(time.time_ns())  # jobs of earlier runs are not counted
    done: dict[str, list[str]] = {}
    shares: dict[str, int] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def worker(name: str) -> None:
        with Consumer(
            topic, group_id="workers", bootstrap=args.bootstrap, auto_offset_reset="earliest"
        ) as consumer:
            while not stop.is_set():
                with lock:
                    shares[name] = len(consumer.assignment())
                for records in consumer.poll(timeout_ms=200).values():
                    with lock:
                        for record in records:
                            if record.value.startswith(run_id.encode()):
                                done.setdefault(name, []).append(record.value.decode())

    threads = [threading.Thread(target=worker, args=(f"worker-{n}",)) for n in range(args.workers)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:  # until every worker has its share of the partitions
        with lock:
            if len(shares) == args.workers and all(shares.values()):
                break
        time.sleep(0.05)
    with Producer(args.bootstrap) as producer:
        for i in range(args.count):
            producer.send(topic, f"{run_id}:job-{i}".encode(), key=str(i).encode())
    while time.monotonic() < deadline:
        with lock:
            if sum(map(len, done.values())) >= args.count:
                break
        time.sleep(0.05)
    stop.set()
    for thread in threads:
        thread.join()
    jobs = [job for finished in done.values() for job in finished]
    for name, finished in sorted(done.items()):
        print(f"{name} did {len(finished)} jobs")
    print(f"{len(jobs)} jobs done, {len(set(jobs))} distinct, of {args.count}")
    return 0 if sorted(set(jobs)) == sorted(jobs) and len(jobs) == args.count else 1


if __name__ == "__main__":
    sys.exit(main())
