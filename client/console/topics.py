"""``logstore topics create|list|describe|alter|reassign|delete``: topic administration from the shell."""

from __future__ import annotations

import argparse
from typing import Any

from logstore.client.console.common import add_bootstrap, bootstrap, friendly, key_values, security_options


def add_parser(subcommands: Any) -> None:
    parser = subcommands.add_parser(
        "topics", help="create, list, describe, alter, reassign and delete topics"
    )
    add_bootstrap(parser)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    create = actions.add_parser("create", help="create a topic")
    create.add_argument("name", help="the new topic's name")
    create.add_argument(
        "--partitions",
        type=int,
        help="partition count, at least 1 (default: the broker's default_partitions)",
    )
    create.add_argument(
        "--replication-factor",
        type=int,
        help="replicas of each partition, at most the live brokers (default: the broker's "
        "--default-replication-factor; a broker alone holds 1)",
    )
    create.add_argument(
        "--config",
        action="append",
        metavar="KEY=VALUE",
        help="a topic setting, e.g. retention.ms=3600000 or min.insync.replicas=2",
    )
    create.set_defaults(handler=friendly(_create))

    listing = actions.add_parser("list", help="list topics with their partition counts")
    listing.set_defaults(handler=friendly(_list))

    describe = actions.add_parser("describe", help="show configuration and partition offsets")
    describe.add_argument("names", nargs="*", metavar="NAME", help="topics to describe (default: all)")
    describe.set_defaults(handler=friendly(_describe))

    alter = actions.add_parser("alter", help="add partitions or change settings")
    alter.add_argument("name", help="the topic to change")
    alter.add_argument("--partitions", type=int, help="new total partition count (only grows)")
    alter.add_argument("--config", action="append", metavar="KEY=VALUE", help="a setting to change")
    alter.add_argument(
        "--reset-config", action="append", metavar="KEY", help="a setting to return to the default"
    )
    alter.set_defaults(handler=friendly(_alter))

    reassign = actions.add_parser(
        "reassign",
        help="move partitions to other brokers (a cluster): new replicas join, catch up, then the old leave",
    )
    reassign.add_argument("name", help="the topic whose partitions move")
    reassign.add_argument(
        "--replicas",
        action="append",
        required=True,
        metavar="PARTITION=ID,ID,...",
        help="a partition and its new replica list, the first its preferred leader, e.g. 0=2,3,4 (repeat "
        "for more partitions); `logstore cluster status` shows the progress",
    )
    reassign.set_defaults(handler=friendly(_reassign))

    delete = actions.add_parser("delete", help="delete topics and all their data")
    delete.add_argument("names", nargs="+", metavar="NAME", help="the topics to delete")
    delete.set_defaults(handler=friendly(_delete))

    for action in (create, listing, describe, alter, reassign, delete):
        add_bootstrap(action)


def _admin(args: argparse.Namespace) -> Any:
    from logstore.client.admin.api import Admin

    return Admin(bootstrap(args), **security_options(args))


def _create(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.partitions is not None and args.partitions < 1:
        raise ValueError(
            f"--partitions must be at least 1, got {args.partitions} (leave it out for the broker's default)"
        )
    if args.replication_factor is not None and args.replication_factor < 1:
        raise ValueError(
            f"--replication-factor must be at least 1, got {args.replication_factor} "
            "(leave it out for the broker's default)"
        )
    with _admin(args) as admin:
        topic = admin.create_topic(
            args.name,
            args.partitions or 0,
            key_values(args.config, "--config"),
            replication_factor=args.replication_factor or 0,
        )
    factor = len(topic.partitions[0].replicas) if topic.partitions else 1
    replicas = f", replication factor {factor}" if factor > 1 else ""
    print(f"created topic {topic.name} with {len(topic.partitions)} partitions{replicas}")
    return 0


def _list(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    with _admin(args) as admin:
        for name, partitions in admin.list_topics().items():
            print(f"{name}\t{partitions}")
    return 0


def _describe(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    with _admin(args) as admin:
        topics = admin.describe_topics(args.names or None)
    for topic in topics:
        config = ", ".join(f"{k}={v}" for k, v in sorted(topic.config.items()))
        print(f"topic: {topic.name}\tpartitions: {len(topic.partitions)}\tconfig: {config}")
        for p in topic.partitions:
            print(
                f"\tpartition: {p.partition}\tstart offset: {p.log_start_offset}\tend offset: {p.log_end_offset}"
                f"\trecords: {p.log_end_offset - p.log_start_offset}"
                f"\tleader: {p.leader}\treplicas: {','.join(map(str, p.replicas))}\tisr: {','.join(map(str, p.isr))}"
            )
    return 0


def _alter(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    changes = key_values(args.config, "--config")
    if args.partitions is None and not changes and not args.reset_config:
        raise ValueError("say what to change: --partitions, --config KEY=VALUE or --reset-config KEY")
    with _admin(args) as admin:
        if args.partitions is not None:
            admin.create_partitions({args.name: args.partitions})
            print(f"topic {args.name} now has {args.partitions} partitions")
        if changes or args.reset_config:
            admin.alter_configs({args.name: changes}, reset={args.name: args.reset_config or []})
            print(f"updated the configuration of topic {args.name}")
    return 0


def _reassign(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    targets = {}
    for item in args.replicas:
        partition, _, brokers = item.partition("=")
        try:
            targets[int(partition)] = [int(b) for b in brokers.split(",")]
        except ValueError:
            raise ValueError(
                f"--replicas {item!r}: write PARTITION=ID,ID,... such as 0=2,3,4 (broker ids, comma-separated)"
            ) from None
    with _admin(args) as admin:
        admin.reassign_partitions(args.name, targets)
    for partition, brokers in sorted(targets.items()):
        print(f"moving {args.name}-{partition} to brokers {','.join(map(str, brokers))}")
    print("the controller moves them once the new replicas are in sync: see `logstore cluster status`")
    return 0


def _delete(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    with _admin(args) as admin:
        admin.delete_topics(args.names)
    for name in args.names:
        print(f"deleted topic {name}")
    return 0
