"""The Kafka protocol listener: Kafka clients (kafka-python, aiokafka, librdkafka) over the same domain
as the gRPC services, translating only. Messages are kio's, generated from Kafka's own JSON specs;
`errors` maps the broker's error classes to Kafka's codes.
"""

from __future__ import annotations

from logstore.broker.kafka.listener import KafkaListener

__all__ = ["KafkaListener"]
