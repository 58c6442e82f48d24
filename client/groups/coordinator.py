"""Group calls sent to the group's coordinator: ``CoordinatorStub`` looks like a GroupServiceStub (or,
with ``kind="share"``, a ShareServiceStub), but each call goes to the broker FindCoordinator names for the
group (the leader of the group's ``__consumer_offsets`` or ``__share_group_state`` partition), found again
after an answer of NOT_COORDINATOR or NOT_AVAILABLE or a coordinator that could not be reached; the call
itself still fails (retriable), and the caller's usual retry reaches the new coordinator
(``call_coordinator`` is that retry for one-off calls, the admin client's). A broker alone coordinates
every group: its calls go to it, as before clusters.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc
from logstore.client.shared.backoff import Backoff
from logstore.client.shared.connection import BrokerChannel, Connection
from logstore.client.shared.errors import (
    ERROR_CODE_KEY,
    BrokerUnavailableError,
    ClientError,
    LocalUnavailable,
    NotAvailableError,
    NotCoordinatorError,
    RequestTimedOutError,
    error_from_rpc,
    trailer_code,
)
from logstore.client.shared.metadata import describe_cluster
from logstore.wire.logstore.v1 import admin_pb2, common_pb2

log = logging.getLogger(__name__)

MOVED_STATUSES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
MOVED_CODES = frozenset({common_pb2.ERROR_CODE_NOT_COORDINATOR, common_pb2.ERROR_CODE_NOT_AVAILABLE})
"""Error codes (in a trailer or an answer's ``error_code``) that say: no longer (or not yet) coordinating."""


class CoordinatorStub:
    """Thread-safe: the coordinator found is kept under a lock; calls run on the callers' threads.

    ``make_stub`` builds the service's stub on a channel (the GroupService's, or the ShareService's)."""

    def __init__(
        self,
        connection: Connection,
        make_stub: Callable[[grpc.Channel], Any],
        group_id: str,
        *,
        kind: str = "group",
        timeout_s: float = 30.0,
    ) -> None:
        self._connection = connection
        self._make_stub = make_stub
        self.group_id = group_id
        self._kind = kind
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        self._found: tuple[BrokerChannel, Any] | None = None

    def coordinator(self) -> Any:
        """The stub on the coordinator's channel (looked up if not known)."""
        with self._lock:
            found = self._found
        if found is not None:
            return found[1]
        channel = self._find()
        stub = self._make_stub(channel.calls)
        with self._lock:
            self._found = (channel, stub)
        return stub

    def address(self) -> str:
        """The coordinator's address (looked up if not known; blocking: the asyncio group calls it in a
        thread). Raises the client's error when it cannot be found."""
        self.coordinator()
        with self._lock:
            found = self._found
        return found[0].address if found is not None else self._connection.address

    def forget(self) -> None:
        """The coordinator moved or is away: look it up again before the next call."""
        with self._lock:
            self._found = None

    def _find(self) -> BrokerChannel:
        connection = self._connection
        cluster = connection.cluster
        if not cluster.learned:
            try:
                describe_cluster(connection, self._timeout_s)
            except ClientError as exc:
                if exc.retriable:
                    raise
                cluster.learned = True  # an older broker without DescribeCluster: alone
        if not cluster.clustered:
            return connection.current
        request = admin_pb2.FindCoordinatorRequest(kind=self._kind, key=self.group_id)
        try:
            answer = connection.call_any(
                lambda channel: channel.admin.FindCoordinator(request, timeout=self._timeout_s),
                f"finding the coordinator of {self._kind} {self.group_id!r}",
            )
        except grpc.RpcError as exc:
            raise error_from_rpc(exc, f"finding the coordinator of {self._kind} {self.group_id!r}") from None
        channel = connection.for_broker(answer.broker_id)
        if channel is None:  # a broker newer than the map: learn it
            describe_cluster(connection, self._timeout_s)
            channel = connection.for_broker(answer.broker_id)
        if channel is None:
            raise error_from_rpc(
                LocalUnavailable(f"coordinator broker {answer.broker_id} is not among the live brokers"),
                f"finding the coordinator of {self._kind} {self.group_id!r}",
            )
        log.debug("%s %s: coordinator is broker %d", self._kind, self.group_id, answer.broker_id)
        return channel

    def observe(self, outcome: object) -> None:
        """After a call: forget the coordinator if the call's status or answer said it moved."""
        if isinstance(outcome, grpc.RpcError):
            code = trailer_code(outcome)
            status = outcome.code() if callable(getattr(outcome, "code", None)) else None
            if code in MOVED_CODES or (code is None and status in MOVED_STATUSES):
                self.forget()
        elif getattr(outcome, "error_code", 0) in MOVED_CODES:
            self.forget()

    def __getattr__(self, method: str) -> _Method:
        if method.startswith("_"):
            raise AttributeError(method)
        return _Method(self, method)


class _Method:
    """One of the service's calls, made on the coordinator's stub: ``method(request, timeout=)`` and
    ``method.future(request, timeout=)``, as a grpc stub's."""

    def __init__(self, owner: CoordinatorStub, method: str) -> None:
        self._owner = owner
        self._method = method

    def _target(self) -> Any:
        try:
            return getattr(self._owner.coordinator(), self._method)
        except ClientError as exc:  # no coordinator found: fail the call as the broker would
            raise Lookup(exc) from None

    def __call__(self, request: Any, **options: Any) -> Any:
        try:
            answer = self._target()(request, **options)
        except grpc.RpcError as exc:
            self._owner.observe(exc)
            raise
        self._owner.observe(answer)
        return answer

    def future(self, request: Any, **options: Any) -> Any:
        """As a grpc stub's: failures come through the future, a coordinator not found too."""
        try:
            target = self._target()
        except Lookup as exc:
            failed: futures.Future[Any] = futures.Future()
            failed.set_exception(exc)
            return failed
        future = target.future(request, **options)

        def done(call: grpc.Future) -> None:
            if call.cancelled():
                return
            error = call.exception()
            self._owner.observe(error if error is not None else call.result())

        future.add_done_callback(done)
        return future


class Lookup(LocalUnavailable):
    """The coordinator could not be found: the call fails as UNAVAILABLE (retriable) saying why, with the
    broker's error code when one answered (NOT_AVAILABLE: none coordinates the group yet), so that it is
    not taken for a broker that could not be reached."""

    def __init__(self, cause: ClientError) -> None:
        super().__init__(str(cause))
        self._code = cause.code

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:  # type: ignore[override]
        return () if self._code is None else ((ERROR_CODE_KEY, str(self._code)),)


ADMIN_BACKOFF = Backoff(100, 1000)
"""Between the admin client's attempts (the clients' retry_backoff_ms and retry_backoff_max_ms defaults)."""


MOVED_ERRORS = (NotCoordinatorError, NotAvailableError, BrokerUnavailableError, RequestTimedOutError)
"""What a group call fails with when its coordinator moved, was away, or none coordinated for a moment."""


def moved(error: ClientError) -> bool:
    """Whether a failed group call may succeed at the group's coordinator found again, as opposed to an
    answer the coordinator would repeat (NON_EMPTY_GROUP is retriable, but not by asking again now)."""
    return isinstance(error, MOVED_ERRORS)


def call_coordinator(
    stub: Any, method: str, request: Any, what: str, *, timeout_s: float, backoff: Backoff
) -> Any:
    """``stub.<method>(request)`` (a ``CoordinatorStub``), sent again to the coordinator found again
    while it ``moved``, with ``backoff`` between attempts, until ``timeout_s`` has passed; then (or for
    any other failure) the client's error for the last failure. For calls made once (the admin's)."""
    deadline = time.monotonic() + timeout_s
    attempt = 0
    while True:
        remaining = max(0.001, deadline - time.monotonic())
        try:
            return getattr(stub, method)(request, timeout=remaining)
        except grpc.RpcError as exc:
            error = error_from_rpc(exc, what)
        attempt += 1
        pause = backoff.delay_s(attempt)
        if not moved(error) or time.monotonic() + pause >= deadline:
            raise error from None
        log.debug("%s: retrying at the coordinator found again: %s", what, error)
        time.sleep(pause)
