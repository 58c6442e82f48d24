"""The internal topics the broker keeps its own state in (`__consumer_offsets`, `__share_group_state`)."""

from __future__ import annotations

from collections.abc import Mapping

from logstore.errors import TopicExistsError, UnknownTopicError
from logstore.manager import LogManager


def ensure_internal_topic(manager: LogManager, name: str, partitions: int, config: Mapping[str, str]) -> int:
    """The topic's partition count, creating it with `partitions` and `config` if it does not exist yet.

    An existing topic keeps its partition count: keys are placed by hashing over it, so changing it would
    lose track of what is stored."""
    try:
        return manager.topic(name).partitions
    except UnknownTopicError:
        pass
    try:
        return manager.create_topic(name, partitions, dict(config)).partitions
    except TopicExistsError:
        return manager.topic(name).partitions
