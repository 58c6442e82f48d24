"""The logstore broker: a grpc.aio server over the storage engine.

Layers: `service` (grpc and generated types only there) over `domain` (plain values) over `logstore`.
`errors` maps error classes to gRPC status codes and wire error codes in one table; `settings` merges
flags, environment and config file; `server` runs the process; `embedded` runs one inside a test.
"""
