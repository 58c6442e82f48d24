"""A cluster of brokers coordinated by etcd: the pure cores (placement, elections, ISR, the metadata layout)
and their thin etcd drivers. Nothing here is wired into the running broker yet; see docs/cluster.md.
"""
