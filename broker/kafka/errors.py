"""The one table from error classes to Kafka error codes, as `logstore.broker.errors` is for gRPC.

Every error the engine or the broker raises on purpose has an entry; the most specific class of an
exception decides, and anything else is a bug (UNKNOWN_SERVER_ERROR, logged with its traceback by the
caller). The codes are the ones a Kafka broker returns in the same situation, so clients retry, refresh
metadata or give up exactly as they would against Kafka.
"""

from __future__ import annotations

from kio.schema.errors import ErrorCode
from logstore.broker.classic_group_machine import errors as classic
from logstore.broker.cluster import errors as cluster
from logstore.broker.domain import errors as broker
from logstore.broker.group_machine import errors as groups
from logstore.broker.kafka import share_sessions as sessions
from logstore.broker.share_machine import errors as share

from logstore import errors as engine

TABLE: dict[type[BaseException], ErrorCode] = {
    # bad input: nothing was written, retrying as is will fail again
    engine.InvalidRequestError: ErrorCode.invalid_request,
    engine.InvalidTopicError: ErrorCode.invalid_topic_exception,
    engine.InvalidConfigError: ErrorCode.invalid_config,
    engine.InvalidPartitionCountError: ErrorCode.invalid_partitions,
    engine.CorruptRecordError: ErrorCode.corrupt_message,
    engine.RecordTooLargeError: ErrorCode.message_too_large,
    engine.InvalidTimestampError: ErrorCode.invalid_timestamp,
    # state: the thing asked for does not exist, exists already, or conflicts with what exists
    engine.UnknownTopicError: ErrorCode.unknown_topic_or_partition,
    engine.UnknownPartitionError: ErrorCode.unknown_topic_or_partition,
    sessions.UnknownTopicIdError: ErrorCode.unknown_topic_id,
    engine.TopicExistsError: ErrorCode.topic_already_exists,
    engine.OffsetOutOfRangeError: ErrorCode.offset_out_of_range,
    broker.CannotShrinkTopicError: ErrorCode.invalid_partitions,
    broker.InternalTopicError: ErrorCode.invalid_topic_exception,
    # idempotent producers
    engine.OutOfOrderSequenceError: ErrorCode.out_of_order_sequence_number,
    engine.DuplicateSequenceNumberError: ErrorCode.duplicate_sequence_number,
    share.InvalidRecordStateError: ErrorCode.invalid_record_state,
    share.InconsistentGroupProtocolError: ErrorCode.inconsistent_group_protocol,
    engine.InvalidProducerEpochError: ErrorCode.invalid_producer_epoch,
    # consumer groups, of either protocol
    groups.UnknownMemberIdError: ErrorCode.unknown_member_id,
    groups.FencedMemberEpochError: ErrorCode.fenced_member_epoch,
    groups.FencedInstanceIdError: ErrorCode.fenced_instance_id,
    groups.GroupIdNotFoundError: ErrorCode.group_id_not_found,
    groups.NonEmptyGroupError: ErrorCode.non_empty_group,
    groups.InvalidGroupRequestError: ErrorCode.invalid_request,
    groups.UnsupportedAssignorError: ErrorCode.unsupported_assignor,
    groups.InvalidRegularExpressionError: ErrorCode.invalid_regular_expression,
    # Kafka share sessions (KIP-932), this listener's own
    sessions.ShareSessionNotFoundError: ErrorCode.share_session_not_found,
    sessions.InvalidShareSessionEpochError: ErrorCode.invalid_share_session_epoch,
    sessions.ShareSessionLimitReachedError: ErrorCode.share_session_limit_reached,
    # the classic protocol's own (JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit)
    classic.IllegalGenerationError: ErrorCode.illegal_generation,
    classic.RebalanceInProgressError: ErrorCode.rebalance_in_progress,
    classic.MemberIdRequiredError: ErrorCode.member_id_required,
    classic.InvalidSessionTimeoutError: ErrorCode.invalid_session_timeout,
    classic.InvalidGroupIdError: ErrorCode.invalid_group_id,
    classic.CoordinatorNotAvailableError: ErrorCode.coordinator_not_available,
    # authentication and authorization
    broker.AuthenticationFailedError: ErrorCode.sasl_authentication_failed,
    broker.AuthorizationError: ErrorCode.cluster_authorization_failed,
    broker.TopicAuthorizationError: ErrorCode.topic_authorization_failed,
    broker.GroupAuthorizationError: ErrorCode.group_authorization_failed,
    broker.ClusterAuthorizationError: ErrorCode.cluster_authorization_failed,
    broker.UnknownUserError: ErrorCode.resource_not_found,
    broker.UserExistsError: ErrorCode.duplicate_resource,
    broker.SecurityStoreError: ErrorCode.kafka_storage_error,
    # a cluster: the request reached a broker that does not lead, or the replicas are too few
    broker.NotLeaderOrFollowerError: ErrorCode.not_leader_or_follower,
    broker.NotEnoughReplicasError: ErrorCode.not_enough_replicas,
    broker.NotEnoughReplicasAfterAppendError: ErrorCode.not_enough_replicas_after_append,
    broker.FencedLeaderEpochError: ErrorCode.fenced_leader_epoch,
    broker.UnknownLeaderEpochError: ErrorCode.unknown_leader_epoch,
    broker.NotCoordinatorError: ErrorCode.not_coordinator,
    cluster.NotControllerError: ErrorCode.not_controller,
    cluster.InvalidReplicationFactorError: ErrorCode.invalid_replication_factor,
    cluster.ClusterMetadataError: ErrorCode.unknown_server_error,
    cluster.StalePartitionStateError: ErrorCode.fenced_leader_epoch,
    # the broker or its disk: retrying later may work. A stopping broker answers as a partition leader
    # that went away does (LEADER_NOT_AVAILABLE): clients refresh metadata and retry.
    broker.RequestTimedOutError: ErrorCode.request_timed_out,
    broker.ShuttingDownError: ErrorCode.leader_not_available,
    engine.LogClosedError: ErrorCode.leader_not_available,
    engine.StorageError: ErrorCode.kafka_storage_error,
    engine.MetadataError: ErrorCode.kafka_storage_error,
    engine.PartitionOfflineError: ErrorCode.kafka_storage_error,
    # a stored batch failed its check when read: the disk did it, not the caller
    engine.CorruptSegmentError: ErrorCode.corrupt_message,
}

UNEXPECTED = ErrorCode.unknown_server_error


def error_code(error: BaseException | None) -> ErrorCode:
    """The Kafka error code for `error` (NONE for None, UNKNOWN_SERVER_ERROR for classes not in the table)."""
    if error is None:
        return ErrorCode.none
    for cls in type(error).__mro__:
        found = TABLE.get(cls)
        if found is not None:
            return found
    return UNEXPECTED


def error_message(error: BaseException | None) -> str | None:
    """The message for versions that carry one: the error's own words, or a pointer to the log for a bug."""
    if error is None:
        return None
    if error_code(error) is UNEXPECTED:
        return f"internal error ({type(error).__name__}); the broker's log has the details"
    return str(error) or type(error).__name__
