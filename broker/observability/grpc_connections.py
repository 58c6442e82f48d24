"""How many client connections the gRPC listener has open, for `logstore_connections{listener="grpc"}`.

grpc.aio tells a server nothing when a connection opens or closes, so the count is read at scrape time
from gRPC's own channelz registry (the official `grpcio-channelz` package): the sockets of this broker's
gRPC server. One TCP connection is one socket, however many channels or calls a client multiplexes over
it. Channelz names a server by an id only (a listener asked for port 0 shows port 0), so the broker takes
note of the ids that appear while its server starts (`server_ids`).
"""

from __future__ import annotations

from collections.abc import Collection

from grpc_channelz.v1 import channelz, channelz_pb2


def server_ids() -> set[int]:
    """The ids of the gRPC servers in this process now."""
    servers = channelz.ChannelzServicer.GetServers(channelz_pb2.GetServersRequest(start_server_id=0), None)
    return {server.ref.server_id for server in servers.server}


def open_connections(ids: Collection[int]) -> int:
    """The sockets open now on the gRPC servers `ids` (0 for servers gone)."""
    return sum(_socket_count(server_id) for server_id in ids if server_id in server_ids())


def _socket_count(server_id: int) -> int:
    count, start = 0, 0
    while True:
        page = channelz.ChannelzServicer.GetServerSockets(
            channelz_pb2.GetServerSocketsRequest(server_id=server_id, start_socket_id=start), None
        )
        count += len(page.socket_ref)
        if page.end or not page.socket_ref:
            return count
        start = max(ref.socket_id for ref in page.socket_ref) + 1
