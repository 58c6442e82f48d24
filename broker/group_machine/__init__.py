"""Consumer groups with server-side assignment (Kafka's KIP-848 protocol), as a pure state machine.

The service layer drives one `GroupCoordinator` with plain values and the current time:

    coordinator = GroupCoordinator(CoordinatorConfig(), topic_partitions={"orders": 6})
    response = coordinator.heartbeat(HeartbeatRequest("billing", subscribed_topic_names=["orders"]), now_ms)
    # response.member_id, response.member_epoch, response.assignment, response.heartbeat_interval_ms
    coordinator.validate_commit("billing", response.member_id, response.member_epoch, now_ms)
    coordinator.update_topics({"orders": 8}, now_ms)      # after topic create / delete / add partitions
    coordinator.tick(now_ms)                              # at TickResult.next_deadline_ms, or periodically

Errors are in `logstore.broker.group_machine.errors`; see `GroupCoordinator` for the rules.
"""

from logstore.broker.group_machine.assignors import (
    ASSIGNORS,
    Assignor,
    RangeAssignor,
    UniformAssignor,
    get_assignor,
)
from logstore.broker.group_machine.coordinator import GroupCoordinator
from logstore.broker.group_machine.errors import (
    FencedInstanceIdError,
    FencedMemberEpochError,
    GroupCoordinatorError,
    GroupIdNotFoundError,
    InvalidGroupRequestError,
    InvalidRegularExpressionError,
    NonEmptyGroupError,
    UnknownMemberIdError,
    UnsupportedAssignorError,
)
from logstore.broker.group_machine.model import (
    EMPTY_ASSIGNMENT,
    JOIN_GROUP_MEMBER_EPOCH,
    LEAVE_GROUP_MEMBER_EPOCH,
    LEAVE_GROUP_STATIC_MEMBER_EPOCH,
    Assignment,
    CoordinatorConfig,
    GroupConfig,
    GroupDescription,
    GroupListing,
    GroupState,
    HeartbeatRequest,
    HeartbeatResponse,
    MemberDescription,
    MemberRemoved,
    MemberState,
    RemovalReason,
    TickResult,
    TopicPartition,
)

__all__ = [
    "ASSIGNORS",
    "EMPTY_ASSIGNMENT",
    "JOIN_GROUP_MEMBER_EPOCH",
    "LEAVE_GROUP_MEMBER_EPOCH",
    "LEAVE_GROUP_STATIC_MEMBER_EPOCH",
    "Assignment",
    "Assignor",
    "CoordinatorConfig",
    "FencedInstanceIdError",
    "FencedMemberEpochError",
    "GroupConfig",
    "GroupCoordinator",
    "GroupCoordinatorError",
    "GroupDescription",
    "GroupIdNotFoundError",
    "GroupListing",
    "GroupState",
    "HeartbeatRequest",
    "HeartbeatResponse",
    "InvalidGroupRequestError",
    "InvalidRegularExpressionError",
    "MemberDescription",
    "MemberRemoved",
    "MemberState",
    "NonEmptyGroupError",
    "RangeAssignor",
    "RemovalReason",
    "TickResult",
    "TopicPartition",
    "UniformAssignor",
    "UnknownMemberIdError",
    "UnsupportedAssignorError",
    "get_assignor",
]
