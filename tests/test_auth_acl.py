"""Kafka's ACL rules, decided by the pure Authorizer: implication, deny wins, wildcards, prefixes."""

from __future__ import annotations

import pytest
from logstore.broker.auth.acl import (
    AclBinding,
    AclError,
    AclFilter,
    Authorizer,
    Operation,
    PatternType,
    Permission,
    ResourceType,
)

TOPIC, GROUP, CLUSTER = ResourceType.TOPIC, ResourceType.GROUP, ResourceType.CLUSTER
ALICE, BOB = "User:alice", "User:bob"


def acl(
    principal: str,
    operation: str,
    name: str,
    resource: ResourceType = TOPIC,
    pattern: PatternType = PatternType.LITERAL,
    permission: Permission = Permission.ALLOW,
) -> AclBinding:
    return AclBinding(principal, Operation.parse(operation), resource, name, pattern, permission)


def test_nothing_is_allowed_without_an_acl_but_super_users_pass() -> None:
    authorizer = Authorizer([], super_users=["User:admin"])
    assert not authorizer.authorize(ALICE, Operation.READ, TOPIC, "orders")
    assert authorizer.authorize("User:admin", Operation.DELETE, TOPIC, "orders")


def test_an_allow_grants_its_operation_on_its_resource_only() -> None:
    authorizer = Authorizer([acl(ALICE, "Write", "orders")])
    assert authorizer.authorize(ALICE, Operation.WRITE, TOPIC, "orders")
    assert not authorizer.authorize(ALICE, Operation.READ, TOPIC, "orders")
    assert not authorizer.authorize(ALICE, Operation.WRITE, TOPIC, "orders2")
    assert not authorizer.authorize(ALICE, Operation.WRITE, GROUP, "orders")
    assert not authorizer.authorize(BOB, Operation.WRITE, TOPIC, "orders")


@pytest.mark.parametrize("granted", ["Read", "Write", "Delete", "Alter", "Describe", "All"])
def test_read_write_delete_alter_imply_describe(granted: str) -> None:
    authorizer = Authorizer([acl(ALICE, granted, "orders")])
    assert authorizer.authorize(ALICE, Operation.DESCRIBE, TOPIC, "orders")


@pytest.mark.parametrize("granted", ["Create", "DescribeConfigs", "AlterConfigs"])
def test_other_operations_do_not_imply_describe(granted: str) -> None:
    assert not Authorizer([acl(ALICE, granted, "orders")]).authorize(
        ALICE, Operation.DESCRIBE, TOPIC, "orders"
    )


def test_alter_configs_implies_describe_configs_and_all_implies_everything() -> None:
    authorizer = Authorizer([acl(ALICE, "AlterConfigs", "orders"), acl(BOB, "All", "orders")])
    assert authorizer.authorize(ALICE, Operation.DESCRIBE_CONFIGS, TOPIC, "orders")
    assert not authorizer.authorize(ALICE, Operation.ALTER, TOPIC, "orders")
    assert all(authorizer.authorize(BOB, op, TOPIC, "orders") for op in Operation)


def test_deny_wins_over_allow_and_only_denies_its_own_operation() -> None:
    authorizer = Authorizer(
        [
            acl("User:*", "All", "orders"),
            acl(ALICE, "Write", "orders", permission=Permission.DENY),
            acl(BOB, "Describe", "orders", permission=Permission.DENY),
        ]
    )
    assert not authorizer.authorize(ALICE, Operation.WRITE, TOPIC, "orders")
    assert authorizer.authorize(ALICE, Operation.READ, TOPIC, "orders")
    assert not authorizer.authorize(BOB, Operation.DESCRIBE, TOPIC, "orders")
    assert authorizer.authorize(BOB, Operation.READ, TOPIC, "orders")  # a deny implies nothing
    assert authorizer.authorize("User:carol", Operation.WRITE, TOPIC, "orders")


def test_a_deny_all_denies_every_operation_and_a_wildcard_deny_everyone() -> None:
    authorizer = Authorizer(
        [acl(ALICE, "All", "*"), acl("User:*", "All", "secret", permission=Permission.DENY)]
    )
    assert authorizer.authorize(ALICE, Operation.READ, TOPIC, "anything")
    assert not authorizer.authorize(ALICE, Operation.READ, TOPIC, "secret")
    assert not authorizer.authorize(ALICE, Operation.DESCRIBE, TOPIC, "secret")


def test_prefixed_acls_match_names_that_start_with_the_prefix() -> None:
    authorizer = Authorizer(
        [
            acl(ALICE, "Read", "orders.", pattern=PatternType.PREFIXED),
            acl(ALICE, "Read", "orders.secret", pattern=PatternType.PREFIXED, permission=Permission.DENY),
        ]
    )
    assert authorizer.authorize(ALICE, Operation.READ, TOPIC, "orders.eu")
    assert authorizer.authorize(ALICE, Operation.READ, TOPIC, "orders.")
    assert not authorizer.authorize(ALICE, Operation.READ, TOPIC, "orders")
    assert not authorizer.authorize(ALICE, Operation.READ, TOPIC, "orders.secret.keys")
    assert not authorizer.authorize(ALICE, Operation.READ, TOPIC, "xorders.eu")


def test_a_literal_name_is_not_a_pattern() -> None:
    authorizer = Authorizer([acl(ALICE, "Read", "orders.*")])
    assert not authorizer.authorize(ALICE, Operation.READ, TOPIC, "orders.eu")
    assert authorizer.authorize(ALICE, Operation.READ, TOPIC, "orders.*")


def test_decisions_follow_new_bindings() -> None:
    authorizer = Authorizer([acl(ALICE, "Read", "orders")])
    assert authorizer.authorize(ALICE, Operation.READ, TOPIC, "orders")
    assert not authorizer.with_bindings([]).authorize(ALICE, Operation.READ, TOPIC, "orders")


def test_bad_bindings_are_refused() -> None:
    with pytest.raises(AclError, match="principal"):
        acl("alice", "Read", "orders")
    with pytest.raises(AclError, match="Operation"):
        acl(ALICE, "Fly", "orders")
    with pytest.raises(AclError, match="cluster"):
        acl(ALICE, "Create", "orders", resource=CLUSTER)
    with pytest.raises(AclError, match="prefixed"):
        acl(ALICE, "Read", "*", pattern=PatternType.PREFIXED)
    assert Operation.parse("describe_configs") is Operation.DESCRIBE_CONFIGS
    assert ResourceType.parse("Topic") is TOPIC


def test_filters_match_on_the_fields_they_set() -> None:
    binding = acl(ALICE, "Read", "orders")
    assert AclFilter().matches(binding)
    assert AclFilter(principal=ALICE, operation=Operation.READ).matches(binding)
    assert not AclFilter(principal=BOB).matches(binding)
    assert not AclFilter(permission=Permission.DENY).matches(binding)
    assert not AclFilter(resource_name="orders.").matches(binding)
