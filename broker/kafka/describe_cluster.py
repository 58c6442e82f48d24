"""DescribeCluster (KIP-700): the live brokers, the controller and the cluster id, as Metadata gives them
but without topics (the admin clients' way to list brokers)."""

from __future__ import annotations

from typing import Any

from kio.schema.errors import ErrorCode
from logstore.broker.kafka import cluster_answers
from logstore.broker.kafka.api_versions import NO_THROTTLE
from logstore.broker.kafka.codec import build, element, response_type
from logstore.broker.kafka.context import CLUSTER_ID, RequestContext
from logstore.broker.kafka.versions import DESCRIBE_CLUSTER

BROKERS_ENDPOINT, CONTROLLERS_ENDPOINT = 1, 2
"""v1's endpoint types (KIP-919): this listener is a broker's; there are no controller listeners here."""
NO_OPERATIONS = -2147483648
"""Authorized operations not computed (Kafka's INT32_MIN)."""


def handle(request: Any, version: int, ctx: RequestContext) -> Any:
    cls = response_type(DESCRIBE_CLUSTER, version)
    endpoint_type = getattr(request, "endpoint_type", BROKERS_ENDPOINT)
    if endpoint_type != BROKERS_ENDPOINT:
        code = (
            ErrorCode.mismatched_endpoint_type
            if endpoint_type == CONTROLLERS_ENDPOINT
            else ErrorCode.unsupported_endpoint_type
        )
        return build(
            cls,
            throttle_time=NO_THROTTLE,
            error_code=code,
            error_message=f"this is a broker's listener; it serves endpoint type {BROKERS_ENDPOINT} only, "
            f"not {endpoint_type}",
            endpoint_type=endpoint_type,
            cluster_id=CLUSTER_ID,
            controller_id=-1,
            brokers=(),
            cluster_authorized_operations=NO_OPERATIONS,
        )
    broker_cls = element(cls, "brokers")
    brokers = tuple(
        build(broker_cls, broker_id=n.node_id, host=n.host, port=n.port, rack=None, is_fenced=False)
        for n in cluster_answers.brokers(ctx.core.cluster, ctx.endpoint)
    )
    return build(
        cls,
        throttle_time=NO_THROTTLE,
        error_code=ErrorCode.none,
        error_message=None,
        endpoint_type=BROKERS_ENDPOINT,
        cluster_id=CLUSTER_ID,
        controller_id=cluster_answers.controller_id(ctx.core.cluster),
        brokers=brokers,
        cluster_authorized_operations=NO_OPERATIONS,
    )
