"""Errors the broker raises itself, beside the storage engine's `logstore.errors`.

They are plain exceptions (no grpc here); `logstore.broker.errors` maps them to gRPC status codes and to the
per-partition error codes of the wire contract, together with the engine's classes.

One root: `BrokerError` extends the engine's `LogStoreError`, and the consumer-group coordinator's errors
(`logstore.broker.group_machine.errors`) extend `BrokerError`, so `except LogStoreError` catches every error raised on
purpose below the service layer, and anything else is a bug.
"""

from __future__ import annotations

from logstore.errors import InvalidTopicError, LogStoreError


class BrokerError(LogStoreError):
    """Base class of the errors the broker (its domain layer and its group coordinator) raises on purpose."""


class ShuttingDownError(BrokerError):
    """The broker is stopping and takes no new work; retry once it (or another) is back."""


class RequestTimedOutError(BrokerError):
    """The data was appended but not confirmed durable within the request's timeout."""


class CannotShrinkTopicError(BrokerError):
    """A topic cannot have fewer partitions than it has now: that would drop stored data."""


class InternalTopicError(BrokerError, InvalidTopicError):
    """The request would write to, delete or grow a topic the broker keeps for itself (such as
    `__consumer_offsets`); clients may read such topics but not change them."""


class AuthenticationFailedError(BrokerError):
    """The call carried no credentials, or ones that do not check out (unknown user or wrong password:
    the message never says which). Kafka's SASL_AUTHENTICATION_FAILED."""


class AuthorizationError(BrokerError):
    """The principal is known but no ACL allows the operation on the resource (or one denies it)."""


class TopicAuthorizationError(AuthorizationError):
    """Kafka's TOPIC_AUTHORIZATION_FAILED: the operation on this topic is not allowed."""


class GroupAuthorizationError(AuthorizationError):
    """Kafka's GROUP_AUTHORIZATION_FAILED: the operation on this group is not allowed."""


class ClusterAuthorizationError(AuthorizationError):
    """Kafka's CLUSTER_AUTHORIZATION_FAILED: the operation on the cluster (user and ACL administration,
    among others) is not allowed."""


class UnknownUserError(BrokerError):
    """No user of that name has credentials (deleting or changing a user who does not exist)."""


class UserExistsError(BrokerError):
    """A user of that name has credentials already; change them with AlterUser (`logstore users passwd`)."""


class SecurityStoreError(BrokerError):
    """`users.json` or `acls.json` in the data directory cannot be read or is not valid; the broker
    refuses to start rather than serve with fewer users or permissions than were granted."""


class NotLeaderOrFollowerError(BrokerError):
    """This broker does not lead the partition (in a cluster): the client's metadata is stale; it should
    refresh it and send to the leader. Kafka's NOT_LEADER_OR_FOLLOWER."""


class NotEnoughReplicasError(BrokerError):
    """acks=all with fewer in-sync replicas than min.insync.replicas: nothing was written."""


class NotEnoughReplicasAfterAppendError(BrokerError):
    """acks=all: written on the leader, but the ISR shrank below min.insync.replicas before the batch
    was replicated; the write may or may not survive a failover, so the producer retries."""


class FencedLeaderEpochError(BrokerError):
    """A request named an older leader epoch than this leader's: the sender's metadata is stale."""


class UnknownLeaderEpochError(BrokerError):
    """A request named a newer leader epoch than this broker knows: its metadata is behind; retry."""


class NotCoordinatorError(BrokerError):
    """This broker is not the coordinator of the group (in a cluster, the coordinator lives on the
    leader of the group's internal-topic partition and moves with it): find it again and retry."""

    def __init__(self, message: str, coordinator: int = -1) -> None:
        super().__init__(message)
        self.coordinator = coordinator
        """The broker id that coordinates the group now, as this broker sees it; -1 when none does."""
