"""The service layer: the only part of the broker that touches grpc and generated types.

Each handler validates the request, converts it to plain values, calls the domain, converts the answer
back, and maps errors through `broker.errors`.
"""

from __future__ import annotations

import grpc

from broker.domain.core import BrokerCore
from broker.service.admin import AdminService
from broker.service.answers import AnswerBudget
from broker.service.fetch import FetchService
from broker.service.groups import GroupService
from broker.service.produce import ProduceService
from wire.logstore.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    fetch_pb2,
    fetch_pb2_grpc,
    group_pb2,
    group_pb2_grpc,
    produce_pb2,
    produce_pb2_grpc,
)

SERVICE_NAMES = (
    admin_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name,
    produce_pb2.DESCRIPTOR.services_by_name["ProduceService"].full_name,
    fetch_pb2.DESCRIPTOR.services_by_name["FetchService"].full_name,
    group_pb2.DESCRIPTOR.services_by_name["GroupService"].full_name,
)


def add_services(
    server: grpc.aio.Server,
    core: BrokerCore,
    *,
    produce_timeout_ms: int,
    fetch_max_bytes: int,
    answers: AnswerBudget | None = None,
) -> None:
    """Register the logstore.v1 services on `server`; `answers` bounds the memory held for answers."""
    admin_pb2_grpc.add_AdminServiceServicer_to_server(AdminService(core), server)
    produce_pb2_grpc.add_ProduceServiceServicer_to_server(ProduceService(core, produce_timeout_ms), server)
    fetch_pb2_grpc.add_FetchServiceServicer_to_server(FetchService(core, fetch_max_bytes, answers), server)
    group_pb2_grpc.add_GroupServiceServicer_to_server(GroupService(core), server)
