"""Who may do what from the console: one function, `may`, so the ACL authorizer can take its place.

With authentication off, the rule is the safe default of issue 15: reading is open to whoever reaches the
HTTP port, and actions (create, delete, alter, reset, produce) are allowed only to requests from the
loopback address. With --require-auth, `guard.login` admits only logged-in super-users, who may do
everything. To wire ACLs in, replace the body of `may` with a call to the
authorizer, keeping its arguments: Kafka's operation names and a resource such as `Resource("topic",
"orders")`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

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
    Read, Describe, ...) on `resource`."""
    if operation in READ_OPERATIONS or principal.super_user:
        return True
    return is_loopback(principal.address)
