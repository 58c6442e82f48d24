"""The consumer's settings, checked once: ``ConsumerConfig``.

A frozen dataclass with kafka-python's option names and defaults. Building one checks the consumer's own
options (a bad one raises ``ValueError`` naming it), resolves the deserializers and computes the seconds
values once (``request_timeout_s``, ``consumer_timeout_s``). The group's timing options are checked by
``logstore.client.groups.driver.GroupCoordinator``, which a consumer with a ``group_id`` builds from this config.

``Consumer`` builds one from its keyword options (``consumer.config``). Immutable, so safe to share.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc
from logstore.client.consumer.subscription import RESET_STRATEGIES
from logstore.client.shared.connection import DEFAULT_BOOTSTRAP
from logstore.client.shared.security import Security, SecurityOptions, security_of
from logstore.client.shared.serde import Deserializer, resolve_deserializer

FOREVER = float("inf")


@dataclass(frozen=True, slots=True)
class ConsumerConfig(SecurityOptions):
    """Every consumer option; the ``*_s`` fields are derived from the ``*_ms`` ones."""

    bootstrap_servers: str | list[str] = DEFAULT_BOOTSTRAP
    group_id: str | None = None
    auto_offset_reset: str = "latest"
    fetch_min_bytes: int = 1
    fetch_max_wait_ms: int = 500
    max_partition_fetch_bytes: int = 1024 * 1024
    fetch_max_bytes: int = 50 * 1024 * 1024
    max_poll_records: int = 500
    key_deserializer: str | Deserializer | None = None
    value_deserializer: str | Deserializer | None = None
    enable_auto_commit: bool = True
    request_timeout_ms: float = 30_000
    retry_backoff_ms: float = 100
    retry_backoff_max_ms: float = 1000
    consumer_timeout_ms: float = FOREVER
    interceptors: Sequence[grpc.UnaryUnaryClientInterceptor] = ()
    auto_commit_interval_ms: float = 5000
    group_instance_id: str | None = None
    server_assignor: str | None = None
    rebalance_timeout_ms: int = 0
    client_id: str = "logstore-python"
    check_crcs: bool = True
    session_timeout_ms: int | None = None
    heartbeat_interval_ms: int | None = None
    max_poll_interval_ms: int | None = 300_000

    request_timeout_s: float = field(init=False)
    consumer_timeout_s: float = field(init=False)
    """``inf`` (the default): iterating waits for records forever."""
    security: Security = field(init=False)
    """The channel's security, from the ``security_protocol``, ``ssl_*`` and ``sasl_*`` options."""

    def __post_init__(self) -> None:
        for name in ("fetch_min_bytes", "max_partition_fetch_bytes", "fetch_max_bytes", "max_poll_records"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.fetch_max_wait_ms < 0:
            raise ValueError(f"fetch_max_wait_ms must not be negative, got {self.fetch_max_wait_ms}")
        if self.auto_offset_reset not in RESET_STRATEGIES:
            raise ValueError(
                f"auto_offset_reset must be one of {', '.join(RESET_STRATEGIES)}, got {self.auto_offset_reset!r}"
            )
        put = object.__setattr__  # frozen: only here, while it is being built
        put(self, "key_deserializer", resolve_deserializer(self.key_deserializer, "key_deserializer"))
        put(self, "value_deserializer", resolve_deserializer(self.value_deserializer, "value_deserializer"))
        put(self, "interceptors", tuple(self.interceptors))
        put(self, "security", security_of(self))
        put(self, "request_timeout_s", self.request_timeout_ms / 1000.0)
        put(self, "consumer_timeout_s", self.consumer_timeout_ms / 1000.0)
