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
    Reassignment,
    TopicAssignment,
    TopicChange,
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
        """Every partition's first state, then the topic's assignment, guarded; the last revision.

        etcd caps a transaction's operations (`--max-txn-ops`, 128 by default), so the partitions go in
        chunks and the topic key last: brokers act on a topic only once its key is there, and a
        controller deposed half-way leaves partition keys the next one overwrites when it creates the
        topic. The topic key's transaction also requires it to be absent."""
        tx = self.client.transactions
        topic_key = self.layout.topic(name)
        items = sorted(states.items())
        for chunk in _chunks(items):
            try:
                await self._guarded(
                    epoch,
                    [tx.put(self.layout.partition(name, p), s.encode()) for p, s in chunk],
                    [tx.create(topic_key) == 0],
                )
            except StalePartitionStateError:
                raise TopicExistsInClusterError(
                    f"topic {name!r} already exists in the cluster ({topic_key!r})"
                ) from None
        won, answers = await self.client.transaction(
            compare=[tx.create(self.layout.controller) == epoch, tx.create(topic_key) == 0],
            success=[tx.put(topic_key, assignment.encode())],
            failure=[tx.get(self.layout.controller)],
        )
        if won:
            return int(answers[0].response_put.header.revision)
        self._refuse_if_not_controller(epoch, answers)
        raise TopicExistsInClusterError(f"topic {name!r} already exists in the cluster ({topic_key!r})")

    async def change_topic(
        self,
        epoch: int,
        name: str,
        assignment: TopicAssignment,
        new_states: Mapping[int, PartitionState],
        expected_revision: int,
    ) -> int:
        """A topic's new assignment (more partitions, other configs) with its new partitions' first states,
        if the topic key is still at `expected_revision` (StalePartitionStateError otherwise); then the
        change request goes. New partitions first, in chunks, the topic key last (see `create_topic`)."""
        tx = self.client.transactions
        topic_key = self.layout.topic(name)
        for chunk in _chunks(sorted(new_states.items())):
            await self._guarded(
                epoch,
                [tx.put(self.layout.partition(name, p), s.encode()) for p, s in chunk],
                [tx.mod(topic_key) == expected_revision],
            )
        return await self._guarded(
            epoch,
            [tx.put(topic_key, assignment.encode()), tx.delete(self.layout.topic_change(name))],
            [tx.mod(topic_key) == expected_revision],
        )

    async def delete_topic(self, epoch: int, name: str) -> int:
        """Delete a topic's assignment, partitions, pending requests and reassignments, guarded."""
        tx = self.client.transactions
        prefixes = [
            self.layout.partitions_of(name),
            self.layout.isr_requests_prefix + name.encode() + b"/",
            self.layout.reassignments_prefix + name.encode() + b"/",
        ]
        ops = [tx.delete(self.layout.topic(name)), tx.delete(self.layout.topic_change(name))]
        ops += [tx.delete(prefix, range_end=aetcd.utils.prefix_range_end(prefix)) for prefix in prefixes]
        return await self._guarded(epoch, ops, [])

    async def _guarded(self, epoch: int, ops: list[Any], compare: list[Any]) -> int:
        """Run `ops` if `epoch` is still the controller's and `compare` holds; the revision written at."""
        tx = self.client.transactions
        won, answers = await self.client.transaction(
            compare=[tx.create(self.layout.controller) == epoch, *compare],
            success=ops,
            failure=[tx.get(self.layout.controller)],
        )
        if not won:
            self._refuse_if_not_controller(epoch, answers)
            raise StalePartitionStateError("the keys this write was decided on changed meanwhile")
        return _revision(answers[0]) if answers else 0

    async def write_partitions(
        self,
        epoch: int,
        states: Mapping[tuple[str, int], PartitionState],
        expected: Mapping[tuple[str, int], int] | None = None,
        answered: Collection[tuple[str, int]] = (),
        *,
        reassigned: Collection[tuple[str, int]] = (),
        topics: Mapping[str, TopicAssignment] | None = None,
    ) -> int:
        """New leader / epoch / ISR of some partitions, if `epoch` is still the controller's; returns the
        revision of the last transaction.

        `expected` holds the mod revision each partition's key had in the view the decision was taken on;
        if any key has changed since, that chunk is not written (StalePartitionStateError): decide again.
        `answered` are partitions whose ISR requests this write accepts or refuses: their request keys
        are deleted with their states, as are the requests of finished reassignments (`reassigned`),
        whose topics' new replica lists go in `topics`. Each partition's write is atomic; a decision
        over more partitions than a transaction may hold goes in chunks, each guarded alike.
        """
        tx = self.client.transactions
        expected = expected or {}
        ops: list[tuple[list[Any], list[Any]]] = []
        for (t, p), state in sorted(states.items()):
            compare = [tx.mod(self.layout.partition(t, p)) == expected[(t, p)]] if (t, p) in expected else []
            ops.append(([tx.put(self.layout.partition(t, p), state.encode())], compare))
        ops += [([tx.delete(self.layout.isr_request(t, p))], []) for t, p in sorted(answered)]
        ops += [([tx.delete(self.layout.reassignment(t, p))], []) for t, p in sorted(reassigned)]
        ops += [
            ([tx.put(self.layout.topic(name), a.encode())], []) for name, a in sorted((topics or {}).items())
        ]
        revision = 0
        for chunk in _chunks(ops):
            try:
                revision = await self._guarded(
                    epoch, [op for ops_, _ in chunk for op in ops_], [c for _, cs in chunk for c in cs]
                )
            except StalePartitionStateError:
                raise StalePartitionStateError(
                    f"partition states changed since the view this decision was taken on: {sorted(expected)}"
                ) from None
        return revision

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

    async def request_reassignment(self, topic: str, partition: int, request: Reassignment) -> None:
        """Ask the controller to move a partition (replacing an earlier request for it)."""
        await self.client.put(self.layout.reassignment(topic, partition), request.encode())

    async def request_topic_change(self, name: str, change: TopicChange) -> bool:
        """Ask the controller to change a topic; False when another change of it is pending."""
        tx = self.client.transactions
        key = self.layout.topic_change(name)
        created, _ = await self.client.transaction(
            compare=[tx.create(key) == 0], success=[tx.put(key, change.encode())], failure=[]
        )
        return bool(created)

    async def delete_topic_change(self, name: str) -> None:
        await self.client.delete(self.layout.topic_change(name))

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


TXN_OPS = 100
"""Operations (and compares) per transaction: below etcd's default --max-txn-ops of 128."""


def _chunks(items: list[Any]) -> list[list[Any]]:
    return [items[i : i + TXN_OPS] for i in range(0, len(items), TXN_OPS)] or [[]]


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
