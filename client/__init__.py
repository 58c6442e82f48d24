"""The logstore Python client: producer, consumer, live tail and admin, over gRPC.

    from logstore.client import Producer, Consumer, Admin, TopicPartition, tail, ShareConsumer, AcknowledgeType

    with Consumer("orders", group_id="billing", bootstrap="127.0.0.1:9093") as consumer:
        for record in consumer:   # the group shares the partitions; positions are auto-committed
            handle(record)

Names and defaults follow kafka-python where they can. The client depends on the generated stubs in
``wire`` and on the record codec ``logstore.records`` only.
"""

from logstore.client.admin.api import Admin, NewTopic
from logstore.client.admin.security import AclBinding, AclBindingFilter
from logstore.client.consumer.api import Consumer
from logstore.client.consumer.records import ConsumerRecord
from logstore.client.consumer.tail import Tail, tail
from logstore.client.groups.driver import ConsumerRebalanceListener
from logstore.client.producer.api import Producer
from logstore.client.producer.futures import RecordFuture
from logstore.client.share.acks import AcknowledgeType
from logstore.client.share.api import ShareConsumer
from logstore.client.share.records import ShareRecord
from logstore.client.shared.errors import (
    ClientError,
    CommitFailedError,
    GroupError,
    InvalidRecordStateError,
)
from logstore.client.shared.types import (
    OffsetAndTimestamp,
    PartitionInfo,
    RecordMetadata,
    TopicDescription,
    TopicPartition,
)

__all__ = [
    "AcknowledgeType",
    "AclBinding",
    "AclBindingFilter",
    "Admin",
    "ClientError",
    "CommitFailedError",
    "Consumer",
    "ConsumerRebalanceListener",
    "ConsumerRecord",
    "GroupError",
    "InvalidRecordStateError",
    "NewTopic",
    "OffsetAndTimestamp",
    "PartitionInfo",
    "Producer",
    "RecordFuture",
    "RecordMetadata",
    "ShareConsumer",
    "ShareRecord",
    "Tail",
    "TopicDescription",
    "TopicPartition",
    "tail",
]
