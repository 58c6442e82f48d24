"""Share groups (Kafka's KIP-932 queues on the log): ``ShareConsumer``, ``AcknowledgeType``, ``ShareRecord``.

Import the public names from `logstore.client` itself: `from logstore.client import ShareConsumer, AcknowledgeType`.
"""
