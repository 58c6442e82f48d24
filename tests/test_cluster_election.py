"""Controller election: the pure state machine, then its etcd driver against a real etcd with failures."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aetcd
import pytest
from logstore.broker.cluster.election import ControllerElection, ElectionStatus, Role
from logstore.broker.cluster.election_driver import ControllerElector
from logstore.broker.cluster.errors import NotControllerError
from logstore.broker.cluster.metadata import Layout, PartitionState
from logstore.broker.cluster.store import MetadataStore

from tests.etcd_support import EtcdServer

TTL_S = 2
BOUND_S = 60  # a hang guard only: every wait below ends on an event well before it


# --- the state machine ------------------------------------------------------------------------------------


def test_winning_makes_the_revision_the_epoch_and_the_lease_deadline_bounds_the_role() -> None:
    machine = ControllerElection(1)
    machine.lease_granted(lease_id=77, ttl_ms=2_000, sent_ms=1_000)
    machine.campaign_won(revision=42)
    assert machine.status == ElectionStatus(Role.CONTROLLER, 1, 42)
    assert machine.is_controller(2_999) and not machine.is_controller(3_000)
    machine.lease_kept_alive(ttl_ms=2_000, sent_ms=2_500)
    assert machine.is_controller(4_499)
    machine.tick(4_500)  # no keep-alive answered in time: etcd may have expired the lease
    assert machine.role is Role.DEPOSED and not machine.is_controller(4_500)
    machine.start_over()
    assert machine.status == ElectionStatus(Role.NO_LEASE, None, None)


def test_a_keep_alive_answering_no_ttl_deposes() -> None:
    machine = ControllerElection(1)
    machine.lease_granted(7, 2_000, 0)
    machine.campaign_won(5)
    machine.lease_kept_alive(ttl_ms=0, sent_ms=100)
    assert machine.role is Role.DEPOSED


def test_losing_follows_the_holder_and_campaigns_again_when_its_key_goes() -> None:
    machine = ControllerElection(2)
    machine.lease_granted(8, 2_000, 0)
    machine.campaign_lost(holder_id=1, create_revision=42, holder_lease=7)
    assert machine.status == ElectionStatus(Role.FOLLOWER, 1, 42)
    machine.controller_seen(None, None)
    assert machine.role is Role.CANDIDATE


def test_a_key_left_by_an_earlier_life_of_this_broker_is_not_ours() -> None:
    machine = ControllerElection(1)
    machine.lease_granted(9, 2_000, 0)
    machine.campaign_lost(holder_id=1, create_revision=42, holder_lease=3)
    assert machine.role is Role.FOLLOWER
    other = ControllerElection(1)
    other.lease_granted(9, 2_000, 0)
    other.campaign_lost(holder_id=1, create_revision=42, holder_lease=9)  # our win whose answer was lost
    assert other.status == ElectionStatus(Role.CONTROLLER, 1, 42)


def test_a_controller_whose_key_was_replaced_is_deposed() -> None:
    machine = ControllerElection(1)
    machine.lease_granted(7, 2_000, 0)
    machine.campaign_won(42)
    machine.controller_seen(1, 42)
    assert machine.role is Role.CONTROLLER
    machine.controller_seen(2, 50)
    assert machine.role is Role.DEPOSED


def test_campaign_answers_out_of_turn_are_bugs() -> None:
    with pytest.raises(RuntimeError, match="while no_lease"):
        ControllerElection(1).campaign_won(3)


# --- the driver against a real etcd -----------------------------------------------------------------------


def client(etcd: EtcdServer) -> aetcd.Client:
    return aetcd.Client(host=etcd.host, port=etcd.client_port, timeout=2)


async def until(elector: ControllerElector, predicate: Callable[[ElectionStatus], bool]) -> ElectionStatus:
    return await asyncio.wait_for(elector.wait_for(predicate), BOUND_S)


def controller(status: ElectionStatus) -> bool:
    return status.role is Role.CONTROLLER


def follower(status: ElectionStatus) -> bool:
    return status.role is Role.FOLLOWER


async def contenders(etcd: EtcdServer, body: Callable[[list[ControllerElector]], Awaitable[None]]) -> None:
    clients = [client(etcd) for _ in range(2)]
    electors = [ControllerElector(c, broker_id=i + 1, lease_ttl_s=TTL_S) for i, c in enumerate(clients)]
    tasks = [asyncio.create_task(e.run()) for e in electors]
    try:
        await body(electors)
    finally:
        for e in electors:
            await e.stop()
        await asyncio.gather(*tasks)
        for c in clients:
            await c.close()


async def settled(electors: list[ControllerElector]) -> tuple[ControllerElector, ControllerElector]:
    """Wait until one elector leads and the other follows it; returns (controller, follower)."""
    first = await asyncio.wait_for(
        asyncio.wait(
            [asyncio.create_task(until(e, controller)) for e in electors], return_when="FIRST_COMPLETED"
        ),
        BOUND_S,
    )
    for task in first[1]:
        task.cancel()
    leader = next(e for e in electors if controller(e.status))
    other = next(e for e in electors if e is not leader)
    status = await until(other, lambda s: follower(s) and s.epoch == leader.status.epoch)
    assert status.controller_id == leader.machine.broker_id
    return leader, other


def test_two_contenders_elect_exactly_one_controller(etcd: EtcdServer) -> None:
    async def body(electors: list[ControllerElector]) -> None:
        leader, other = await settled(electors)
        assert [controller(e.status) for e in (leader, other)] == [True, False]
        found = await leader.client.get(Layout().controller)
        assert found is not None and found.create_revision == leader.status.epoch

    asyncio.run(contenders(etcd, body))


def test_a_revoked_lease_moves_the_controller_and_fences_the_deposed_ones_writes(etcd: EtcdServer) -> None:
    async def body(electors: list[ControllerElector]) -> None:
        leader, other = await settled(electors)
        old_epoch = leader.status.epoch
        assert old_epoch is not None and leader.machine.lease_id is not None
        store = MetadataStore(leader.client)
        state = PartitionState(1, 0, (1, 2), (1, 2), 0)
        await store.write_partitions(old_epoch, {("t", 0): state})  # the controller's write goes in
        await leader.client.revoke_lease(leader.machine.lease_id)  # the injected failure
        new = await until(other, controller)
        assert new.epoch is not None and new.epoch > old_epoch
        with pytest.raises(NotControllerError, match=f"controller epoch {old_epoch} is stale"):
            await store.write_partitions(old_epoch, {("t", 0): state})
        await until(leader, lambda s: follower(s) and s.epoch == new.epoch)

    asyncio.run(contenders(etcd, body))


def test_a_stopped_controller_hands_over_at_once(etcd: EtcdServer) -> None:
    async def body(electors: list[ControllerElector]) -> None:
        leader, other = await settled(electors)
        await leader.stop()
        assert (await until(other, controller)).epoch != leader.status.epoch

    asyncio.run(contenders(etcd, body))


def test_etcd_killed_deposes_the_controller_and_one_controller_returns_after_restart(
    etcd: EtcdServer,
) -> None:
    async def body(electors: list[ControllerElector]) -> None:
        leader, _ = await settled(electors)
        old_epoch = leader.status.epoch
        assert old_epoch is not None
        etcd.kill()
        await until(leader, lambda s: not controller(s))  # its lease deadline passed unrenewed
        assert not leader.is_controller()
        etcd.start()
        new_leader, _ = await settled(electors)
        epoch = new_leader.status.epoch
        assert epoch is not None and epoch > old_epoch
        assert sum(e.is_controller() for e in electors) == 1

    asyncio.run(contenders(etcd, body))
