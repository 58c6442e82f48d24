"""Administration: `api.Admin` for topics, and for consumer groups through `groups.GroupAdmin`.

Import the public names from `logstore.client` itself: `from logstore.client import Producer, Consumer, Admin`.
"""
