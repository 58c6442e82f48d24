"""The console's one error table: each error class the engine, the domain or the console raises on
purpose, to the HTTP status its JSON answer `{"error": NAME, "message": ...}` carries.

The classes are those of `logstore.broker.errors.TABLE` (the gRPC boundary's table) plus the console's
own two; `tests/test_console_api.py` checks that both tables name the same engine and domain classes.
The most specific class decides; anything else is a bug, answered 500 and logged with its traceback.
"""

from __future__ import annotations

from logstore.broker.cluster import errors as cluster
from logstore.broker.domain import errors as broker
from logstore.broker.group_machine import errors as groups
from logstore.broker.observability.metrics import error_name
from logstore.broker.share_machine import errors as shares

from logstore import errors as engine


class ForbiddenError(Exception):
    """The principal may not perform this action (see `permissions.may`), or the request lacks the
    console's anti-CSRF header or came from another origin."""


TABLE: dict[type[BaseException], int] = {
    # bad input: 400, or 413 for a record over the limits
    engine.InvalidRequestError: 400,
    engine.InvalidTopicError: 400,
    engine.InvalidConfigError: 400,
    engine.InvalidPartitionCountError: 400,
    engine.CorruptRecordError: 400,
    engine.RecordTooLargeError: 413,
    engine.InvalidTimestampError: 400,
    broker.InternalTopicError: 400,
    groups.InvalidGroupRequestError: 400,
    groups.UnsupportedAssignorError: 400,
    groups.InvalidRegularExpressionError: 400,
    # what was asked for does not exist (404), exists already or conflicts with what exists (409)
    engine.UnknownTopicError: 404,
    engine.UnknownPartitionError: 404,
    groups.GroupIdNotFoundError: 404,
    engine.TopicExistsError: 409,
    engine.OffsetOutOfRangeError: 416,
    broker.CannotShrinkTopicError: 409,
    groups.NonEmptyGroupError: 409,
    engine.OutOfOrderSequenceError: 409,
    engine.DuplicateSequenceNumberError: 409,
    engine.InvalidProducerEpochError: 409,
    groups.UnknownMemberIdError: 409,
    groups.FencedMemberEpochError: 409,
    groups.FencedInstanceIdError: 409,
    shares.InvalidRecordStateError: 409,
    shares.InconsistentGroupProtocolError: 409,
    # who may do what: not logged in (401), not allowed (403); the users and ACLs themselves
    broker.AuthenticationFailedError: 401,
    broker.AuthorizationError: 403,
    broker.TopicAuthorizationError: 403,
    broker.GroupAuthorizationError: 403,
    broker.ClusterAuthorizationError: 403,
    broker.UnknownUserError: 404,
    broker.UserExistsError: 409,
    broker.SecurityStoreError: 503,
    # a cluster: this broker does not lead the partition or coordinate the group, or replicas are too few
    broker.NotLeaderOrFollowerError: 503,
    broker.NotCoordinatorError: 503,
    broker.NotEnoughReplicasError: 503,
    broker.NotEnoughReplicasAfterAppendError: 503,
    broker.FencedLeaderEpochError: 409,
    broker.UnknownLeaderEpochError: 503,
    cluster.NotControllerError: 503,
    cluster.InvalidReplicationFactorError: 400,
    cluster.ClusterMetadataError: 503,
    cluster.StalePartitionStateError: 409,
    # the broker or its disk: retrying later may work
    broker.RequestTimedOutError: 504,
    broker.ShuttingDownError: 503,
    engine.LogClosedError: 503,
    engine.StorageError: 503,
    engine.MetadataError: 503,
    engine.PartitionOfflineError: 503,
    engine.CorruptSegmentError: 500,
    # the console's own
    ForbiddenError: 403,
}

INTERNAL = 500


def status_for(error: BaseException) -> int:
    """The HTTP status of the most specific class of `error` in the table (500 for a bug)."""
    for cls in type(error).__mro__:
        found = TABLE.get(cls)
        if found is not None:
            return found
    return INTERNAL


def body_for(error: BaseException) -> dict[str, str]:
    """`{"error": NAME, "message": words a person can act on}`; NAME is the wire error code's name (the
    same vocabulary as the metrics and the clients), or FORBIDDEN / INTERNAL."""
    status = status_for(error)
    if status == INTERNAL and not isinstance(error, engine.CorruptSegmentError):
        return {
            "error": "INTERNAL",
            "message": f"internal error ({type(error).__name__}); the broker's log has the details",
        }
    if isinstance(error, ForbiddenError):
        return {"error": "FORBIDDEN", "message": str(error)}
    return {"error": error_name(error), "message": str(error) or type(error).__name__}
