"""Topic and group administration: create, delete, list, describe, grow and reconfigure topics; list,
describe (with lag), delete groups and reset their committed offsets (``logstore.client.admin.groups``).

    with Admin(bootstrap="127.0.0.1:9093") as admin:
        admin.create_topics([NewTopic("orders", 6, {"retention.ms": "86400000"})])
        print(admin.describe_topics(["orders"]))

Calls act on one topic each on the wire; methods that take several topics try every one and then raise
the first error (its message lists the others), so one bad name does not stop the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple, TypeVar

import grpc
from logstore.client.admin.groups import GroupAdmin, GroupDescription, GroupListing, OffsetReset
from logstore.client.admin.security import AclBinding, AclBindingFilter, SecurityAdmin, UserCredentials
from logstore.client.admin.share import GroupConfigEntry, ShareAdmin, ShareGroupDescription
from logstore.client.groups.rpc import group_stub
from logstore.client.share.rpc import share_coordinator
from logstore.client.shared.connection import DEFAULT_BOOTSTRAP, Connection
from logstore.client.shared.errors import ClientError, ClosedError, error_from_rpc
from logstore.client.shared.metadata import describe_cluster, topic_description
from logstore.client.shared.options import refuse_unknown_options
from logstore.client.shared.security import Security
from logstore.client.shared.types import ClusterDescription, TopicDescription
from logstore.wire.logstore.v1 import admin_pb2, group_pb2_grpc

T = TypeVar("T")
R = TypeVar("R")


class NewTopic(NamedTuple):
    """A topic to create. ``num_partitions`` 0 means the broker's default; ``config`` uses Kafka's names
    (``retention.ms``, ``cleanup.policy``, ``min.insync.replicas``, ...) with string values (ints are
    sent as their digits). ``replication_factor`` 0 means the broker's default (kafka-python's name)."""

    name: str
    num_partitions: int = 0
    config: Mapping[str, str | int] | None = None
    replication_factor: int = 0


@refuse_unknown_options
class Admin:
    """Administers a broker's topics and consumer groups.

    Thread-safe: each call is one independent gRPC call over a shared channel.
    """

    def __init__(
        self,
        bootstrap: str | list[str] = DEFAULT_BOOTSTRAP,
        *,
        request_timeout_ms: float = 30_000,
        bootstrap_servers: str | list[str] | None = None,
        interceptors: Sequence[grpc.UnaryUnaryClientInterceptor] = (),
        security_protocol: str = "PLAINTEXT",
        ssl_cafile: str | None = None,
        ssl_certfile: str | None = None,
        ssl_keyfile: str | None = None,
        channel_credentials: grpc.ChannelCredentials | None = None,
        sasl_mechanism: str | None = None,
        sasl_plain_username: str | None = None,
        sasl_plain_password: str | None = None,
    ) -> None:
        if bootstrap_servers is not None:
            bootstrap = bootstrap_servers
        self._timeout_s = request_timeout_ms / 1000.0
        self._connection = Connection(
            bootstrap,
            max_send_bytes=1024 * 1024,
            max_receive_bytes=64 * 1024 * 1024,
            interceptors=interceptors,
            security=Security(
                security_protocol=security_protocol,
                ssl_cafile=ssl_cafile,
                ssl_certfile=ssl_certfile,
                ssl_keyfile=ssl_keyfile,
                channel_credentials=channel_credentials,
                sasl_mechanism=sasl_mechanism,
                sasl_plain_username=sasl_plain_username,
                sasl_plain_password=sasl_plain_password,
            ),
        )
        self._closed = False
        self._groups = GroupAdmin(
            group_stub(self._connection),
            self._timeout_s,
            for_group=lambda group_id: group_stub(self._connection, group_id, self._timeout_s),
            everywhere=self._group_stubs,
        )
        self._share = ShareAdmin(
            lambda group_id: share_coordinator(self._connection, group_id, self._timeout_s),
            self._timeout_s,
        )
        self._security = SecurityAdmin(self._call)

    # --- topics --------------------------------------------------------------------------------------------

    def create_topics(self, new_topics: Iterable[NewTopic | str]) -> list[TopicDescription]:
        """Create topics (a bare name gets the broker's default partition count); returns them as created."""
        topics = [NewTopic(t) if isinstance(t, str) else NewTopic(*t) for t in new_topics]
        return self._each(
            topics,
            lambda t: topic_description(
                self._call(
                    "CreateTopic",
                    admin_pb2.CreateTopicRequest(
                        name=t.name,
                        partitions=t.num_partitions,
                        config=_strings(t.config or {}),
                        replication_factor=t.replication_factor,
                    ),
                    f"creating topic {t.name!r}",
                ).topic
            ),
        )

    def create_topic(
        self,
        name: str,
        partitions: int = 0,
        config: Mapping[str, str] | None = None,
        replication_factor: int = 0,
    ) -> TopicDescription:
        return self.create_topics([NewTopic(name, partitions, config, replication_factor)])[0]

    # --- the cluster -----------------------------------------------------------------------------------------

    def _group_stubs(self) -> list[group_pb2_grpc.GroupServiceStub]:
        """A GroupService stub per live broker but the current one (each lists the groups it
        coordinates); none when the broker is alone (or does not say: an older one)."""
        try:
            cluster = describe_cluster(self._connection, self._timeout_s)
        except ClientError:
            return []
        if not cluster.clustered:
            return []
        channels = [self._connection.for_broker(b.broker_id) for b in cluster.brokers]
        return [
            group_pb2_grpc.GroupServiceStub(c.calls)
            for c in channels
            if c is not None and c.address != self._connection.address
        ]

    def reassign_partitions(self, topic: str, targets: Mapping[int, Sequence[int]]) -> None:
        """Move partitions of ``topic`` to new replica lists ``{partition: [broker ids]}`` (Kafka's
        ``alter_partition_reassignments``); returns once the moves are asked for, not done (the new
        replicas first catch up): ``describe_topics`` shows each partition's replicas as they change."""
        self._call(
            "ReassignPartitions",
            admin_pb2.ReassignPartitionsRequest(
                name=topic,
                partitions=[
                    admin_pb2.PartitionReassignment(partition=p, replicas=list(r))
                    for p, r in sorted(targets.items())
                ],
            ),
            f"reassigning partitions of {topic!r}",
        )

    def describe_cluster(self) -> ClusterDescription:
        """The live brokers with their listeners' addresses, the controller, and which broker answered
        (a broker alone answers itself as broker 0, ``clustered`` False)."""
        self._check_open()
        return describe_cluster(self._connection, self._timeout_s)

    def find_coordinator(self, group_id: str, kind: str = "group") -> tuple[int, str]:
        """The broker id and gRPC address of the coordinator of a consumer group (``kind`` "group") or a
        share group ("share"). Raises ``NotAvailableError`` while it has none."""
        answer = self._call(
            "FindCoordinator",
            admin_pb2.FindCoordinatorRequest(kind=kind, key=group_id),
            f"finding the coordinator of {kind} {group_id!r}",
        )
        return answer.broker_id, answer.endpoint

    def delete_topics(self, names: Iterable[str]) -> None:
        """Delete topics and all their data."""
        self._each(
            list(names),
            lambda name: self._call(
                "DeleteTopic", admin_pb2.DeleteTopicRequest(name=name), f"deleting topic {name!r}"
            ),
        )

    def list_topics(self) -> dict[str, int]:
        """Every topic's name and partition count, sorted by name."""
        answer = self._call("ListTopics", admin_pb2.ListTopicsRequest(), "listing topics")
        return {topic.name: topic.partitions for topic in answer.topics}

    def describe_topics(self, names: Iterable[str] | None = None) -> list[TopicDescription]:
        """Configuration and per-partition start and end offsets (of the named topics, or all)."""
        wanted = list(self.list_topics()) if names is None else list(names)
        return self._each(
            wanted,
            lambda name: topic_description(
                self._call(
                    "DescribeTopic", admin_pb2.DescribeTopicRequest(name=name), f"describing topic {name!r}"
                ).topic
            ),
        )

    def create_partitions(self, totals: Mapping[str, int]) -> list[TopicDescription]:
        """Grow topics to new total partition counts (never fewer). Keys may map elsewhere afterwards."""
        return self._each(
            list(totals.items()),
            lambda item: topic_description(
                self._call(
                    "CreatePartitions",
                    admin_pb2.CreatePartitionsRequest(name=item[0], total_partitions=item[1]),
                    f"growing topic {item[0]!r} to {item[1]} partitions",
                ).topic
            ),
        )

    def alter_configs(
        self, changes: Mapping[str, Mapping[str, str]], reset: Mapping[str, Iterable[str]] | None = None
    ) -> list[TopicDescription]:
        """Set some settings per topic (``{"orders": {"retention.ms": "3600000"}}``) and return others to
        the broker's defaults (``reset={"orders": ["cleanup.policy"]}``); the rest keep their values."""
        reset = reset or {}
        names = list(dict.fromkeys([*changes, *reset]))
        return self._each(
            names,
            lambda name: topic_description(
                self._call(
                    "AlterTopicConfig",
                    admin_pb2.AlterTopicConfigRequest(
                        name=name, set=_strings(changes.get(name, {})), reset=list(reset.get(name, ()))
                    ),
                    f"altering the configuration of topic {name!r}",
                ).topic
            ),
        )

    # --- consumer groups --------------------------------------------------------------------------------------

    def list_groups(self) -> list[GroupListing]:
        """Every group (with members or only committed offsets): id, state, member count."""
        self._check_open()
        return self._groups.list_groups()

    def describe_group(self, group_id: str) -> GroupDescription:
        """State, members with their assignments, and per partition committed offset, log end offset, lag."""
        self._check_open()
        return self._groups.describe_group(group_id)

    def delete_group(self, group_id: str) -> None:
        """Delete a group without members, and its committed offsets."""
        self._check_open()
        self._groups.delete_group(group_id)

    def reset_offsets(self, group_id: str, scope: Iterable = (), **where: object) -> list[OffsetReset]:
        """Move committed offsets of a group without members; see GroupAdmin.reset_offsets."""
        self._check_open()
        return self._groups.reset_offsets(group_id, scope, **where)  # type: ignore[arg-type]

    # --- share groups ------------------------------------------------------------------------------------------

    def describe_share_group(self, group_id: str) -> ShareGroupDescription:
        """Members, and per partition the start offset, records in flight, acquired, archived, and lag.
        GroupIdNotFoundError for an unknown group, InconsistentGroupProtocolError for a consumer group's id."""
        self._check_open()
        return self._share.describe_share_group(group_id)

    def alter_group_config(
        self, group_id: str, set: Mapping[str, object] | None = None, delete: Iterable[str] = ()
    ) -> None:
        """Set share-group configs (``{"share.record.lock.duration.ms": 15000}``) and remove others (back
        to the broker's default), all or nothing; also before the group's first member joins."""
        self._check_open()
        self._share.alter_group_config(group_id, set, delete)

    def describe_group_config(self, group_id: str) -> list[GroupConfigEntry]:
        """Every share-group config with its effective value and whether it was set for this group."""
        self._check_open()
        return self._share.describe_group_config(group_id)

    def delete_share_group(self, group_id: str) -> None:
        """Delete a share group without members: its state and configuration."""
        self._check_open()
        self._share.delete_share_group(group_id)

    # --- users and ACLs (super-users only on a broker with --require-auth) -----------------------------------

    def create_user(
        self, name: str, password: str, mechanisms: Iterable[str] = (), iterations: int = 0
    ) -> UserCredentials:
        """A user with SCRAM credentials (both SCRAM-SHA-256 and -512 unless `mechanisms` says; 4096
        iterations unless `iterations` says). The broker keeps only salted, iterated keys."""
        return self._security.create_user(name, password, mechanisms, iterations)

    def alter_user(
        self, name: str, password: str, mechanisms: Iterable[str] = (), iterations: int = 0
    ) -> UserCredentials:
        """Replace an existing user's credentials (a new password)."""
        return self._security.create_user(name, password, mechanisms, iterations, alter=True)

    def delete_user(self, name: str) -> None:
        """Delete a user's credentials (its ACLs stay, as in Kafka)."""
        self._security.delete_user(name)

    def list_users(self) -> list[UserCredentials]:
        """Every user and its mechanisms (never a credential)."""
        return self._security.list_users()

    def create_acls(self, acls: Iterable[AclBinding]) -> None:
        """Add ACLs; all are checked before any is stored."""
        self._security.create_acls(acls)

    def describe_acls(self, filter: AclBindingFilter | None = None) -> list[AclBinding]:
        """The ACLs `filter` matches (all without one)."""
        return self._security.describe_acls(filter)

    def delete_acls(self, filters: Iterable[AclBinding | AclBindingFilter]) -> list[AclBinding]:
        """Remove the ACLs matching any filter (a binding matches itself); returns those removed."""
        return self._security.delete_acls(filters)

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("this admin client is closed")

    # --- plumbing --------------------------------------------------------------------------------------------

    def _call(self, method: str, request: object, what: str) -> Any:
        """The answer of AdminService.<method> (its message type follows the method's name)."""
        if self._closed:
            raise ClosedError("this admin client is closed")
        try:
            return self._connection.call_any(
                lambda channel: getattr(channel.admin, method)(request, timeout=self._timeout_s), what
            )
        except grpc.RpcError as exc:
            raise error_from_rpc(exc, what) from None

    @staticmethod
    def _each(items: list[T], action: Callable[[T], R]) -> list[R]:
        """Apply ``action`` to every item; if some failed, raise the first error naming all failures."""
        results: list[R] = []
        errors: list[ClientError] = []
        for item in items:
            try:
                results.append(action(item))
            except ClientError as exc:
                errors.append(exc)
        if errors:
            first = errors[0]
            if len(errors) > 1:
                others = "; ".join(str(e) for e in errors[1:])
                first.args = (f"{first} (and {len(errors) - 1} more: {others})",)
            raise first
        return results

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._connection.close()

    def __enter__(self) -> Admin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _strings(config: Mapping[str, object]) -> dict[str, str]:
    """Config values as the wire wants them: strings (numbers and booleans are converted)."""
    out = {}
    for key, value in config.items():
        out[str(key)] = str(value).lower() if isinstance(value, bool) else str(value)
    return out
