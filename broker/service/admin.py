"""AdminService: one topic per call; failures end the call with a gRPC status."""

from __future__ import annotations

import grpc
from logstore.broker.domain.core import BrokerCore
from logstore.broker.domain.values import TopicView
from logstore.broker.service.calls import unary
from logstore.wire.logstore.v1 import admin_pb2 as pb
from logstore.wire.logstore.v1 import admin_pb2_grpc


def topic_description(view: TopicView) -> pb.TopicDescription:
    return pb.TopicDescription(
        name=view.name,
        config=view.config,
        partitions=[
            pb.PartitionDescription(
                partition=p.partition, log_start_offset=p.log_start_offset, log_end_offset=p.log_end_offset
            )
            for p in view.partitions
        ],
    )


class AdminService(admin_pb2_grpc.AdminServiceServicer):
    def __init__(self, core: BrokerCore) -> None:
        self._core = core

    @unary
    async def CreateTopic(
        self, request: pb.CreateTopicRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateTopicResponse:
        view = self._core.admin.create(request.name, request.partitions, dict(request.config))
        return pb.CreateTopicResponse(topic=topic_description(view))

    @unary
    async def DeleteTopic(
        self, request: pb.DeleteTopicRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteTopicResponse:
        self._core.admin.delete(request.name)
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
        return pb.DescribeTopicResponse(
            topic=topic_description(self._core.admin.describe(request.name, request.allow_auto_create))
        )

    @unary
    async def CreatePartitions(
        self, request: pb.CreatePartitionsRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreatePartitionsResponse:
        view = self._core.admin.add_partitions(request.name, request.total_partitions)
        return pb.CreatePartitionsResponse(topic=topic_description(view))

    @unary
    async def AlterTopicConfig(
        self, request: pb.AlterTopicConfigRequest, context: grpc.aio.ServicerContext
    ) -> pb.AlterTopicConfigResponse:
        view = self._core.admin.alter_config(request.name, dict(request.set), list(request.reset))
        return pb.AlterTopicConfigResponse(topic=topic_description(view))
