"""Failover under load: one idempotent producer writes keyed acks=all batches to a partition with
replication factor 3 and min.insync.replicas 2 while the test kills its leader with SIGKILL 20 times
(restarting it each time), freezes a follower off the cluster and back, and kills the controller.

After each fault a new leader must be elected within the lease time plus 2 s, and at the end the log must
hold exactly the acknowledged batches, each once at the offset it was acknowledged at, per-key order
kept, and be identical on all three replicas. Each fault's figures (election and first write on the new
leader, from the kill) go to `build/cluster-failover.json` for the note and `docs/cluster.md`.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from logstore.wire.logstore.v1 import produce_pb2

from tests.cluster_load import IdempotentLoad, check_acknowledged_records_survived
from tests.cluster_support import SESSION_TIMEOUT_MS, Cluster, cluster_of
from tests.conftest import Stubs

pytestmark = pytest.mark.slow

TOPIC = "events"
KILLS = 20
ELECTION_BOUND_S = SESSION_TIMEOUT_MS / 1000 + 2
FIGURES = Path(__file__).resolve().parent.parent / "build" / "cluster-failover.json"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    yield from cluster_of(tmp_path, 3, ("--default-replication-factor=3", "--min-insync-replicas=2"))


def fault(
    cluster: Cluster, load: IdempotentLoad, victim: int, kind: str, act: Callable[[], None]
) -> dict[str, Any]:
    """Apply a fault that takes `victim` away, then measure: new leader in etcd, first write there."""
    started = time.monotonic()
    act()
    if kind != "follower-frozen":
        elected = cluster.wait_for(
            lambda: cluster.leader(TOPIC) not in (-1, victim), f"a new leader after {kind}", ELECTION_BOUND_S
        )
    else:
        elected = 0.0
    cluster.wait_for(
        lambda: load.acked_since(started, victim) is not None, f"a write acknowledged after {kind}"
    )
    first = load.acked_since(started, victim)
    assert first is not None
    return {"kind": kind, "victim": victim, "elected_s": elected, "first_write_s": first.at - started}


def test_no_acknowledged_record_is_lost_across_leader_kills_a_frozen_follower_and_the_controller(
    cluster: Cluster,
) -> None:
    admin = Stubs.connect(cluster.brokers[1].address)
    admin.create_topic(TOPIC, partitions=1)
    cluster.wait_for_isr(TOPIC, 0, 3)
    producer_id = admin.produce.InitProducerId(produce_pb2.InitProducerIdRequest()).producer_id
    load = IdempotentLoad(cluster, producer_id, TOPIC)
    load.start()
    figures: list[dict[str, Any]] = []
    try:
        cluster.wait_for(lambda: len(load.acked) >= 20, "the load is running")
        for _ in range(KILLS):
            leader = cluster.wait_for_isr(TOPIC, 0, 3).leader
            figures.append(fault(cluster, load, leader, "leader-killed", cluster.brokers[leader].kill))
            cluster.brokers[leader].start()

        state = cluster.wait_for_isr(TOPIC, 0, 3)
        follower = next(r for r in state.replicas if r != state.leader)
        process = cluster.brokers[follower].process
        assert process is not None
        figures.append(
            fault(cluster, load, follower, "follower-frozen", lambda: os.kill(process.pid, signal.SIGSTOP))
        )
        cluster.wait_for(
            lambda: follower not in (cluster.partition(TOPIC, 0) or state).isr,
            "the frozen follower leaves the ISR",
        )
        os.kill(process.pid, signal.SIGCONT)
        cluster.wait_for_isr(TOPIC, 0, 3, timeout_s=60)

        controller = cluster.controller()
        assert controller is not None
        figures.append(
            fault(cluster, load, controller, "controller-killed", cluster.brokers[controller].kill)
        )
        cluster.wait_for(
            lambda: cluster.controller() not in (None, controller), "a new controller", ELECTION_BOUND_S
        )
        cluster.brokers[controller].start()
        cluster.wait_for_isr(TOPIC, 0, 3)
        acked_before_stop = len(load.acked)
        cluster.wait_for(lambda: len(load.acked) > acked_before_stop + 10, "writes continue after the faults")
    finally:
        load.join()

    expected = check_acknowledged_records_survived(cluster, load)

    kills = [f for f in figures if f["kind"] == "leader-killed"]
    FIGURES.parent.mkdir(exist_ok=True)
    FIGURES.write_text(
        json.dumps(
            {
                "session_timeout_ms": SESSION_TIMEOUT_MS,
                "records_acknowledged": len(expected),
                "retried_errors": load.errors,
                "leader_kill_election_s": {
                    "median": statistics.median(f["elected_s"] for f in kills),
                    "max": max(f["elected_s"] for f in kills),
                },
                "leader_kill_first_write_s": {
                    "median": statistics.median(f["first_write_s"] for f in kills),
                    "max": max(f["first_write_s"] for f in kills),
                },
                "faults": figures,
            },
            indent=1,
        )
    )
