"""The producer's settings, checked once: ``ProducerConfig``.

A frozen dataclass with kafka-python's option names and Kafka's defaults. Building one validates every
option (a bad one raises ``ValueError`` naming it), normalises the ones with several spellings (``acks``
``"all"`` is -1; ``enable_idempotence`` None becomes its default; the serializers are resolved) and
computes once what the producer's parts need in other units (``linger_s``, ``request_timeout_s``, ...),
so the accumulator, the sender and ``send()`` read ready values instead of converting milliseconds each.

``Producer`` builds one from its keyword options (``producer.config``); the accumulator and the sender
take it whole. Immutable, so safe to share between threads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import InitVar, dataclass, field
from typing import Any

from logstore.client.shared.connection import DEFAULT_BOOTSTRAP, Interceptor
from logstore.client.shared.security import Security, SecurityOptions, security_of
from logstore.client.shared.serde import Serializer, resolve_serializer

from logstore.records import GZIP, LZ4, NONE, SNAPPY, ZSTD

COMPRESSION = {"none": NONE, None: NONE, "gzip": GZIP, "snappy": SNAPPY, "lz4": LZ4, "zstd": ZSTD}
ACKS = {0: 0, 1: 1, -1: -1, "all": -1, "0": 0, "1": 1, "-1": -1}
DEFAULT_BATCH_SIZE = 256 * 1024
"""Chosen by measurement (bench/README.md, "Fast by default"): big enough that the five batches of a
partition one request may hold fill ``max_request_size``, small enough that 128 partitions can each
hold an open batch in the default ``buffer_memory``. A batch reserves this much only while open."""
DEFAULT_LINGER_MS = 5
"""Only while requests are in flight: with none, a record is sent at once."""
PRODUCE_TRANSPORTS = ("stream", "unary")
DEFAULT_PRODUCE_TRANSPORT = "stream"
"""Chosen by measurement (bench/README.md, "Stream or unary": ahead or level in each same-run series)."""
MAX_IN_FLIGHT_IDEMPOTENT = 5
"""The broker remembers the last five batches per producer and partition, so it can deduplicate at most
five requests in flight."""


def _compression_refusal(name: str, codec: object) -> str:
    return f"{name} must be 'none', 'gzip', 'snappy', 'lz4' or 'zstd', got {codec!r}"


@dataclass(frozen=True, slots=True)
class ProducerConfig(SecurityOptions):
    """Every producer option, validated; the ``*_s`` fields and ``compression`` are derived from them.

    ``spelled`` (not stored) maps a field to the name the caller used for it (``Producer``'s shorter
    ``compression`` or ``max_in_flight``), so an error names the option as the caller wrote it.
    """

    bootstrap_servers: str | list[str] = DEFAULT_BOOTSTRAP
    acks: int | str = 1
    batch_size: int = DEFAULT_BATCH_SIZE
    linger_ms: float = DEFAULT_LINGER_MS
    compression_type: str | None = "none"
    max_in_flight_requests_per_connection: int = 5
    retries: int | None = None
    delivery_timeout_ms: float = 120_000
    request_timeout_ms: float = 30_000
    retry_backoff_ms: float = 100
    retry_backoff_max_ms: float = 1000
    buffer_memory: int = 32 * 1024 * 1024
    max_block_ms: float = 60_000
    max_request_size: int = 1024 * 1024
    enable_idempotence: bool | None = None
    key_serializer: str | Serializer | None = None
    value_serializer: str | Serializer | None = None
    auto_create_topics: bool = True
    metadata_max_age_ms: float = 300_000
    client_id: str | None = None
    interceptors: Sequence[Interceptor] = ()
    produce_transport: str = DEFAULT_PRODUCE_TRANSPORT
    """How the threaded Producer carries its requests: ``"stream"``, in order on one long-lived
    ProduceStream (an idempotent producer then keeps several requests of a partition in flight), or
    ``"unary"``, one Produce call each (a partition in one call at a time). The asyncio producer always
    makes unary calls."""
    spelled: InitVar[Mapping[str, str] | None] = None

    compression: int = field(init=False)
    """The ``logstore.records`` codec of ``compression_type``."""
    linger_s: float = field(init=False)
    delivery_timeout_s: float = field(init=False)
    request_timeout_s: float = field(init=False)
    max_block_s: float = field(init=False)
    security: Security = field(init=False)
    """The channel's security, from the ``security_protocol``, ``ssl_*`` and ``sasl_*`` options."""

    def __post_init__(self, spelled: Mapping[str, str] | None) -> None:
        def name(option: str) -> str:
            return spelled.get(option, option) if spelled else option

        def put(option: str, value: Any) -> None:
            object.__setattr__(self, option, value)  # frozen: only here, while it is being built

        if self.acks not in ACKS:
            raise ValueError(f"acks must be 0, 1 or 'all' (-1), got {self.acks!r}")
        acks = ACKS[self.acks]
        put("acks", acks)
        if self.compression_type not in COMPRESSION:
            raise ValueError(_compression_refusal(name("compression_type"), self.compression_type))
        put("compression", COMPRESSION[self.compression_type])
        put("compression_type", self.compression_type or "none")
        idempotent = self.enable_idempotence
        if idempotent is None:
            idempotent = acks != 0
        elif idempotent and acks == 0:
            raise ValueError("enable_idempotence needs acknowledgements: use acks=1 or 'all', or turn it off")
        put("enable_idempotence", bool(idempotent))
        in_flight, in_flight_name = (
            self.max_in_flight_requests_per_connection,
            name("max_in_flight_requests_per_connection"),
        )
        if type(in_flight) is not int or in_flight < 1:
            raise ValueError(f"{in_flight_name} must be an integer of at least 1, got {in_flight!r}")
        if idempotent and in_flight > MAX_IN_FLIGHT_IDEMPOTENT:
            raise ValueError(
                f"with enable_idempotence, {in_flight_name} must be at most {MAX_IN_FLIGHT_IDEMPOTENT} "
                f"(the broker deduplicates that many), got {in_flight}; lower it, or pass "
                "enable_idempotence=False (retries may then reorder or duplicate records)"
            )
        if self.produce_transport not in PRODUCE_TRANSPORTS:
            raise ValueError(f"produce_transport must be 'stream' or 'unary', got {self.produce_transport!r}")
        if self.retries is not None and self.retries < 0:
            raise ValueError(f"retries must be None (until delivery_timeout_ms) or >= 0, got {self.retries}")
        if self.delivery_timeout_ms < self.linger_ms + self.request_timeout_ms:
            raise ValueError(
                f"delivery_timeout_ms ({self.delivery_timeout_ms}) must be at least linger_ms + "
                f"request_timeout_ms ({self.linger_ms + self.request_timeout_ms}), or records would expire "
                "before a first answer"
            )
        if self.batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {self.batch_size}")
        if self.max_request_size < self.batch_size:
            raise ValueError(
                f"max_request_size ({self.max_request_size}) must be at least batch_size ({self.batch_size}): "
                "a full batch must fit in a request"
            )
        if self.buffer_memory < self.batch_size:
            raise ValueError(
                f"buffer_memory ({self.buffer_memory}) must be at least batch_size ({self.batch_size})"
            )
        put("key_serializer", resolve_serializer(self.key_serializer, "key_serializer"))
        put("value_serializer", resolve_serializer(self.value_serializer, "value_serializer"))
        put("interceptors", tuple(self.interceptors))
        put("security", security_of(self))
        put("linger_s", self.linger_ms / 1000.0)
        put("delivery_timeout_s", self.delivery_timeout_ms / 1000.0)
        put("request_timeout_s", self.request_timeout_ms / 1000.0)
        put("max_block_s", self.max_block_ms / 1000.0)

    @property
    def idempotent(self) -> bool:
        """``enable_idempotence`` as resolved (on by default unless acks=0)."""
        return bool(self.enable_idempotence)
