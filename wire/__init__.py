"""Generated gRPC stubs for the logstore wire contract, shared by the broker and the client.

The modules live under `wire.logstore.v1` (for example `wire.logstore.v1.produce_pb2` and
`wire.logstore.v1.produce_pb2_grpc`); they are generated from `proto/` by `python -m wire.generate`.
"""
