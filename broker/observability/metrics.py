"""The metrics the broker counts as it serves: one object per broker, called by the listeners.

Hot-path cost is one dictionary look-up and one locked add per partition of a request (never per record):
each label set's child is made once and cached here. Record counts come from the append's outcome, and
for answers from the batch headers (one struct read per batch). `DISABLED` keeps no metrics at all
(`--no-http`), so the cost of counting can be measured against it.

Names follow Kafka's exporters and Redpanda, prefixed `logstore_`; docs/metrics.md lists every one
(tests/test_broker_metrics.py checks the list against what is exposed).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Any

from logstore.broker.domain.share.values import AcquiredRecords
from logstore.broker.domain.values import AppendOutcome, PartitionRead, ProduceEntry
from logstore.broker.errors import mapping_for
from logstore.wire.logstore.v1 import common_pb2
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from logstore.records.layout import (
    HEADER_SIZE,
    LENGTH_FIELD_END,
    LENGTH_OFFSET,
    MIN_BATCH_LENGTH,
    RECORD_COUNT_OFFSET,
)

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Seconds: from a cached append to a long-poll's usual wait."""
FSYNC_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
"""Seconds: from an SSD's write cache to a slow disk."""
LISTENERS = ("grpc", "kafka")


def error_name(error: BaseException) -> str:
    """The error's `logstore.v1.ErrorCode` name (both listeners use the one table, so one vocabulary)."""
    return common_pb2.ErrorCode.Name(mapping_for(error).code).removeprefix("ERROR_CODE_")


_INT32 = struct.Struct(">i").unpack_from


def record_count(data: bytes | memoryview) -> int:
    """Records in a run of batches, from two fields of each header (no other field is read: this runs
    on every answer). Stops at a partial or malformed tail, as `iter_headers` does."""
    count = 0
    pos = 0
    last_header_start = len(data) - HEADER_SIZE
    while pos <= last_header_start:
        length = _INT32(data, pos + LENGTH_OFFSET)[0]
        if length < MIN_BATCH_LENGTH or pos + LENGTH_FIELD_END + length > len(data):
            break
        count += _INT32(data, pos + RECORD_COUNT_OFFSET)[0]
        pos += LENGTH_FIELD_END + length
    return count


class BrokerMetrics:
    """Every metric one broker keeps, in its own registry (`registry`, which /metrics serves).

    Thread-safe: prometheus_client's metrics lock themselves, and the fsync histogram is fed from the
    flush threads; the child caches are filled from the broker's event loop only.

    Hooks for other parts of the broker:
    - `auth_failures.labels(listener="grpc"|"kafka", mechanism="PLAIN"|"SCRAM-SHA-256"|...).inc()` for
      each refused login (the authentication layer calls it);
    - `observe_fsync(seconds)` is the engine's `on_fsync` callback.
    """

    enabled = True

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.bytes_in = Counter(
            "logstore_topic_bytes_in",
            "Bytes of record batches appended, per topic.",
            ["topic"],
            registry=registry,
        )
        self.bytes_out = Counter(
            "logstore_topic_bytes_out",
            "Bytes of record batches sent to consumers, per topic.",
            ["topic"],
            registry=registry,
        )
        self.records_in = Counter(
            "logstore_topic_records_in", "Records appended, per topic.", ["topic"], registry=registry
        )
        self.records_out = Counter(
            "logstore_topic_records_out",
            "Records in the batches sent to consumers, per topic.",
            ["topic"],
            registry=registry,
        )
        self.requests = Counter(
            "logstore_requests",
            "Requests received, per listener and API.",
            ["listener", "api"],
            registry=registry,
        )
        self.request_seconds = Histogram(
            "logstore_request_duration_seconds",
            "Time from a request's arrival to its answer, per listener and API (streams: not observed).",
            ["listener", "api"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.produce_errors = Counter(
            "logstore_produce_errors",
            "Partitions of produce requests refused, per listener and error code.",
            ["listener", "code"],
            registry=registry,
        )
        self.fetch_errors = Counter(
            "logstore_fetch_errors",
            "Partitions of fetch answers that carried an error, per listener and error code.",
            ["listener", "code"],
            registry=registry,
        )
        self.fsync_seconds = Histogram(
            "logstore_fsync_duration_seconds",
            "Time one partition flush spent in fsync.",
            buckets=FSYNC_BUCKETS,
            registry=registry,
        )
        self.connections = Gauge(
            "logstore_connections",
            "Client connections open now, per listener.",
            ["listener"],
            registry=registry,
        )
        self.connections_opened = Counter(
            "logstore_connections_opened",
            "Client connections accepted since the start, per listener.",
            ["listener"],
            registry=registry,
        )
        self.auth_failures = Counter(
            "logstore_authentication_failures",
            "Logins refused, per listener and mechanism (PLAIN, SCRAM-SHA-*, basic, none).",
            ["listener", "mechanism"],
            registry=registry,
        )
        self._topic_children: dict[str, tuple[Any, Any, Any, Any]] = {}
        self._request_children: dict[tuple[str, str], tuple[Any, Any]] = {}

    # --- called by the listeners ----------------------------------------------------------------------

    def _topic(self, topic: str) -> tuple[Any, Any, Any, Any]:
        children = self._topic_children.get(topic)
        if children is None:
            children = (
                self.bytes_in.labels(topic),
                self.records_in.labels(topic),
                self.bytes_out.labels(topic),
                self.records_out.labels(topic),
            )
            self._topic_children[topic] = children
        return children

    def produced(
        self, listener: str, entries: Sequence[ProduceEntry], outcomes: Sequence[AppendOutcome]
    ) -> None:
        """Count a produce request: `outcomes` per entry, in order; empty for acks=0, whose entries are
        counted as received (their appends come after the answer)."""
        if not outcomes:
            for entry in entries:
                bytes_in, records_in, _, _ = self._topic(entry.topic)
                bytes_in.inc(len(entry.records))
                records_in.inc(record_count(entry.records))
            return
        for entry, outcome in zip(entries, outcomes, strict=False):
            if outcome.error is not None:
                self.produce_errors.labels(listener, error_name(outcome.error)).inc()
            elif outcome.record_count:
                bytes_in, records_in, _, _ = self._topic(entry.topic)
                bytes_in.inc(len(entry.records))
                records_in.inc(outcome.record_count)

    def fetched(self, listener: str, reads: Sequence[PartitionRead]) -> None:
        """Count an answer's batches (a fetch, or one message of a subscription)."""
        for read in reads:
            if read.error is not None:
                self.fetch_errors.labels(listener, error_name(read.error)).inc()
            elif read.records:
                _, _, bytes_out, records_out = self._topic(read.topic)
                bytes_out.inc(len(read.records))
                records_out.inc(record_count(read.records))

    def records_fetched(self, listener: str, topic: str, records: int, size: int) -> None:
        """Count plain records handed out one by one (FetchRecords): `size` is their keys', values' and
        headers' bytes, since no batch is sent."""
        if records:
            _, _, bytes_out, records_out = self._topic(topic)
            bytes_out.inc(size)
            records_out.inc(records)

    def share_fetched(self, listener: str, partitions: Sequence[AcquiredRecords]) -> None:
        """Count a share fetch's batches (whole batches, as a fetch counts them)."""
        for acquired in partitions:
            if acquired.records:
                _, _, bytes_out, records_out = self._topic(acquired.topic)
                bytes_out.inc(len(acquired.records))
                records_out.inc(record_count(acquired.records))

    def _request(self, listener: str, api: str) -> tuple[Any, Any]:
        key = (listener, api)
        children = self._request_children.get(key)
        if children is None:
            children = (self.requests.labels(listener, api), self.request_seconds.labels(listener, api))
            self._request_children[key] = children
        return children

    def request_started(self, listener: str, api: str) -> None:
        self._request(listener, api)[0].inc()

    def request_done(self, listener: str, api: str, seconds: float) -> None:
        self._request(listener, api)[1].observe(seconds)

    def connection_opened(self, listener: str) -> None:
        self.connections.labels(listener).inc()
        self.connections_opened.labels(listener).inc()

    def connection_closed(self, listener: str) -> None:
        self.connections.labels(listener).dec()

    def count_connections(self, listener: str, count: Callable[[], int]) -> None:
        """A listener whose connections are counted when scraped (gRPC: `grpc_connections`)."""
        self.connections.labels(listener).set_function(count)

    def observe_fsync(self, seconds: float) -> None:
        self.fsync_seconds.observe(seconds)


class _Nothing:
    """Takes any metric call and keeps nothing: what the disabled metrics' hooks are."""

    def labels(self, *args: object, **kwargs: object) -> _Nothing:
        return self

    def inc(self, amount: float = 1) -> None:
        pass

    def dec(self, amount: float = 1) -> None:
        pass

    def observe(self, amount: float) -> None:
        pass


class DisabledMetrics(BrokerMetrics):
    """No metrics (`--no-http`): every call returns at once, and there is nothing to scrape."""

    enabled = False

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.auth_failures = _Nothing()  # type: ignore[assignment]

    def produced(
        self, listener: str, entries: Sequence[ProduceEntry], outcomes: Sequence[AppendOutcome]
    ) -> None:
        pass

    def fetched(self, listener: str, reads: Sequence[PartitionRead]) -> None:
        pass

    def records_fetched(self, listener: str, topic: str, records: int, size: int) -> None:
        pass

    def share_fetched(self, listener: str, partitions: Sequence[AcquiredRecords]) -> None:
        pass

    def request_started(self, listener: str, api: str) -> None:
        pass

    def request_done(self, listener: str, api: str, seconds: float) -> None:
        pass

    def connection_opened(self, listener: str) -> None:
        pass

    def connection_closed(self, listener: str) -> None:
        pass

    def count_connections(self, listener: str, count: Callable[[], int]) -> None:
        pass

    def observe_fsync(self, seconds: float) -> None:
        pass


DISABLED = DisabledMetrics()
"""The shared do-nothing metrics: the default of every listener not given real ones."""
