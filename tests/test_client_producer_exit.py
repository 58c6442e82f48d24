"""A Producer never closed still delivers its buffered records when the interpreter exits, and says so."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from broker.embedded import EmbeddedBroker
from tests.conftest import Stubs

_UNCLOSED = """
import sys
from client import Producer

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
