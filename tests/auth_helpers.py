"""Helpers for tests of a broker with --require-auth: Basic metadata, users made offline, a client
interceptor that sends credentials."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from logstore.bench.security_cli import sasl_options
from logstore.broker.auth.acl import AclBinding, Operation, PatternType, Permission, ResourceType
from logstore.broker.auth.store import OfflineStore

USERS = {"admin": "admin-secret", "alice": "alice-secret", "bob": "bob-secret"}


def basic(user: str, password: str) -> tuple[tuple[str, str]]:
    """Call metadata carrying Basic credentials."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return (("authorization", f"Basic {token}"),)


def as_user(user: str) -> tuple[tuple[str, str]]:
    return basic(user, USERS[user])


def make_users(data_dir: Path, acls: list[AclBinding] = ()) -> None:  # type: ignore[assignment]
    """Users (and ACLs) written offline into a stopped broker's directory, as an operator would."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with OfflineStore(data_dir) as store:
        for name, password in USERS.items():
            store.set_user(name, password, create=True)
        store.create_acls(acls)


def acl(
    principal: str,
    operation: str,
    name: str,
    resource: str = "topic",
    pattern: str = "literal",
    permission: str = "allow",
) -> AclBinding:
    return AclBinding(
        principal,
        Operation.parse(operation),
        ResourceType.parse(resource),
        name,
        PatternType.parse(pattern),
        Permission.parse(permission),
    )


def credentials(user: str, password: str | None = None) -> dict[str, Any]:
    """The client options that log in as `user` (with its password from USERS unless given)."""
    return sasl_options(user, USERS[user] if password is None else password)
