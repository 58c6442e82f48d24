"""Typed errors of the consumer-group coordinator.

They extend the broker's one root, `logstore.broker.domain.errors.BrokerError` (itself a `LogStoreError`), so the
broker's one mapping table (exception class -> gRPC status or per-request error code) covers them too. Two hints travel with every class:

- ``retriable``: sending the same request again later may succeed.
- ``rejoin``: the member must give up every partition it owns and join again with member epoch 0
  (keeping its member id). This is what a client does on ``UnknownMemberIdError`` and
  ``FencedMemberEpochError``.
"""

from __future__ import annotations

from logstore.broker.domain.errors import BrokerError

from logstore.errors import InvalidRequestError


class GroupCoordinatorError(BrokerError):
    """Base class of every error the group coordinator raises on purpose."""

    retriable: bool = False
    rejoin: bool = False


class InvalidGroupRequestError(GroupCoordinatorError, InvalidRequestError):
    """A heartbeat, commit or admin request is malformed; retrying it unchanged will not help."""


class UnsupportedAssignorError(InvalidGroupRequestError):
    """The requested server-side assignor does not exist."""


class InvalidRegularExpressionError(InvalidGroupRequestError):
    """A subscription regular expression does not compile."""


class UnknownMemberIdError(GroupCoordinatorError):
    """The member id is not (or no longer) in the group: it left, timed out, was fenced, or the
    coordinator restarted. The member must release its partitions and rejoin with epoch 0."""

    rejoin = True


class FencedMemberEpochError(GroupCoordinatorError):
    """The member epoch in the request is not the member's current epoch: the sender is a zombie or
    missed an update. The member must release its partitions and rejoin with epoch 0."""

    rejoin = True


class FencedInstanceIdError(GroupCoordinatorError):
    """Another process joined with the same static instance id and took this member's place.

    Fatal for the sender: two live processes share one ``instance_id``, which must be unique.
    """


class GroupIdNotFoundError(GroupCoordinatorError):
    """No group of that id is known to the coordinator."""


class NonEmptyGroupError(GroupCoordinatorError):
    """The operation needs a group without members (delete, or a commit from outside the group)."""

    retriable = True
