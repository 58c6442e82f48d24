"""The share consumer: a member of a share group (Kafka's KIP-932 queues), shaped like Kafka's
KafkaShareConsumer and confluent-kafka's ShareConsumer, with kafka-python's option names.

    with ShareConsumer("tasks", group_id="workers", bootstrap="127.0.0.1:9093") as consumer:
        for record in consumer:     # implicit mode: the next poll accepts what the last one gave
            handle(record)

Every member may get records of every partition; each record is locked to one member until it is
acknowledged (ACCEPT, RELEASE, REJECT; RENEW extends the lock) or its lock expires.

The hot path is one ShareFetch per poll, pipelined: when poll() hands out records, the next fetch is sent
at once, so the broker acquires the next records while the application works. The acknowledgements of
the records just handled go on a ShareAcknowledge sent just before that fetch, not piggy-backed on it
as Kafka's client does: the broker answers acknowledgements only once they are fsynced, and a fetch
carrying them would hand over its records only after that fsync too. Apart, the broker applies the
acknowledgements at once (freeing the lock window the fetch acquires from) and the fetch answers
without waiting for the disk; the acknowledgements' answer comes when they are durable. Records
acquired ahead and never handed out are released by close() without counting an attempt.

In a cluster every call goes to the group's share coordinator (``share_stub``: found with
FindCoordinator, found again when it moves; see docs/cluster-clients.md). A member the new coordinator
does not know rejoins; what it held is available again there, and its acknowledgements are refused
(INVALID_RECORD_STATE), as for an expired lock.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent import futures
from typing import Any

import grpc
from logstore.client.consumer.config import FOREVER
from logstore.client.groups.coordinator import moved
from logstore.client.share.acks import AcknowledgeType
from logstore.client.share.config import ShareConsumerConfig
from logstore.client.share.holdings import (
    AcknowledgementCommitCallback,
    FetchRetry,
    Holdings,
    SentAcks,
    deserialized,
    fetch_request,
    report,
)
from logstore.client.share.membership import ShareMembership
from logstore.client.share.records import ShareRecord
from logstore.client.share.rpc import Pending, acknowledgements, share_stub
from logstore.client.shared.backoff import Backoff
from logstore.client.shared.connection import DEFAULT_BOOTSTRAP, Connection
from logstore.client.shared.errors import (
    ClientError,
    ClosedError,
    IllegalStateError,
    error_from_rpc,
)
from logstore.client.shared.options import refuse_unknown_options
from logstore.client.shared.serde import Deserializer
from logstore.client.shared.types import TopicPartition
from logstore.wire.logstore.v1 import share_pb2

log = logging.getLogger(__name__)

CLOSE_FETCH_GRACE_S = 0.2
"""How long close() waits for the fetch in flight before cancelling it (see close)."""


@refuse_unknown_options
class ShareConsumer:
    """Reads records of ``topics`` as a member of the share group ``group_id``. Not thread-safe (like
    Kafka's): use it from one thread, except ``close()``.

    ``acknowledgement_mode``: "implicit" (the default; Kafka's ``share.acknowledgement.mode``) accepts
    every record of a poll that was not acknowledged otherwise when the next poll, commit or close comes;
    "explicit" wants every record acknowledged before the next poll (it raises IllegalStateError
    otherwise). ``priority=True`` serves the topics in the order given: a later topic only while every
    earlier one has nothing available. ``max_poll_records`` caps the records one poll acquires;
    ``share_acquire_mode`` (Kafka's share.acquire.mode) says how strictly: "batch_optimized" (the default,
    as in Kafka) lets a poll and the share-partition's lock window run to the end of a batch they cut, so
    batches are read once; "record_limit" never passes max_poll_records (RabbitMQ's prefetch: with 1,
    a worker holds one task even when the producer sent tasks in batches)."""

    def __init__(
        self,
        *topics: str,
        group_id: str,
        bootstrap: str | list[str] = DEFAULT_BOOTSTRAP,
        acknowledgement_mode: str = "implicit",
        priority: bool = False,
        max_poll_records: int = 500,
        share_acquire_mode: str = "batch_optimized",
        fetch_max_wait_ms: int = 500,
        fetch_max_bytes: int = 50 * 1024 * 1024,
        client_id: str = "logstore-python",
        key_deserializer: str | Deserializer | None = None,
        value_deserializer: str | Deserializer | None = None,
        request_timeout_ms: float = 30_000,
        retry_backoff_ms: float = 100,
        retry_backoff_max_ms: float = 1000,
        consumer_timeout_ms: float = FOREVER,
        bootstrap_servers: str | list[str] | None = None,
        interceptors: Sequence[grpc.UnaryUnaryClientInterceptor] = (),
        security_protocol: str = "PLAINTEXT",
        ssl_cafile: str | None = None,
        ssl_certfile: str | None = None,
        ssl_keyfile: str | None = None,
        channel_credentials: grpc.ChannelCredentials | None = None,
        sasl_mechanism: str | None = None,
        sasl_plain_username: str | None = None,
        sasl_plain_password: str | None = None,
    ) -> None:
        names = list(topics)
        if not names or not all(isinstance(t, str) and t for t in names):
            raise ValueError(f"ShareConsumer needs topic names, got {names!r}")
        self.config = config = ShareConsumerConfig(
            group_id=group_id,
            bootstrap_servers=bootstrap if bootstrap_servers is None else bootstrap_servers,
            acknowledgement_mode=acknowledgement_mode,
            priority=priority,
            max_poll_records=max_poll_records,
            share_acquire_mode=share_acquire_mode,
            fetch_max_wait_ms=fetch_max_wait_ms,
            fetch_max_bytes=fetch_max_bytes,
            client_id=client_id,
            key_deserializer=key_deserializer,
            value_deserializer=value_deserializer,
            request_timeout_ms=request_timeout_ms,
            retry_backoff_ms=retry_backoff_ms,
            retry_backoff_max_ms=retry_backoff_max_ms,
            consumer_timeout_ms=consumer_timeout_ms,
            interceptors=interceptors,
            security_protocol=security_protocol,
            ssl_cafile=ssl_cafile,
            ssl_certfile=ssl_certfile,
            ssl_keyfile=ssl_keyfile,
            channel_credentials=channel_credentials,
            sasl_mechanism=sasl_mechanism,
            sasl_plain_username=sasl_plain_username,
            sasl_plain_password=sasl_plain_password,
        )
        self.group_id = group_id
        self.topics = tuple(dict.fromkeys(names))
        self.acknowledgement_mode = acknowledgement_mode
        self._implicit = config.implicit
        self._max_wait_ms = fetch_max_wait_ms
        self._timeout_s = config.request_timeout_s
        self._consumer_timeout_s = config.consumer_timeout_s
        self._key_deserializer: Deserializer | None = config.key_deserializer  # type: ignore[assignment]
        self._value_deserializer: Deserializer | None = config.value_deserializer  # type: ignore[assignment]
        self._backoff = Backoff(retry_backoff_ms, retry_backoff_max_ms)
        self._connection = Connection(
            config.bootstrap_servers,
            max_send_bytes=4 * 1024 * 1024,
            max_receive_bytes=fetch_max_bytes,
            interceptors=config.interceptors,
            client_id=client_id,
            security=config.security,
        )
        self._stub = share_stub(self._connection, group_id, self._timeout_s)  # to the group's coordinator
        self._lock = threading.Lock()
        self._membership = ShareMembership(
            self._stub,
            group_id,
            self.topics,
            self._lock,
            client_id=client_id,
            request_timeout_s=self._timeout_s,
            retry_backoff=self._backoff,
        )
        self._member = self._membership.member
        self._holdings = Holdings(group_id)
        self._fetch: Any = None
        """The ShareFetch in flight (a grpc future), at most one."""
        self._fetch_done = threading.Event()
        self._sent: list[SentAcks] = []
        self._ready: list[ShareRecord] = []
        """Records taken in (held) but not handed out yet: commit_sync waited for their fetch."""
        self._commit_callback: AcknowledgementCommitCallback | None = None
        self._retry = FetchRetry(group_id, self._backoff, self._timeout_s)
        self._closed = False
        self._iterator: Iterator[ShareRecord] | None = None
        self._membership.start()

    # --- reading ----------------------------------------------------------------------------------------

    def poll(self, timeout_ms: float = 0) -> list[ShareRecord]:
        """The records acquired for this member, waiting up to ``timeout_ms`` for some (at most
        ``max_poll_records``). Implicit mode first accepts what the previous poll returned."""
        self._check_open()
        self._before_poll()
        pending = self._flush()
        try:
            if self._ready:  # taken in by commit_sync while it waited for the fetch's acknowledgements
                records, self._ready = self._ready, []
                if self._fetch is None and self._member.joined:
                    self._start_fetch(pending)
                    pending = {}
                return deserialized(records, self._key_deserializer, self._value_deserializer)
            return self._poll(pending, time.monotonic() + max(0.0, timeout_ms) / 1000.0)
        finally:
            if pending:  # not sent with a fetch (backing off, or no records came): on their own
                self._send(pending, None)

    def _poll(self, pending: dict, deadline: float) -> list[ShareRecord]:
        """poll()'s loop; ``pending`` is emptied of what it sends (the rest is sent by poll)."""
        membership, member = self._membership, self._member
        while True:
            now = time.monotonic()
            fetch = self._fetch
            if fetch is not None and self._fetch_done.is_set():
                records = self._take()
                if member.joined and now >= self._retry.retry_at:
                    self._start_fetch(dict(pending))  # pipelined: the broker acquires while the app works
                    pending.clear()
                if records:
                    return deserialized(records, self._key_deserializer, self._value_deserializer)
                continue
            if fetch is None and member.joined and now >= self._retry.retry_at:
                self._start_fetch(dict(pending))
                pending.clear()
            elif pending and fetch is not None:
                self._send(dict(pending), None)  # frees the locks (and the window) the fetch may wait for
                pending.clear()
            remaining = deadline - now
            if remaining <= 0:
                return []
            if self._fetch is not None:
                self._fetch_done.wait(remaining)
            else:  # not joined yet, or backing off after a failed fetch
                with membership.changed:
                    self._member.raise_errors()
                    wait = remaining if not member.joined else min(remaining, self._retry.retry_at - now)
                    if wait > 0:
                        membership.changed.wait(wait)
                self._member.raise_errors()
            if not self._fetch_done.is_set() and time.monotonic() >= deadline:
                return []

    def __iter__(self) -> Iterator[ShareRecord]:
        """Records one by one, polling for more; stops after ``consumer_timeout_ms`` without any (default:
        never) or when closed. In implicit mode asking for the record after a poll's last accepts them."""
        if self._iterator is None:
            self._iterator = itertools.chain.from_iterable(self._polls())
        return self._iterator

    def __next__(self) -> ShareRecord:
        return next(iter(self))

    def _polls(self) -> Iterator[list[ShareRecord]]:
        idle_since = time.monotonic()
        while not self._closed:
            wait_s = min(self._consumer_timeout_s - (time.monotonic() - idle_since), 1.0)
            if wait_s < 0:
                return
            records = self.poll(timeout_ms=wait_s * 1000)
            if records:
                idle_since = time.monotonic()
                yield records

    # --- acknowledging ------------------------------------------------------------------------------------

    def acknowledge(
        self, record: ShareRecord, type: AcknowledgeType = AcknowledgeType.ACCEPT, delay_ms: int = 0
    ) -> None:
        """Decide about one record of a poll; sent with the next poll, commit or close. ``delay_ms``
        (RELEASE only) keeps the record from being delivered again for that long."""
        self._holdings.acknowledge(record, type, delay_ms)

    def set_acknowledgement_commit_callback(self, callback: AcknowledgementCommitCallback | None) -> None:
        """Kafka's setAcknowledgementCommitCallback: told of every acknowledgement's outcome (see
        ``AcknowledgementCommitCallback``). Without one, refused acknowledgements are logged."""
        self._commit_callback = callback

    def commit_sync(self, timeout_ms: float | None = None) -> dict[TopicPartition, Exception]:
        """Send the acknowledgements so far (in implicit mode, accepting the last poll's records) and wait
        until the broker has them on stable storage; returns the refused ones' errors per partition."""
        self._check_open()
        self._lost_check()
        pending = self._flush()
        timeout_s = self._timeout_s if timeout_ms is None else timeout_ms / 1000.0
        refused: dict[TopicPartition, Exception] = {}
        if pending:
            self._send(pending, None)
        for sent in self._sent_so_far():
            refused.update(self._wait(sent, timeout_s))
        return refused

    def commit_async(self, callback: AcknowledgementCommitCallback | None = None) -> None:
        """Send the acknowledgements so far without waiting; ``callback`` (or the commit callback) hears
        of the outcome during a later poll, commit or close."""
        self._check_open()
        self._lost_check()
        self._report_done()
        pending = self._flush()
        if pending:
            self._send(pending, callback)

    # --- closing ------------------------------------------------------------------------------------------

    def close(self, timeout_ms: float | None = None) -> None:
        """Acknowledge what is decided (implicit mode: accept the last poll's records), give back
        everything else this member holds without counting a delivery attempt, and leave the group."""
        if self._closed:
            return
        self._closed = True
        timeout_s = self._timeout_s if timeout_ms is None else timeout_ms / 1000.0
        try:
            if not self._member.lost:
                pending = dict(self._flush())
                # The fetch in flight has records that are ours until we give them back (without counting
                # an attempt), or it long-polls for records that are not there. An answer on its way
                # arrives within CLOSE_FETCH_GRACE_S; past that the fetch is cancelled rather than waited
                # out (up to fetch_max_wait_ms), and what the broker acquires for it as it is cancelled is
                # released, as an attempt, when the member leaves.
                if self._fetch is not None:
                    self._fetch_done.wait(min(timeout_s, CLOSE_FETCH_GRACE_S))
                    if self._fetch_done.is_set() or not self._fetch.cancel():
                        self._fetch_done.wait(timeout_s)
                        try:
                            self._take()
                        except ClientError as exc:
                            log.warning("share group %s: the last fetch failed: %s", self.group_id, exc)
                pending = self._holdings.release_all(pending)
                if pending and self._member.member_id:
                    self._send(pending, None)
                for sent in self._sent_so_far():
                    for tp, error in self._wait(sent, timeout_s).items():
                        log.warning(
                            "share group %s: %s: acknowledgement refused: %s", self.group_id, tp, error
                        )
        finally:
            self._membership.leave()
            self._connection.close()

    def __enter__(self) -> ShareConsumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the pieces ---------------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("this share consumer is closed")

    def _lost_check(self) -> None:
        """The broker forgot this member (its records were released): forget them too."""
        if self._member.lost:
            with self._lock:
                self._member.lost = False
            self._holdings.forget()
            self._ready = []

    def _before_poll(self) -> None:
        self._member.raise_errors()
        self._lost_check()
        self._report_done()
        if not self._implicit:
            missing = self._holdings.unacknowledged() - len(self._ready)
            if missing:
                raise IllegalStateError(
                    f"acknowledgement_mode is 'explicit': acknowledge every record of the last poll before "
                    f"polling again ({missing} not acknowledged; RENEW keeps one past a poll)"
                )

    def _flush(self) -> dict[TopicPartition, list[tuple[int, int, int]]]:
        return self._holdings.flush(self._implicit)

    def _start_fetch(self, pending: Pending) -> None:
        """Send ``pending`` on its own ShareAcknowledge (see the module's docstring), then the next fetch."""
        m = self._member
        if pending:
            self._send(pending, None)
        if not m.joined:
            return
        request = fetch_request(self.group_id, m.member_id, self.config)
        done = self._fetch_done = threading.Event()
        future = self._stub.ShareFetch.future(request, timeout=self._timeout_s + self._max_wait_ms / 1000.0)
        self._fetch = future
        future.add_done_callback(lambda _: done.set())

    def _take(self) -> list[ShareRecord]:
        """The records of the finished ShareFetch, now held; handles its errors."""
        future, self._fetch = self._fetch, None
        try:
            response = future.result()
        except grpc.RpcError as exc:
            return self._fetch_failed(error_from_rpc(exc, f"fetching for share group {self.group_id!r}"))
        try:
            records = self._holdings.take(response)
        except ClientError as exc:
            if not moved(exc):
                raise
            return self._fetch_failed(exc)
        self._retry.succeeded()
        if records is None:  # the broker forgot this member: what it held was released
            with self._lock:
                self._membership.rejoin()
            self._lost_check()
            return []
        return records

    def _fetch_failed(self, error: ClientError) -> list[ShareRecord]:
        self._retry.failed(error, time.monotonic())
        return []

    def _send(self, pending: Pending, callback: AcknowledgementCommitCallback | None) -> None:
        """A ShareAcknowledge for ``pending``, without waiting for it."""
        request = share_pb2.ShareAcknowledgeRequest(
            group_id=self.group_id,
            member_id=self._member.member_id,
            acknowledgements=acknowledgements(pending),
        )
        future = self._stub.ShareAcknowledge.future(request, timeout=self._timeout_s)
        self._sent.append(SentAcks(future, request, pending, callback, time.monotonic()))

    def _resend(self, sent: SentAcks) -> None:
        sent.call = self._stub.ShareAcknowledge.future(sent.request, timeout=self._timeout_s)

    def _sent_so_far(self) -> list[SentAcks]:
        sent, self._sent = self._sent, []
        return sent

    def _settle(self, sent: SentAcks) -> dict[TopicPartition, Exception] | None:
        """The refused partitions of an answered ShareAcknowledge; None when it goes again."""
        try:
            answer = sent.call.result(timeout=0)
        except grpc.RpcError as exc:
            answer = error_from_rpc(exc, f"acknowledging for share group {self.group_id!r}")
        return sent.settle(answer, time.monotonic(), self._backoff, self._timeout_s)

    def _wait(self, sent: SentAcks, timeout_s: float) -> dict[TopicPartition, Exception]:
        """Wait for one ShareAcknowledge (sending it again while the coordinator moved); report it; the
        refused partitions' errors."""
        deadline = time.monotonic() + timeout_s
        while True:
            if sent.call is None:  # to go again, after its backoff
                pause = sent.retry_at - time.monotonic()
                if pause >= deadline - time.monotonic():
                    refused = sent.given_up()
                    break
                if pause > 0:
                    time.sleep(pause)
                self._resend(sent)
            try:
                sent.call.result(timeout=max(0.0, deadline - time.monotonic()))
            except (grpc.FutureTimeoutError, futures.TimeoutError):
                sent.call.cancel()
                error = ClientError(
                    f"share group {self.group_id!r}: no answer to the acknowledgements in "
                    f"{timeout_s * 1000:.0f} ms"
                )
                refused = dict.fromkeys(sent.pending, error)
                break
            except grpc.RpcError:
                pass  # settled below
            settled = self._settle(sent)
            if settled is not None:
                refused = settled
                break
        report(self.group_id, sent.pending, refused, sent.callback or self._commit_callback)
        return refused

    def _report_done(self) -> None:
        """Report the ShareAcknowledges that have been answered (callbacks run here, in the app's thread);
        send again those due to go again."""
        if not self._sent:
            return
        waiting = []
        now = time.monotonic()
        for sent in self._sent:
            if sent.call is None:
                if now >= sent.retry_at:
                    self._resend(sent)
                waiting.append(sent)
            elif not sent.call.done() or (refused := self._settle(sent)) is None:
                waiting.append(sent)
            else:
                report(self.group_id, sent.pending, refused, sent.callback or self._commit_callback)
        self._sent = waiting


__all__ = ["AcknowledgeType", "ShareConsumer", "ShareRecord"]
