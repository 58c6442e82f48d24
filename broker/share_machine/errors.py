"""Typed errors of the share-group core.

They extend the consumer-group coordinator's root (`GroupCoordinatorError`, itself a `BrokerError`), so the
broker's one table (`logstore.broker.errors`) maps them and their ``retriable`` / ``rejoin`` hints travel
the same way. The membership errors are the consumer-group ones, re-exported here: a share member that is
unknown or fenced rejoins exactly as a consumer does.
"""

from __future__ import annotations

from logstore.broker.group_machine.errors import (
    FencedMemberEpochError,
    GroupCoordinatorError,
    GroupIdNotFoundError,
    InvalidGroupRequestError,
    NonEmptyGroupError,
    UnknownMemberIdError,
)

from logstore.errors import InvalidConfigError, InvalidRequestError


class InvalidRecordStateError(GroupCoordinatorError):
    """The member does not hold every offset of an acknowledged range: never acquired, acquired by another
    member, its lock expired, or already acknowledged or archived (Kafka's INVALID_RECORD_STATE). Nothing
    in that range changed."""


class InconsistentGroupProtocolError(GroupCoordinatorError):
    """The group id belongs to a group of the other kind (a consumer group asked for as a share group, or
    the reverse): one id names one group (Kafka's INCONSISTENT_GROUP_PROTOCOL)."""


__all__ = [
    "FencedMemberEpochError",
    "GroupIdNotFoundError",
    "InconsistentGroupProtocolError",
    "InvalidConfigError",
    "InvalidGroupRequestError",
    "InvalidRecordStateError",
    "InvalidRequestError",
    "NonEmptyGroupError",
    "UnknownMemberIdError",
]
