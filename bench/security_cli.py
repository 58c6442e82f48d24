"""``logstore users add|list|delete|passwd`` and ``logstore acls add|list|remove`` (kafka-acls' flags).

Each talks to a running broker through the admin calls (super-users only when it runs with
--require-auth; the credentials come from the security flags and LOGSTORE_* variables every tool takes:
--security-protocol SASL_PLAINTEXT or SASL_SSL, --sasl-username, LOGSTORE_SASL_PASSWORD), or, with
``--data-dir DIR``, edits a stopped broker's directory directly, which is how the first administrator
is made. It lives in `bench` beside `cli.py` because the offline mode imports the broker's store.
Passwords are read from standard input only (``--password-stdin``), never from a flag that `ps` shows.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from logstore.client.console.common import add_bootstrap, bootstrap, fail, friendly, security_options

USERNAME_ENV = "LOGSTORE_SASL_USERNAME"
PASSWORD_ENV = "LOGSTORE_SASL_PASSWORD"
MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
Handler = Callable[[argparse.Namespace, argparse.ArgumentParser], int]


def _common(parser: argparse.ArgumentParser) -> None:
    add_bootstrap(parser)
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="edit this stopped broker's data directory instead of calling a broker (how the first admin is made)",
    )


def _guarded(handler: Handler) -> Handler:
    """`friendly`, and the broker's own errors of the offline mode as one line too."""

    def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
        from logstore.errors import LogStoreError

        try:
            return handler(args, parser)
        except LogStoreError as exc:
            return fail(str(exc))

    return friendly(run)


def add_users_parser(subcommands: Any) -> None:
    parser = subcommands.add_parser("users", help="add, list, delete users and change their passwords")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="create a user with SCRAM credentials")
    passwd = actions.add_parser("passwd", help="replace a user's password")
    for action in (add, passwd):
        action.add_argument("name", help="the user's name (its principal is User:NAME)")
        action.add_argument(
            "--password-stdin",
            action="store_true",
            required=True,
            help="read the password from standard input",
        )
        action.add_argument(
            "--mechanism",
            action="append",
            choices=MECHANISMS,
            help="SCRAM mechanism to store, repeatable (default: both)",
        )
        action.add_argument("--iterations", type=int, default=4096, help="PBKDF2 iterations (4096)")
    add.set_defaults(handler=_guarded(_users_set), create=True)
    passwd.set_defaults(handler=_guarded(_users_set), create=False)
    listing = actions.add_parser("list", help="list users and their mechanisms")
    listing.set_defaults(handler=_guarded(_users_list))
    delete = actions.add_parser("delete", help="delete a user (its ACLs stay)")
    delete.add_argument("name", help="the user to delete")
    delete.set_defaults(handler=_guarded(_users_delete))
    for action in (add, passwd, listing, delete):
        _common(action)


def add_acls_parser(subcommands: Any) -> None:
    parser = subcommands.add_parser("acls", help="add, list and remove ACLs (the flags of kafka-acls)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="add ACLs: each principal x operation x resource")
    listing = actions.add_parser("list", help="list the ACLs matching the flags given (all without)")
    remove = actions.add_parser("remove", help="remove the ACLs matching the flags given")
    for action in (add, listing, remove):
        _common(action)
        action.add_argument(
            "--allow-principal", action="append", default=[], metavar="User:NAME", help="principal to allow"
        )
        action.add_argument(
            "--deny-principal", action="append", default=[], metavar="User:NAME", help="principal to deny"
        )
        action.add_argument(
            "--operation",
            action="append",
            default=[],
            help="Read, Write, Create, Delete, Alter, Describe, DescribeConfigs, AlterConfigs or All; repeatable",
        )
        action.add_argument("--topic", action="append", default=[], help="a topic (or prefix, or *)")
        action.add_argument("--group", action="append", default=[], help="a consumer or share group")
        action.add_argument("--cluster", action="store_true", help="the cluster resource")
        action.add_argument(
            "--resource-pattern-type",
            choices=("literal", "prefixed"),
            default=None,
            help="literal names (the default for add) or prefixes",
        )
    for action in (listing, remove):
        action.add_argument(
            "--principal",
            action="append",
            default=[],
            metavar="User:NAME",
            help="principal, allowed or denied",
        )
    add.set_defaults(handler=_guarded(_acls_add), principal=[])
    listing.set_defaults(handler=_guarded(_acls_list))
    remove.set_defaults(handler=_guarded(_acls_remove))


# --- where the users and ACLs are: the broker, or its directory ---------------------------------------------


@contextmanager
def _offline(args: argparse.Namespace) -> Iterator[Any]:
    from logstore.broker.auth.store import OfflineStore

    args.data_dir.mkdir(parents=True, exist_ok=True)
    with OfflineStore(args.data_dir) as store:
        yield store


def _admin(args: argparse.Namespace) -> Any:
    from logstore.client.admin.api import Admin

    return Admin(bootstrap(args), **security_options(args))


def sasl_options(user: str, password: str) -> dict[str, Any]:
    """The client options that log in as `user` (Basic credentials on every gRPC call), for the benchmarks
    and tests that make clients of a broker with --require-auth."""
    return {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "PLAIN",
        "sasl_plain_username": user,
        "sasl_plain_password": password,
    }


def _password() -> str:
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise ValueError("no password on standard input")
    return password


# --- users ------------------------------------------------------------------------------------------------


def _users_set(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    password = _password()
    mechanisms = args.mechanism or list(MECHANISMS)
    if args.data_dir is not None:
        from logstore.broker.auth.scram import Mechanism

        with _offline(args) as store:
            store.set_user(
                args.name,
                password,
                [Mechanism.parse(m) for m in mechanisms],
                args.iterations,
                create=args.create,
            )
    else:
        with _admin(args) as admin:
            method = admin.create_user if args.create else admin.alter_user
            method(args.name, password, mechanisms, args.iterations)
    print(f"{'created' if args.create else 'changed'} user {args.name} ({', '.join(mechanisms)})")
    return 0


def _users_list(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.data_dir is not None:
        with _offline(args) as store:
            rows = [(u.name, {m.value: i for m, i in u.mechanisms}) for u in store.list_users()]
    else:
        with _admin(args) as admin:
            rows = [(u.name, u.mechanisms) for u in admin.list_users()]
    for name, mechanisms in rows:
        print(f"{name}\t" + ", ".join(f"{m} (iterations {i})" for m, i in sorted(mechanisms.items())))
    return 0


def _users_delete(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.data_dir is not None:
        with _offline(args) as store:
            store.delete_user(args.name)
    else:
        with _admin(args) as admin:
            admin.delete_user(args.name)
    print(f"deleted user {args.name}")
    return 0


# --- ACLs ------------------------------------------------------------------------------------------------


def _resources(args: argparse.Namespace) -> list[tuple[str, str]]:
    found = [("topic", t) for t in args.topic] + [("group", g) for g in args.group]
    if args.cluster:
        found.append(("cluster", "kafka-cluster"))
    return found


def _principals(args: argparse.Namespace) -> list[tuple[str, str | None]]:
    return (
        [(p, "allow") for p in args.allow_principal]
        + [(p, "deny") for p in args.deny_principal]
        + [(p, None) for p in args.principal]
    )


def _acls_add(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from logstore.client.admin.security import AclBinding

    principals, resources = _principals(args), _resources(args)
    if not principals or not args.operation or not resources:
        parser.error("acls add needs --allow-principal or --deny-principal, --operation, and a resource")
    pattern = args.resource_pattern_type or "literal"
    wanted = [
        AclBinding(principal, operation, kind, name, pattern, permission or "allow")
        for principal, permission in principals
        for operation in args.operation
        for kind, name in resources
    ]
    if args.data_dir is not None:
        with _offline(args) as store:
            store.create_acls([_model(b) for b in wanted])
    else:
        with _admin(args) as admin:
            admin.create_acls(wanted)
    for binding in wanted:
        print(f"added {_line(binding)}")
    return 0


def _model(binding: Any) -> Any:
    """A client binding as the broker's model (offline mode), refusing bad names as the broker does."""
    from logstore.broker.auth.acl import (
        AclBinding,
        AclError,
        Operation,
        PatternType,
        Permission,
        ResourceType,
    )

    try:
        return AclBinding(
            binding.principal,
            Operation.parse(binding.operation),
            ResourceType.parse(binding.resource_type),
            binding.resource_name,
            PatternType.parse(binding.pattern),
            Permission.parse(binding.permission),
        )
    except AclError as exc:
        raise ValueError(str(exc)) from None


def _filters(args: argparse.Namespace) -> list[Any]:
    """One filter per (principal, operation, resource) given; a flag left out matches anything."""
    from logstore.client.admin.security import AclBindingFilter

    principals: list[tuple[str | None, str | None]] = list(_principals(args)) or [(None, None)]
    operations = args.operation or [None]
    resources: list[tuple[str | None, str | None]] = list(_resources(args)) or [(None, None)]
    return [
        AclBindingFilter(principal, operation, kind, name, args.resource_pattern_type, permission)
        for principal, permission in principals
        for operation in operations
        for kind, name in resources
    ]


def _offline_filter(item: Any) -> Any:
    from logstore.broker.auth.acl import AclFilter, Operation, PatternType, Permission, ResourceType

    return AclFilter(
        principal=item.principal,
        operation=Operation.parse(item.operation) if item.operation else None,
        resource_type=ResourceType.parse(item.resource_type) if item.resource_type else None,
        resource_name=item.resource_name,
        pattern=PatternType.parse(item.pattern) if item.pattern else None,
        permission=Permission.parse(item.permission) if item.permission else None,
    )


def _line(binding: Any) -> str:
    def name(value: Any) -> str:
        return str(getattr(value, "value", value))

    return (
        f"{binding.principal} {name(binding.permission)} {name(binding.operation)} on "
        f"{name(binding.resource_type)}:{binding.resource_name} ({name(binding.pattern)})"
    )


def _acls_list(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    found: list[Any] = []
    if args.data_dir is not None:
        with _offline(args) as store:
            for item in _filters(args):
                found.extend(b for b in store.describe_acls(_offline_filter(item)) if b not in found)
    else:
        with _admin(args) as admin:
            for item in _filters(args):
                found.extend(b for b in admin.describe_acls(item) if b not in found)
    for binding in found:
        print(_line(binding))
    return 0


def _acls_remove(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if not (_principals(args) or args.operation or _resources(args) or args.resource_pattern_type):
        parser.error("acls remove needs at least one of the flags; it removes every ACL they match")
    if args.data_dir is not None:
        with _offline(args) as store:
            removed = store.delete_acls([_offline_filter(f) for f in _filters(args)])
    else:
        with _admin(args) as admin:
            removed = admin.delete_acls(_filters(args))
    for binding in removed:
        print(f"removed {_line(binding)}")
    return 0
