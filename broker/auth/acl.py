"""Kafka's ACL model and the decision over it: pure, no I/O.

An `AclBinding` says: `principal` (``User:alice``, or ``User:*`` for everyone) is allowed or denied
`operation` on resources of `resource_type` whose name is `resource_name` (literal; the literal ``*``
is every name) or starts with it (prefixed). A request is allowed when some allow matches and no deny
does (deny wins), or when the principal is a super-user. As in Kafka's `AclAuthorizer`:

- an allow of Read, Write, Delete or Alter also allows Describe; an allow of AlterConfigs also allows
  DescribeConfigs; `All` matches every operation;
- a deny matches only its own operation (or `All`): denying Describe does not deny Read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Self

WILDCARD = "*"
PRINCIPAL_TYPE = "User"
MAX_NAME_CHARS = 1024


class AclError(ValueError):
    """An ACL binding or filter names an unknown operation, resource type, pattern or permission."""


class _Named(Enum):
    """An enum parsed from Kafka's spellings, case and separators ignored (``DescribeConfigs``,
    ``describe_configs``, ``DESCRIBE-CONFIGS``)."""

    @classmethod
    def parse(cls, text: str) -> Self:
        key = text.replace("_", "").replace("-", "").lower()
        for member in cls:
            if member.value.replace("_", "").lower() == key:
                return member
        known = ", ".join(m.value for m in cls)
        raise AclError(f"unknown {cls.__name__} {text!r}; known: {known}")


class ResourceType(_Named):
    TOPIC = "topic"
    GROUP = "group"
    CLUSTER = "cluster"
    TRANSACTIONAL_ID = "transactional_id"


class Operation(_Named):
    ALL = "All"
    READ = "Read"
    WRITE = "Write"
    CREATE = "Create"
    DELETE = "Delete"
    ALTER = "Alter"
    DESCRIBE = "Describe"
    DESCRIBE_CONFIGS = "DescribeConfigs"
    ALTER_CONFIGS = "AlterConfigs"
    IDEMPOTENT_WRITE = "IdempotentWrite"


class PatternType(_Named):
    LITERAL = "literal"
    PREFIXED = "prefixed"


class Permission(_Named):
    ALLOW = "allow"
    DENY = "deny"


CLUSTER_NAME = "kafka-cluster"
"""The one cluster resource's name, as Kafka spells it."""

_IMPLIED_BY_ALLOW: dict[Operation, frozenset[Operation]] = {
    Operation.DESCRIBE: frozenset(
        {Operation.DESCRIBE, Operation.READ, Operation.WRITE, Operation.DELETE, Operation.ALTER}
    ),
    Operation.DESCRIBE_CONFIGS: frozenset({Operation.DESCRIBE_CONFIGS, Operation.ALTER_CONFIGS}),
}
"""For an operation asked for, the allowed operations that grant it (besides All and itself)."""


def check_principal(principal: str) -> str:
    """``User:<name>`` with a non-empty name (``User:*`` is everyone); the only principal type here."""
    kind, sep, name = principal.partition(":")
    if kind != PRINCIPAL_TYPE or not sep or not name or len(principal) > MAX_NAME_CHARS:
        raise AclError(f"a principal is User:<name> (or User:* for everyone), not {principal[:60]!r}")
    return principal


def user_principal(username: str) -> str:
    return f"{PRINCIPAL_TYPE}:{username}"


@dataclass(frozen=True, slots=True)
class AclBinding:
    """One ACL: who, what, on which resources, allowed or denied."""

    principal: str
    operation: Operation
    resource_type: ResourceType
    resource_name: str
    pattern: PatternType = PatternType.LITERAL
    permission: Permission = Permission.ALLOW

    def __post_init__(self) -> None:
        check_principal(self.principal)
        if not self.resource_name or len(self.resource_name) > MAX_NAME_CHARS:
            raise AclError(f"an ACL's resource name must have 1 to {MAX_NAME_CHARS} characters")
        if self.pattern is PatternType.PREFIXED and self.resource_name == WILDCARD:
            raise AclError("a prefixed ACL cannot have the name '*'; use a literal '*' for every name")
        if self.resource_type is ResourceType.CLUSTER and self.resource_name != CLUSTER_NAME:
            raise AclError(f"the cluster resource is named {CLUSTER_NAME!r}, not {self.resource_name!r}")

    def matches(self, resource_name: str) -> bool:
        if self.pattern is PatternType.PREFIXED:
            return resource_name.startswith(self.resource_name)
        return self.resource_name in (WILDCARD, resource_name)


@dataclass(frozen=True, slots=True)
class AclFilter:
    """Which bindings to describe or delete: each field left None matches anything, and a set one must
    be equal (Kafka's `AclBindingFilter` with the `ANY` defaults)."""

    principal: str | None = None
    operation: Operation | None = None
    resource_type: ResourceType | None = None
    resource_name: str | None = None
    pattern: PatternType | None = None
    permission: Permission | None = None

    def matches(self, binding: AclBinding) -> bool:
        return (
            (self.principal is None or self.principal == binding.principal)
            and (self.operation is None or self.operation is binding.operation)
            and (self.resource_type is None or self.resource_type is binding.resource_type)
            and (self.resource_name is None or self.resource_name == binding.resource_name)
            and (self.pattern is None or self.pattern is binding.pattern)
            and (self.permission is None or self.permission is binding.permission)
        )


CACHE_LIMIT = 65_536
"""Decisions remembered between ACL changes; the table is cleared when it fills."""


class Authorizer:
    """Decides requests against a set of bindings and a super-user list.

    Bindings are indexed by resource type (literal names in a dict, prefixed ones in a list), and each
    decision is remembered until the bindings change, so a produce pays one dict look-up whatever the
    number of ACLs. Not thread-safe: replaced whole (`with_bindings`) by its owner, on one thread.
    """

    def __init__(self, bindings: Iterable[AclBinding], super_users: Iterable[str] = ()) -> None:
        self.bindings = tuple(dict.fromkeys(bindings))
        self.super_users = frozenset(super_users)
        self._literal: dict[ResourceType, dict[str, list[AclBinding]]] = {}
        self._prefixed: dict[ResourceType, list[AclBinding]] = {}
        for binding in self.bindings:
            if binding.pattern is PatternType.PREFIXED:
                self._prefixed.setdefault(binding.resource_type, []).append(binding)
            else:
                by_name = self._literal.setdefault(binding.resource_type, {})
                by_name.setdefault(binding.resource_name, []).append(binding)
        self._decisions: dict[tuple[str, Operation, ResourceType, str], bool] = {}

    def with_bindings(self, bindings: Iterable[AclBinding]) -> Authorizer:
        return Authorizer(bindings, self.super_users)

    def _candidates(self, resource_type: ResourceType, name: str) -> list[AclBinding]:
        found: list[AclBinding] = []
        literal = self._literal.get(resource_type)
        if literal:
            found.extend(literal.get(name, ()))
            if name != WILDCARD:
                found.extend(literal.get(WILDCARD, ()))
        found.extend(b for b in self._prefixed.get(resource_type, ()) if name.startswith(b.resource_name))
        return found

    def authorize(self, principal: str, operation: Operation, resource_type: ResourceType, name: str) -> bool:
        """Whether `principal` may do `operation` on the resource."""
        if principal in self.super_users:
            return True
        key = (principal, operation, resource_type, name)
        decision = self._decisions.get(key)
        if decision is None:
            decision = self._decide(principal, operation, resource_type, name)
            if len(self._decisions) >= CACHE_LIMIT:
                self._decisions.clear()
            self._decisions[key] = decision
        return decision

    def _decide(self, principal: str, operation: Operation, resource_type: ResourceType, name: str) -> bool:
        granting = _IMPLIED_BY_ALLOW.get(operation, frozenset({operation}))
        allowed = False
        everyone = user_principal(WILDCARD)
        for binding in self._candidates(resource_type, name):
            if binding.principal not in (principal, everyone):
                continue
            if binding.permission is Permission.DENY:
                if binding.operation in (operation, Operation.ALL):
                    return False
            elif binding.operation is Operation.ALL or binding.operation in granting:
                allowed = True
        return allowed
