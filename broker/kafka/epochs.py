"""OffsetForLeaderEpoch (v2-3, KIP-320's consumer side): where a leader epoch ends in the leader's log, so
a consumer whose position came from an older leader can tell whether the log it read was truncated.

Kafka's answer: on the partition's leader only, after the current-epoch check, the largest epoch <= the
one asked for that the log knows and the offset where it ended (the log end for the latest), or -1/-1.
A single broker's log never stamped epochs (its batches are not replicated): every epoch a client names
ends at the log end there, since nothing was ever truncated under it.
"""

from __future__ import annotations

from typing import Any

from logstore.broker.auth.acl import Operation, ResourceType
from logstore.broker.kafka import cluster_answers, sasl
from logstore.broker.kafka.api_versions import NO_THROTTLE
from logstore.broker.kafka.codec import build, element, response_type
from logstore.broker.kafka.context import RequestContext
from logstore.broker.kafka.errors import error_code
from logstore.broker.kafka.versions import OFFSET_FOR_LEADER_EPOCH

from logstore.errors import LogStoreError
from logstore.leader_epoch import UNDEFINED, UNDEFINED_EPOCH, EpochEnd


def handle(request: Any, version: int, ctx: RequestContext) -> Any:
    cls = response_type(OFFSET_FOR_LEADER_EPOCH, version)
    topic_cls = element(cls, "topics")
    partition_cls = element(topic_cls, "partitions")
    topics = []
    for topic in request.topics:
        refused = sasl.refusal(ctx.auth, Operation.DESCRIBE, ResourceType.TOPIC, topic.topic)
        partitions = []
        for p in topic.partitions:
            try:
                if refused is not None:
                    raise refused
                end = end_offset(ctx, topic.topic, p.partition, p.current_leader_epoch, p.leader_epoch)
            except LogStoreError as exc:
                partitions.append(
                    build(
                        partition_cls,
                        error_code=error_code(exc),
                        partition=p.partition,
                        leader_epoch=UNDEFINED.epoch,
                        end_offset=UNDEFINED.end_offset,
                    )
                )
                continue
            partitions.append(
                build(
                    partition_cls,
                    error_code=error_code(None),
                    partition=p.partition,
                    leader_epoch=end.epoch,
                    end_offset=end.end_offset,
                )
            )
        topics.append(build(topic_cls, topic=topic.topic, partitions=tuple(partitions)))
    return build(cls, throttle_time=NO_THROTTLE, topics=tuple(topics))


def end_offset(ctx: RequestContext, topic: str, partition: int, current_epoch: int, epoch: int) -> EpochEnd:
    """The answer for one partition; raises what refuses it (a fenced or unknown current epoch, not the
    leader, no such partition)."""
    cluster = ctx.core.cluster
    fenced = cluster_answers.epoch_error(cluster, topic, partition, current_epoch)
    if fenced is not None:
        raise fenced
    cluster.check_leader(topic, partition)
    partition_log = ctx.core.topics.log(topic, partition)
    if not cluster.clustered and partition_log.latest_epoch == UNDEFINED_EPOCH:
        return UNDEFINED if epoch == UNDEFINED_EPOCH else EpochEnd(epoch, partition_log.log_end_offset)
    return partition_log.end_offset_for_epoch(epoch)
