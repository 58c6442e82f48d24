"""The service layer: the only part of the broker that touches grpc and generated types.

Each handler validates the request, converts it to plain values, calls the domain, converts the answer
back, and maps errors through `logstore.broker.errors`.
"""

from __future__ import annotations

from collections.abc import Callable

import grpc
from logstore.broker.auth.security import Security
from logstore.broker.domain.core import BrokerCore
from logstore.broker.observability import DISABLED, BrokerMetrics
from logstore.broker.replication.replica_manager import ReplicaManager
from logstore.broker.service.admin import AdminService
from logstore.broker.service.answers import AnswerBudget
from logstore.broker.service.calls import add_servicer
from logstore.broker.service.fetch import FetchService
from logstore.broker.service.groups import GroupService
from logstore.broker.service.guard import Guard
from logstore.broker.service.produce import ProduceService
from logstore.broker.service.replication import ReplicationService
from logstore.broker.service.share import ShareService
from logstore.wire.logstore.v1 import admin_pb2, fetch_pb2, group_pb2, produce_pb2, replication_pb2, share_pb2

ADMIN = admin_pb2.DESCRIPTOR.services_by_name["AdminService"]
PRODUCE = produce_pb2.DESCRIPTOR.services_by_name["ProduceService"]
FETCH = fetch_pb2.DESCRIPTOR.services_by_name["FetchService"]
GROUP = group_pb2.DESCRIPTOR.services_by_name["GroupService"]
SHARE = share_pb2.DESCRIPTOR.services_by_name["ShareService"]
REPLICATION = replication_pb2.DESCRIPTOR.services_by_name["ReplicationService"]
SERVICE_NAMES = tuple(service.full_name for service in (ADMIN, PRODUCE, FETCH, GROUP, SHARE, REPLICATION))


def add_services(
    server: grpc.aio.Server,
    core: BrokerCore,
    *,
    produce_timeout_ms: int,
    fetch_max_bytes: int,
    answers: AnswerBudget | None = None,
    metrics: BrokerMetrics = DISABLED,
    security: Security | None = None,
    require_auth: bool = False,
    replicas: Callable[[], ReplicaManager | None] = lambda: None,
) -> None:
    """Register the logstore.v1 services on `server` (decoding requests in `calls`, not in grpc, so a
    malformed one is INVALID_ARGUMENT, not UNKNOWN); `answers` bounds the memory held for answers, and
    `metrics` counts the calls, bytes and records.

    `security` holds the users and ACLs (the admin calls manage them); with `require_auth` every call
    is authenticated and authorized first (`guard.Guard`). `replicas` is the cluster node's replica
    manager once it has joined (None for a single broker), which the replication calls serve from."""
    guard = None
    if require_auth:
        assert security is not None, "require_auth needs the broker's users and ACLs"
        guard = Guard(security, core.topic_exists)
    add_servicer(server, AdminService(core, security), ADMIN, metrics, guard)
    add_servicer(server, ProduceService(core, produce_timeout_ms, metrics), PRODUCE, metrics, guard)
    add_servicer(server, FetchService(core, fetch_max_bytes, answers, metrics), FETCH, metrics, guard)
    add_servicer(server, GroupService(core), GROUP, metrics, guard)
    add_servicer(server, ShareService(core, fetch_max_bytes, answers, metrics), SHARE, metrics, guard)
    add_servicer(server, ReplicationService(core, replicas), REPLICATION, metrics, guard)
