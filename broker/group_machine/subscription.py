"""A member's subscription: topic names plus an optional regular expression, resolved against the
topics that exist.

Regexes come from any client and run on the broker's event loop, against every topic each time topics
change, so they are compiled and matched with RE2 (`google-re2`), whose matching time is linear in the
topic name's length: Python's backtracking `re` takes exponential time on patterns such as ``(x+)+y``
(3 s at 26 characters, doubling with each one), which would freeze the whole broker. RE2 syntax is what
Kafka uses for these subscriptions too (KIP-848, RE2/J): no backreferences, no lookaround.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import re2  # type: ignore[import-untyped]
from logstore.broker.group_machine.errors import InvalidGroupRequestError, InvalidRegularExpressionError

INTERNAL_TOPIC_PREFIX = "__"
MAX_REGEX_LENGTH = 1000
"""Characters in a subscription regex: bounds compile time and memory (topic names have 249 at most)."""
MAX_REGEX_PROGRAM_BYTES = 1 << 20
"""RE2's memory budget for one compiled regex; a pattern needing more is refused, not compiled."""


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False  # a bad pattern is the client's error, reported to it, not to stderr
    options.max_mem = MAX_REGEX_PROGRAM_BYTES
    return options


_OPTIONS = _options()


def compile_regex(regex: str) -> Any:
    """The compiled RE2 program of a subscription regex; raises InvalidRegularExpressionError, with
    RE2's reason, for a pattern too long, invalid, or using syntax RE2 lacks."""
    if len(regex) > MAX_REGEX_LENGTH:
        raise InvalidRegularExpressionError(
            f"subscribed_topic_regex is {len(regex)} characters long; the limit is {MAX_REGEX_LENGTH}"
        )
    try:
        return re2.compile(regex, _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else exc
        raise InvalidRegularExpressionError(
            f"subscribed_topic_regex {regex!r} is not a valid RE2 regular expression: {reason}. RE2 "
            "syntax has no backreferences or lookaround"
        ) from None


@dataclass(frozen=True, slots=True)
class Subscription:
    """Topics a member asked for. The regex is matched with RE2's `fullmatch` (the whole topic name
    must match, as in Java's `Pattern.matches`), and never matches internal topics (names starting with
    ``__``); internal topics can still be subscribed by name. Equal subscriptions compare and hash
    equal by names and regex text (the compiled program takes no part)."""

    topic_names: frozenset[str]
    regex: str | None
    pattern: Any = field(compare=False)
    """The compiled RE2 program of `regex`, or None."""

    @classmethod
    def parse(cls, topic_names: Collection[str] | None, regex: str | None) -> Subscription:
        if isinstance(topic_names, str):
            raise InvalidGroupRequestError(
                f"subscribed_topic_names must be a collection of topic names, not the string {topic_names!r}"
            )
        names = frozenset(topic_names or ())
        if any(not isinstance(name, str) or not name for name in names):
            raise InvalidGroupRequestError(
                f"subscribed topic names must be non-empty strings, got {sorted(map(repr, names))}"
            )
        if not regex:
            return cls(names, None, None)
        return cls(names, regex, compile_regex(regex))

    def resolve(self, topic_partitions: Mapping[str, int]) -> frozenset[str]:
        """The existing topics this subscription covers."""
        topics = {name for name in self.topic_names if name in topic_partitions}
        if self.pattern is not None:
            topics.update(
                topic
                for topic in topic_partitions
                if not topic.startswith(INTERNAL_TOPIC_PREFIX) and self.pattern.fullmatch(topic)
            )
        return frozenset(topics)
