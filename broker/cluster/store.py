"""The etcd driver of the cluster metadata (aetcd): broker registration under a lease, the controller's
guarded transactions, snapshots and a watch that keeps a ClusterView current.

Every write to topics/ and partitions/ compares the controller key's create revision with the writer's
controller epoch in the same transaction, so etcd refuses a deposed controller (NotControllerError).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection, Mapping
from typing import Any

import aetcd
from logstore.broker.cluster.election_driver import ETCD_ERRORS
from logstore.broker.cluster.errors import ClusterMetadataError, NotControllerError, StalePartitionStateError
from logstore.broker.cluster.metadata import (
    BrokerRegistration,
    IsrRequest,
    Layout,
    PartitionState,
    TopicAssignment,
    TopicRequest,
)
from logstore.broker.cluster.view import ClusterView


class TopicExistsInClusterError(ClusterMetadataError):
    """The topic key is already there: created before, by this controller or another."""


class BrokerSession:
    """A broker's registration: its key lives under its own lease, kept alive until `close()`.

    Not thread-safe: it lives on one event loop.
    """

    def __init__(
        self, client: aetcd.Client, registration: BrokerRegistration, *, layout: Layout, ttl_s: int
    ) -> None:
        self.client = client
        self.registration = registration
        self.layout = layout
        self.ttl_s = ttl_s
        self.lease_id: int | None = None

    async def register(self) -> None:
        """Grant a lease and put the registration under it; a live broker with the same id is refused."""
        lease = await self.client.lease(self.ttl_s)
        key = self.layout.broker(self.registration.broker_id)
        tx = self.client.transactions
        created, _ = await self.client.transaction(
            compare=[tx.create(key) == 0],
            success=[tx.put(key, self.registration.encode(), lease=lease.id)],
            failure=[],
        )
        if not created:
            await self.client.revoke_lease(lease.id)
            raise ClusterMetadataError(
                f"broker id {self.registration.broker_id} is already registered by a live broker ({key!r})"
            )
        self.lease_id = lease.id

    async def keep_alive(self) -> bool:
        """One keep-alive; False once etcd no longer knows the lease (the registration is gone)."""
        if self.lease_id is None:
            return False
        reply = await self.client.refresh_lease(self.lease_id)
        if reply.TTL <= 0:
            self.lease_id = None
            return False
        return True

    async def keep_alive_until_lost(self) -> None:
        """Keep the registration alive every third of the TTL; returns once the lease is gone.

        etcd errors are retried: the lease lives on etcd's side until its TTL runs out whatever we do, and
        a keep-alive that then reaches etcd learns it (TTL 0) and ends this loop.
        """
        while True:
            await asyncio.sleep(self.ttl_s / 3)
            try:
                if not await self.keep_alive():
                    return
            except ETCD_ERRORS:
                continue

    async def close(self) -> None:
        if self.lease_id is not None:
            with contextlib.suppress(*ETCD_ERRORS):
                await self.client.revoke_lease(self.lease_id)
            self.lease_id = None


class MetadataStore:
    """Reads and guarded writes of the layout's keys. Not thread-safe: it lives on one event loop."""

    def __init__(self, client: aetcd.Client, layout: Layout | None = None) -> None:
        self.client = client
        self.layout = layout or Layout()

    async def snapshot(self) -> ClusterView:
        """Every key under the root, read at one revision."""
        view = ClusterView(self.layout)
        root = self.layout.root.encode() + b"/"
        found = await self.client.get_prefix(root)
        for kv in found:
            view.apply(kv.key, kv.value, kv.create_revision, kv.mod_revision)
        # One range read, one revision: watching from the next one misses nothing and repeats nothing.
        view.revision = found.header.revision
        return view

    async def create_topic(
        self,
        epoch: int,
        name: str,
        assignment: TopicAssignment,
        states: Mapping[int, PartitionState],
    ) -> int:
        """The topic's assignment and every partition's first state in one guarded transaction; its revision."""
        tx = self.client.transactions
        topic_key = self.layout.topic(name)
        ops = [tx.put(topic_key, assignment.encode())]
        ops += [tx.put(self.layout.partition(name, p), s.encode()) for p, s in sorted(states.items())]
        won, answers = await self.client.transaction(
            compare=[tx.create(self.layout.controller) == epoch, tx.create(topic_key) == 0],
            success=ops,
            failure=[tx.get(self.layout.controller)],
        )
        if won:
            return int(answers[0].response_put.header.revision)
        self._refuse_if_not_controller(epoch, answers)
        raise TopicExistsInClusterError(f"topic {name!r} already exists in the cluster ({topic_key!r})")

    async def write_partitions(
        self,
        epoch: int,
        states: Mapping[tuple[str, int], PartitionState],
        expected: Mapping[tuple[str, int], int] | None = None,
        answered: Collection[tuple[str, int]] = (),
    ) -> int:
        """New leader / epoch / ISR of some partitions, atomically, if `epoch` is still the controller's.

        `expected` holds the mod revision each partition's key had in the view the decision was taken on;
        if any key has changed since, nothing is written (StalePartitionStateError): decide again.
        `answered` are partitions whose ISR requests this write accepts or refuses: their request keys
        are deleted in the same transaction.
        """
        tx = self.client.transactions
        ops = [tx.put(self.layout.partition(t, p), s.encode()) for (t, p), s in sorted(states.items())]
        ops += [tx.delete(self.layout.isr_request(t, p)) for t, p in sorted(answered)]
        compare = [tx.create(self.layout.controller) == epoch]
        compare += [
            tx.mod(self.layout.partition(t, p)) == rev for (t, p), rev in sorted((expected or {}).items())
        ]
        won, answers = await self.client.transaction(
            compare=compare, success=ops, failure=[tx.get(self.layout.controller)]
        )
        if not won:
            self._refuse_if_not_controller(epoch, answers)
            raise StalePartitionStateError(
                f"partition states changed since the view this decision was taken on: {sorted(expected or {})}"
            )
        return _revision(answers[0]) if answers else 0

    def _refuse_if_not_controller(self, epoch: int, answers: list[Any]) -> None:
        current = answers[0][0][1].create_revision if answers and answers[0] else None
        if current != epoch:
            raise NotControllerError(
                f"controller epoch {epoch} is stale: the controller key's create revision is {current}"
            )

    async def request_topic(self, name: str, request: TopicRequest) -> bool:
        """Ask the controller to create `name`; False when the topic or a request for it exists already."""
        tx = self.client.transactions
        topic_key, request_key = self.layout.topic(name), self.layout.topic_request(name)
        created, _ = await self.client.transaction(
            compare=[tx.create(topic_key) == 0, tx.create(request_key) == 0],
            success=[tx.put(request_key, request.encode())],
            failure=[],
        )
        return bool(created)

    async def delete_topic_request(self, name: str) -> None:
        await self.client.delete(self.layout.topic_request(name))

    async def request_isr(self, topic: str, partition: int, request: IsrRequest, lease_id: int) -> None:
        """A leader's ISR change for the controller, bound to the leader's lease (gone if it dies)."""
        await self.client.put(self.layout.isr_request(topic, partition), request.encode(), lease=lease_id)

    async def follow(self, view: ClusterView, changed: asyncio.Event | None = None) -> None:
        """Keep `view` current from a watch on the root, until cancelled (re-reading after a broken watch)."""
        root = self.layout.root.encode() + b"/"
        while True:
            try:
                watch = await self.client.watch_prefix(root, start_revision=view.revision + 1)
                async for event in watch:
                    kv = event.kv
                    deleted = event.kind == aetcd.rtypes.EventKind.DELETE
                    view.apply(kv.key, None if deleted else kv.value, kv.create_revision, kv.mod_revision)
                    view.revision = max(view.revision, kv.mod_revision)
                    if changed is not None:
                        changed.set()
            except ETCD_ERRORS:
                await asyncio.sleep(0.5)
                fresh = await _retrying(self.snapshot)
                view.replace_with(fresh)
                if changed is not None:
                    changed.set()


def _revision(response: Any) -> int:
    """The revision a transaction's first operation (a put or a delete) was written at."""
    kind = response.WhichOneof("response")
    return int(getattr(response, kind).header.revision)


async def _retrying(read: Any) -> ClusterView:
    while True:
        try:
            view: ClusterView = await read()
            return view
        except ETCD_ERRORS:
            await asyncio.sleep(0.5)
