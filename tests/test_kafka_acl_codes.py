"""Kafka's ACL codes mapped to the ACL model (broker/kafka/acls_admin.py): filters, MATCH, and what
the model cannot hold. The end-to-end behaviour is in tests/test_kafka_acl_admin.py."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from kio.schema.errors import ErrorCode
from logstore.broker.kafka.acls_admin import Refused, parse_creation, parse_filter

from tests.auth_helpers import acl

ANY, MATCH, LITERAL, PREFIXED = 1, 2, 3, 4
TOPIC, GROUP, CLUSTER, DELEGATION_TOKEN = 2, 3, 4, 6
READ, WRITE, CLUSTER_ACTION, ALLOW = 3, 4, 9, 3


def kafka_filter(
    resource_type: int = ANY,
    name: str | None = None,
    pattern: int = ANY,
    principal: str | None = None,
    host: str | None = None,
    operation: int = ANY,
    permission: int = ANY,
) -> Any:
    return SimpleNamespace(
        resource_type_filter=resource_type,
        resource_name_filter=name,
        pattern_type_filter=pattern,
        principal_filter=principal,
        host_filter=host,
        operation=operation,
        permission_type=permission,
    )


def creation(**fields: Any) -> Any:
    values = {
        "resource_type": TOPIC,
        "resource_name": "orders",
        "resource_pattern_type": LITERAL,
        "principal": "User:alice",
        "host": "*",
        "operation": WRITE,
        "permission_type": ALLOW,
    } | fields
    return SimpleNamespace(**values)


BINDINGS = [
    acl("User:alice", "Read", "billing", "group"),
    acl("User:alice", "Read", "*", "group"),
    acl("User:alice", "Read", "bill", "group", pattern="prefixed"),
    acl("User:alice", "Read", "billing-eu", "group", pattern="prefixed"),
    acl("User:bob", "Write", "billing", "topic"),
]


def matching(raw: Any) -> list[int]:
    wanted = parse_filter(raw)
    return [i for i, b in enumerate(BINDINGS) if wanted.matches(b)]


def test_match_finds_the_literal_name_the_wildcard_and_the_prefixes_that_cover_it() -> None:
    assert matching(kafka_filter(GROUP, "billing", MATCH)) == [0, 1, 2]


def test_any_pattern_with_a_name_is_that_exact_name_of_either_pattern_and_literal_is_literal_only() -> None:
    assert matching(kafka_filter(ANY, "billing", ANY)) == [0, 4]
    assert matching(kafka_filter(GROUP, "bill", PREFIXED)) == [2]
    assert matching(kafka_filter(GROUP, None, LITERAL)) == [0, 1]
    assert matching(kafka_filter(principal="User:bob", operation=WRITE)) == [4]


def test_values_the_model_cannot_hold_match_nothing_in_a_filter() -> None:
    assert matching(kafka_filter(DELEGATION_TOKEN)) == []
    assert matching(kafka_filter(operation=CLUSTER_ACTION)) == []
    assert matching(kafka_filter(host="10.0.0.1")) == []
    assert matching(kafka_filter(host="*")) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    "raw",
    [
        kafka_filter(resource_type=0),
        kafka_filter(operation=0),
        kafka_filter(pattern=0),
        kafka_filter(operation=99),
    ],
)
def test_unknown_in_a_filter_is_invalid_request(raw: Any) -> None:
    with pytest.raises(Refused) as refused:
        parse_filter(raw)
    assert refused.value.code is ErrorCode.invalid_request


def test_a_creation_maps_to_the_binding() -> None:
    made = parse_creation(creation(resource_type=GROUP, resource_name="bill", resource_pattern_type=PREFIXED))
    assert made == acl("User:alice", "Write", "bill", "group", pattern="prefixed")
    assert parse_creation(creation(resource_type=CLUSTER, resource_name="kafka-cluster")).resource_name == (
        "kafka-cluster"
    )


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"host": "10.0.0.1"}, "every host"),
        ({"operation": ANY}, "ANY or MATCH"),
        ({"resource_pattern_type": MATCH}, "ANY or MATCH"),
        ({"operation": CLUSTER_ACTION}, "cannot be held"),
        ({"resource_type": DELEGATION_TOKEN}, "cannot be held"),
        ({"resource_type": CLUSTER, "resource_name": "other"}, "kafka-cluster"),
        ({"principal": "Group:ops"}, "User:<name>"),
        ({"resource_pattern_type": PREFIXED, "resource_name": "*"}, "prefixed"),
    ],
)
def test_a_creation_the_model_cannot_hold_is_invalid_request(fields: dict[str, Any], words: str) -> None:
    with pytest.raises(Refused, match=words) as refused:
        parse_creation(creation(**fields))
    assert refused.value.code is ErrorCode.invalid_request
