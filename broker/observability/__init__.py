"""The broker's observability: Prometheus metrics, the scrape-time collector, and the HTTP endpoint that
serves /metrics, /healthz and /readyz.

The listeners (gRPC services, Kafka connections) call `BrokerMetrics`' methods with plain values; the
engine knows none of this (it only reports fsync times through a callback). Each broker has its own
`CollectorRegistry`, so several brokers in one process (tests, `--own-broker`) never share a count.
"""

from __future__ import annotations

from logstore.broker.observability.collector import StateCollector
from logstore.broker.observability.http import HttpEndpoint, Readiness
from logstore.broker.observability.metrics import DISABLED, BrokerMetrics

__all__ = ["DISABLED", "BrokerMetrics", "HttpEndpoint", "Readiness", "StateCollector"]
