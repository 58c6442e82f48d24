"""The share consumer's settings, checked once: ``ShareConsumerConfig``, for ``ShareConsumer`` and
``AsyncShareConsumer`` alike (Kafka's and kafka-python's names; a bad option raises ``ValueError`` naming
it). Immutable, so safe to share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc
from logstore.client.consumer.config import FOREVER
from logstore.client.shared.connection import DEFAULT_BOOTSTRAP
from logstore.client.shared.security import Security, SecurityOptions, security_of
from logstore.client.shared.serde import Deserializer, resolve_deserializer
from logstore.wire.logstore.v1 import share_pb2

ACKNOWLEDGEMENT_MODES = ("implicit", "explicit")
ACQUIRE_MODES = {
    "batch_optimized": share_pb2.SHARE_ACQUIRE_MODE_BATCH_OPTIMIZED,
    "record_limit": share_pb2.SHARE_ACQUIRE_MODE_RECORD_LIMIT,
}


@dataclass(frozen=True, slots=True)
class ShareConsumerConfig(SecurityOptions):
    """Every share consumer option; ``acquire_mode`` and the ``*_s`` fields are derived."""

    group_id: str
    bootstrap_servers: str | list[str] = DEFAULT_BOOTSTRAP
    acknowledgement_mode: str = "implicit"
    priority: bool = False
    max_poll_records: int = 500
    share_acquire_mode: str = "batch_optimized"
    fetch_max_wait_ms: int = 500
    fetch_max_bytes: int = 50 * 1024 * 1024
    client_id: str = "logstore-python"
    key_deserializer: str | Deserializer | None = None
    value_deserializer: str | Deserializer | None = None
    request_timeout_ms: float = 30_000
    retry_backoff_ms: float = 100
    retry_backoff_max_ms: float = 1000
    consumer_timeout_ms: float = FOREVER
    interceptors: Sequence[grpc.UnaryUnaryClientInterceptor] = ()

    implicit: bool = field(init=False)
    acquire_mode: int = field(init=False)
    request_timeout_s: float = field(init=False)
    consumer_timeout_s: float = field(init=False)
    security: Security = field(init=False)
    """The channel's security, from the ``security_protocol``, ``ssl_*`` and ``sasl_*`` options."""

    def __post_init__(self) -> None:
        if not isinstance(self.group_id, str) or not self.group_id:
            raise ValueError(f"group_id must be a non-empty string, got {self.group_id!r}")
        if self.acknowledgement_mode not in ACKNOWLEDGEMENT_MODES:
            raise ValueError(
                f"acknowledgement_mode must be 'implicit' or 'explicit', got {self.acknowledgement_mode!r}"
            )
        for name in ("max_poll_records", "fetch_max_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.share_acquire_mode not in ACQUIRE_MODES:
            raise ValueError(
                "share_acquire_mode must be 'batch_optimized' or 'record_limit', "
                f"got {self.share_acquire_mode!r}"
            )
        if not isinstance(self.fetch_max_wait_ms, int) or self.fetch_max_wait_ms < 0:
            raise ValueError(f"fetch_max_wait_ms must be a non-negative int, got {self.fetch_max_wait_ms!r}")
        if self.request_timeout_ms <= 0:
            raise ValueError(f"request_timeout_ms must be positive, got {self.request_timeout_ms}")
        put = object.__setattr__  # frozen: only here, while it is being built
        put(self, "priority", bool(self.priority))
        put(self, "key_deserializer", resolve_deserializer(self.key_deserializer, "key_deserializer"))
        put(self, "value_deserializer", resolve_deserializer(self.value_deserializer, "value_deserializer"))
        put(self, "interceptors", tuple(self.interceptors))
        put(self, "security", security_of(self))
        put(self, "implicit", self.acknowledgement_mode == "implicit")
        put(self, "acquire_mode", ACQUIRE_MODES[self.share_acquire_mode])
        put(self, "request_timeout_s", self.request_timeout_ms / 1000.0)
        put(self, "consumer_timeout_s", self.consumer_timeout_ms / 1000.0)
