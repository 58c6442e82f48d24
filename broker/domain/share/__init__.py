"""Share groups in the broker: the driver around the pure core (`logstore.broker.share_machine`), the
`__share_group_state` store and dead letters, with plain values in and out."""
