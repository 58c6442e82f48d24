"""The logstore Python client: producer, consumer, live tail and admin, over gRPC.

    from client import Producer, Consumer, Admin, TopicPartition, tail

    with Consumer("orders", group_id="billing", bootstrap="127.0.0.1:9092") as consumer:
        for record in consumer:   # the group shares the partitions; positions are auto-committed
            handle(record)

Names and defaults follow kafka-python where they can. The client depends on the generated stubs in
``wire`` and on the record codec ``logstore.records`` only.
"""

from client.admin import Admin, NewTopic
from client.consumer import Consumer
from client.errors import ClientError, CommitFailedError, GroupError
from client.futures import RecordFuture
from client.group import ConsumerRebalanceListener
from client.producer import Producer
from client.records import ConsumerRecord
from client.tail import Tail, tail
from client.types import OffsetAndTimestamp, PartitionInfo, RecordMetadata, TopicDescription, TopicPartition

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
