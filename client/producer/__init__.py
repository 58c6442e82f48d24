"""The producer: `api.Producer` (send, flush, close), its pure core `accumulator`, the `sender`
thread, the `partitioner`, the per-record `futures`, its frozen `config`, and the close at exit
(`unclosed`).

Import the public names from `logstore.client` itself: `from logstore.client import Producer, Consumer, Admin`.
"""
