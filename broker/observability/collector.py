"""Metrics read from the broker's state at scrape time, so they cost nothing while serving: each
partition's log start and end offsets and size, each consumer group's committed offset and lag (end
offset minus committed offset, kafka_exporter's `kafka_consumergroup_lag`), and each share-partition's
records in flight and archived.

Runs on the broker's event loop (the HTTP endpoint serves from it), where the domain may be read.
"""

from __future__ import annotations

from collections.abc import Iterator

from logstore.broker.domain.core import BrokerCore
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from logstore.errors import LogStoreError

PARTITION = ["topic", "partition"]
GROUP_PARTITION = ["group", "topic", "partition"]


class StateCollector(Collector):
    """Partition, consumer-group and share-group figures of one broker, computed when scraped.

    Not thread-safe: `collect` reads the domain, so it must run on the broker's event loop."""

    def __init__(self, core: BrokerCore) -> None:
        self._core = core

    def describe(self) -> list[GaugeMetricFamily | CounterMetricFamily]:
        return list(self._families())

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        start, end, size = self._partitions()
        yield start
        yield end
        yield size
        yield from self._groups()
        yield from self._share_groups()

    def _families(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        """The families without samples (for the registry's describe)."""
        yield from _partition_families()
        yield from _group_families()
        yield from _share_families()

    def _partitions(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        start, end, size = _partition_families()
        for partition_log in self._core.manager.all_logs():
            labels = [partition_log.topic, str(partition_log.partition)]
            start.add_metric(labels, partition_log.log_start_offset)
            end.add_metric(labels, partition_log.log_end_offset)
            size.add_metric(labels, partition_log.size_in_bytes)
        return start, end, size

    def _groups(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        current, lag = _group_families()
        manager = self._core.manager
        for group, topic, partition, offset in self._core.committed_offsets():
            try:
                end = manager.log(topic, partition).log_end_offset
            except LogStoreError:  # the topic is gone or shrank: no lag to speak of
                continue
            labels = [group, topic, str(partition)]
            current.add_metric(labels, offset)
            lag.add_metric(labels, max(0, end - offset))
        return current, lag

    def _share_groups(self) -> tuple[GaugeMetricFamily, CounterMetricFamily]:
        in_flight, archived = _share_families()
        for group, topic, partition, flying, archived_total in self._core.share_partition_counts():
            labels = [group, topic, str(partition)]
            in_flight.add_metric(labels, flying)
            archived.add_metric(labels, archived_total)
        return in_flight, archived


def _partition_families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
    return (
        GaugeMetricFamily(
            "logstore_partition_log_start_offset",
            "First offset still in the partition's log.",
            labels=PARTITION,
        ),
        GaugeMetricFamily(
            "logstore_partition_log_end_offset",
            "Offset the partition's next record will get (its high watermark).",
            labels=PARTITION,
        ),
        GaugeMetricFamily(
            "logstore_partition_size_bytes", "Bytes of the partition's segments on disk.", labels=PARTITION
        ),
    )


def _group_families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
    return (
        GaugeMetricFamily(
            "logstore_consumergroup_current_offset",
            "Offset a consumer group committed for a partition.",
            labels=GROUP_PARTITION,
        ),
        GaugeMetricFamily(
            "logstore_consumergroup_lag",
            "Records a consumer group has not committed yet: log end offset minus committed offset.",
            labels=GROUP_PARTITION,
        ),
    )


def _share_families() -> tuple[GaugeMetricFamily, CounterMetricFamily]:
    return (
        GaugeMetricFamily(
            "logstore_sharegroup_records_in_flight",
            "Records of a share-partition delivered or deliverable but not acknowledged or archived yet.",
            labels=GROUP_PARTITION,
        ),
        CounterMetricFamily(
            "logstore_sharegroup_records_archived",
            "Records a share group archived (rejected, or past the delivery count limit) on a partition.",
            labels=GROUP_PARTITION,
        ),
    )
