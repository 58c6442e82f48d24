"""Reading: `api.Consumer` (assign or subscribe, then poll), its `fetcher` thread and pure
`subscription` state, its frozen `config`, `records`, `offsets` lookups, the group-less live `tail`,
and the dead-letter `retry` loop.

Import the public names from `logstore.client` itself: `from logstore.client import Producer, Consumer, Admin`.
"""
