"""A member's subscription: topic names plus an optional regular expression, resolved against the
topics that exist."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from broker.groups.errors import InvalidGroupRequestError, InvalidRegularExpressionError

INTERNAL_TOPIC_PREFIX = "__"


@dataclass(frozen=True, slots=True)
class Subscription:
    """Topics a member asked for. The regex is matched with `re.fullmatch` (the whole topic name must
    match, as in Java's `Pattern.matches`), and never matches internal topics (names starting with
    ``__``); internal topics can still be subscribed by name."""

    topic_names: frozenset[str]
    regex: str | None
    pattern: re.Pattern[str] | None

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
        try:
            pattern = re.compile(regex)
        except re.error as exc:
            raise InvalidRegularExpressionError(
                f"subscribed_topic_regex {regex!r} is not a valid Python regular expression: {exc}"
            ) from None
        return cls(names, regex, pattern)

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
