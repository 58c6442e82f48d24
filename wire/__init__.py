"""Generated gRPC stubs for the logstore wire contract, shared by the broker and the client.

The modules live under `logstore.wire.logstore.v1` (for example `logstore.wire.logstore.v1.produce_pb2` and
`logstore.wire.logstore.v1.produce_pb2_grpc`); they are generated from `proto/` by `python -m logstore.wire.generate`.
"""
