"""The broker's domain layer: partitions, long-polls, subscriptions and producer ids over the engine.

Plain Python values in and out (see `values`); no grpc and no generated types below this line.
"""
