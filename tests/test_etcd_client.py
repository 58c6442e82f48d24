"""aetcd against the etcd the project uses (Debian's etcd-server): the primitives the cluster is built on."""

from __future__ import annotations

import asyncio

import aetcd

from tests.etcd_support import EtcdServer


def client(etcd: EtcdServer) -> aetcd.Client:
    return aetcd.Client(host=etcd.host, port=etcd.client_port, timeout=5)


def test_the_server_is_debians_etcd_3_4_or_later(etcd: EtcdServer) -> None:
    async def main() -> str:
        async with client(etcd) as c:
            return str((await c.status()).version)

    major, minor, *_ = (int(x) for x in asyncio.run(main()).split("."))
    assert (major, minor) >= (3, 4)


def test_create_if_absent_transaction_and_a_lease_bound_key(etcd: EtcdServer) -> None:
    async def main() -> None:
        async with client(etcd) as c:
            tx = c.transactions
            lease = await c.lease(30)
            won, answers = await c.transaction(
                compare=[tx.create(b"/k") == 0], success=[tx.put(b"/k", b"a", lease=lease.id)], failure=[]
            )
            revision = answers[0].response_put.header.revision
            assert won
            again, found = await c.transaction(
                compare=[tx.create(b"/k") == 0], success=[tx.put(b"/k", b"b")], failure=[tx.get(b"/k")]
            )
            assert not again
            value, meta = found[0][0]
            assert (value, meta.create_revision, meta.lease) == (b"a", revision, lease.id)
            await c.revoke_lease(lease.id)
            assert await c.get(b"/k") is None  # the key went with its lease
            assert (await c.refresh_lease(lease.id)).TTL <= 0  # and etcd says so to a keep-alive

    asyncio.run(main())


def test_a_watch_sees_the_delete_of_a_revoked_leases_key(etcd: EtcdServer) -> None:
    async def main() -> list[str]:
        async with client(etcd) as c:
            lease = await c.lease(30)
            await c.put(b"/w", b"v", lease=lease.id)
            watch = await c.watch(b"/w")
            await c.revoke_lease(lease.id)
            async for event in watch:
                await watch.cancel()
                return [event.kind]
        return []

    assert asyncio.run(main()) == ["DELETE"]


def test_the_client_carries_on_after_etcd_is_killed_and_restarted(etcd: EtcdServer) -> None:
    async def main() -> bytes | None:
        async with client(etcd) as c:
            await c.put(b"/durable", b"kept")
            etcd.restart()
            for _ in range(50):  # the channel reconnects on its own; the first calls may fail
                try:
                    found = await c.get(b"/durable")
                    return None if found is None else found.value
                except aetcd.exceptions.ClientError:
                    await asyncio.sleep(0.1)
        return None

    assert asyncio.run(main()) == b"kept"
