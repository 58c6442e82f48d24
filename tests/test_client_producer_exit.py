"""A Producer never closed still delivers its buffered records when the interpreter exits, and says so."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import grpc
import pytest
from logstore.broker.embedded import EmbeddedBroker
from logstore.client import Producer
from logstore.client.shared.errors import ClosedError

from tests.conftest import Stubs
from tests.test_client_support import FailedCall

_UNCLOSED = """
import sys
from logstore.client import Producer

producer = Producer(sys.argv[1], linger_ms=60_000, batch_size=1 << 20)  # nothing leaves before exit
producer.partitions_for("exit")  # the topic exists before the sends, so each one only buffers
for i in range(100):
    producer.send("exit", b"record-%d" % i)
others = [Producer(sys.argv[1]) for _ in range(2)]  # more unclosed producers: still one warning
"""


def run(script: str, address: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), address], capture_output=True, text=True, timeout=60
    )


def test_records_of_a_producer_never_closed_are_sent_at_exit(broker: EmbeddedBroker, stubs: Stubs) -> None:
    done = run(_UNCLOSED, broker.address)
    assert done.returncode == 0, done.stderr
    assert stubs.values("exit", 0) == [b"record-%d" % i for i in range(100)]
    warnings = [line for line in done.stderr.splitlines() if "still open at interpreter exit" in line]
    assert len(warnings) == 1, done.stderr
    assert "3 Producer(s)" in warnings[0] and "close()" in warnings[0]


def test_a_closed_producer_exits_without_a_warning(broker: EmbeddedBroker, stubs: Stubs) -> None:
    script = _UNCLOSED.split("others = ")[0] + "producer.close()\n"
    done = run(script, broker.address)
    assert done.returncode == 0, done.stderr
    assert len(stubs.values("exit", 0)) == 100
    assert "still open" not in done.stderr, done.stderr


class RefuseProducerIds(grpc.UnaryUnaryClientInterceptor):
    """Fails every InitProducerId call as an unreachable broker would, counting them."""

    def __init__(self) -> None:
        self.calls = 0

    def intercept_unary_unary(self, continuation, client_call_details, request):
        if not client_call_details.method.endswith("/InitProducerId"):
            return continuation(client_call_details, request)
        self.calls += 1  # only the sender thread makes this call
        return FailedCall(grpc.StatusCode.UNAVAILABLE, "injected: broker unreachable")


def test_closing_while_no_producer_id_comes_keeps_backing_off(broker: EmbeddedBroker) -> None:
    """A close (as at exit) waiting for buffered records must not retry InitProducerId in a busy loop."""
    refusing = RefuseProducerIds()
    producer = Producer(
        broker.address, interceptors=[refusing], retry_backoff_ms=60_000, retry_backoff_max_ms=60_000
    )
    future = producer.send("no-id", b"x")  # buffered: the sender waits for a producer id
    attempts = refusing.calls
    producer.close(timeout=0.5)  # well inside one backoff: no further attempt is due
    assert refusing.calls <= attempts + 1
    with pytest.raises(ClosedError):
        future.get(0)


_DROPPED = """
import sys
from logstore.client import Producer

def produce() -> None:  # the producer goes out of scope unclosed: its records must still be sent at exit
    producer = Producer(sys.argv[1], linger_ms=60_000, batch_size=1 << 20)
    producer.partitions_for("dropped")
    for i in range(100):
        producer.send("dropped", b"record-%d" % i)

produce()
"""


def test_records_of_a_producer_dropped_unclosed_are_sent_at_exit(
    broker: EmbeddedBroker, stubs: Stubs
) -> None:
    done = run(_DROPPED, broker.address)
    assert done.returncode == 0, done.stderr
    assert stubs.values("dropped", 0) == [b"record-%d" % i for i in range(100)]
    assert "still open at interpreter exit" in done.stderr, done.stderr
