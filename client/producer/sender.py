"""The producer's sender thread: drains the accumulator into Produce requests and feeds the answers back.

Each drained request is split by partition leader (``Connection.leader``): one request per broker, on
that broker's channel (and, with ``"stream"``, that broker's own ProduceStream). A partition whose leader
is not known, or whose request was refused with NOT_LEADER_OR_FOLLOWER (or any stale-metadata error),
or whose broker could not be reached, fails that attempt as a retriable error: the accumulator retries
it under its usual rules (backoff, ``delivery_timeout_ms``, an idempotent batch keeps its sequence) and
the sender looks the topic's leaders up again before the retry goes out. A broker alone is broker 0 and
leads everything, so there each request goes, whole, to it as before.

It keeps up to ``max_in_flight`` requests unanswered at once. With ``produce_transport="unary"`` each
is a Produce call (a grpc future), each partition in at most one of them (the accumulator's drain sees
to that), so calls that overtake each other on the way cannot reorder a partition. With ``"stream"``
they travel in order on one ProduceStream (``stream.RequestStream``), so an idempotent producer may
keep several requests of one partition in flight. A partition's batches in one call travel as one entry, their bytes joined: the broker
appends them all or none, with consecutive offsets. It does all of the accumulator's bookkeeping under the producer's lock, but encodes batches, calls the broker and runs user callbacks
outside it, so ``send()`` is never held up by the network.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable

import grpc
from logstore.client.producer.accumulator import Accumulator, Finished, ProducerBatch
from logstore.client.producer.calls import (
    Acked,
    answered,
    by_partition,
    call_failed,
    produce_request,
    stream_answered,
)
from logstore.client.producer.config import ProducerConfig
from logstore.client.producer.stream import RequestStream
from logstore.client.shared.backoff import Backoff
from logstore.client.shared.connection import BrokerChannel, Connection
from logstore.client.shared.errors import (
    ClientError,
    InvalidMetadataError,
    NotEnoughReplicasError,
    NotLeaderOrFollowerError,
    error_from_code,
    error_from_rpc,
)
from logstore.client.shared.metadata import TopicMetadata
from logstore.wire.logstore.v1 import produce_pb2

log = logging.getLogger(__name__)

ACKS = {0: produce_pb2.ACKS_NONE, 1: produce_pb2.ACKS_LEADER, -1: produce_pb2.ACKS_ALL}

METADATA_CHECK_INTERVAL_S = 5.0

_Groups = list[list[ProducerBatch]]
"""The batches of one request, one list per partition entry."""
_Answer = tuple[
    _Groups,
    "produce_pb2.ProduceResponse | produce_pb2.ProduceStreamResponse | grpc.RpcError | ClientError",
    bool,
    int,
]
"""The batches of one request, its answer or the error that failed its call (or broke its stream, or
kept it from being sent: a ``ClientError``), whether it went on the stream, and the broker it went to."""
STALE_METADATA = (InvalidMetadataError, NotEnoughReplicasError)
"""Answers after which the partition's leader is looked up again before the retry (the ISR may have
shrunk because the leader is being replaced)."""


NEVER_SERVED = (
    grpc.StatusCode.UNIMPLEMENTED,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
)
"""A stream ended with these wrote none of its requests: the broker refused the call before reading any."""


def _status(error: grpc.RpcError) -> grpc.StatusCode | None:
    code = getattr(error, "code", None)
    return code() if callable(code) else None


class Sender(threading.Thread):
    """Runs until ``stop()``; on a graceful stop it first sends everything still buffered.

    Thread-safe with its one Producer: this thread and the producer's callers share the producer's lock.
    """

    def __init__(
        self,
        accumulator: Accumulator,
        connection: Connection,
        metadata: TopicMetadata,
        lock: threading.Lock,
        config: ProducerConfig,
        *,
        memory_freed: threading.Condition,
        retry_backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(name="logstore-producer-sender", daemon=True)
        self._accumulator = accumulator
        self._connection = connection
        self._metadata = metadata
        self._acks = ACKS[config.acks]  # type: ignore[index]  # normalised to 0, 1 or -1
        self._max_in_flight = config.max_in_flight_requests_per_connection
        self._request_timeout_s = config.request_timeout_s
        self._backoff = retry_backoff or Backoff(config.retry_backoff_ms, config.retry_backoff_max_ms)
        self._clock = clock
        self.work = threading.Condition(lock)
        """Notified on a new batch, an answer, a flush or a stop."""
        self._memory_freed = memory_freed
        self._answers: list[_Answer] = []
        self._in_flight = 0
        self._stopping = False
        self._aborted = False
        self._needs_producer_id = accumulator.idempotent
        self._next_metadata_check = clock() + METADATA_CHECK_INTERVAL_S
        self.fatal_error: BaseException | None = None
        self._streaming = config.produce_transport == "stream"
        self._streams: dict[int, RequestStream[_Groups]] = {}
        """With ``produce_transport="stream"``: the ProduceStream of each broker, carrying its requests."""
        self._stale: set[str] = set()
        """Topics whose leaders to look up again before the next drain (under the lock)."""

    # --- control (called from other threads) ------------------------------------------------------------

    def stop(self, *, abort: bool = False) -> None:
        """Ask the thread to end: after the buffer is empty, or at once (``abort``, after failing batches)."""
        with self.work:
            self._stopping = True
            self._aborted = self._aborted or abort
            self.work.notify()

    # --- the loop -----------------------------------------------------------------------------------------

    def run(self) -> None:
        try:
            self._loop()
            for stream in list(self._streams.values()):
                stream.close()
        except BaseException as exc:  # a bug: fail what is left rather than hang every flush()
            log.exception("the producer's sender thread failed; failing all buffered records")
            self.fatal_error = exc
            with self.work:
                finished = self._accumulator.abort(
                    ClientError(f"the producer's sender thread failed: {exc!r}")
                )
            self._finish(finished)

    def _loop(self) -> None:
        accumulator = self._accumulator
        while True:
            with self.work:
                answers, self._answers = self._answers, []
            if answers:
                self._handle_answers(answers)
            if self._needs_producer_id and not self._init_producer_id():
                continue
            self._refresh_metadata_if_due()
            self._refresh_stale_leaders()
            with self.work:
                if self._aborted or (
                    self._stopping and not self._in_flight and not accumulator.has_unfinished()
                ):
                    return
                now = self._clock()
                finished = accumulator.expire(now)
                if finished:
                    self._memory_freed.notify_all()
                requests: list[list[ProducerBatch]] = []
                wake: float | None = None
                while self._in_flight < self._max_in_flight:
                    batches, wake = accumulator.drain(now)
                    if not batches:
                        break
                    requests.append(batches)
                    self._in_flight += 1
                if not requests and not finished and not self._answers:
                    timeout = self._next_metadata_check - now
                    if wake is not None:
                        timeout = min(timeout, wake - now)
                    for stream in list(self._streams.values()):
                        if (due := stream.check(now)) is not None:
                            timeout = min(timeout, due - now)
                    self.work.wait(max(0.0, timeout))
                    continue
            self._finish(finished)
            for batches in requests:
                self._send(batches)

    def _refresh_metadata_if_due(self) -> None:
        """Every few seconds, refresh partition counts older than metadata_max_age_ms (outside the lock)."""
        now = self._clock()
        if now < self._next_metadata_check:
            return
        self._next_metadata_check = now + METADATA_CHECK_INTERVAL_S
        for topic in self._metadata.stale(now):
            try:
                self._metadata.refresh(topic)
            except ClientError as exc:
                log.debug("metadata refresh of %s failed: %s", topic, exc)

    def _init_producer_id(self) -> bool:
        """Get an idempotent producer id; retried with backoff while the broker is away."""
        attempt = 0
        while True:
            with self.work:
                if self._aborted or (self._stopping and not self._accumulator.has_unfinished()):
                    self._needs_producer_id = False
                    return False
                expired = self._accumulator.expire(self._clock())
            self._finish(expired)
            try:
                answer = self._connection.call_any(
                    lambda channel: channel.produce.InitProducerId(
                        produce_pb2.InitProducerIdRequest(), timeout=self._request_timeout_s
                    ),
                    "InitProducerId",
                )
            except grpc.RpcError as exc:
                error = error_from_rpc(exc, "InitProducerId")
                attempt += 1
                if attempt == 1 or attempt % 10 == 0:
                    log.warning("could not get a producer id (attempt %d, retrying): %s", attempt, error)
                deadline = self._clock() + self._backoff.delay_s(attempt)
                with self.work:  # a graceful stop still backs off (it waits for records); an abort ends it
                    while not self._aborted and (remaining := deadline - self._clock()) > 0:
                        self.work.wait(remaining)
                continue
            with self.work:
                self._accumulator.set_producer_id(answer.producer_id, answer.producer_epoch)
            self._needs_producer_id = False
            return True

    # --- calls ----------------------------------------------------------------------------------------------

    def _send(self, batches: list[ProducerBatch]) -> None:
        """Send one drained request: one call per partition leader (counted in flight as one each)."""
        by_leader: dict[int, _Groups] = {}
        channels = {}
        unroutable: _Groups = []
        for group in by_partition(batches):
            first = group[0]
            found = self._connection.leader(first.topic, first.partition)
            if found is None:
                unroutable.append(group)
                continue
            broker_id, channel = found
            by_leader.setdefault(broker_id, []).append(group)
            channels[broker_id] = channel
        parts = len(by_leader) + (1 if unroutable else 0)
        if parts > 1:
            with self.work:
                self._in_flight += parts - 1
        if unroutable:
            topics = sorted({g[0].topic for g in unroutable})
            error = NotLeaderOrFollowerError(
                f"no known leader for {', '.join(f'{g[0].topic}-{g[0].partition}' for g in unroutable)} "
                "(the partition has none right now, or its broker is not known yet): looking it up again"
            )
            with self.work:
                self._stale.update(topics)
                self._answers.append((unroutable, error, False, -1))
                self.work.notify()
        producer_id = self._accumulator.producer_id
        for broker_id, groups in by_leader.items():
            request = produce_request(groups, producer_id, self._acks)
            if self._streaming:
                self._stream_for(broker_id, channels[broker_id]).send(groups, request)
                continue
            future = channels[broker_id].produce.Produce.future(request, timeout=self._request_timeout_s)
            future.add_done_callback(lambda done, g=groups, b=broker_id: self._answered(g, done, b))

    def _stream_for(self, broker_id: int, channel: BrokerChannel) -> RequestStream[_Groups]:
        """The broker's ProduceStream (made on first use; it reopens itself after breaking). A broker
        reached at a new address (it moved) gets a new one."""
        stream = self._streams.get(broker_id)
        if stream is None or stream.address != channel.address:
            if stream is not None:
                stream.close()
            stream = RequestStream(
                channel.produce.ProduceStream,
                functools.partial(self._stream_outcome, broker_id=broker_id),
                request_timeout_s=self._request_timeout_s,
                clock=self._clock,
                address=channel.address,
            )
            self._streams[broker_id] = stream
        return stream

    def _answered(self, groups: _Groups, future: grpc.Future, broker_id: int) -> None:
        """Runs on a grpc thread: hand the answer to the sender thread."""
        try:
            outcome = future.result()
        except grpc.RpcError as exc:
            outcome = exc
        with self.work:
            self._answers.append((groups, outcome, False, broker_id))
            self.work.notify()

    def _stream_outcome(
        self, groups: _Groups, outcome: produce_pb2.ProduceStreamResponse | grpc.RpcError, broker_id: int
    ) -> None:
        """Runs on the stream's reading thread, in request order: hand the answer to the sender thread."""
        with self.work:
            self._answers.append((groups, outcome, True, broker_id))
            self.work.notify()

    # --- leaders ----------------------------------------------------------------------------------------------

    def _refresh_stale_leaders(self) -> None:
        """Look up again (outside the lock) the leaders of topics an answer showed stale."""
        with self.work:
            if not self._stale:
                return
            topics, self._stale = sorted(self._stale), set()
        for topic in topics:
            try:
                self._metadata.refresh(topic)
            except ClientError as exc:
                log.debug("looking up the leaders of %s failed (the retry looks again): %s", topic, exc)
                with self.work:
                    self._stale.add(topic)

    def _note_stale(self, groups: _Groups, outcome: object, broker_id: int) -> None:
        """Under the lock: after a failed call or refused partitions, forget what the answer showed
        wrong (a broker unreachable, a partition not led there) so the retry looks it up again."""
        cluster = self._connection.cluster
        if isinstance(outcome, grpc.RpcError):
            if broker_id >= 0 and _status(outcome) in (
                grpc.StatusCode.UNAVAILABLE,
                grpc.StatusCode.DEADLINE_EXCEEDED,
            ):
                cluster.forget_broker(broker_id)
            self._stale.update(g[0].topic for g in groups)
            return
        if isinstance(outcome, ClientError):
            return  # unroutable: already marked
        if isinstance(outcome, produce_pb2.ProduceStreamResponse):
            results = outcome.response.results
        elif isinstance(outcome, produce_pb2.ProduceResponse):
            results = outcome.results
        else:
            return
        for group, result in zip(groups, results, strict=False):
            if result.error_code and isinstance(error_from_code(result.error_code, ""), STALE_METADATA):
                cluster.forget_leader(group[0].topic, group[0].partition)
                self._stale.add(group[0].topic)

    def _handle_answers(self, answers: list[_Answer]) -> None:
        accumulator = self._accumulator
        for groups, outcome, streamed, broker_id in answers:
            acked: Acked = []
            with self.work:
                self._in_flight -= 1
                if self._aborted:
                    continue
                now = self._clock()
                if self._connection.cluster.clustered:
                    self._note_stale(groups, outcome, broker_id)
                if isinstance(outcome, ClientError):  # not sent: no leader known
                    finished = [
                        done
                        for group in groups
                        for batch in group
                        for done in accumulator.fail(batch, outcome, now, uncertain=False)
                    ]
                elif isinstance(outcome, grpc.RpcError):
                    uncertain = None
                    if streamed:  # whatever ended the stream, the broker may have appended its requests
                        status = _status(outcome)
                        unimplemented = status is grpc.StatusCode.UNIMPLEMENTED
                        # ... unless it never served the call at all (no such call, or the guard refused
                        # the stream's caller before its handler read a request)
                        uncertain = status not in NEVER_SERVED
                        if unimplemented and self._streaming:
                            self._fall_back_to_unary()
                    finished = call_failed(accumulator, groups, outcome, now, uncertain=uncertain)
                elif isinstance(outcome, produce_pb2.ProduceStreamResponse):
                    finished, acked = stream_answered(accumulator, groups, outcome, now)
                else:
                    finished, acked = answered(accumulator, groups, list(outcome.results), now)
                self._memory_freed.notify_all()
            for batch, base_offset, append_time in acked:
                batch.outcome.resolve(base_offset, append_time)
            self._finish(finished)

    def _fall_back_to_unary(self) -> None:
        """The broker has no ProduceStream (an older one): carry on with unary calls, one per partition in
        flight. Under the lock; the stream's requests all fail alike (nothing of them was written), and a
        partition with any in flight sends nothing until they have, so no call can overtake them."""
        log.warning(
            "the broker at %s does not serve ProduceStream; sending unary Produce calls instead "
            "(produce_transport='unary' skips the attempt)",
            self._connection.address,
        )
        for stream in self._streams.values():
            stream.close()
        self._streams.clear()
        self._streaming = False
        self._accumulator.pipelined = False

    @staticmethod
    def _finish(finished: Finished) -> None:
        for batch, error in finished:
            batch.outcome.fail(error)
