"""``logstore groups list|describe|delete|reset-offsets``: consumer groups from the shell, in the manner of
Kafka's ``kafka-consumer-groups``. ``reset-offsets`` is a dry run unless ``--execute`` is given."""

from __future__ import annotations

import argparse
from typing import Any

from logstore.client.console.common import add_bootstrap, bootstrap, friendly


def add_parser(subcommands: Any) -> None:
    parser = subcommands.add_parser(
        "groups", help="list, describe, delete consumer groups and reset their offsets"
    )
    add_bootstrap(parser)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="list groups with their state and member count")
    listing.set_defaults(handler=friendly(_list))

    describe = actions.add_parser(
        "describe", help="per partition: committed offset, log end offset, lag, owner"
    )
    describe.add_argument("group", help="the group to describe")
    describe.add_argument(
        "--members", action="store_true", help="list the members and their assignments instead"
    )
    describe.set_defaults(handler=friendly(_describe))

    delete = actions.add_parser("delete", help="delete groups without members, and their committed offsets")
    delete.add_argument("groups", nargs="+", metavar="GROUP", help="the groups to delete")
    delete.set_defaults(handler=friendly(_delete))

    reset = actions.add_parser(
        "reset-offsets",
        help="move a group's committed offsets (dry run unless --execute)",
        description="Move the committed offsets of a group that has no running members. Prints the new "
        "offsets; only --execute stores them.",
    )
    reset.add_argument("group", help="the group whose offsets to move")
    reset.add_argument(
        "--topic",
        action="append",
        metavar="TOPIC[:P,P...]",
        help="the topic (all partitions, or those listed after ':'); repeatable. Default: every partition "
        "the group has an offset for",
    )
    where = reset.add_mutually_exclusive_group(required=True)
    where.add_argument("--to-earliest", action="store_true", help="to each partition's first stored offset")
    where.add_argument("--to-latest", action="store_true", help="to each partition's end (skip everything)")
    where.add_argument("--to-offset", type=int, metavar="N", help="to offset N in every partition")
    where.add_argument(
        "--to-datetime", metavar="ISO", help="e.g. 2024-05-01T12:00:00Z, or ms since the epoch"
    )
    where.add_argument(
        "--shift-by", type=int, metavar="N", help="move each committed offset by N (may be negative)"
    )
    reset.add_argument(
        "--execute", action="store_true", help="store the new offsets (default: only show them)"
    )
    reset.set_defaults(handler=friendly(_reset))

    for action in (listing, describe, delete, reset):
        add_bootstrap(action)


def _admin(args: argparse.Namespace) -> Any:
    from logstore.client.admin.api import Admin

    return Admin(bootstrap(args))


def _table(rows: list[list[str]]) -> None:
    """Print rows as left-aligned columns, as kafka-consumer-groups does."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(" ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _known(value: int) -> str:
    return "-" if value < 0 else str(value)


def _list(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    with _admin(args) as admin:
        groups = admin.list_groups()
    rows = [["GROUP", "STATE", "MEMBERS"]] + [[g.group_id, g.state, str(g.member_count)] for g in groups]
    _table(rows)
    return 0


def _describe(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    with _admin(args) as admin:
        group = admin.describe_group(args.group)
    if args.members:
        rows = [
            ["GROUP", "CONSUMER-ID", "INSTANCE-ID", "HOST", "CLIENT-ID", "STATE", "#PARTITIONS", "ASSIGNMENT"]
        ]
        for m in group.members:
            assigned = ",".join(str(tp) for tp in sorted(m.assignment)) or "-"
            rows.append(
                [
                    group.group_id,
                    m.member_id,
                    m.instance_id or "-",
                    m.client_host or "-",
                    m.client_id or "-",
                    m.state,
                    str(len(m.assignment)),
                    assigned,
                ]
            )
    else:
        rows = [["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID"]]
        for o in group.offsets:
            rows.append(
                [
                    group.group_id,
                    o.topic,
                    str(o.partition),
                    _known(o.committed_offset),
                    _known(o.log_end_offset),
                    _known(o.lag),
                    o.member_id or "-",
                ]
            )
    print(
        f"Consumer group '{group.group_id}' is {group.state} with {len(group.members)} members "
        f"(assignor: {group.assignor or '-'})"
    )
    print()
    _table(rows)
    return 0


def _delete(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    with _admin(args) as admin:
        for group in args.groups:
            admin.delete_group(group)
            print(f"deleted group {group}")
    return 0


def _reset(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from logstore.client.console.consume import parse_time
    from logstore.client.shared.types import TopicPartition

    scope: list[Any] = []
    for item in args.topic or ():
        topic, _, numbers = item.partition(":")
        if not topic:
            raise ValueError(f"--topic {item!r} has no topic name")
        if numbers:
            try:
                scope.extend(TopicPartition(topic, int(n)) for n in numbers.split(","))
            except ValueError:
                raise ValueError(f"--topic {item!r}: partitions must be numbers, e.g. orders:0,1") from None
        else:
            scope.append(topic)
    if args.to_earliest or args.to_latest:
        where: dict[str, Any] = {"to": "earliest" if args.to_earliest else "latest"}
    elif args.to_offset is not None:
        if args.to_offset < 0:
            raise ValueError(f"--to-offset must not be negative, got {args.to_offset}")
        where = {"offset": args.to_offset}
    elif args.to_datetime is not None:
        where = {"timestamp": parse_time(args.to_datetime)}
    else:
        where = {"shift": args.shift_by}
    with _admin(args) as admin:
        results = admin.reset_offsets(args.group, scope, dry_run=not args.execute, **where)
    rows = [["GROUP", "TOPIC", "PARTITION", "PREVIOUS-OFFSET", "NEW-OFFSET"]]
    rows += [
        [args.group, r.topic, str(r.partition), _known(r.previous_offset), str(r.new_offset)] for r in results
    ]
    _table(rows)
    if not args.execute:
        print("\nDry run: nothing was changed. Add --execute to store these offsets.")
    return 0
