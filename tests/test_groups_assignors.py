"""The server-side assignors: exact range results, and uniform's balance and stickiness, by example and
by property."""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from logstore.broker.group_machine import (
    Assignment,
    RangeAssignor,
    TopicPartition,
    UniformAssignor,
    UnsupportedAssignorError,
    get_assignor,
)


def tps(topic: str, *partitions: int) -> Assignment:
    return frozenset(TopicPartition(topic, p) for p in partitions)


def moved(before: Mapping[str, Assignment], after: Mapping[str, Assignment]) -> int:
    return sum(
        len(parts - after.get(member, frozenset())) for member, parts in before.items() if member in after
    )


def test_range_cuts_each_topic_into_contiguous_ranges_over_sorted_members() -> None:
    subscriptions = {"c": frozenset({"t", "u"}), "a": frozenset({"t", "u"}), "b": frozenset({"t"})}
    result = RangeAssignor().assign(subscriptions, {"t": 7, "u": 3}, {})
    assert result == {
        "a": tps("t", 0, 1, 2) | tps("u", 0, 1),
        "b": tps("t", 3, 4),
        "c": tps("t", 5, 6) | tps("u", 2),
    }


def test_range_puts_static_members_first_in_instance_id_order() -> None:
    subscriptions = {m: frozenset({"t"}) for m in ("a", "b", "c")}
    result = RangeAssignor().assign(subscriptions, {"t": 3}, {}, {"c": "i1", "b": "i2"})
    assert result == {"c": tps("t", 0), "b": tps("t", 1), "a": tps("t", 2)}


def test_range_with_more_members_than_partitions_leaves_the_last_ones_empty() -> None:
    subscriptions = {m: frozenset({"t"}) for m in ("a", "b", "c")}
    assert RangeAssignor().assign(subscriptions, {"t": 2}, {}) == {
        "a": tps("t", 0),
        "b": tps("t", 1),
        "c": frozenset(),
    }


def test_uniform_balances_a_fresh_group() -> None:
    subscriptions = {m: frozenset({"t", "u"}) for m in ("a", "b", "c")}
    result = UniformAssignor().assign(subscriptions, {"t": 5, "u": 5}, {})
    assert sorted(map(len, result.values())) == [3, 3, 4]
    assert frozenset().union(*result.values()) == tps("t", *range(5)) | tps("u", *range(5))


def test_uniform_adding_a_fourth_member_to_three_moves_exactly_three_of_twelve() -> None:
    assignor = UniformAssignor()
    subscriptions = {m: frozenset({"t"}) for m in ("a", "b", "c")}
    before = assignor.assign(subscriptions, {"t": 12}, {})
    after = assignor.assign({**subscriptions, "d": frozenset({"t"})}, {"t": 12}, before)
    assert moved(before, after) == 3
    assert sorted(map(len, after.values())) == [3, 3, 3, 3]


def test_uniform_removing_a_member_moves_only_its_partitions() -> None:
    assignor = UniformAssignor()
    subscriptions = {m: frozenset({"t"}) for m in ("a", "b", "c", "d")}
    before = assignor.assign(subscriptions, {"t": 12}, {})
    del subscriptions["d"]
    after = assignor.assign(subscriptions, {"t": 12}, before)
    assert moved(before, after) == 0
    assert sorted(map(len, after.values())) == [4, 4, 4]


def test_uniform_drops_partitions_of_deleted_topics_and_unsubscribed_topics() -> None:
    assignor = UniformAssignor()
    current = {"a": tps("t", 0, 1, 5) | tps("gone", 0), "b": tps("u", 0)}
    result = assignor.assign({"a": frozenset({"t"}), "b": frozenset({"t"})}, {"t": 4, "u": 1}, current)
    assert result["a"] >= tps("t", 0, 1)
    assert result["a"] | result["b"] == tps("t", 0, 1, 2, 3)


def test_uniform_with_different_subscriptions_gives_each_topic_only_to_its_subscribers() -> None:
    subscriptions = {"a": frozenset({"t"}), "b": frozenset({"t", "u"}), "c": frozenset({"u"})}
    result = UniformAssignor().assign(subscriptions, {"t": 4, "u": 8}, {})
    assert {tp.topic for tp in result["a"]} == {"t"}
    assert {tp.topic for tp in result["c"]} == {"u"}
    assert sorted(map(len, result.values())) == [4, 4, 4]  # needs a chain: u moves c -> b, t moves b -> a


def test_unknown_assignor_names_the_supported_ones() -> None:
    assert get_assignor("range").name == "range"
    with pytest.raises(UnsupportedAssignorError, match=r"\['range', 'uniform'\]"):
        get_assignor("cooperative-sticky")


# --- properties -----------------------------------------------------------------------------------------

TOPICS = ("t0", "t1", "t2", "t3")
topic_counts = st.dictionaries(st.sampled_from(TOPICS), st.integers(0, 9), max_size=len(TOPICS))
subscription_maps = st.dictionaries(
    st.sampled_from([f"m{i}" for i in range(7)]),
    st.frozensets(st.sampled_from(TOPICS), max_size=len(TOPICS)),
    max_size=7,
)


def check_valid(subscriptions, topics, result) -> None:
    assert set(result) == set(subscriptions)
    seen: set[TopicPartition] = set()
    for member, parts in result.items():
        for tp in parts:
            assert tp.topic in subscriptions[member] and 0 <= tp.partition < topics[tp.topic]
        assert not seen & parts
        seen |= parts
    subscribed = {t for topics_of in subscriptions.values() for t in topics_of if t in topics}
    assert seen == {TopicPartition(t, p) for t in subscribed for p in range(topics[t])}


def check_balanced(subscriptions, result) -> None:
    """No member could take a partition from one holding two or more partitions more than it."""
    for giver, parts in result.items():
        for receiver in result:
            if len(result[receiver]) + 1 < len(parts):
                assert not any(tp.topic in subscriptions[receiver] for tp in parts), (giver, receiver)


def most_even_sum_of_squares(subscriptions, topics) -> int:
    """Brute force over every valid assignment: the smallest possible sum of squared loads."""
    members = sorted(subscriptions)
    partitions = [
        t for t in sorted(topics) for _ in range(topics[t]) if any(t in s for s in subscriptions.values())
    ]
    choices = [[m for m in members if t in subscriptions[m]] for t in partitions]
    best = None
    for owners in itertools.product(*choices):
        loads = [owners.count(m) for m in members]
        best = min(best if best is not None else 10**9, sum(x * x for x in loads))
    return best or 0


@settings(max_examples=150, deadline=None)
@given(subscription_maps, topic_counts)
def test_range_is_valid_and_splits_each_topic_evenly(subscriptions, topics) -> None:
    result = RangeAssignor().assign(subscriptions, topics, {})
    check_valid(subscriptions, topics, result)
    for topic in topics:
        sizes = [
            sum(tp.topic == topic for tp in result[m])
            for m in sorted(subscriptions)
            if topic in subscriptions[m]
        ]
        assert sizes == sorted(sizes, reverse=True) and (not sizes or sizes[0] - sizes[-1] <= 1)


@settings(max_examples=150, deadline=None)
@given(subscription_maps, topic_counts, subscription_maps, topic_counts)
def test_uniform_is_valid_balanced_and_sticky(before_subs, before_topics, after_subs, after_topics) -> None:
    assignor = UniformAssignor()
    before = assignor.assign(before_subs, before_topics, {})
    check_valid(before_subs, before_topics, before)
    check_balanced(before_subs, before)
    after = assignor.assign(after_subs, after_topics, before)
    check_valid(after_subs, after_topics, after)
    check_balanced(after_subs, after)
    assert assignor.assign(after_subs, after_topics, after) == after  # a balanced target stays put
    for group in {frozenset(s) for s in after_subs.values()}:
        sizes = [len(after[m]) for m, s in after_subs.items() if s == group]
        assert max(sizes) - min(sizes) <= 1


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 8), st.integers(1, 8), st.integers(0, 60))
def test_uniform_homogeneous_membership_change_moves_the_minimum(old_n, new_n, partitions) -> None:
    assignor = UniformAssignor()
    old = {f"m{i}": frozenset({"t"}) for i in range(old_n)}
    new = {f"m{i}": frozenset({"t"}) for i in range(new_n)}
    before = assignor.assign(old, {"t": partitions}, {})
    after = assignor.assign(new, {"t": partitions}, before)
    # Members that stay keep all they can: only their surplus above the new share moves.
    share, extra = divmod(partitions, new_n)
    stayers = sorted((m for m in before if m in new), key=lambda m: -len(before[m]))
    surplus = sum(max(0, len(before[m]) - share - (1 if i < extra else 0)) for i, m in enumerate(stayers))
    assert moved(before, after) == surplus


small_subscriptions = st.dictionaries(
    st.sampled_from("abc"), st.frozensets(st.sampled_from(TOPICS[:3]), min_size=1), min_size=1
)
small_topics = st.dictionaries(st.sampled_from(TOPICS[:3]), st.integers(0, 3))


@settings(max_examples=150, deadline=None)
@given(small_subscriptions, small_topics, small_subscriptions, small_topics)
def test_uniform_loads_are_as_even_as_possible(subscriptions, topics, old_subscriptions, old_topics) -> None:
    assignor = UniformAssignor()
    for current in ({}, assignor.assign(old_subscriptions, old_topics, {})):
        result = assignor.assign(subscriptions, topics, current)
        assert sum(len(p) ** 2 for p in result.values()) == most_even_sum_of_squares(subscriptions, topics)
