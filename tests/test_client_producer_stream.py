"""The producer over ProduceStream against a real broker, with faults injected into the stream: lost
answers and streams broken mid-request. Whatever breaks, nothing is written twice, every partition keeps
its order, and every future reports the offset its record really got."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Iterator

import grpc
import pytest
from logstore.broker.embedded import EmbeddedBroker
from logstore.client import Admin, Producer
from logstore.client.shared.errors import UnknownDeliveryError
from logstore.wire.logstore.v1 import produce_pb2

from tests.test_client_support import read_topic

Fault = Callable[[int], str | None]
"""Asked with the number of each answer (1, 2, ... over every stream); says "drop" (the answer is lost
and the stream goes on), "break" (the connection breaks after the broker answered, so the request was
carried out), "refuse" (as "break", but the stream ends with RESOURCE_EXHAUSTED, a status that says
nothing was carried out when it ends a unary call) or None."""


class InjectedBreak(grpc.RpcError):
    def __init__(self, status: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE) -> None:
        super().__init__()
        self._status = status

    def code(self) -> grpc.StatusCode:
        return self._status

    def details(self) -> str:
        return "injected: the connection broke before the answer arrived"

    def trailing_metadata(self) -> tuple[()]:
        return ()


class StreamFaults(grpc.StreamStreamClientInterceptor):
    """Injects `fault`'s answers into every ProduceStream; `cut_before(n)` ends the stream before request n
    (counted over every stream) leaves the client, so that one and those behind it never reach the broker.

    Also counts the streams opened and the most requests a stream had unanswered at once."""

    def __init__(
        self, fault: Fault = lambda n: None, cut_before: Callable[[int], bool] = lambda n: False
    ) -> None:
        self._fault = fault
        self._cut_before = cut_before
        self._lock = threading.Lock()
        self.streams = 0
        self.answers = 0
        self.requests = 0
        self.injected: defaultdict[str, int] = defaultdict(int)
        self.most_unanswered = 0

    def intercept_stream_stream(self, continuation, client_call_details, request_iterator):
        if not client_call_details.method.endswith("/ProduceStream"):
            return continuation(client_call_details, request_iterator)
        with self._lock:
            self.streams += 1
        stream = _FaultyStream(self)
        stream.call = continuation(client_call_details, stream.forward(request_iterator))
        return stream

    def sent(self, stream: _FaultyStream) -> bool:
        """A request is about to leave: False to cut the stream instead."""
        with self._lock:
            self.requests += 1
            if self._cut_before(self.requests):
                self.injected["cut"] += 1
                return False
            stream.unanswered += 1
            self.most_unanswered = max(self.most_unanswered, stream.unanswered)
            return True

    def answered(self, stream: _FaultyStream) -> str | None:
        with self._lock:
            self.answers += 1
            stream.unanswered -= 1
            fault = self._fault(self.answers)
            if fault:
                self.injected[fault] += 1
            return fault


class _FaultyStream:
    """The answers of one ProduceStream call as the producer sees them, faults included."""

    def __init__(self, faults: StreamFaults) -> None:
        self._faults = faults
        self.call: grpc.Call | None = None
        self.unanswered = 0

    def forward(self, requests: Iterator[produce_pb2.ProduceStreamRequest]) -> Iterator:
        for request in requests:
            if not self._faults.sent(self):
                self.cancel()
                return
            yield request

    def __iter__(self) -> _FaultyStream:
        return self

    def __next__(self) -> produce_pb2.ProduceStreamResponse:
        while True:
            answer = next(self.call)  # type: ignore[call-overload]
            fault = self._faults.answered(self)
            if fault == "drop":
                continue
            if fault in ("break", "refuse"):
                self.cancel()
                raise InjectedBreak(
                    grpc.StatusCode.UNAVAILABLE if fault == "break" else grpc.StatusCode.RESOURCE_EXHAUSTED
                )
            return answer

    def cancel(self) -> bool:
        assert self.call is not None
        return self.call.cancel()


def create(broker: EmbeddedBroker, name: str, partitions: int) -> None:
    with Admin(broker.address) as admin:
        admin.create_topic(name, partitions, {})


def produce_through(broker: EmbeddedBroker, topic: str, faults: StreamFaults, keys: list[bytes], rounds: int):
    """Send `rounds` values per key through a stream producer with `faults`; returns (key, value, metadata)."""
    with Producer(
        broker.address,
        produce_transport="stream",
        batch_size=512,
        max_request_size=1536,  # small requests: many of them, so many faults, and several per partition
        linger_ms=0,
        retry_backoff_ms=1,
        request_timeout_ms=1000,  # a lost last answer is noticed by the stream's timeout
        interceptors=[faults],
    ) as producer:
        futures = [(key, n, producer.send(topic, b"%d" % n, key=key)) for n in range(rounds) for key in keys]
        producer.flush(timeout=60)
    return [(key, n, future.get(0)) for key, n, future in futures]


def check_written_once_in_order(
    broker: EmbeddedBroker, topic: str, partitions: int, sent, keys, rounds
) -> None:
    by_offset = {}
    per_key = defaultdict(list)
    for partition, records in read_topic(broker.address, topic, partitions).items():
        for record in records:
            assert record.value is not None
            by_offset[(partition, record.offset)] = (record.key, int(record.value))
            per_key[record.key].append(int(record.value))
    assert dict(per_key) == {key: list(range(rounds)) for key in keys}  # each once, in order
    for key, n, metadata in sent:  # and each future names the offset its record got
        assert by_offset[(metadata.partition, metadata.offset)] == (key, n)


@pytest.mark.parametrize("fault", ["drop", "break"])
def test_a_lost_answer_or_a_broken_stream_writes_nothing_twice_and_keeps_order(broker, fault: str) -> None:
    """Answers 4, 8, 12, ... are lost (the request was carried out); the producer notices (the next answer
    names a later request, or the stream broke), sends the unanswered batches again in order on a new
    stream, and the broker answers those it had appended as duplicates."""
    create(broker, "lost", 1)
    faults = StreamFaults(lambda n: fault if n % 4 == 0 else None)
    keys = [f"k{i}".encode() for i in range(5)]
    sent = produce_through(broker, "lost", faults, keys, 300)
    # 1,500 records of about 12 bytes in requests of at most 1,536 bytes take at least 12 requests however
    # the batching groups them, so answers 4, 8 and 12 are always among them.
    assert faults.injected[fault] >= 3 and faults.streams >= 4
    assert faults.most_unanswered >= 2  # requests of the one partition were in flight together
    check_written_once_in_order(broker, "lost", 1, sent, keys, 300)


def test_a_lost_answer_with_nothing_after_it_is_noticed_by_the_request_timeout(broker) -> None:
    """No later answer reveals the gap: the stream is given up once its oldest request has waited
    request_timeout_ms, and the resend on a new stream is answered as the duplicate it is."""
    create(broker, "alone", 1)
    faults = StreamFaults(lambda n: "drop" if n == 1 else None)
    with Producer(
        broker.address, request_timeout_ms=500, retry_backoff_ms=1, interceptors=[faults]
    ) as producer:
        metadata = producer.send("alone", b"only").get(30)
    assert (metadata.offset, faults.injected["drop"], faults.streams) == (0, 1, 2)
    assert [r.value for r in read_topic(broker.address, "alone", 1)[0]] == [b"only"]


def test_a_stream_cut_before_some_requests_left_resends_them_in_order(broker) -> None:
    """Requests 5, 11, 17, ... (counted over every stream) never leave the client, nor do those queued behind them on that stream; the
    ones before them on it may have been answered or not."""
    create(broker, "cut", 3)
    faults = StreamFaults(cut_before=lambda n: n % 6 == 5)
    keys = [f"k{i}".encode() for i in range(9)]
    sent = produce_through(broker, "cut", faults, keys, 200)
    assert faults.injected["cut"] >= 2 and faults.streams >= 3  # at least 14 requests: 5 and 11 are cut
    check_written_once_in_order(broker, "cut", 3, sent, keys, 200)


def test_every_fault_at_once_over_many_partitions(broker) -> None:
    create(broker, "chaos", 3)
    faults = StreamFaults(
        lambda n: "drop" if n % 7 == 0 else "break" if n % 5 == 0 else None,
        cut_before=lambda n: n % 11 == 0,
    )
    keys = [f"k{i}".encode() for i in range(9)]
    sent = produce_through(broker, "chaos", faults, keys, 200)
    # at least 14 requests (1,800 records): request 11 is cut, and answers 5 and 7 are among the rest
    assert faults.injected["drop"] >= 1 and faults.injected["break"] >= 1 and faults.injected["cut"] >= 1
    check_written_once_in_order(broker, "chaos", 3, sent, keys, 200)


def test_requests_of_a_stream_that_ended_with_any_status_may_have_been_written(broker) -> None:
    """A stream's end says nothing about the requests still unanswered on it: the broker may have appended
    them. Whatever the status (here one that would mean "not written" for a unary call), they fail as
    UnknownDeliveryError, never as an error that says the records are not in the log."""
    create(broker, "refused", 1)
    faults = StreamFaults(lambda n: "refuse" if n == 3 else None)
    with Producer(
        broker.address,
        batch_size=512,
        max_request_size=1536,
        linger_ms=0,
        retry_backoff_ms=1,
        interceptors=[faults],
    ) as producer:
        futures = [(b"%d" % n, producer.send("refused", b"%d" % n)) for n in range(600)]
        producer.flush(timeout=60)
    assert faults.injected["refuse"] == 1
    in_log = [r.value for r in read_topic(broker.address, "refused", 1)[0]]
    assert len(set(in_log)) == len(in_log)
    failed = [(value, future.exception_value) for value, future in futures if future.exception_value]
    assert failed and all(isinstance(error, UnknownDeliveryError) for _, error in failed)
    assert any(value in in_log for value, _ in failed)  # the third request was written, its answer lost
    assert all(value in in_log for value, future in futures if future.exception_value is None)


def test_the_stream_reopens_after_the_broker_restarts(start_broker) -> None:
    broker = start_broker()
    create(broker, "restart", 1)
    with Producer(broker.address, produce_transport="stream", retry_backoff_ms=10) as producer:
        first = producer.send("restart", b"before").get(10)
        port = broker.address.rsplit(":", 1)[1]
        broker.stop()
        broker = start_broker(port=int(port))
        second = producer.send("restart", b"after").get(30)
    assert (first.offset, second.offset) == (0, 1)


class NoProduceStream(grpc.StreamStreamClientInterceptor, grpc.UnaryUnaryClientInterceptor):
    """An older broker: ProduceStream is UNIMPLEMENTED (as gRPC answers a method it does not know); the
    unary Produce calls that reach the broker are counted."""

    def __init__(self) -> None:
        self.streams = 0
        self.unary_calls = 0

    def intercept_stream_stream(self, continuation, client_call_details, request_iterator):
        self.streams += 1
        return _Unimplemented()

    def intercept_unary_unary(self, continuation, client_call_details, request):
        if client_call_details.method.endswith("/Produce"):
            self.unary_calls += 1
        return continuation(client_call_details, request)


class _Unimplemented(grpc.RpcError):
    def __iter__(self) -> _Unimplemented:
        return self

    def __next__(self) -> produce_pb2.ProduceStreamResponse:
        raise self

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNIMPLEMENTED

    def details(self) -> str:
        return "Method not found!"

    def trailing_metadata(self) -> tuple[()]:
        return ()

    def cancel(self) -> bool:
        return False


def test_a_broker_without_produce_stream_gets_unary_calls_instead(broker, caplog) -> None:
    create(broker, "older", 2)
    older = NoProduceStream()
    with Producer(broker.address, interceptors=[older], retry_backoff_ms=1) as producer:
        futures = [producer.send("older", b"%d" % n, key=b"k%d" % (n % 4)) for n in range(2000)]
        producer.flush(timeout=30)
    assert all(future.exception_value is None for future in futures)
    assert older.streams == 1 and older.unary_calls >= 1
    assert "does not serve ProduceStream" in caplog.text
    values = sorted(
        int(r.value or b"-1") for records in read_topic(broker.address, "older", 2).values() for r in records
    )
    assert values == list(range(2000))
