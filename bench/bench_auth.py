"""What authentication and authorization cost produce: the same Producer run against a broker without
auth and one with --require-auth and 100 ACLs, in turns, medians of the runs.

    .venv/bin/python -m logstore.bench.bench_auth --records 2000000 --runs 4 [--control]

The two take turns, and which goes first alternates from run to run, so neither always runs second.
Each broker is a child process (`python -m logstore.broker`) over its own temporary directory; the
producer is `logstore.client.Producer` with `perf produce`'s defaults (100-byte values, acks=1), sending
Basic credentials in its call metadata to both brokers (the open one ignores them), so the difference is
the broker's work. Every Produce call is authenticated (a
cached HMAC look-up) and authorized (Write on the topic, through the decision cache), so this is the
per-call cost; per-record work is unchanged.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from logstore.bench.security_cli import sasl_options
from logstore.broker.auth.acl import AclBinding, Operation, PatternType, Permission, ResourceType
from logstore.broker.auth.store import OfflineStore
from logstore.broker.embedded import BrokerProcess
from logstore.client import Admin, Producer

TOPIC = "bench-auth"
ACLS = 100


def _acls() -> list[AclBinding]:
    """100 ACLs: 98 for other principals and topics (literal and prefixed), plus the two that let the
    producer write and create its topic."""
    found = [
        AclBinding(
            f"User:user{i}",
            Operation.WRITE if i % 2 else Operation.READ,
            ResourceType.TOPIC,
            f"topic-{i}" if i % 3 else f"team-{i}.",
            PatternType.LITERAL if i % 3 else PatternType.PREFIXED,
            Permission.ALLOW,
        )
        for i in range(ACLS - 2)
    ]
    found.append(AclBinding("User:producer", Operation.WRITE, ResourceType.TOPIC, TOPIC))
    found.append(AclBinding("User:producer", Operation.CREATE, ResourceType.TOPIC, TOPIC))
    return found


def _broker(root: Path, secured: bool, control: bool = False) -> BrokerProcess:
    data = root / ("secured" if secured else "open")
    data.mkdir()
    args = ["--no-kafka-listener"]
    if secured:
        with OfflineStore(data) as store:
            store.set_user("producer", "producer-secret", create=True)
            store.set_user("admin", "admin-secret", create=True)
            store.create_acls(_acls())
        if not control:  # --control: the same files, auth off: what the machine's noise alone shows
            args += ["--require-auth", "--super-users", "User:admin"]
    broker = BrokerProcess(data, root / f"{data.name}.log", args)
    broker.start()
    return broker


def _run(address: str, records: int, options: dict[str, Any]) -> float:
    """Records per second of one Producer sending `records` 100-byte values (acks=1) and flushing."""
    value = b"x" * 100
    with Producer(address, acks=1, **options) as producer:
        producer.partitions_for(TOPIC)
        started = time.perf_counter()
        for _ in range(records):
            producer.send(TOPIC, value)
        producer.flush()
        return records / (time.perf_counter() - started)


def micro(calls: int = 100_000) -> dict[str, float]:
    """Microseconds per call of the broker's checks, in this process: a known Basic header's look-up,
    and the Produce rule (Write on one topic) with the 100 ACLs defined."""
    import timeit

    from logstore.broker.auth.security import Security
    from logstore.broker.auth.store import SecurityStore
    from logstore.broker.service.guard import RULES, Checks
    from logstore.wire.logstore.v1 import produce_pb2

    from logstore.records import build_batch

    with tempfile.TemporaryDirectory(prefix="bench-auth-") as tmp:
        store = SecurityStore(Path(tmp))
        store.set_user("producer", "producer-secret", create=True)
        store.create_acls(_acls())
        security = Security(store, ["User:admin"])
        header = "Basic " + base64.b64encode(b"producer:producer-secret").decode()
        asyncio.run(security.authenticate_basic(header, "bench"))
        records = build_batch([b"x" * 100] * 2500)
        partition = produce_pb2.ProducePartitionData(topic=TOPIC, partition=0, records=records)
        request = produce_pb2.ProduceRequest(partitions=[partition])
        rule = RULES["logstore.v1.ProduceService"]["Produce"]
        checks = Checks(security, "User:producer", lambda topic: True)
        header_s = timeit.timeit(lambda: security.known_header(header), number=calls) / calls
        rule_s = timeit.timeit(lambda: rule.check(checks, request), number=calls) / calls
    return {"known header": header_s * 1e6, "produce rule": rule_s * 1e6}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_auth", description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=200_000, help="records per run (200000)")
    parser.add_argument("--runs", type=int, default=3, help="runs per broker, taken in turns (3)")
    parser.add_argument(
        "--control", action="store_true", help="both brokers without auth: the difference is the noise floor"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-auth-") as tmp:
        root = Path(tmp)
        brokers = {False: _broker(root, False), True: _broker(root, True, args.control)}
        try:
            # Both producers send the same metadata (the open broker ignores it), so the difference is the
            # broker's checks, not the client's interceptor.
            credentials = {secured: sasl_options("producer", "producer-secret") for secured in (False, True)}
            for secured, broker in brokers.items():
                assert broker.address is not None
                with Admin(
                    broker.address,
                    **(sasl_options("admin", "admin-secret") if secured else {}),
                ) as a:
                    a.create_topic(TOPIC, 1)
                _run(broker.address, min(args.records, 20_000), credentials[secured])  # warm-up
            rates: dict[bool, list[float]] = {False: [], True: []}
            for run in range(args.runs):
                order = (False, True) if run % 2 == 0 else (True, False)  # no broker always goes second
                for secured in order:
                    address = brokers[secured].address
                    assert address is not None
                    rates[secured].append(_run(address, args.records, credentials[secured]))
        finally:
            for broker in brokers.values():
                broker.terminate()
    open_rate, secured_rate = statistics.median(rates[False]), statistics.median(rates[True])
    other = "control, auth off too" if args.control else f"auth on, {ACLS} ACLs"
    print(f"{'auth off':24}{open_rate:12,.0f} records/s  runs {[round(r) for r in rates[False]]}")
    print(f"{other:24}{secured_rate:12,.0f} records/s  runs {[round(r) for r in rates[True]]}")
    what = "difference (noise floor)" if args.control else "cost of authorization"
    print(f"{what}: {100 * (1 - secured_rate / open_rate):+.1f}% (medians of {args.runs})")
    for name, us in micro().items():
        print(f"per call, {name}: {us:.1f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
