"""Shared by the client's integration tests (no tests here): fault-injecting interceptors, reading a topic back."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import grpc
from logstore.client import Consumer, ConsumerRecord, TopicPartition


class FailedCall(grpc.RpcError, grpc.Future, grpc.Call):
    """A finished call that failed with ``code``: what a client sees when an answer is lost."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__()
        self._code = code
        self._details = details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def result(self, timeout: float | None = None) -> Any:
        raise self

    def exception(self, timeout: float | None = None) -> Exception:
        return self

    def traceback(self, timeout: float | None = None) -> None:
        return None

    def add_done_callback(self, fn: Callable[[Any], None]) -> None:
        fn(self)

    def cancel(self) -> bool:
        return False

    def cancelled(self) -> bool:
        return False

    def running(self) -> bool:
        return False

    def done(self) -> bool:
        return True

    def is_active(self) -> bool:
        return False

    def time_remaining(self) -> float | None:  # type: ignore[override]  # grpc: None without a deadline
        return None

    def add_callback(self, callback: Callable[[], None]) -> bool:
        return False

    def initial_metadata(self) -> tuple:
        return ()

    def trailing_metadata(self) -> tuple:
        return ()


class LoseAnswers(grpc.UnaryUnaryClientInterceptor):
    """Lets chosen Produce calls reach the broker (which appends), then loses their answers.

    ``lose(n)`` is asked with the call number (1, 2, ...) of each Produce call; ``before`` makes the lost
    calls fail without reaching the broker instead.
    """

    def __init__(self, lose: Callable[[int], bool], *, before: bool = False) -> None:
        self._lose = lose
        self._before = before
        self._lock = threading.Lock()
        self.calls = 0
        self.lost = 0

    def intercept_unary_unary(self, continuation, client_call_details, request):
        if not client_call_details.method.endswith("/Produce"):
            return continuation(client_call_details, request)
        with self._lock:
            self.calls += 1
            lose = self._lose(self.calls)
            self.lost += lose
        if not lose:
            return continuation(client_call_details, request)
        if not self._before:
            outcome = continuation(client_call_details, request)
            try:
                outcome.result()  # the broker has answered: the data is appended
            except grpc.RpcError:
                return outcome
        return FailedCall(grpc.StatusCode.UNAVAILABLE, "injected: connection lost before the answer")


def read_partition(address: str, topic: str, partition: int) -> list[ConsumerRecord]:
    """Every record of a partition, from its start to its end at the time of the call."""
    tp = TopicPartition(topic, partition)
    with Consumer(bootstrap=address, auto_offset_reset="earliest") as consumer:
        consumer.assign([tp])
        end = consumer.end_offsets([tp])[tp]
        records: list[ConsumerRecord] = []
        while consumer.position(tp) < end:
            records.extend(consumer.poll(timeout_ms=5000).get(tp, []))
        return records


def read_topic(address: str, topic: str, partitions: int) -> dict[int, list[ConsumerRecord]]:
    return {p: read_partition(address, topic, p) for p in range(partitions)}
