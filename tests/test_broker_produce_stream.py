"""ProduceStream against a real broker: order, per-request errors, duplicates on a new stream, and the
per-stream memory bound that is its backpressure."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator

import grpc
import pytest
from logstore.broker.service.produce_stream import ProduceStreamCall, Window
from logstore.wire.logstore.v1 import common_pb2 as common
from logstore.wire.logstore.v1 import produce_pb2

from logstore.records import build_batch
from tests.conftest import Stubs
from tests.test_client_support import read_partition

PRODUCE_STREAM = "/logstore.v1.ProduceService/ProduceStream"


def request(
    request_id: int,
    topic: str,
    records: bytes,
    acks: produce_pb2.Acks = produce_pb2.ACKS_LEADER,
    partition: int = 0,
) -> produce_pb2.ProduceStreamRequest:
    entry = produce_pb2.ProducePartitionData(topic=topic, partition=partition, records=records)
    return produce_pb2.ProduceStreamRequest(
        request_id=request_id, request=produce_pb2.ProduceRequest(acks=acks, partitions=[entry])
    )


def test_requests_are_appended_and_answered_in_stream_order_whatever_their_acks(stubs: Stubs, broker) -> None:
    """acks=all requests wait for an fsync while later ones are read: the appends still follow the stream."""
    stubs.create_topic("ordered", 1)
    acks = [produce_pb2.ACKS_ALL, produce_pb2.ACKS_LEADER, produce_pb2.ACKS_NONE]
    requests = [request(n, "ordered", build_batch([b"%d" % n]), acks[n % 3]) for n in range(1, 31)]
    answers = list(stubs.produce.ProduceStream(iter(requests)))
    assert [a.request_id for a in answers] == list(range(1, 31))
    assert all(a.error_code == common.ERROR_CODE_NONE for a in answers)
    answered = [a.response.results[0].base_offset for a in answers if a.response.results]
    assert answered == [
        n - 1 for n in range(1, 31) if acks[n % 3] != produce_pb2.ACKS_NONE
    ]  # acks=0: no results
    values = [r.value for r in read_partition(broker.address, "ordered", 0)]
    assert values == [b"%d" % n for n in range(1, 31)]


def test_a_refused_request_is_answered_in_its_place_and_the_stream_goes_on(stubs: Stubs) -> None:
    stubs.create_topic("refusals", 1)
    bad_acks = request(2, "refusals", build_batch([b"x"]))
    bad_acks.request.acks = 99  # type: ignore[assignment]
    empty = produce_pb2.ProduceStreamRequest(request_id=3, request=produce_pb2.ProduceRequest())
    requests = [
        request(1, "refusals", build_batch([b"a"])),
        bad_acks,
        empty,
        request(4, "refusals", build_batch([b"b"])),
    ]
    answers = list(stubs.produce.ProduceStream(iter(requests)))
    assert [(a.request_id, a.error_code) for a in answers] == [
        (1, common.ERROR_CODE_NONE),
        (2, common.ERROR_CODE_INVALID_REQUEST),
        (3, common.ERROR_CODE_INVALID_REQUEST),
        (4, common.ERROR_CODE_NONE),
    ]
    assert "acks must be" in answers[1].error_message
    assert "names no partitions" in answers[2].error_message
    assert [a.response.results[0].base_offset for a in (answers[0], answers[3])] == [0, 1]
    assert answers[3].response.results[0].error_code == common.ERROR_CODE_NONE


def test_batches_resent_on_a_new_stream_are_answered_as_duplicates_and_written_once(
    stubs: Stubs, broker
) -> None:
    """What a producer does after its stream broke: the unanswered batches again, in order, on a new stream."""
    stubs.create_topic("resent", 1)
    producer_id = stubs.produce.InitProducerId(produce_pb2.InitProducerIdRequest()).producer_id
    batches = [
        build_batch([b"%d" % n], producer_id=producer_id, producer_epoch=0, base_sequence=n) for n in range(4)
    ]
    first = list(stubs.produce.ProduceStream(iter([request(1, "resent", b) for b in batches[:3]])))
    again = list(
        stubs.produce.ProduceStream(iter([request(n + 1, "resent", b) for n, b in enumerate(batches[1:])]))
    )
    assert [a.response.results[0].base_offset for a in first] == [0, 1, 2]
    assert [a.response.results[0].base_offset for a in again] == [1, 2, 3]  # two duplicates, one new
    assert [r.value for r in read_partition(broker.address, "resent", 0)] == [b"0", b"1", b"2", b"3"]


def test_a_message_that_does_not_parse_ends_the_stream_after_the_earlier_answers(stubs: Stubs) -> None:
    stubs.create_topic("garbage", 1)
    call = stubs.channel.stream_stream(
        PRODUCE_STREAM,
        request_serializer=lambda raw: raw,
        response_deserializer=produce_pb2.ProduceStreamResponse.FromString,
    )
    good = request(1, "garbage", build_batch([b"ok"])).SerializeToString()
    answers: list[produce_pb2.ProduceStreamResponse] = []
    with pytest.raises(grpc.RpcError) as ended:
        for answer in call(iter([good, b"\xff\xff\xff"])):
            answers.append(answer)
    assert [a.request_id for a in answers] == [1]
    assert ended.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid logstore.v1.ProduceStreamRequest" in str(ended.value.details())


# --- backpressure: the per-stream bound on unanswered bytes ------------------------------------------------------


def test_window_holds_requests_up_to_its_limit_and_one_larger_request_alone() -> None:
    async def scenario() -> None:
        window = Window(10)
        await window.take(25)  # nothing held: a request larger than the limit is taken alone
        waiting = asyncio.ensure_future(window.take(1))
        await asyncio.sleep(0)
        assert not waiting.done()
        window.give_back(25)
        await waiting
        await window.take(9)  # 1 + 9 fill the limit
        waiting = asyncio.ensure_future(window.take(1))
        await asyncio.sleep(0)
        assert not waiting.done()
        window.give_back(1)
        await waiting

    asyncio.run(scenario())


def test_the_stream_reads_no_further_while_its_unanswered_requests_fill_the_window() -> None:
    """gRPC reads a message from the connection only when the handler asks for one, so a reader that stops
    asking leaves the rest to HTTP/2 flow control: the client is slowed, and the broker's memory bounded."""

    async def scenario() -> None:
        release = asyncio.Event()
        produced: list[int] = []
        pulled: list[int] = []

        async def produce(req: produce_pb2.ProduceRequest) -> produce_pb2.ProduceResponse:
            produced.append(len(req.partitions[0].records))
            await release.wait()  # an fsync that takes its time
            return produce_pb2.ProduceResponse()

        async def requests() -> AsyncIterator[produce_pb2.ProduceStreamRequest]:
            for n in range(1, 7):
                pulled.append(n)
                yield request(n, "t", b"x" * 100)

        call = ProduceStreamCall(produce, lambda stop: lambda: None, limit=300)
        answers = call.run(requests())
        first = asyncio.ensure_future(answers.__anext__())
        for _ in range(10):
            await asyncio.sleep(0)
        assert pulled == [1, 2, 3, 4]  # the fourth waits for room: 300 bytes are held
        assert len(produced) == 3
        release.set()
        assert (await first).request_id == 1
        rest = [answer.request_id async for answer in answers]
        assert rest == [2, 3, 4, 5, 6]
        assert pulled == [1, 2, 3, 4, 5, 6]

    asyncio.run(scenario())


def test_an_idle_stream_ends_when_the_broker_stops_instead_of_holding_the_stop_up(
    start_broker, connect
) -> None:
    """A stream waits for its client's next request; the broker's stop ends it (UNAVAILABLE: the client
    opens a new one later) rather than waiting out the grace period for calls in flight."""
    broker = start_broker(shutdown_grace_ms=30_000)
    stubs = connect(broker)
    stubs.create_topic("idle", 1)
    requests: queue.SimpleQueue[produce_pb2.ProduceStreamRequest | None] = queue.SimpleQueue()
    requests.put(request(1, "idle", build_batch([b"a"])))
    answers = stubs.produce.ProduceStream(iter(requests.get, None))
    assert next(answers).request_id == 1  # open, and now idle
    stopper = threading.Thread(target=broker.stop)
    stopper.start()
    with pytest.raises(grpc.RpcError) as ended:
        next(answers)
    assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "open a new stream once it is back" in str(ended.value.details())
    stopper.join()
    requests.put(None)
