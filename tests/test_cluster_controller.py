"""The controller's loop against a real etcd: topics placed and created, leadership moved on broker loss,
each failure answered with exactly one epoch bump, and a deposed controller's loop writing nothing."""

from __future__ import annotations

import asyncio
import random

import aetcd
from logstore.broker.cluster.controller import (
    Controller,
    answer_reassignments,
    rebalance_leaders,
    reconcile,
)
from logstore.broker.cluster.election import Role
from logstore.broker.cluster.election_driver import ControllerElector
from logstore.broker.cluster.metadata import (
    NO_LEADER,
    BrokerRegistration,
    Layout,
    PartitionState,
    Reassignment,
    TopicAssignment,
)
from logstore.broker.cluster.store import BrokerSession, MetadataStore
from logstore.broker.cluster.view import ClusterView

from tests.etcd_support import EtcdServer

BOUND_S = 60  # a hang guard only
LAYOUT = Layout("/controller-test")


def test_reconcile_writes_only_what_the_live_brokers_change() -> None:
    view = ClusterView(LAYOUT)
    view.brokers = {i: BrokerRegistration(i) for i in (1, 3)}
    view.partitions = {
        ("t", 0): PartitionState(1, 0, (1, 2, 3), (1, 2, 3), 0),
        ("t", 1): PartitionState(2, 0, (2, 3, 1), (2, 3, 1), 0),
        ("t", 2): PartitionState(3, 0, (3, 1), (3, 1, 2), 0),
    }
    assert reconcile(view) == {
        ("t", 0): PartitionState(1, 0, (1, 3), (1, 2, 3), 1),
        ("t", 1): PartitionState(3, 1, (3, 1), (2, 3, 1), 1),
    }


def test_leadership_goes_back_to_the_preferred_replica_when_it_is_in_sync() -> None:
    view = ClusterView(LAYOUT)
    view.brokers = {i: BrokerRegistration(i) for i in (1, 2, 3)}
    view.partitions = {
        ("t", 0): PartitionState(2, 1, (2, 3, 1), (1, 2, 3), 3),  # 1 is back and in sync: it leads again
        ("t", 1): PartitionState(3, 1, (3, 1), (2, 3, 1), 3),  # 2 is not in sync yet: stays
        ("t", 2): PartitionState(3, 0, (3, 1, 2), (3, 1, 2), 0),  # already preferred
    }
    writes: dict[tuple[str, int], PartitionState] = {}
    assert rebalance_leaders(view, writes) == 1
    assert writes == {("t", 0): PartitionState(1, 2, (2, 3, 1), (1, 2, 3), 4)}


def test_a_reassignment_finishes_by_rewriting_the_topics_replica_list() -> None:
    view = ClusterView(LAYOUT)
    view.brokers = {i: BrokerRegistration(i) for i in (1, 2, 3, 4)}
    view.topics = {"t": TopicAssignment(((1, 2, 3), (2, 3, 1)), 3, 2)}
    view.partitions = {
        ("t", 0): PartitionState(1, 0, (1, 2, 3, 4), (2, 3, 4, 1), 2),  # 4 caught up
        ("t", 1): PartitionState(2, 0, (2, 3, 1), (2, 3, 1), 0),
    }
    view.reassignments = {("t", 0): Reassignment((2, 3, 4)), ("t", 1): Reassignment((2, 3, 4))}
    writes: dict[tuple[str, int], PartitionState] = {}
    finished, topics = answer_reassignments(view, writes)
    assert finished == {("t", 0)}
    assert topics["t"].replicas == ((2, 3, 4), (2, 3, 1))
    assert writes[("t", 0)] == PartitionState(2, 1, (2, 3, 4), (2, 3, 4), 3)
    assert writes[("t", 1)].replicas == (2, 3, 4, 1)  # 4 joins first


async def current_revision(c: aetcd.Client) -> int:
    return int((await c.get_prefix(b"/no-such-prefix/")).header.revision)


def test_the_controller_moves_leadership_off_a_lost_broker_once(etcd: EtcdServer) -> None:
    async def main() -> None:
        async with aetcd.Client(host=etcd.host, port=etcd.client_port, timeout=2) as c:
            sessions = {
                i: BrokerSession(c, BrokerRegistration(i), layout=LAYOUT, ttl_s=30) for i in (1, 2, 3)
            }
            for s in sessions.values():
                await s.register()
            elector = ControllerElector(c, 1, layout=LAYOUT, lease_ttl_s=2)
            store = MetadataStore(c, LAYOUT)
            controller = Controller(store, elector, rng=random.Random(7))
            tasks = [asyncio.create_task(elector.run()), asyncio.create_task(controller.run())]
            try:
                await asyncio.wait_for(elector.wait_for(lambda s: s.role is Role.CONTROLLER), BOUND_S)
                await asyncio.wait_for(controller.wait_quiet(await current_revision(c)), BOUND_S)
                assignment = await controller.create_topic("orders", 6, 3, 2)
                assert sorted(r[0] for r in assignment.replicas) == [1, 1, 2, 2, 3, 3]
                before = (await store.snapshot()).partitions

                assert sessions[2].lease_id is not None
                await c.revoke_lease(sessions[2].lease_id)  # broker 2 dies
                await asyncio.wait_for(controller.wait_quiet(await current_revision(c)), BOUND_S)
                after = (await store.snapshot()).partitions
                for where, old in before.items():
                    new = after[where]
                    assert 2 not in new.isr and new.leader in (1, 3)
                    bumped = 1 if old.leader == 2 else 0
                    assert new.leader_epoch == old.leader_epoch + bumped  # exactly one bump per failure
                    assert new.partition_epoch == old.partition_epoch + 1

                for i in (1, 3):
                    lease = sessions[i].lease_id
                    assert lease is not None
                    await c.revoke_lease(lease)
                await asyncio.wait_for(controller.wait_quiet(await current_revision(c)), BOUND_S)
                offline = (await store.snapshot()).partitions
                assert all(s.leader == NO_LEADER and s.isr for s in offline.values())  # no unclean election
            finally:
                await elector.stop()
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())


def test_a_deposed_controllers_loop_writes_nothing(etcd: EtcdServer) -> None:
    async def main() -> None:
        async with aetcd.Client(host=etcd.host, port=etcd.client_port, timeout=2) as c:
            sessions = {i: BrokerSession(c, BrokerRegistration(i), layout=LAYOUT, ttl_s=30) for i in (1, 2)}
            for s in sessions.values():
                await s.register()
            elector = ControllerElector(c, 1, layout=LAYOUT, lease_ttl_s=2)
            store = MetadataStore(c, LAYOUT)
            controller = Controller(store, elector, rng=random.Random(1))
            tasks = [asyncio.create_task(elector.run()), asyncio.create_task(controller.run())]
            try:
                status = await asyncio.wait_for(
                    elector.wait_for(lambda s: s.role is Role.CONTROLLER), BOUND_S
                )
                await asyncio.wait_for(controller.wait_quiet(await current_revision(c)), BOUND_S)
                await controller.create_topic("t", 2, 2)
                before = (await store.snapshot()).partitions
                # Another broker takes the controller key the moment broker 1's lease is revoked.
                assert elector.machine.lease_id is not None
                other = await c.lease(30)
                await c.revoke_lease(elector.machine.lease_id)
                await c.put(LAYOUT.controller, b'{"broker_id":9}', lease=other.id)
                assert sessions[2].lease_id is not None
                await c.revoke_lease(sessions[2].lease_id)  # a failure only a live controller would answer
                await asyncio.wait_for(
                    elector.wait_for(lambda s: s.role is Role.FOLLOWER and s.epoch != status.epoch), BOUND_S
                )
                assert (await store.snapshot()).partitions == before
            finally:
                await elector.stop()
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())
