"""The task that feeds `samples.Samples` every few seconds from the broker's counters and logs, on the
broker's event loop (where the domain may be read)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from logstore.broker.console.samples import Sample, Samples
from logstore.broker.domain.core import BrokerCore
from logstore.broker.observability.metrics import BrokerMetrics
from prometheus_client import Counter

from logstore.errors import LogStoreError

log = logging.getLogger("logstore.broker.console")


def _total(counter: Counter) -> float:
    return sum(s.value for family in counter.collect() for s in family.samples if s.name.endswith("_total"))


def take_sample(core: BrokerCore, metrics: BrokerMetrics, now_s: float) -> Sample:
    """One sample of the running broker: counter totals, end offsets, and each group's lag."""
    ends = {(lg.topic, lg.partition): lg.log_end_offset for lg in core.manager.all_logs()}
    lag: dict[str, dict[tuple[str, int], int]] = {}
    for group, topic, partition, offset in core.committed_offsets():
        end = ends.get((topic, partition))
        if end is not None:
            lag.setdefault(group, {})[(topic, partition)] = max(0, end - offset)
    return Sample(
        now_s,
        _total(metrics.records_in),
        _total(metrics.records_out),
        _total(metrics.bytes_in),
        _total(metrics.bytes_out),
        ends,
        lag,
    )


async def run_sampler(
    samples: Samples, core: Callable[[], BrokerCore | None], metrics: BrokerMetrics
) -> None:
    """Sample every `samples.interval_s` until cancelled; skips while the broker is still starting."""
    while True:
        running = core()
        if running is not None and not running.shutting_down:
            try:
                samples.add(take_sample(running, metrics, time.time()))
            except LogStoreError as exc:  # a topic deleted under our feet: the next sample will do
                log.debug("console sample skipped: %s", exc)
        await asyncio.sleep(samples.interval_s)
