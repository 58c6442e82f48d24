"""``AioCoordinator``: a group's coordinator for the asyncio clients (``AsyncConsumer``'s group,
``AsyncShareConsumer``).

The threaded ``CoordinatorStub`` (``client/groups/coordinator.py``) finds it (DescribeCluster, then
FindCoordinator, over the client's threaded ``Connection``, in a worker thread: lookups are rare) and
forgets it when an answer or a failure says it moved; the calls themselves go over ``grpc.aio``, on one
channel per coordinator address, made as needed. A broker alone coordinates every group: its calls go
over the bootstrap channel, as before clusters.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import grpc
import grpc.aio
from logstore.client.groups.coordinator import CoordinatorStub, Lookup
from logstore.client.shared.connection import Connection
from logstore.client.shared.errors import ClientError


class AioCoordinator:
    """Only its event loop calls it (the lookup runs in a thread, the state changes on the loop)."""

    def __init__(
        self,
        finder: CoordinatorStub,
        connection: Connection,
        make_stub: Callable[[grpc.aio.Channel], Any],
        channel: grpc.aio.Channel,
        options: list[tuple[str, Any]],
    ) -> None:
        """``channel`` is the aio channel to the bootstrap address; ``options`` those of the others."""
        self.finder = finder
        self._connection = connection
        self._make_stub = make_stub
        self._bootstrap = make_stub(channel)
        self._bootstrap_address = connection.address
        self._options = options
        self._channels: dict[str, grpc.aio.Channel] = {}

    async def stub(self) -> Any:
        """The coordinator's stub (looked up in a thread when not known); raises ``Lookup`` (an
        UNAVAILABLE RpcError, retriable) when it cannot be found."""
        cluster = self._connection.cluster
        if cluster.learned and not cluster.clustered:
            address = self._connection.address  # alone: the broker reached (maybe not the first address)
        else:
            try:
                address = await asyncio.to_thread(self.finder.address)
            except ClientError as exc:
                raise Lookup(exc) from None
        if address == self._bootstrap_address:
            return self._bootstrap
        channel = self._channels.get(address)
        if channel is None:
            channel = self._channels[address] = self._connection.security.aio_channel(address, self._options)
        return self._make_stub(channel)

    async def call(self, method: str, request: Any, timeout_s: float) -> Any:
        """One call to the coordinator; an answer or failure saying it moved makes the next call look it
        up again (this one still fails, or answers its error code, for the caller's retry)."""
        stub = await self.stub()
        try:
            answer = await getattr(stub, method)(request, timeout=timeout_s)
        except grpc.RpcError as exc:
            self.finder.observe(exc)
            raise
        self.finder.observe(answer)
        return answer

    async def aclose(self) -> None:
        """Close the channels made here (not the bootstrap channel: its owner closes it)."""
        channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            await channel.close()
