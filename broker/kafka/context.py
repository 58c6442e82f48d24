"""What a Kafka request handler may use: the domain, the broker's limits, and where this broker is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from logstore.broker.domain.core import BrokerCore
from logstore.broker.service.answers import AnswerBudget, Lease

NODE_ID = 0
"""This broker's node id: the only node of its cluster, leader of every partition."""
CLUSTER_ID = "logstore"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """The host and port clients are told to connect to (Metadata's one broker)."""

    host: str
    port: int


@dataclass(frozen=True, slots=True)
class RequestContext:
    core: BrokerCore
    endpoint: Endpoint
    produce_timeout_ms: int
    """acks=all's fsync wait when a produce request says 0."""
    fetch_max_bytes: int
    """Most bytes of batches in one fetch answer, whatever the request asks."""
    answers: AnswerBudget
    """The broker's budget of answer bytes not yet taken by clients (shared with the gRPC services)."""
    connection: str
    """This connection's name in `answers`."""
    client_id: str | None = None
    """The client id of the connection's requests (its last request's header)."""


@dataclass(frozen=True, slots=True)
class Held:
    """An answer whose batches count against the answer budget until it has been written."""

    answer: Any
    lease: Lease
