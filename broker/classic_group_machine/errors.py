"""Typed errors of the classic consumer-group protocol that the KIP-848 coordinator has no use for.

They extend the consumer-group root (`GroupCoordinatorError`), so the broker's error tables map them and
their ``retriable`` / ``rejoin`` hints travel the same way. The membership errors both protocols share
(unknown member, fenced instance id, non-empty group, inconsistent protocol) are reused from
`logstore.broker.group_machine.errors` and `logstore.broker.share_machine.errors`.
"""

from __future__ import annotations

from logstore.broker.group_machine.errors import GroupCoordinatorError, InvalidGroupRequestError


class IllegalGenerationError(GroupCoordinatorError):
    """The request's generation id is not the group's current one: the sender missed a rebalance and
    must rejoin (Kafka's ILLEGAL_GENERATION)."""

    rejoin = True


class RebalanceInProgressError(GroupCoordinatorError):
    """The group is rebalancing: the member must send JoinGroup again (Kafka's REBALANCE_IN_PROGRESS)."""

    retriable = True
    rejoin = True


class MemberIdRequiredError(GroupCoordinatorError):
    """A dynamic member's first JoinGroup (v4+, KIP-394): the answer carries the member id to join with."""

    retriable = True

    def __init__(self, message: str, member_id: str) -> None:
        super().__init__(message)
        self.member_id = member_id


class InvalidSessionTimeoutError(InvalidGroupRequestError):
    """The session timeout is outside group.min/max.session.timeout.ms (Kafka's INVALID_SESSION_TIMEOUT)."""


class InvalidGroupIdError(InvalidGroupRequestError):
    """The group id is empty (Kafka's INVALID_GROUP_ID)."""


class CoordinatorNotAvailableError(GroupCoordinatorError):
    """The coordinator cannot answer now (the broker is stopping, or a transactional coordinator was
    asked for): find the coordinator again later (Kafka's COORDINATOR_NOT_AVAILABLE)."""

    retriable = True


__all__ = [
    "CoordinatorNotAvailableError",
    "IllegalGenerationError",
    "InvalidGroupIdError",
    "InvalidSessionTimeoutError",
    "MemberIdRequiredError",
    "RebalanceInProgressError",
]
