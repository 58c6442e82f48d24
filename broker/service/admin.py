"""AdminService: one topic (or user) per call, and ACLs; failures end the call with a gRPC status."""

from __future__ import annotations

import grpc
from logstore.broker.auth.acl import (
    AclBinding,
    AclError,
    AclFilter,
    Operation,
    PatternType,
    Permission,
    ResourceType,
)
from logstore.broker.auth.scram import DEFAULT_ITERATIONS, Mechanism, ScramError
from logstore.broker.auth.security import Security
from logstore.broker.auth.store import UserListing
from logstore.broker.cluster.errors import ClusterMetadataError
from logstore.broker.domain.cluster_info import NO_BROKER, ClusterInfo, CoordinatorKind
from logstore.broker.domain.core import BrokerCore
from logstore.broker.domain.values import PartitionOffsets, TopicView
from logstore.broker.service.calls import require, unary
from logstore.wire.logstore.v1 import admin_pb2 as pb
from logstore.wire.logstore.v1 import admin_pb2_grpc

from logstore.errors import InvalidRequestError, UnknownTopicError

COORDINATOR_KINDS = {
    "": CoordinatorKind.GROUP,
    "group": CoordinatorKind.GROUP,
    "share": CoordinatorKind.SHARE,
}


def topic_description(view: TopicView, cluster: ClusterInfo | None = None) -> pb.TopicDescription:
    """The wire description; with `cluster`, each partition says who leads it and who replicates it
    (leader -1 and no replicas when the cluster does not know the partition)."""
    partitions = []
    for p in view.partitions:
        entry = pb.PartitionDescription(
            partition=p.partition, log_start_offset=p.log_start_offset, log_end_offset=p.log_end_offset
        )
        leadership = cluster.leadership(view.name, p.partition) if cluster is not None else None
        if leadership is not None:
            entry.leader = leadership.leader
            entry.leader_epoch = leadership.leader_epoch
            entry.replicas.extend(leadership.replicas)
            entry.isr.extend(leadership.isr)
        elif cluster is not None:
            entry.leader = NO_BROKER
        partitions.append(entry)
    return pb.TopicDescription(name=view.name, config=view.config, partitions=partitions)


def remote_topic(cluster: ClusterInfo, name: str) -> TopicView | None:
    """A topic this broker holds no replica of, as the cluster's metadata knows it: its partitions
    (numbered from 0 until the first the cluster does not know), offsets -1 (unknown here), no config.
    None when the cluster does not know the topic either, or this broker is alone."""
    if not cluster.clustered:
        return None
    partitions: list[PartitionOffsets] = []
    while cluster.leadership(name, len(partitions)) is not None:
        partitions.append(PartitionOffsets(len(partitions), -1, -1))
    return TopicView(name, {}, partitions) if partitions else None


def cluster_description(cluster: ClusterInfo) -> pb.DescribeClusterResponse:
    return pb.DescribeClusterResponse(
        brokers=[
            pb.BrokerDescription(broker_id=node.broker_id, endpoints=dict(node.endpoints))
            for node in cluster.brokers()
        ],
        controller_id=cluster.controller_id(),
        broker_id=cluster.broker_id,
        clustered=cluster.clustered,
    )


def user_description(user: UserListing) -> pb.UserDescription:
    return pb.UserDescription(
        name=user.name,
        credentials=[pb.UserCredentialInfo(mechanism=m.value, iterations=i) for m, i in user.mechanisms],
    )


def binding_from_wire(acl: pb.AclBinding) -> AclBinding:
    """A wire ACL as the model's value; INVALID_ARGUMENT naming what is wrong."""
    try:
        return AclBinding(
            principal=acl.principal,
            operation=Operation.parse(acl.operation),
            resource_type=ResourceType.parse(acl.resource_type),
            resource_name=acl.resource_name,
            pattern=PatternType.parse(acl.pattern or "literal"),
            permission=Permission.parse(acl.permission or "allow"),
        )
    except AclError as exc:
        raise InvalidRequestError(str(exc)) from None


def filter_from_wire(acl: pb.AclFilter) -> AclFilter:
    try:
        return AclFilter(
            principal=acl.principal or None,
            operation=Operation.parse(acl.operation) if acl.operation else None,
            resource_type=ResourceType.parse(acl.resource_type) if acl.resource_type else None,
            resource_name=acl.resource_name or None,
            pattern=PatternType.parse(acl.pattern) if acl.pattern else None,
            permission=Permission.parse(acl.permission) if acl.permission else None,
        )
    except AclError as exc:
        raise InvalidRequestError(str(exc)) from None


def binding_to_wire(binding: AclBinding) -> pb.AclBinding:
    return pb.AclBinding(
        principal=binding.principal,
        operation=binding.operation.value,
        resource_type=binding.resource_type.value,
        resource_name=binding.resource_name,
        pattern=binding.pattern.value,
        permission=binding.permission.value,
    )


class AdminService(admin_pb2_grpc.AdminServiceServicer):
    def __init__(self, core: BrokerCore, security: Security | None = None) -> None:
        self._core = core
        self._security_store = security

    @property
    def _security(self) -> Security:
        require(self._security_store is not None, "this broker keeps no users or ACLs")
        assert self._security_store is not None
        self._core.admin  # noqa: B018 - refused while shutting down, like every other admin call
        return self._security_store

    @unary
    async def CreateTopic(
        self, request: pb.CreateTopicRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateTopicResponse:
        view = await self._core.create_topic(
            request.name, request.partitions, dict(request.config), request.replication_factor
        )
        return pb.CreateTopicResponse(topic=topic_description(view, self._core.cluster))

    @unary
    async def DeleteTopic(
        self, request: pb.DeleteTopicRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteTopicResponse:
        await self._core.delete_topic(request.name)
        return pb.DeleteTopicResponse()

    @unary
    async def ListTopics(
        self, request: pb.ListTopicsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListTopicsResponse:
        topics = [pb.TopicSummary(name=t.name, partitions=t.partitions) for t in self._core.admin.list()]
        return pb.ListTopicsResponse(topics=topics)

    @unary
    async def DescribeTopic(
        self, request: pb.DescribeTopicRequest, context: grpc.aio.ServicerContext
    ) -> pb.DescribeTopicResponse:
        cluster = self._core.cluster
        try:
            view = self._core.admin.describe(request.name, request.allow_auto_create)
        except UnknownTopicError:
            found = remote_topic(cluster, request.name)  # a replica elsewhere: the client needs its leader
            if found is None:
                raise
            view = found
        return pb.DescribeTopicResponse(topic=topic_description(view, cluster))

    @unary
    async def CreatePartitions(
        self, request: pb.CreatePartitionsRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreatePartitionsResponse:
        view = await self._core.add_partitions(request.name, request.total_partitions)
        return pb.CreatePartitionsResponse(topic=topic_description(view, self._core.cluster))

    @unary
    async def AlterTopicConfig(
        self, request: pb.AlterTopicConfigRequest, context: grpc.aio.ServicerContext
    ) -> pb.AlterTopicConfigResponse:
        view = await self._core.alter_topic_config(request.name, dict(request.set), list(request.reset))
        return pb.AlterTopicConfigResponse(topic=topic_description(view, self._core.cluster))

    # --- the cluster ----------------------------------------------------------------------------------

    @unary
    async def DescribeCluster(
        self, request: pb.DescribeClusterRequest, context: grpc.aio.ServicerContext
    ) -> pb.DescribeClusterResponse:
        self._core.admin  # noqa: B018 - refused while shutting down, like every other admin call
        return cluster_description(self._core.cluster)

    @unary
    async def FindCoordinator(
        self, request: pb.FindCoordinatorRequest, context: grpc.aio.ServicerContext
    ) -> pb.FindCoordinatorResponse:
        kind = COORDINATOR_KINDS.get(request.kind)
        require(kind is not None, f"coordinator kind must be 'group' or 'share', not {request.kind!r}")
        require(bool(request.key), "name the group (key) whose coordinator to find")
        assert kind is not None
        cluster = self._core.cluster
        self._core.admin  # noqa: B018
        broker_id = cluster.coordinator(kind, request.key)
        if broker_id == NO_BROKER:
            raise ClusterMetadataError(
                f"{kind.value} {request.key!r} has no coordinator right now (its partition has no leader); "
                "retry shortly"
            )
        node = next((n for n in cluster.brokers() if n.broker_id == broker_id), None)
        endpoint = node.endpoints.get("grpc", "") if node is not None else ""
        return pb.FindCoordinatorResponse(broker_id=broker_id, endpoint=endpoint)

    @unary
    async def ReassignPartitions(
        self, request: pb.ReassignPartitionsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ReassignPartitionsResponse:
        targets = {p.partition: list(p.replicas) for p in request.partitions}
        require(len(targets) == len(request.partitions), "name each partition at most once")
        await self._core.reassign_partitions(request.name, targets)
        return pb.ReassignPartitionsResponse()

    # --- users and ACLs (super-users only when auth is on: broker/service/guard.py) ---------------------

    async def _set_user(self, request: pb.CreateUserRequest, *, create: bool) -> pb.CreateUserResponse:
        try:
            mechanisms = [Mechanism.parse(m) for m in request.mechanisms]
        except ScramError as exc:
            raise InvalidRequestError(str(exc)) from None
        user = self._security.set_user(
            request.name,
            request.password,
            mechanisms,
            request.iterations or DEFAULT_ITERATIONS,
            create=create,
        )
        return pb.CreateUserResponse(user=user_description(user))

    @unary
    async def CreateUser(
        self, request: pb.CreateUserRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateUserResponse:
        return await self._set_user(request, create=True)

    @unary
    async def AlterUser(
        self, request: pb.CreateUserRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateUserResponse:
        return await self._set_user(request, create=False)

    @unary
    async def DeleteUser(
        self, request: pb.DeleteUserRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteUserResponse:
        self._security.delete_user(request.name)
        return pb.DeleteUserResponse()

    @unary
    async def ListUsers(
        self, request: pb.ListUsersRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListUsersResponse:
        return pb.ListUsersResponse(users=[user_description(u) for u in self._security.list_users()])

    @unary
    async def CreateAcls(
        self, request: pb.CreateAclsRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateAclsResponse:
        bindings = [binding_from_wire(acl) for acl in request.acls]
        self._security.create_acls(bindings)
        return pb.CreateAclsResponse()

    @unary
    async def DescribeAcls(
        self, request: pb.DescribeAclsRequest, context: grpc.aio.ServicerContext
    ) -> pb.DescribeAclsResponse:
        found = self._security.describe_acls(filter_from_wire(request.filter))
        return pb.DescribeAclsResponse(acls=[binding_to_wire(b) for b in found])

    @unary
    async def DeleteAcls(
        self, request: pb.DeleteAclsRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteAclsResponse:
        filters = [filter_from_wire(f) for f in request.filters]
        require(len(filters) > 0, "name at least one filter (an empty filter matches every ACL)")
        removed = self._security.delete_acls(filters)
        return pb.DeleteAclsResponse(acls=[binding_to_wire(b) for b in removed])
