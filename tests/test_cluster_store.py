"""The metadata layout in a real etcd: registrations under leases, guarded controller writes, the watch."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aetcd
import pytest
from logstore.broker.cluster.errors import ClusterMetadataError, NotControllerError, StalePartitionStateError
from logstore.broker.cluster.leader_election import initial_state, on_brokers_changed
from logstore.broker.cluster.metadata import BrokerRegistration, ControllerRecord, Layout, TopicAssignment
from logstore.broker.cluster.placement import assign_replicas
from logstore.broker.cluster.store import BrokerSession, MetadataStore, TopicExistsInClusterError
from logstore.broker.cluster.view import ClusterView

from tests.etcd_support import EtcdServer

BOUND_S = 60  # a hang guard only
LAYOUT = Layout("/test-cluster")


def run(etcd: EtcdServer, body: Callable[[aetcd.Client], Awaitable[None]]) -> None:
    async def main() -> None:
        async with aetcd.Client(host=etcd.host, port=etcd.client_port, timeout=2) as c:
            await body(c)

    asyncio.run(main())


async def become_controller(c: aetcd.Client, broker_id: int = 1) -> int:
    """The controller key as the election writes it; returns the epoch (its create revision)."""
    lease = await c.lease(30)
    await c.put(LAYOUT.controller, ControllerRecord(broker_id).encode(), lease=lease.id)
    found = await c.get(LAYOUT.controller)
    assert found is not None
    return int(found.create_revision)


async def wait_until(
    view: ClusterView, changed: asyncio.Event, predicate: Callable[[ClusterView], bool]
) -> None:
    async def loop() -> None:
        while not predicate(view):
            await changed.wait()
            changed.clear()

    await asyncio.wait_for(loop(), BOUND_S)


def test_a_registration_lives_as_long_as_its_lease_and_an_id_is_taken_once(etcd: EtcdServer) -> None:
    async def body(c: aetcd.Client) -> None:
        registration = BrokerRegistration(3, {"grpc": "127.0.0.1:9001", "kafka": "127.0.0.1:9092"})
        session = BrokerSession(c, registration, layout=LAYOUT, ttl_s=30)
        await session.register()
        assert (await MetadataStore(c, LAYOUT).snapshot()).brokers == {3: registration}
        twin = BrokerSession(c, BrokerRegistration(3), layout=LAYOUT, ttl_s=3)
        with pytest.raises(ClusterMetadataError, match="broker id 3 is already registered"):
            await twin.register()
        assert session.lease_id is not None
        await c.revoke_lease(session.lease_id)  # as if its lease expired
        assert not await session.keep_alive()
        assert (await MetadataStore(c, LAYOUT).snapshot()).brokers == {}
        await twin.register()  # the id is free again
        keeper = asyncio.create_task(twin.keep_alive_until_lost())
        await asyncio.sleep(0)
        assert twin.lease_id is not None
        await c.revoke_lease(twin.lease_id)
        await asyncio.wait_for(keeper, BOUND_S)  # it notices the loss at its next keep-alive and ends
        assert twin.lease_id is None

    run(etcd, body)


def test_the_controller_creates_a_topic_with_every_partition_and_refuses_it_twice(etcd: EtcdServer) -> None:
    async def body(c: aetcd.Client) -> None:
        epoch = await become_controller(c)
        store = MetadataStore(c, LAYOUT)
        replicas = assign_replicas([1, 2, 3], 3, 3, start_index=1, shift=0)
        assignment = TopicAssignment(tuple(replicas), 3, 2)
        states = {p: initial_state(r, {1, 2, 3}) for p, r in enumerate(replicas)}
        await store.create_topic(epoch, "orders", assignment, states)
        view = await store.snapshot()
        assert view.topics == {"orders": assignment}
        assert view.partitions == {("orders", p): s for p, s in states.items()}
        assert (view.controller, view.controller_epoch) == (1, epoch)
        with pytest.raises(TopicExistsInClusterError, match="'orders' already exists"):
            await store.create_topic(epoch, "orders", assignment, states)

    run(etcd, body)


def test_writes_larger_than_an_etcd_transaction_go_in_guarded_chunks(etcd: EtcdServer) -> None:
    """etcd refuses transactions of more than 128 operations by default; 1,000 partitions still work."""

    async def body(c: aetcd.Client) -> None:
        epoch = await become_controller(c)
        store = MetadataStore(c, LAYOUT)
        replicas = assign_replicas([1, 2, 3], 1000, 3, start_index=0, shift=0)
        states = {p: initial_state(r, {1, 2, 3}) for p, r in enumerate(replicas)}
        await store.create_topic(epoch, "wide", TopicAssignment(tuple(replicas), 3, 2), states)
        view = await store.snapshot()
        assert len(view.partitions) == 1000 and "wide" in view.topics
        moved = {("wide", p): on_brokers_changed(s, {2, 3}) for p, s in states.items() if s.leader == 1}
        assert len(moved) > 300
        expected = {w: view.partition_revisions[w] for w in moved}
        await store.write_partitions(epoch, moved, expected)
        after = await store.snapshot()
        assert all(after.partitions[w] == s for w, s in moved.items())
        assert all(s.leader != 1 for s in after.partitions.values())

    run(etcd, body)


def test_a_stale_controller_epoch_writes_nothing(etcd: EtcdServer) -> None:
    async def body(c: aetcd.Client) -> None:
        old = await become_controller(c)
        await c.delete(LAYOUT.controller)
        new = await become_controller(c, broker_id=2)
        assert new > old
        store = MetadataStore(c, LAYOUT)
        assignment = TopicAssignment(((1,),), 1, 1)
        state = initial_state((1,), {1})
        with pytest.raises(NotControllerError, match=f"epoch {old} is stale: .* is {new}"):
            await store.create_topic(old, "t", assignment, {0: state})
        with pytest.raises(NotControllerError):
            await store.write_partitions(old, {("t", 0): state})
        assert (await store.snapshot()).partitions == {}
        await c.delete(LAYOUT.controller)
        with pytest.raises(NotControllerError, match="create revision is None"):
            await store.write_partitions(new, {("t", 0): state})

    run(etcd, body)


def test_a_watching_broker_sees_leadership_move_when_a_broker_dies(etcd: EtcdServer) -> None:
    async def body(c: aetcd.Client) -> None:
        epoch = await become_controller(c)
        store = MetadataStore(c, LAYOUT)
        sessions = [BrokerSession(c, BrokerRegistration(i), layout=LAYOUT, ttl_s=30) for i in (1, 2, 3)]
        for s in sessions:
            await s.register()
        state = initial_state((1, 2, 3), {1, 2, 3})
        await store.create_topic(epoch, "t", TopicAssignment(((1, 2, 3),), 3, 2), {0: state})
        view = await store.snapshot()
        changed = asyncio.Event()
        follower = asyncio.create_task(store.follow(view, changed))
        try:
            assert sessions[0].lease_id is not None
            await c.revoke_lease(sessions[0].lease_id)  # broker 1, the leader, dies
            await wait_until(view, changed, lambda v: v.live_brokers == {2, 3})
            moved = on_brokers_changed(
                view.partitions[("t", 0)], view.live_brokers
            )  # the controller's decision
            await store.write_partitions(epoch, {("t", 0): moved})
            await wait_until(view, changed, lambda v: v.partitions[("t", 0)].leader == 2)
            assert view.partitions[("t", 0)] == moved and moved.leader_epoch == 1 and moved.isr == (2, 3)
            assert view.under_replicated() == [("t", 0)]
            etcd.restart()  # the watch breaks; the follower re-reads and carries on
            await sessions[1].close()
            await wait_until(view, changed, lambda v: v.live_brokers == {3})
        finally:
            follower.cancel()
            with pytest.raises(asyncio.CancelledError):
                await follower

    run(etcd, body)


def test_values_that_do_not_match_the_layout_are_refused_naming_the_key() -> None:
    with pytest.raises(ClusterMetadataError, match="'isr' must be a list of broker ids"):
        ClusterView(LAYOUT).apply(LAYOUT.partition("t", 0), b'{"leader":1,"leader_epoch":0,"isr":[1,"x"]}')
    with pytest.raises(ClusterMetadataError, match="not JSON"):
        ClusterView(LAYOUT).apply(LAYOUT.broker(1), b"{")
    assert LAYOUT.parse_partition(LAYOUT.partition("a.b-c", 12)) == ("a.b-c", 12)


def test_a_partition_write_decided_on_a_stale_view_is_refused(etcd: EtcdServer) -> None:
    async def body(c: aetcd.Client) -> None:
        epoch = await become_controller(c)
        store = MetadataStore(c, LAYOUT)
        state = initial_state((1, 2), {1, 2})
        await store.create_topic(epoch, "t", TopicAssignment(((1, 2),), 2, 1), {0: state})
        view = await store.snapshot()
        seen = view.partition_revisions[("t", 0)]
        moved = on_brokers_changed(state, {2})
        await store.write_partitions(epoch, {("t", 0): moved}, {("t", 0): seen})
        with pytest.raises(StalePartitionStateError, match="changed since the view"):
            await store.write_partitions(epoch, {("t", 0): on_brokers_changed(moved, {2})}, {("t", 0): seen})
        assert (await store.snapshot()).partitions[("t", 0)] == moved

    run(etcd, body)
