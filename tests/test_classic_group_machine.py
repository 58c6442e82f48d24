"""The classic group coordinator's rules, driven with plain values and a clock (Kafka's GroupCoordinator)."""

from __future__ import annotations

import itertools

import pytest
from logstore.broker.classic_group_machine import (
    ClassicConfig,
    ClassicGroupCoordinator,
    ClassicGroupState,
    Completions,
    JoinRequest,
)
from logstore.broker.classic_group_machine.errors import (
    IllegalGenerationError,
    InvalidGroupIdError,
    InvalidSessionTimeoutError,
    MemberIdRequiredError,
    RebalanceInProgressError,
)
from logstore.broker.group_machine.errors import (
    FencedInstanceIdError,
    NonEmptyGroupError,
    UnknownMemberIdError,
)
from logstore.broker.share_machine.errors import InconsistentGroupProtocolError

SESSION = 10_000
REBALANCE = 30_000
G = "billing"


@pytest.fixture
def coordinator() -> ClassicGroupCoordinator:
    ids = itertools.count(1)
    return ClassicGroupCoordinator(ClassicConfig(), new_member_id=lambda client: f"{client}-{next(ids)}")


def request(
    member_id: str = "", client: str = "c", protocols: tuple[str, ...] = ("range",), **kw: object
) -> JoinRequest:
    values: dict[str, object] = {
        "group_id": G,
        "member_id": member_id,
        "instance_id": None,
        "client_id": client,
        "client_host": "/127.0.0.1",
        "session_timeout_ms": SESSION,
        "rebalance_timeout_ms": REBALANCE,
        "protocol_type": "consumer",
        "protocols": tuple((p, p.encode()) for p in protocols),
        "require_known_member_id": False,
    }
    values.update(kw)
    return JoinRequest(**values)  # type: ignore[arg-type]


def join(c: ClassicGroupCoordinator, now: int = 0, **kw: object) -> tuple[str, Completions]:
    return c.join(request(**kw), now)  # type: ignore[arg-type]


def test_a_lone_member_leads_generation_one_and_gets_its_assignment_from_its_own_sync(
    coordinator: ClassicGroupCoordinator,
) -> None:
    member, done = join(coordinator)
    joined = done.joins[G, member]
    assert (joined.generation_id, joined.leader_id, joined.protocol_name) == (1, member, "range")
    assert [m.member_id for m in joined.members] == [member]  # the leader sees everyone's metadata
    done = coordinator.sync(G, 1, member, None, {member: b"plan"}, 1)
    assert done.syncs[G, member].assignment == b"plan"
    assert coordinator.describe(G).state is ClassicGroupState.STABLE  # type: ignore[union-attr]


def test_a_second_member_waits_until_the_first_rejoins_and_only_the_leader_gets_the_members(
    coordinator: ClassicGroupCoordinator,
) -> None:
    first, _ = join(coordinator)
    coordinator.sync(G, 1, first, None, {first: b"all"}, 0)
    second, done = join(coordinator, client="d")
    assert done.joins == {}  # waiting for the first member to join again
    with pytest.raises(RebalanceInProgressError):
        coordinator.heartbeat(G, 1, first, None, 10)  # tells the first member to rejoin
    _, done = join(coordinator, member_id=first)
    assert set(done.joins) == {(G, first), (G, second)}
    assert done.joins[G, first].leader_id == first and len(done.joins[G, first].members) == 2
    assert done.joins[G, second].members == () and done.joins[G, second].generation_id == 2
    # The follower's SyncGroup waits for the leader's; the leader's answers both.
    assert coordinator.sync(G, 2, second, None, {}, 1).syncs == {}
    done = coordinator.sync(G, 2, first, None, {first: b"p0", second: b"p1"}, 2)
    assert {k: v.assignment for k, v in done.syncs.items()} == {(G, first): b"p0", (G, second): b"p1"}


def test_generations_fence_members_that_missed_a_rebalance(coordinator: ClassicGroupCoordinator) -> None:
    first, _ = join(coordinator)
    coordinator.sync(G, 1, first, None, {}, 0)
    with pytest.raises(IllegalGenerationError):
        coordinator.heartbeat(G, 0, first, None, 1)
    with pytest.raises(IllegalGenerationError):
        coordinator.sync(G, 7, first, None, {}, 1)
    with pytest.raises(IllegalGenerationError):
        coordinator.validate_commit(G, 0, first, None)
    with pytest.raises(UnknownMemberIdError):
        coordinator.heartbeat(G, 1, "stranger", None, 1)
    coordinator.validate_commit(G, 1, first, None)  # the member at its generation may commit


def test_commits_from_outside_the_group_only_while_it_has_no_members(
    coordinator: ClassicGroupCoordinator,
) -> None:
    coordinator.validate_commit("nobody-here", -1, "", None)  # a group of offsets only
    with pytest.raises(IllegalGenerationError):
        coordinator.validate_commit("nobody-here", 3, "m", None)
    member, _ = join(coordinator)
    with pytest.raises(UnknownMemberIdError, match="refused while it has members"):
        coordinator.validate_commit(G, -1, "", None)
    with pytest.raises(RebalanceInProgressError):  # between JoinGroup and SyncGroup
        coordinator.validate_commit(G, 1, member, None)


def test_from_v4_a_new_member_is_given_its_id_first_and_an_unused_id_expires(
    coordinator: ClassicGroupCoordinator,
) -> None:
    with pytest.raises(MemberIdRequiredError) as required:
        join(coordinator, require_known_member_id=True)
    member_id = required.value.member_id
    assert coordinator.next_deadline_ms() == SESSION
    member, done = join(coordinator, member_id=member_id, require_known_member_id=True, now=5)
    assert member == member_id and done.joins[G, member].generation_id == 1
    with pytest.raises(MemberIdRequiredError) as unused:
        join(coordinator, require_known_member_id=True, now=10)
    coordinator.tick(10 + SESSION)
    with pytest.raises(UnknownMemberIdError):
        join(coordinator, member_id=unused.value.member_id, now=11 + SESSION)


def test_a_silent_member_is_removed_after_its_session_and_the_group_rebalances(
    coordinator: ClassicGroupCoordinator,
) -> None:
    first, _ = join(coordinator)
    second, _ = join(coordinator, client="d")
    _, _ = join(coordinator, member_id=first)
    coordinator.sync(G, 2, first, None, {}, 0)
    coordinator.sync(G, 2, second, None, {}, 0)
    coordinator.heartbeat(G, 2, first, None, SESSION - 1)
    done = coordinator.tick(SESSION)
    assert [(g, m) for g, m, _ in done.removed] == [(G, second)]
    assert coordinator.describe(G).state is ClassicGroupState.PREPARING_REBALANCE  # type: ignore[union-attr]
    _, done = join(coordinator, member_id=first, now=SESSION + 1)
    assert done.joins[G, first].generation_id == 3


def test_a_member_that_does_not_rejoin_in_the_rebalance_timeout_is_dropped(
    coordinator: ClassicGroupCoordinator,
) -> None:
    first, _ = join(coordinator)
    coordinator.sync(G, 1, first, None, {}, 0)
    second, _ = join(coordinator, client="d", now=1)
    for now in range(5_000, REBALANCE, 5_000):  # the first keeps heartbeating but never rejoins
        with pytest.raises(RebalanceInProgressError):
            coordinator.heartbeat(G, 1, first, None, now)
    done = coordinator.tick(1 + REBALANCE)
    assert [m for _, m, _ in done.removed] == [first]
    assert done.joins[G, second].leader_id == second and done.joins[G, second].generation_id == 2


def test_leaving_ends_waiting_requests_and_hands_the_partitions_to_the_others(
    coordinator: ClassicGroupCoordinator,
) -> None:
    first, _ = join(coordinator)
    coordinator.sync(G, 1, first, None, {}, 0)
    second, _ = join(coordinator, client="d")
    errors, done = coordinator.leave(G, [(first, None), ("ghost", None)], 1)
    assert errors[0] is None and isinstance(errors[1], UnknownMemberIdError)
    assert done.joins[G, second].generation_id == 2 and done.joins[G, second].leader_id == second


def test_a_rebalance_during_sync_fails_the_waiting_syncs(coordinator: ClassicGroupCoordinator) -> None:
    first, _ = join(coordinator)
    second, _ = join(coordinator, client="d")
    join(coordinator, member_id=first)
    assert coordinator.sync(G, 2, second, None, {}, 0).syncs == {}
    _, done = join(coordinator, client="e")  # a third member before the leader synced
    assert isinstance(done.syncs[G, second].error, RebalanceInProgressError)


def test_protocols_must_agree(coordinator: ClassicGroupCoordinator) -> None:
    join(coordinator, protocols=("range", "roundrobin"))
    with pytest.raises(InconsistentGroupProtocolError, match="none in common"):
        join(coordinator, protocols=("sticky",))
    with pytest.raises(InconsistentGroupProtocolError, match="protocol type"):
        join(coordinator, protocol_type="connect")
    _, done = join(coordinator, protocols=("roundrobin", "range"), client="d")
    # One vote each for range and roundrobin: the first member's preference breaks the tie.
    assert {j.protocol_name for j in done.joins.values()} <= {"range"}


def test_bad_joins_are_refused(coordinator: ClassicGroupCoordinator) -> None:
    with pytest.raises(InvalidGroupIdError):
        join(coordinator, group_id="")
    with pytest.raises(InvalidSessionTimeoutError, match=r"6000\.\.1800000"):
        join(coordinator, session_timeout_ms=10)
    with pytest.raises(UnknownMemberIdError):
        join(coordinator, member_id="made-up")


def test_a_restarted_static_member_takes_its_place_and_fences_the_old_process(
    coordinator: ClassicGroupCoordinator,
) -> None:
    old, _ = join(coordinator, instance_id="worker-1")
    coordinator.sync(G, 1, old, None, {}, 0)
    new, done = join(coordinator, instance_id="worker-1", now=1)
    assert new != old and done.joins[G, new].generation_id == 2
    with pytest.raises(FencedInstanceIdError):
        coordinator.heartbeat(G, 2, old, "worker-1", 2)


def test_only_a_group_without_members_can_be_deleted(coordinator: ClassicGroupCoordinator) -> None:
    member, _ = join(coordinator)
    with pytest.raises(NonEmptyGroupError):
        coordinator.delete(G)
    coordinator.leave(G, [(member, None)], 1)
    assert coordinator.describe(G).state is ClassicGroupState.EMPTY  # type: ignore[union-attr]
    coordinator.delete(G)
    assert coordinator.describe(G) is None


def test_a_member_whose_waiting_join_was_abandoned_is_removed_after_its_session(
    coordinator: ClassicGroupCoordinator,
) -> None:
    first, _ = join(coordinator)
    coordinator.sync(G, 1, first, None, {}, 0)
    second, _ = join(coordinator, client="d")  # waits for the first to rejoin
    coordinator.abandon(G, second, 100)  # its connection closed: the process is gone
    _, done = join(coordinator, member_id=first, now=200)
    assert done.joins == {}  # the second is still a member until its session ends...
    done = coordinator.tick(100 + SESSION)  # ...long before the rebalance timeout
    assert [m for _, m, _ in done.removed] == [second]
    assert done.joins[G, first].generation_id == 2 and done.joins[G, first].leader_id == first
