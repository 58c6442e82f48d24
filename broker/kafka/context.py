"""What a Kafka request handler may use: the domain, the broker's limits, and where this broker is."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from logstore.broker.domain.core import BrokerCore
from logstore.broker.kafka.share_sessions import ShareSessions
from logstore.broker.observability import DISABLED, BrokerMetrics
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
    share_sessions: ShareSessions
    """The broker's Kafka share sessions (shared by every connection: a member may reconnect)."""
    client_id: str | None = None
    """The client id of the connection's requests (its last request's header)."""
    metrics: BrokerMetrics = DISABLED
    """What the handlers count (bytes, records, errors); the connection counts requests."""


@dataclass(frozen=True, slots=True)
class Held:
    """An answer whose batches count against the answer budget until it has been written."""

    answer: Any
    lease: Lease


class Later:
    """An answer that is not ready yet (a long-poll fetch waiting for data), handed to the connection by
    a callback as soon as it is: no task and no loop iteration in between, so a fetch woken by an append
    is answered inside that append, before the producer's own answer goes out.

    The handler that returns one calls `resolve` (an answer, or None for none) or `fail` exactly once; the
    connection calls `then` once, and `cancel` if it closes first, which runs the handler's clean-up."""

    __slots__ = ("_callback", "_cleanup", "_outcome", "cancelled")

    def __init__(self, cleanup: Callable[[], None]) -> None:
        self._callback: Callable[[Later], None] | None = None
        self._cleanup: Callable[[], None] | None = cleanup
        self._outcome: tuple[Any, BaseException | None] | None = None
        self.cancelled = False

    @property
    def done(self) -> bool:
        return self._outcome is not None or self.cancelled

    def resolve(self, answer: Any) -> None:
        self._settle(answer, None)

    def fail(self, error: BaseException) -> None:
        self._settle(None, error)

    def result(self) -> Any:
        """The answer; raises what the handler failed with. Only once `done`."""
        assert self._outcome is not None
        answer, error = self._outcome
        if error is not None:
            raise error
        return answer

    def then(self, callback: Callable[[Later], None]) -> None:
        self._callback = callback
        if self._outcome is not None:
            callback(self)

    def cancel(self) -> None:
        """The connection went away: stop waiting, give back what is held (an answer already made too)."""
        if self.cancelled:
            return
        self.cancelled = True
        self._run_cleanup()
        if self._outcome is not None:
            answer, _ = self._outcome
            if isinstance(answer, Held):
                answer.lease.release_all()

    def _settle(self, answer: Any, error: BaseException | None) -> None:
        if self.done:  # cancelled meanwhile: nobody takes the answer
            if isinstance(answer, Held):
                answer.lease.release_all()
            return
        self._outcome = (answer, error)
        self._run_cleanup()
        if self._callback is not None:
            self._callback(self)

    def _run_cleanup(self) -> None:
        cleanup, self._cleanup = self._cleanup, None
        if cleanup is not None:
            cleanup()
