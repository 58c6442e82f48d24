"""``logstore consume TOPIC``: print records, one per line (like kafka-console-consumer); with ``--group``,
as a member of a consumer group that commits as it goes."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from datetime import datetime
from typing import Any

from logstore.client.console.common import add_bootstrap, bootstrap, friendly, security_options


def add_parser(subcommands: Any) -> None:
    parser = subcommands.add_parser(
        "consume",
        help="print records of a topic",
        description="Print each record's value on its own line (and more fields on request). Without "
        "--from-beginning, --offset or --from-time only new records are printed. Nothing is committed unless "
        "--group is given; then the group's committed offsets say where to start (--from-beginning only "
        "applies where it has none) and printed records are committed as it goes and at exit.",
    )
    parser.add_argument("topic", help="the topic to read")
    add_bootstrap(parser)
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--from-beginning", action="store_true", help="start at the earliest stored record")
    start.add_argument("--offset", help="with --partition: start at this offset, or 'earliest' / 'latest'")
    start.add_argument(
        "--from-time",
        metavar="TIME",
        help="start at the first record at or after TIME: ms since the epoch, or ISO 8601 such as "
        "2024-05-01T12:00:00Z (no zone: local time)",
    )
    parser.add_argument("--partition", type=int, help="read only this partition")
    parser.add_argument(
        "--group", metavar="GROUP", help="consume as a member of this consumer group, committing"
    )
    parser.add_argument("--max-messages", type=int, help="exit after printing this many records")
    parser.add_argument("--timeout-ms", type=float, help="exit when no record came for this long")
    parser.add_argument(
        "--request-timeout-ms",
        type=float,
        default=30_000,
        help="fail when the broker has not answered for this long (default: 30000)",
    )
    parser.add_argument("--print-key", action="store_true", help="print each record's key before its value")
    parser.add_argument("--print-partition", action="store_true", help="print each record's partition")
    parser.add_argument("--print-offset", action="store_true", help="print each record's offset")
    parser.add_argument(
        "--print-timestamp", action="store_true", help="print each record's timestamp (ms) and its type"
    )
    parser.add_argument("--print-headers", action="store_true", help="print each record's headers as k:v,...")
    parser.add_argument("--separator", default="\t", help="between printed fields (default: tab)")
    parser.add_argument(
        "--skip-corrupt",
        action="store_true",
        help="on a corrupt record batch, warn and go on after it (its records are not printed) instead of "
        "stopping with an error",
    )
    parser.set_defaults(handler=friendly(_consume))


def parse_time(text: str) -> int:
    """Milliseconds since the epoch from ``text``: an integer, or an ISO 8601 date and time."""
    if text.lstrip("-").isdigit():
        value = int(text)
    else:
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise ValueError(
                f"--from-time {text!r} is neither milliseconds since the epoch nor an ISO 8601 time "
                "(e.g. 2024-05-01T12:00:00Z)"
            ) from None
        value = int(moment.timestamp() * 1000)
    if value < 0:
        raise ValueError(f"--from-time must not be before 1970, got {text!r}")
    return value


def _consume(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from logstore.client.consumer.api import Consumer
    from logstore.client.shared.errors import CorruptRecordError
    from logstore.client.shared.types import TopicPartition

    if args.offset is not None and args.partition is None:
        raise ValueError("--offset needs --partition (which partition to start at that offset)")
    if args.max_messages is not None and args.max_messages < 1:
        raise ValueError(f"--max-messages must be at least 1, got {args.max_messages}")
    if args.request_timeout_ms <= 0:
        raise ValueError(f"--request-timeout-ms must be positive, got {args.request_timeout_ms}")
    start_time = parse_time(args.from_time) if args.from_time is not None else None
    consumer = Consumer(
        bootstrap=bootstrap(args),
        auto_offset_reset="earliest" if args.from_beginning else "latest",
        max_poll_records=10_000,
        group_id=args.group,
        auto_commit_interval_ms=1000,
        request_timeout_ms=args.request_timeout_ms,
        **security_options(args),
    )
    printed = 0
    sigterm = _SigtermFlag()
    previous = _on_sigterm(sigterm.handle)
    try:
        if args.group is not None and args.partition is None:
            if args.offset is not None or start_time is not None:
                raise ValueError(
                    "--offset and --from-time need --partition with --group (the group decides the rest)"
                )
            # Fails at once, naming what is missing, for an unknown topic or an unreachable broker
            # (the group member alone would wait for the topic to be created).
            consumer.partitions_for_topic(args.topic)
            consumer.subscribe([args.topic])
        elif args.partition is not None:
            partitions = [TopicPartition(args.topic, args.partition)]
            if args.partition not in consumer.partitions_for_topic(args.topic):
                raise ValueError(f"topic {args.topic!r} has no partition {args.partition}")
        else:
            partitions = [
                TopicPartition(args.topic, p) for p in sorted(consumer.partitions_for_topic(args.topic))
            ]
        if args.group is None or args.partition is not None:
            consumer.assign(partitions)
            _position(consumer, partitions, args.offset, start_time)
            if args.group is not None and args.offset is None and start_time is None:
                _resume_committed(consumer, partitions)
        out = sys.stdout.buffer
        line = _formatter(args)
        idle_since: float | None = None
        sigterm.deferred = True  # from here a SIGTERM only sets the flag: records in hand get printed first
        while printed != args.max_messages and not sigterm.received:
            wait_ms = _POLL_SLICE_MS
            if args.timeout_ms is not None:
                now = time.monotonic()
                idle_since = now if idle_since is None else idle_since
                wait_ms = max(0.0, min(wait_ms, args.timeout_ms - (now - idle_since) * 1000))
            try:
                polled = consumer.poll(timeout_ms=wait_ms, max_records=_room(args.max_messages, printed))
            except CorruptRecordError as exc:
                if not args.skip_corrupt:
                    raise CorruptRecordError(f"{exc} (--skip-corrupt skips such batches)") from None
                _skip(consumer, exc)
                continue
            if not polled:
                if idle_since is not None and (time.monotonic() - idle_since) * 1000 >= args.timeout_ms:
                    break
                continue
            idle_since = None
            for records in polled.values():
                out.writelines(map(line, records))
                printed += len(records)
            out.flush()
        if sigterm.received:
            raise Terminated()
    finally:
        _on_sigterm(signal.SIG_IGN)  # a second SIGTERM must not cut the commit short
        try:
            consumer.close()  # commits and leaves the group, on Ctrl-C and SIGTERM too
        finally:
            _on_sigterm(previous)
            print(f"Processed a total of {printed} messages", file=sys.stderr)
    return 0


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is: commit, leave the group, print the summary; exit status 143."""

    exit_code = 128 + signal.SIGTERM


_POLL_SLICE_MS = 200.0
"""The longest one poll() waits in the loop, so a deferred SIGTERM is seen within this time when idle."""


class _SigtermFlag:
    """SIGTERM raises Terminated at once while setting up, but only sets a flag once records flow: raised
    inside poll() after the positions moved past records not yet printed, close() would commit records
    nobody saw."""

    def __init__(self) -> None:
        self.deferred = False
        self.received = False

    def handle(self, signum: int, frame: Any) -> None:
        if not self.deferred:
            raise Terminated()
        self.received = True


def _on_sigterm(handler: Any) -> Any:
    """Install a SIGTERM handler (only the main thread may); returns the previous one."""
    if handler is None or threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, handler)


def _skip(consumer: Any, error: Any) -> None:
    """--skip-corrupt: warn, and move past the corrupt batch."""
    from logstore.client.shared.types import TopicPartition

    offset = error.next_offset if error.next_offset >= 0 else error.offset + 1
    print(f"logstore: warning: {error}; skipping to offset {offset}", file=sys.stderr)
    consumer.seek(TopicPartition(error.topic, error.partition), offset)


def _room(limit: int | None, printed: int) -> int:
    return 10_000 if limit is None else min(10_000, limit - printed)


def _resume_committed(consumer: Any, partitions: list) -> None:
    """With --group and --partition: continue where the group's committed offset says, if it has one."""
    for tp in partitions:
        offset = consumer.committed(tp)
        if offset is not None:
            consumer.seek(tp, offset)


def _position(consumer: Any, partitions: list, offset: str | None, start_time: int | None) -> None:
    if offset is not None:
        if offset == "earliest":
            consumer.seek_to_beginning(*partitions)
        elif offset == "latest":
            consumer.seek_to_end(*partitions)
        elif offset.isdigit():
            consumer.seek(partitions[0], _within_log(consumer, partitions[0], int(offset)))
        else:
            raise ValueError(
                f"--offset must be a non-negative number, 'earliest' or 'latest', got {offset!r}"
            )
    if start_time is not None:
        for tp, found in consumer.offsets_for_times(dict.fromkeys(partitions, start_time)).items():
            if found is None:
                consumer.seek_to_end(tp)
            else:
                consumer.seek(tp, found.offset)


def _within_log(consumer: Any, tp: Any, offset: int) -> int:
    """``offset`` moved into [log start offset, log end offset] with a warning if outside (as
    ``groups reset-offsets --to-offset`` does), instead of a silent reset by the fetcher."""
    start = consumer.beginning_offsets([tp])[tp]
    end = consumer.end_offsets([tp])[tp]
    if offset > end:
        print(
            f"logstore: warning: --offset {offset} is past the end of {tp} (log end offset {end}); "
            f"starting at offset {end}, the next record to be written",
            file=sys.stderr,
        )
        return end
    if offset < start:
        print(
            f"logstore: warning: --offset {offset} is before the earliest record still stored in {tp} "
            f"(log start offset {start}); starting at offset {start}",
            file=sys.stderr,
        )
        return start
    return offset


def _formatter(args: argparse.Namespace) -> Any:
    separator = args.separator.encode()

    def show(data: bytes | None) -> bytes:
        return b"null" if data is None else data

    def line(record: Any) -> bytes:
        fields = []
        if args.print_timestamp:
            kind = "CreateTime" if record.timestamp_type == 0 else "LogAppendTime"
            fields.append(f"{kind}:{record.timestamp}".encode())
        if args.print_partition:
            fields.append(b"Partition:%d" % record.partition)
        if args.print_offset:
            fields.append(b"Offset:%d" % record.offset)
        if args.print_headers:
            headers = record.headers
            fields.append(
                b",".join(k.encode() + b":" + show(v) for k, v in headers) if headers else b"NO_HEADERS"
            )
        if args.print_key:
            fields.append(show(record.key))
        fields.append(show(record.value))
        return separator.join(fields) + b"\n"

    return line
