"""A consumer's group membership: the pure state machine `membership`, its `driver` (heartbeat
thread, commits, rebalance callbacks) and the GroupService calls (`rpc`).

Import the public names from `logstore.client` itself: `from logstore.client import Producer, Consumer, Admin`.
"""
