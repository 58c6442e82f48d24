"""Users and ACLs, as `Admin` exposes them (kafka-python's `ACL`/`ACLFilter` in spirit, with the plain
string names of the issue: ``AclBinding(principal="User:alice", operation="Write", resource_type="topic",
resource_name="orders")``). The broker checks every name and answers INVALID_ARGUMENT naming a bad one."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from logstore.wire.logstore.v1 import admin_pb2


@dataclass(frozen=True)
class AclBinding:
    """One ACL: `principal` (``User:alice``, ``User:*``) is allowed or denied `operation` (Read, Write,
    Create, Delete, Alter, Describe, DescribeConfigs, AlterConfigs, All) on the `resource_type` (topic,
    group, cluster) named `resource_name` (``literal``: that name, ``*`` for all; ``prefixed``: every
    name starting with it)."""

    principal: str
    operation: str
    resource_type: str
    resource_name: str
    pattern: str = "literal"
    permission: str = "allow"

    def to_wire(self) -> admin_pb2.AclBinding:
        return admin_pb2.AclBinding(
            principal=self.principal,
            operation=self.operation,
            resource_type=self.resource_type,
            resource_name=self.resource_name,
            pattern=self.pattern,
            permission=self.permission,
        )

    @classmethod
    def from_wire(cls, acl: admin_pb2.AclBinding) -> AclBinding:
        return cls(
            acl.principal, acl.operation, acl.resource_type, acl.resource_name, acl.pattern, acl.permission
        )


@dataclass(frozen=True)
class AclBindingFilter:
    """Which ACLs to describe or delete; a field left None matches anything."""

    principal: str | None = None
    operation: str | None = None
    resource_type: str | None = None
    resource_name: str | None = None
    pattern: str | None = None
    permission: str | None = None

    def to_wire(self) -> admin_pb2.AclFilter:
        return admin_pb2.AclFilter(
            principal=self.principal or "",
            operation=self.operation or "",
            resource_type=self.resource_type or "",
            resource_name=self.resource_name or "",
            pattern=self.pattern or "",
            permission=self.permission or "",
        )


def as_filter(item: AclBinding | AclBindingFilter) -> AclBindingFilter:
    """A binding used as a filter matches exactly itself."""
    if isinstance(item, AclBindingFilter):
        return item
    return AclBindingFilter(**vars(item))


@dataclass(frozen=True)
class UserCredentials:
    """A user and the SCRAM mechanisms it has credentials for, with their iteration counts."""

    name: str
    mechanisms: dict[str, int]


Call = Callable[[str, object, str], Any]


class SecurityAdmin:
    """The user and ACL calls of `Admin` (super-users only on a broker with --require-auth).

    Thread-safe: each method is one independent gRPC call.
    """

    def __init__(self, call: Call) -> None:
        self._call = call

    def create_user(
        self,
        name: str,
        password: str,
        mechanisms: Iterable[str] = (),
        iterations: int = 0,
        *,
        alter: bool = False,
    ) -> UserCredentials:
        request = admin_pb2.CreateUserRequest(
            name=name, password=password, mechanisms=list(mechanisms), iterations=iterations
        )
        verb = "AlterUser" if alter else "CreateUser"
        answer = self._call(verb, request, f"{'changing' if alter else 'creating'} user {name!r}")
        return _user(answer.user)

    def delete_user(self, name: str) -> None:
        self._call("DeleteUser", admin_pb2.DeleteUserRequest(name=name), f"deleting user {name!r}")

    def list_users(self) -> list[UserCredentials]:
        answer = self._call("ListUsers", admin_pb2.ListUsersRequest(), "listing users")
        return [_user(u) for u in answer.users]

    def create_acls(self, acls: Iterable[AclBinding]) -> None:
        request = admin_pb2.CreateAclsRequest(acls=[a.to_wire() for a in acls])
        self._call("CreateAcls", request, "creating ACLs")

    def describe_acls(self, filter: AclBindingFilter | None = None) -> list[AclBinding]:
        request = admin_pb2.DescribeAclsRequest(filter=(filter or AclBindingFilter()).to_wire())
        return [AclBinding.from_wire(a) for a in self._call("DescribeAcls", request, "describing ACLs").acls]

    def delete_acls(self, filters: Iterable[AclBinding | AclBindingFilter]) -> list[AclBinding]:
        request = admin_pb2.DeleteAclsRequest(filters=[as_filter(f).to_wire() for f in filters])
        return [AclBinding.from_wire(a) for a in self._call("DeleteAcls", request, "deleting ACLs").acls]


def _user(user: admin_pb2.UserDescription) -> UserCredentials:
    return UserCredentials(user.name, {c.mechanism: c.iterations for c in user.credentials})
