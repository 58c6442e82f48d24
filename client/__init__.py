"""The logstore Python client: producer, consumer, live tail and admin, over gRPC.

    from client import Producer, Consumer, Admin, TopicPartition, tail

    with Consumer("orders", group_id="billing", bootstrap="127.0.0.1:9092") as consumer:
        for record in consumer:   # the group shares the partitions; positions are auto-committed
            handle(record)

Names and defaults follow kafka-python where they can. The client depends on the generated stubs in
``wire`` and on the record codec ``logstore.records`` only.
"""

from client.admin.api import Admin, NewTopic
from client.consumer.api import Consumer
from client.consumer.records import ConsumerRecord
from client.consumer.tail import Tail, tail
from client.groups.driver import ConsumerRebalanceListener
from client.producer.api import Producer
from client.producer.futures import RecordFuture
from client.shared.errors import ClientError, CommitFailedError, GroupError
from client.shared.types import (
    OffsetAndTimestamp,
    PartitionInfo,
    RecordMetadata,
    TopicDescription,
    TopicPartition,
)

__all__ = [
    "Admin",
    "ClientError",
    "CommitFailedError",
    "Consumer",
    "ConsumerRebalanceListener",
    "ConsumerRecord",
    "GroupError",
    "NewTopic",
    "OffsetAndTimestamp",
    "PartitionInfo",
    "Producer",
    "RecordFuture",
    "RecordMetadata",
    "Tail",
    "TopicDescription",
    "TopicPartition",
    "tail",
]
