"""Administration: `api.Admin` for topics, and for consumer groups through `groups.GroupAdmin`.

Import the public names from `client` itself: `from client import Producer, Consumer, Admin`.
"""
