"""Which API versions this listener advertises, and which it serves.

The advertised maxima are Kafka 2.4.0's for the keys served here, without the flexible versions (tagged
fields, KIP-482) that 2.4 introduced: Produce 8, Fetch 11, ListOffsets 5, DeleteRecords 1,
DescribeConfigs 2, AlterConfigs 1 and CreatePartitions 1 as in 2.4; ApiVersions 2,
InitProducerId 1, CreateTopics 4, DeleteTopics 3, IncrementalAlterConfigs 0, OffsetCommit 7, OffsetFetch 5,
JoinGroup 5, Heartbeat, LeaveGroup and SyncGroup 3, DescribeGroups 4, ListGroups 2 and
DeleteGroups 1, 2.4's last non-flexible ones; SaslHandshake 1 as in 2.4, and SaslAuthenticate up to 2 (2.5's
flexible one, which kio reads and writes).
kafka-python infers the broker's release from this list (Produce 8 -> 2.4) and librdkafka picks
features by it, so it must read as one real release.

For clusters (KIP-320, KIP-699, KIP-700): OffsetForLeaderEpoch 2-3 (2.4 had 0-3; kio, like Kafka 4,
has no schema below 2, and consumers validate their positions with v2 after a leader change),
FindCoordinator up to 4 (3 is 2.4's flexible one, 4 Kafka 3.0's batched keys) and DescribeCluster 0-2
(from 2.8; neither librdkafka nor kafka-python reads these keys as a release mark).

Beyond 2.4, for Kafka 4's share groups (KIP-932), which name topics by their ids: Metadata up to 12, so
a client learns the ids (v10) and may ask by id (v12), and ShareGroupHeartbeat, ShareFetch and
ShareAcknowledge v1, Kafka 4.1's. Those are flexible versions (tagged fields), which kio reads and writes.
kafka-python still reads the list as 2.4, since it decides by Produce's maximum.

DescribeAcls, CreateAcls and DeleteAcls v1 (2.4's maximum; kio has no v0): kafka-python reads
DescribeAcls 2 as 2.5 and 3 as 3.3. DescribeUserScramCredentials and AlterUserScramCredentials v0
(KIP-554, Kafka 2.7), which no client reads a release from.

Minimums are the oldest version kio has a schema for (Kafka 4's floors: DescribeConfigs 1), except Produce: librdkafka
turns compression off when Produce's minimum is not 0, so 0 is advertised and v3 is the oldest served
(v0-2 carry message sets v0/v1, which every client that sends ApiVersions has replaced by RecordBatch
v2); a request for a version not served closes its connection, as Kafka does.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ApiRange:
    name: str
    advertised: tuple[int, int]
    served: tuple[int, int]

    def serves(self, version: int) -> bool:
        return self.served[0] <= version <= self.served[1]


PRODUCE, FETCH, LIST_OFFSETS, METADATA = 0, 1, 2, 3
OFFSET_COMMIT, OFFSET_FETCH, FIND_COORDINATOR, JOIN_GROUP = 8, 9, 10, 11
HEARTBEAT, LEAVE_GROUP, SYNC_GROUP, DESCRIBE_GROUPS, LIST_GROUPS = 12, 13, 14, 15, 16
API_VERSIONS, CREATE_TOPICS, DELETE_TOPICS, DELETE_RECORDS, INIT_PRODUCER_ID = 18, 19, 20, 21, 22
DESCRIBE_CONFIGS, ALTER_CONFIGS, CREATE_PARTITIONS, INCREMENTAL_ALTER_CONFIGS = 32, 33, 37, 44
DELETE_GROUPS = 42
OFFSET_FOR_LEADER_EPOCH, DESCRIBE_CLUSTER = 23, 60
SHARE_GROUP_HEARTBEAT, SHARE_FETCH, SHARE_ACKNOWLEDGE = 76, 78, 79
SASL_HANDSHAKE, SASL_AUTHENTICATE = 17, 36
DESCRIBE_ACLS, CREATE_ACLS, DELETE_ACLS = 29, 30, 31
DESCRIBE_USER_SCRAM_CREDENTIALS, ALTER_USER_SCRAM_CREDENTIALS = 50, 51

APIS: dict[int, ApiRange] = {
    PRODUCE: ApiRange("Produce", (0, 8), (3, 8)),
    FETCH: ApiRange("Fetch", (4, 11), (4, 11)),
    LIST_OFFSETS: ApiRange("ListOffsets", (1, 5), (1, 5)),
    METADATA: ApiRange("Metadata", (0, 12), (0, 12)),
    OFFSET_COMMIT: ApiRange("OffsetCommit", (2, 7), (2, 7)),
    OFFSET_FETCH: ApiRange("OffsetFetch", (1, 5), (1, 5)),
    FIND_COORDINATOR: ApiRange("FindCoordinator", (0, 4), (0, 4)),
    JOIN_GROUP: ApiRange("JoinGroup", (0, 5), (0, 5)),
    HEARTBEAT: ApiRange("Heartbeat", (0, 3), (0, 3)),
    LEAVE_GROUP: ApiRange("LeaveGroup", (0, 3), (0, 3)),
    SYNC_GROUP: ApiRange("SyncGroup", (0, 3), (0, 3)),
    DESCRIBE_GROUPS: ApiRange("DescribeGroups", (0, 4), (0, 4)),
    LIST_GROUPS: ApiRange("ListGroups", (0, 2), (0, 2)),
    API_VERSIONS: ApiRange("ApiVersions", (0, 2), (0, 2)),
    CREATE_TOPICS: ApiRange("CreateTopics", (2, 4), (2, 4)),
    DELETE_TOPICS: ApiRange("DeleteTopics", (1, 3), (1, 3)),
    DELETE_RECORDS: ApiRange("DeleteRecords", (0, 1), (0, 1)),
    INIT_PRODUCER_ID: ApiRange("InitProducerId", (0, 1), (0, 1)),
    OFFSET_FOR_LEADER_EPOCH: ApiRange("OffsetForLeaderEpoch", (2, 3), (2, 3)),
    DELETE_GROUPS: ApiRange("DeleteGroups", (0, 1), (0, 1)),
    DESCRIBE_CONFIGS: ApiRange("DescribeConfigs", (1, 2), (1, 2)),
    ALTER_CONFIGS: ApiRange("AlterConfigs", (0, 1), (0, 1)),
    CREATE_PARTITIONS: ApiRange("CreatePartitions", (0, 1), (0, 1)),
    INCREMENTAL_ALTER_CONFIGS: ApiRange("IncrementalAlterConfigs", (0, 0), (0, 0)),
    DESCRIBE_CLUSTER: ApiRange("DescribeCluster", (0, 2), (0, 2)),
    SHARE_GROUP_HEARTBEAT: ApiRange("ShareGroupHeartbeat", (1, 1), (1, 1)),
    SHARE_FETCH: ApiRange("ShareFetch", (1, 1), (1, 1)),
    SHARE_ACKNOWLEDGE: ApiRange("ShareAcknowledge", (1, 1), (1, 1)),
    SASL_HANDSHAKE: ApiRange("SaslHandshake", (0, 1), (0, 1)),
    SASL_AUTHENTICATE: ApiRange("SaslAuthenticate", (0, 2), (0, 2)),
    DESCRIBE_ACLS: ApiRange("DescribeAcls", (1, 1), (1, 1)),
    CREATE_ACLS: ApiRange("CreateAcls", (1, 1), (1, 1)),
    DELETE_ACLS: ApiRange("DeleteAcls", (1, 1), (1, 1)),
    DESCRIBE_USER_SCRAM_CREDENTIALS: ApiRange("DescribeUserScramCredentials", (0, 0), (0, 0)),
    ALTER_USER_SCRAM_CREDENTIALS: ApiRange("AlterUserScramCredentials", (0, 0), (0, 0)),
}
