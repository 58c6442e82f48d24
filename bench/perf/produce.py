"""``logstore perf produce``: producer throughput and latency, like Kafka's ``kafka-producer-perf-test``.

One ``Producer`` sends ``--num-records`` records of ``--record-size`` bytes as fast as it can (or at
``--throughput`` records/s), then flushes. Throughput is records over the time from the first ``send()``
to the last acknowledgement. Latency is measured per record from ``send()`` to its future's completion,
on a sample: one record in every ``stride`` gets a done-callback (``--latency-samples``, 10,000 by
default, per run; every record in small runs). A callback on every record would cost as much as the send
itself: measured at 50,000 samples per million records, sampling alone took 15% off the throughput, at
10,000 it is within the noise. Records of one batch complete together, so the sample's callbacks run
back to back and later ones read the clock a little late (about 1 µs each): at most 0.1 ms at the far
end of a 1 MiB batch of 100-byte records at a stride of 100. Throttled runs send (and sample) in chunks of
at most a millisecond's worth of records, so the throttle does not create bursts.

Values are random upper-case letters (as in Kafka's tool: compressible, but not trivially), drawn from a
pool of 1000 payloads; keys (``--key-cardinality`` distinct ones of ``--key-size`` bytes) are random
bytes used in turn.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from logstore.bench.perf import ceilings
from logstore.bench.perf.common import (
    add_common_arguments,
    ceiling_dir,
    emit,
    end_offsets_total,
    ensure_topic,
    machine,
    parse_props,
    positive_int,
    target_broker,
)
from logstore.bench.perf.progress import StatusReporter
from logstore.bench.perf.stats import Latency, rate, summarize, summary_line
from logstore.client.console.common import friendly
from logstore.client.producer.config import DEFAULT_BATCH_SIZE, DEFAULT_LINGER_MS, DEFAULT_PRODUCE_TRANSPORT

LATENCY_SAMPLES = 10_000
PAYLOAD_POOL = 1000
THROTTLE_SLEEP_MIN_S = 0.0005
"""Below this the throttle does not sleep (the OS would oversleep); it checks again after the next chunk."""


@dataclass(frozen=True)
class ProduceSettings:
    topic: str
    num_records: int
    record_size: int = 100
    throughput: float = -1
    batch_size: int = DEFAULT_BATCH_SIZE
    linger_ms: float = DEFAULT_LINGER_MS
    acks: str = "1"
    compression: str = "none"
    partitions: int | None = None
    key_cardinality: int = 0
    key_size: int = 16
    latency_samples: int = LATENCY_SAMPLES
    producer_props: dict[str, Any] = field(default_factory=dict)
    transport: str | None = None
    """The Producer's ``produce_transport`` ("stream" or "unary"); None keeps its default."""

    @property
    def stride(self) -> int:
        """Records per latency sample, which is also how many are sent between two looks at the clock."""
        stride = max(1, self.num_records // self.latency_samples)
        if self.throughput > 0:
            stride = min(stride, max(1, int(self.throughput // 1000)))
        return stride

    def producer_config(self) -> dict[str, Any]:
        """Keyword arguments of ``client.Producer`` (``--producer-prop`` overrides the rest)."""
        config: dict[str, Any] = {
            "acks": "all" if self.acks in ("all", "-1") else int(self.acks),
            "batch_size": self.batch_size,
            "linger_ms": self.linger_ms,
            "compression": self.compression,
            "max_request_size": max(1024 * 1024, self.batch_size),
        }
        if self.transport is not None:
            config["produce_transport"] = self.transport
        config.update(self.producer_props)
        return config


@dataclass
class ProduceResult:
    records: int
    nbytes: int
    seconds: float
    send_seconds: float
    latency: Latency
    errors: int
    first_error: str | None
    log_records: int | None
    """How many records the topic gained, read back from the broker (None if others may write to it)."""

    @property
    def records_per_s(self) -> float:
        return rate(self.records, self.seconds)

    @property
    def mb_per_s(self) -> float:
        return rate(self.nbytes, self.seconds) / (1024 * 1024)


def add_parser(subcommands: Any) -> None:
    parser = subcommands.add_parser(
        "produce",
        help="producer throughput and latency (like kafka-producer-perf-test)",
        description="Send records as fast as possible (or at --throughput) and report records/s, MB/s and "
        "latency percentiles from send() to acknowledgement, beside this machine's ceilings.",
    )
    parser.add_argument("--topic", required=True, help="the topic to write to")
    parser.add_argument("--num-records", type=positive_int, required=True, help="how many records to send")
    add_producer_arguments(parser)
    parser.add_argument(
        "--async",
        dest="use_async",
        action="store_true",
        help="send through logstore.client.aio.AsyncProducer (send_nowait) in one event loop; "
        "--throughput, --stream and progress lines are not supported with it",
    )
    transport = parser.add_mutually_exclusive_group()
    transport.add_argument(
        "--stream",
        dest="transport",
        action="store_const",
        const="stream",
        help="carry the requests on one ProduceStream (produce_transport='stream')",
    )
    transport.add_argument(
        "--unary",
        dest="transport",
        action="store_const",
        const="unary",
        help=f"one Produce call per request (produce_transport='unary'); without either flag the Producer's "
        f"default, {DEFAULT_PRODUCE_TRANSPORT!r}",
    )
    add_common_arguments(parser, security=True)
    parser.set_defaults(handler=friendly(_run))


def add_producer_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--record-size", type=positive_int, default=100, help="value bytes per record (default: 100)"
    )
    parser.add_argument(
        "--throughput", type=float, default=-1, help="records/s to aim at; -1 (default) means unthrottled"
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=DEFAULT_BATCH_SIZE,
        help=f"producer batch_size (default: the Producer's, {DEFAULT_BATCH_SIZE})",
    )
    parser.add_argument(
        "--linger-ms",
        type=float,
        default=DEFAULT_LINGER_MS,
        help=f"producer linger_ms (default: the Producer's, {DEFAULT_LINGER_MS})",
    )
    parser.add_argument("--acks", choices=["0", "1", "all", "-1"], default="1", help="(default: 1)")
    parser.add_argument(
        "--compression",
        choices=["none", "gzip", "snappy", "lz4", "zstd"],
        default="none",
        help="batch codec (default: none)",
    )
    parser.add_argument(
        "--partitions",
        type=positive_int,
        help="create the topic with this many partitions if it does not exist",
    )
    parser.add_argument(
        "--key-cardinality", type=int, default=0, help="distinct keys, used in turn; 0 (default) sends no key"
    )
    parser.add_argument("--key-size", type=positive_int, default=16, help="bytes per key (default: 16)")
    parser.add_argument(
        "--latency-samples",
        type=positive_int,
        default=LATENCY_SAMPLES,
        help=f"records timed per run, evenly spread (default: {LATENCY_SAMPLES}; all of them in smaller runs)",
    )
    parser.add_argument(
        "--producer-prop",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="any other Producer argument, e.g. buffer_memory=67108864 or max_in_flight=5",
    )


def settings_from(args: argparse.Namespace) -> ProduceSettings:
    if args.key_cardinality < 0:
        raise ValueError(f"--key-cardinality must be 0 (no key) or more, got {args.key_cardinality}")
    if args.throughput == 0 or args.throughput < -1:
        raise ValueError(f"--throughput must be a positive rate or -1 (unthrottled), got {args.throughput:g}")
    return ProduceSettings(
        topic=args.topic,
        num_records=args.num_records,
        record_size=args.record_size,
        throughput=args.throughput,
        batch_size=args.batch_size,
        linger_ms=args.linger_ms,
        acks=args.acks,
        compression=args.compression,
        partitions=args.partitions,
        key_cardinality=args.key_cardinality,
        key_size=args.key_size,
        latency_samples=args.latency_samples,
        producer_props=parse_props(args.producer_prop, "--producer-prop"),
        transport=getattr(args, "transport", None),
    )


# --- the run --------------------------------------------------------------------------------------------------


def run_produce(
    address: str,
    settings: ProduceSettings,
    reporter: StatusReporter | None,
    client_options: Mapping[str, Any] | None = None,
) -> ProduceResult:
    """Send ``settings.num_records`` records through a new Producer (with the security options
    ``client_options``) and measure them."""
    from logstore.client import Producer

    client = dict(client_options or {})
    ensure_topic(address, settings.topic, settings.partitions, client)
    before = end_offsets_total(address, settings.topic, client)
    n = settings.num_records
    stride = settings.stride
    chunks = _chunks(settings, stride)
    samples: list[int] = []
    errors: list[BaseException] = []
    clock_ns = time.perf_counter_ns

    def sampled(started_ns: int) -> Callable[[Any], None]:
        def done(future: Any) -> None:
            if future.failed():
                errors.append(future.exception_value)
            else:
                samples.append(clock_ns() - started_ns)

        return done

    with Producer(address, **settings.producer_config(), **client) as producer:
        producer.partitions_for(settings.topic)  # metadata before the clock starts, as a warm client has it
        send = producer.send
        topic = settings.topic
        keyed = settings.key_cardinality > 0
        interval = 1.0 / settings.throughput if settings.throughput > 0 else 0.0
        started = time.perf_counter()
        if reporter is not None:
            reporter.start(started)
        sent = 0
        chunk_index = 0
        while sent < n:
            first, rest = chunks[chunk_index]
            chunk_index = chunk_index + 1 if chunk_index + 1 < len(chunks) else 0
            if sent + 1 + len(rest) > n:
                rest = rest[: n - sent - 1]
            send(topic, first[0], first[1]).add_done_callback(sampled(clock_ns()))
            if keyed:
                for value, key in rest:
                    send(topic, value, key)
            else:
                for value in rest:
                    send(topic, value)
            sent += 1 + len(rest)
            if interval or reporter is not None:
                now = time.perf_counter()
                if interval:
                    ahead = started + sent * interval - now
                    if ahead > THROTTLE_SLEEP_MIN_S:
                        time.sleep(ahead)
                if reporter is not None and reporter.due(now):
                    reporter.report(now, sent, sent * settings.record_size, samples)
        send_seconds = time.perf_counter() - started
        producer.flush()
        seconds = time.perf_counter() - started
    after = end_offsets_total(address, settings.topic, client)
    return ProduceResult(
        records=n,
        nbytes=n * settings.record_size,
        seconds=seconds,
        send_seconds=send_seconds,
        latency=summarize(samples),
        errors=len(errors),
        first_error=repr(errors[0]) if errors else None,
        log_records=after - before,
    )


def _chunks(settings: ProduceSettings, stride: int) -> list[tuple[tuple[bytes, bytes | None], list[Any]]]:
    """The records to send, in chunks of ``stride``: the first (sampled) record and the rest.

    Keyless chunks hold bare values; keyed ones ``(value, key)`` pairs. There are enough chunks for every
    payload of the pool and every key to be used.
    """
    rng = random.Random(42)
    letters = range(ord("A"), ord("Z") + 1)
    payloads = [bytes(rng.choices(letters, k=settings.record_size)) for _ in range(PAYLOAD_POOL)]
    keys = [rng.randbytes(settings.key_size) for _ in range(settings.key_cardinality)]
    n_chunks = max(PAYLOAD_POOL, -(-settings.key_cardinality // stride))
    n_chunks = min(n_chunks, -(-settings.num_records // stride))
    chunks: list[tuple[tuple[bytes, bytes | None], list[Any]]] = []
    for c in range(n_chunks):
        indexes = range(c * stride, (c + 1) * stride)
        values = [payloads[i % PAYLOAD_POOL] for i in indexes]
        if keys:
            pairs = [(values[j], keys[i % len(keys)]) for j, i in enumerate(indexes)]
            chunks.append((pairs[0], pairs[1:]))
        else:
            chunks.append(((values[0], None), values[1:]))
    return chunks


# --- output -----------------------------------------------------------------------------------------------------


def result_json(
    settings: ProduceSettings, result: ProduceResult, limits: ceilings.Ceilings
) -> dict[str, Any]:
    write_ratio = result.mb_per_s / limits.write_mb_per_s if limits.write_mb_per_s else 0.0
    return {
        "tool": "produce",
        "settings": asdict(settings),
        "records": result.records,
        "bytes": result.nbytes,
        "seconds": result.seconds,
        "send_seconds": result.send_seconds,
        "records_per_s": result.records_per_s,
        "mb_per_s": result.mb_per_s,
        "latency_ms": result.latency.as_dict(),
        "errors": result.errors,
        "first_error": result.first_error,
        "log_records": result.log_records,
        "ceilings": limits.as_dict(),
        "ratio_to_file_write": write_ratio,
        "machine": machine(),
    }


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    settings = settings_from(args)
    reporter = StatusReporter("sent", args.reporting_interval / 1000) if args.reporting_interval > 0 else None
    if args.use_async and settings.throughput > 0:
        parser.error("--async does not throttle: leave --throughput out")
    if args.use_async and settings.transport == "stream":
        parser.error(
            "--async makes unary Produce calls (the asyncio producer has no stream): leave --stream out"
        )
    with target_broker(args) as target:
        if args.use_async:
            from logstore.bench.perf.aio_runs import run_produce_async

            result = run_produce_async(target.address, settings, target.client_options)
        else:
            result = run_produce(target.address, settings, reporter, target.client_options)
        limits = ceilings.measure(
            target.address,
            result.nbytes,
            fsync=settings.acks in ("all", "-1"),
            directory=ceiling_dir(args, target),
            client_options=target.client_options,
        )
    lines = [summary_line(result.records, "sent", result.seconds, result.nbytes, result.latency)]
    lines += limits.lines(mb_per_s=result.mb_per_s, latency_p50_ms=result.latency.p50)
    if result.errors:
        lines.append(f"{result.errors} sampled records failed; the first: {result.first_error}")
    emit(args, lines, result_json(settings, result, limits))
    return 1 if result.errors else 0
