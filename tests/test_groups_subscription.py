"""Subscription regexes from any client run in linear time and bad ones are refused (issue 9, item 8).

With Python's backtracking `re`, one Heartbeat subscribing to ``(x+)+y`` froze the broker's event loop:
3 s at 26 characters, doubling with each one, and stored subscriptions are matched again on every topic
change. The timeouts below are there to fail the test instead of hanging the run on such an engine; the
assertions are about the answers.
"""

from __future__ import annotations

import pytest
from logstore.broker.group_machine.errors import InvalidRegularExpressionError
from logstore.broker.group_machine.subscription import MAX_REGEX_LENGTH, Subscription
from logstore.wire.logstore.v1 import common_pb2 as common

from tests.conftest import GroupMember, group_stub

CATASTROPHIC = "(x+)+y"
"""Exponential for a backtracking engine on a run of x's with no y."""


@pytest.mark.timeout(20)
def test_a_catastrophic_regex_against_a_long_topic_name_is_answered() -> None:
    long_name = "x" * 5000
    topics = {long_name: 1, "xxxy": 1, "y": 1}
    assert Subscription.parse([], CATASTROPHIC).resolve(topics) == {"xxxy"}
    assert Subscription.parse([], "(x+)+").resolve(topics) == {long_name}


@pytest.mark.parametrize(
    ("regex", "fragment"),
    [
        ("orders-([", "missing ]"),
        (r"(a)\1", r"invalid escape sequence: \1"),
        ("(?<=a)b", "invalid perl operator"),
        (r"(\pL{100}){10}", "pattern too large"),
        ("a" * (MAX_REGEX_LENGTH + 1), f"the limit is {MAX_REGEX_LENGTH}"),
    ],
    ids=["invalid", "backreference", "lookbehind", "too-large-program", "too-long"],
)
def test_unusable_regexes_are_refused_with_the_reason(regex, fragment) -> None:
    with pytest.raises(InvalidRegularExpressionError) as refused:
        Subscription.parse([], regex)
    assert fragment in str(refused.value)


def test_subscriptions_compare_by_names_and_regex_text() -> None:
    """The coordinator resolves each distinct subscription once per topic change, keyed by equality."""
    first, second = Subscription.parse(["a"], "orders-.*"), Subscription.parse(["a"], "orders-.*")
    assert first == second
    assert first != Subscription.parse(["a"], "orders-.+")
    assert len({first, second}) == 1


@pytest.mark.timeout(60)
def test_a_heartbeat_with_a_catastrophic_regex_leaves_the_broker_serving(start_broker, connect) -> None:
    stubs = connect(start_broker())
    stub = group_stub(stubs)
    long_name = "x" * 249  # the longest topic name there is
    stubs.create_topic(long_name)
    stubs.create_topic("xy")
    member = GroupMember(stub, "g", regex=CATASTROPHIC)
    assert member.heartbeat().error_code == common.ERROR_CODE_NONE
    assert member.assignment == {("xy", 0)}
    stubs.create_topic(long_name[:-1])  # a topic change makes the coordinator match stored regexes again
    other = GroupMember(stub, "h", regex="x+")
    assert other.heartbeat().error_code == common.ERROR_CODE_NONE
    assert other.assignment == {(long_name, 0), (long_name[:-1], 0)}

    refused = GroupMember(stub, "i", regex=r"(a)\1").heartbeat()
    assert refused.error_code == common.ERROR_CODE_INVALID_REGULAR_EXPRESSION
    assert "RE2" in refused.error_message
