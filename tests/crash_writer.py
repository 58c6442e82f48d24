"""The writer process of tests/test_crash_recovery.py: append, flush, report, forever, until killed.

Usage: python tests/crash_writer.py DATA_DIR. Each loop appends one batch to partition 0 of topic `crash`,
calls `flush()`, then prints the batch's last offset on its own line. A printed offset is therefore on
stable storage, and the test, which SIGKILLs this process at a random moment, checks that it survived.
Record values depend only on their offset, so the test can check every byte without being told them.
"""

from __future__ import annotations

import sys
from pathlib import Path

from logstore.errors import UnknownTopicError
from logstore.manager import LogManager
from logstore.records import build_batch

TOPIC = "crash"
TOPIC_CONFIG = {"segment.bytes": 8 * 1024, "index.interval.bytes": 256}


def record_value(offset: int) -> bytes:
    """The value of the record at `offset` (tests/test_crash_recovery.py has the same function)."""
    return f"record {offset} ".encode() * (1 + offset % 7)


def main(data_dir: Path) -> None:
    manager = LogManager(data_dir, background=False)
    try:
        manager.topic(TOPIC)
    except UnknownTopicError:
        manager.create_topic(TOPIC, 1, TOPIC_CONFIG)
    log = manager.log(TOPIC, 0)
    while True:
        base = log.log_end_offset
        count = 1 + base % 5
        result = log.append(build_batch([record_value(base + i) for i in range(count)]))
        log.flush()
        print(result.last_offset, flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
