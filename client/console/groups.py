"""``logstore groups list|describe|delete|reset-offsets|alter-config|describe-config``: consumer and share
groups from the shell, in the manner of Kafka's ``kafka-consumer-groups`` and ``kafka-share-groups``.
``reset-offsets`` is a dry run unless ``--execute`` is given. ``describe`` and ``delete`` find out the
group's type themselves: a consumer group's answer NOT_FOUND (or INCONSISTENT_GROUP_PROTOCOL) means ask
for a share group of that id."""

from __future__ import annotations

import argparse
from typing import Any

from logstore.client.console.common import add_bootstrap, bootstrap, friendly, security_options


def add_parser(subcommands: Any) -> None:
    parser = subcommands.add_parser(
        "groups", help="list, describe, delete consumer groups and reset their offsets"
    )
    add_bootstrap(parser)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="list groups with their state and member count")
    listing.set_defaults(handler=friendly(_list))

    describe = actions.add_parser(
        "describe",
        help="per partition: committed offset, log end offset, lag, owner (share groups: start offset, "
        "in flight, acquired, archived, lag)",
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

    alter = actions.add_parser(
        "alter-config",
        help="set or remove a share group's configs (also before its first member joins)",
        description="Set share-group configs such as share.record.lock.duration.ms, "
        "share.delivery.count.limit, share.partition.max.record.locks, share.auto.offset.reset, "
        "errors.deadletterqueue.topic.name; --delete returns one to the broker's default. All or nothing.",
    )
    alter.add_argument("group", help="the share group")
    alter.add_argument("--set", action="append", metavar="NAME=VALUE", help="a config to set; repeatable")
    alter.add_argument("--delete", action="append", metavar="NAME", help="a config to remove; repeatable")
    alter.set_defaults(handler=friendly(_alter_config))

    configs = actions.add_parser(
        "describe-config", help="a share group's effective configs and where each value comes from"
    )
    configs.add_argument("group", help="the share group")
    configs.set_defaults(handler=friendly(_describe_config))

    for action in (listing, describe, delete, reset, alter, configs):
        add_bootstrap(action)


def _admin(args: argparse.Namespace) -> Any:
    from logstore.client.admin.api import Admin

    return Admin(bootstrap(args), **security_options(args))


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
    rows = [["GROUP", "TYPE", "STATE", "MEMBERS"]] + [
        [g.group_id, g.type, g.state, str(g.member_count)] for g in groups
    ]
    _table(rows)
    return 0


def _is_other_type(error: Exception) -> bool:
    """Whether a consumer-group call's error means: no consumer group by that id (maybe a share group)."""
    from logstore.client.shared.errors import GroupIdNotFoundError, InconsistentGroupProtocolError

    return isinstance(error, GroupIdNotFoundError | InconsistentGroupProtocolError)


def _describe(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from logstore.client.shared.errors import ClientError

    with _admin(args) as admin:
        try:
            group = admin.describe_group(args.group)
        except ClientError as exc:
            if not _is_other_type(exc):
                raise
            try:
                share = admin.describe_share_group(args.group)
            except ClientError as share_exc:
                if _is_other_type(share_exc):
                    raise exc from None  # neither kind: the consumer group's "not found"
                raise
            return _describe_share(share, args.members)
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


def _describe_share(group: Any, members_only: bool) -> int:
    if members_only:
        rows = [["GROUP", "MEMBER-ID", "EPOCH", "HOST", "CLIENT-ID", "ACQUIRED", "TOPICS"]]
        for m in group.members:
            rows.append(
                [
                    group.group_id,
                    m.member_id,
                    str(m.member_epoch),
                    m.client_host or "-",
                    m.client_id or "-",
                    str(m.acquired_records),
                    ",".join(m.subscribed_topics) or "-",
                ]
            )
    else:
        rows = [
            [
                "GROUP",
                "TOPIC",
                "PARTITION",
                "START-OFFSET",
                "END-OFFSET",
                "LOG-END-OFFSET",
                "IN-FLIGHT",
                "ACQUIRED",
                "ARCHIVED",
                "LAG",
            ]
        ]
        for p in group.partitions:
            rows.append(
                [
                    group.group_id,
                    p.topic,
                    str(p.partition),
                    _known(p.start_offset),
                    _known(p.end_offset),
                    _known(p.log_end_offset),
                    str(p.in_flight),
                    str(p.acquired),
                    str(p.archived),
                    _known(p.lag),
                ]
            )
    dead_letters = f", dead-letter topic: {group.dead_letter_topic}" if group.dead_letter_topic else ""
    print(
        f"Share group '{group.group_id}' is {group.state} with {len(group.members)} members "
        f"(group epoch {group.group_epoch}{dead_letters})"
    )
    if members_only or group.partitions:
        print()
        _table(rows)
    else:
        print("\nNo partition state yet (no member has fetched).")
    if not members_only and group.members:
        print()
        _table(
            [["MEMBER-ID", "CLIENT-ID", "HOST", "ACQUIRED"]]
            + [
                [m.member_id, m.client_id or "-", m.client_host or "-", str(m.acquired_records)]
                for m in group.members
            ]
        )
    return 0


def _delete(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from logstore.client.shared.errors import ClientError

    with _admin(args) as admin:
        for group in args.groups:
            try:
                admin.delete_group(group)
                print(f"deleted group {group}")
            except ClientError as exc:
                if not _is_other_type(exc):
                    raise
                try:
                    admin.delete_share_group(group)
                except ClientError as share_exc:
                    if _is_other_type(share_exc):
                        raise exc from None
                    raise
                print(f"deleted share group {group}")
    return 0


def _alter_config(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from logstore.client.console.common import key_values

    values = key_values(args.set, "--set")
    if not values and not args.delete:
        raise ValueError("say what to change: --set NAME=VALUE and/or --delete NAME")
    with _admin(args) as admin:
        admin.alter_group_config(args.group, values, args.delete or ())
    changes = [f"{k}={v}" for k, v in values.items()] + [f"{k} (default)" for k in args.delete or ()]
    print(f"altered share group {args.group}: {', '.join(changes)}")
    return 0


def _describe_config(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    with _admin(args) as admin:
        configs = admin.describe_group_config(args.group)
    rows = [["NAME", "VALUE", "SOURCE"]] + [
        [c.name, c.value or '""', "group" if c.is_group_value else "default"] for c in configs
    ]
    _table(rows)
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
