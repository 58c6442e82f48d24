"""Who may call the broker, and what they may do: SCRAM users (`scram`), Kafka's ACLs (`acl`), their
durable store in the data directory (`store`) and the broker's decisions over them (`security`)."""
