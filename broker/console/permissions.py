"""Who may do what from the console: one function, `may`, so the ACL authorizer can take its place.

With authentication off, the rule is the safe default of issue 15: reading is open to whoever reaches the
HTTP port, and actions (create, delete, alter, reset, produce) are allowed only to requests from the
loopback address. With --require-auth, `guard.login` logs every request in and the broker's ACLs decide,
as for the other listeners (`acl_may`): what a user may not Describe is left out of the lists, and
pages and actions it may not see or do are refused. Super-users may do everything.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

from logstore.broker.auth.acl import Operation, ResourceType
from logstore.broker.auth.security import Security

READ_OPERATIONS = frozenset({"Describe", "DescribeConfigs", "Read"})
"""Kafka's operations that only look; every other one changes something."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: `name` in Kafka's form (`User:ANONYMOUS` while the console has no login) and the
    peer address of the HTTP connection."""

    name: str
    address: str
    super_user: bool = False
    """Logged in as one of the broker's --super-users (only with --require-auth): allowed everything."""
    authenticated: bool = False
    """Logged in (--require-auth): the ACLs decide, not the loopback rule."""


@dataclass(frozen=True, slots=True)
class Resource:
    """What an operation is on: `kind` is Kafka's resource type (topic, group, cluster), `name` its name."""

    kind: str
    name: str


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def may(principal: Principal, operation: str, resource: Resource) -> bool:
    """Whether `principal` may perform `operation` (Kafka's name: Create, Delete, AlterConfigs, Write,
    Read, Describe, ...) on `resource`, with authentication off (the loopback rule)."""
    if operation in READ_OPERATIONS or principal.super_user:
        return True
    return is_loopback(principal.address)


def acl_may(security: Security) -> Callable[[Principal, str, Resource], bool]:
    """`may` with --require-auth: the broker's ACLs (and super-users) decide, as on the other listeners.
    A resource named "*" asks about every resource of its kind (the session's action flags)."""

    def decide(principal: Principal, operation: str, resource: Resource) -> bool:
        if principal.super_user:
            return True
        if not principal.authenticated:
            return False
        return security.permitted(
            principal.name, Operation.parse(operation), ResourceType.parse(resource.kind), resource.name
        )

    return decide
