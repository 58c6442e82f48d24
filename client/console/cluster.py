"""``logstore cluster status``: the brokers, the controller, and who leads and replicates each partition.

Under-replicated partitions (fewer replicas in sync than assigned) are flagged, and listed together at
the end; ``--json`` prints the same as one JSON document for scripts. A broker alone shows as broker 0,
the controller and leader of everything.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from logstore.client.console.common import add_bootstrap, bootstrap, friendly, security_options


def add_parser(subcommands: Any) -> None:
    parser = subcommands.add_parser(
        "cluster", help="show the brokers and the partitions' leaders and replicas"
    )
    add_bootstrap(parser)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    status = actions.add_parser(
        "status", help="brokers with their addresses, the controller, and each partition's leader, epoch, ISR"
    )
    status.add_argument("names", nargs="*", metavar="TOPIC", help="topics to show (default: all)")
    status.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    status.set_defaults(handler=friendly(_status))
    add_bootstrap(status)


def status_document(admin: Any, names: list[str] | None) -> dict[str, Any]:
    """What ``cluster status`` shows, as plain values (the ``--json`` document)."""
    cluster = admin.describe_cluster()
    topics = admin.describe_topics(names or None)
    partitions = {
        topic.name: [
            {
                "partition": p.partition,
                "leader": p.leader,
                "leader_epoch": p.leader_epoch,
                "replicas": list(p.replicas),
                "isr": list(p.isr),
                "under_replicated": p.under_replicated,
            }
            for p in topic.partitions
        ]
        for topic in topics
    }
    return {
        "clustered": cluster.clustered,
        "answered_by": cluster.broker_id,
        "controller_id": cluster.controller_id,
        "brokers": [{"broker_id": b.broker_id, "endpoints": dict(b.endpoints)} for b in cluster.brokers],
        "topics": partitions,
        "under_replicated": [
            {"topic": name, "partition": p["partition"]}
            for name, entries in partitions.items()
            for p in entries
            if p["under_replicated"]
        ],
        "offline": [
            {"topic": name, "partition": p["partition"]}
            for name, entries in partitions.items()
            for p in entries
            if p["leader"] < 0
        ],
    }


def _status(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from logstore.client.admin.api import Admin

    with Admin(bootstrap(args), **security_options(args)) as admin:
        document = status_document(admin, args.names)
    if args.json:
        print(json.dumps(document, indent=2, sort_keys=True))
        return 0
    mode = "cluster" if document["clustered"] else "single broker (no --etcd)"
    controller = document["controller_id"]
    print(f"{mode}; controller: {controller if controller >= 0 else 'none elected'}")
    for broker in document["brokers"]:
        endpoints = "  ".join(f"{k}={v}" for k, v in sorted(broker["endpoints"].items()))
        mark = " (controller)" if broker["broker_id"] == controller else ""
        print(f"broker {broker['broker_id']}{mark}\t{endpoints}")
    for name, entries in sorted(document["topics"].items()):
        print(f"topic: {name}\tpartitions: {len(entries)}")
        for p in entries:
            leader = p["leader"] if p["leader"] >= 0 else "none"
            flags = "\tUNDER-REPLICATED" if p["under_replicated"] else ""
            if p["leader"] < 0:
                flags += "\tOFFLINE"
            print(
                f"\tpartition: {p['partition']}\tleader: {leader}\tepoch: {p['leader_epoch']}"
                f"\treplicas: {_ids(p['replicas'])}\tisr: {_ids(p['isr'])}{flags}"
            )
    under = document["under_replicated"]
    if under:
        listed = ", ".join(f"{u['topic']}-{u['partition']}" for u in under)
        print(f"under-replicated partitions ({len(under)}): {listed}")
    else:
        print("under-replicated partitions: none")
    return 0


def _ids(ids: list[int]) -> str:
    return ",".join(map(str, ids)) or "-"
