"""What the producer, consumer, groups and admin parts of the client all use: the connection,
the error tree, backoff, serializers, topic metadata, option checks and small value types.

Import the public names from `logstore.client` itself: `from logstore.client import Producer, Consumer, Admin`.
"""
