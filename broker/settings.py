"""Broker settings: command-line flags over `LOGSTORE_*` environment variables over a TOML file over defaults.

The config file is named by `--config` or `LOGSTORE_CONFIG`. Its keys are the field names below (dashes
allowed instead of underscores); per-topic defaults go in a `[topic_defaults]` table under Kafka's names:

    port = 9093
    kafka_port = 9092
    data_dir = "/var/lib/logstore"
    auto_create_topics = false
    [topic_defaults]
    "retention.ms" = 86400000

The size limits are kept consistent here: gRPC refuses any request over `max_request_bytes` (with
RESOURCE_EXHAUSTED), a topic's max.message.bytes must fit in such a request, and the broker's send limit
leaves room for the largest fetch answer.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from logstore.broker.group_machine.assignors import ASSIGNORS
from logstore.broker.group_machine.model import CoordinatorConfig
from logstore.broker.share_machine.config import ShareGroupConfig
from logstore.broker.tls import ServerTls
from logstore.broker.tls import load as load_tls

from logstore.config import TopicConfig
from logstore.errors import InvalidConfigError
from logstore.manager import MAX_PARTITIONS

MiB = 1024 * 1024
ENV_PREFIX = "LOGSTORE_"
GRPC_MESSAGE_LIMIT = 2**31 - 1
"""gRPC message sizes are 32-bit signed."""
REQUEST_FRAMING_BYTES = 1024
"""Room in a produce request for everything but one batch: topic name (up to 249 bytes), numbers, tags."""
RESPONSE_HEADROOM_BYTES = 4 * MiB
"""Room in an answer beyond its batches: per-partition fields for up to 10,000 partitions."""
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
SHARE_RANGES = {
    "share_record_lock_duration_ms": (1000, 3_600_000),
    "share_delivery_count_limit": (2, 10),
    "share_partition_max_record_locks": (100, 10_000),
    "share_session_timeout_ms": (1000, 3_600_000),
    "share_heartbeat_interval_ms": (100, 3_600_000),
}
"""Bounds of the share-group defaults: Kafka's, the same a group-level config is held to."""


class SettingsError(ValueError):
    """A setting is missing, malformed or out of range; the message names it and its source."""


PRODUCER_ID_STRIDE = 1024
"""In a cluster broker N hands out producer ids N, N + 1024, N + 2048, ...: never the same id twice
across brokers without asking etcd, so broker ids run from 0 to 1023."""


@dataclass(frozen=True)
class Settings:
    """Everything `logstore serve` can be told."""

    data_dir: Path = Path("data")
    """Directory holding the topics; created if missing."""
    host: str = "127.0.0.1"
    """Interface to listen on; loopback unless you mean to expose the broker."""
    port: int = 9093
    """TCP port of the gRPC API; 0 picks a free one (the log says which)."""
    kafka_port: int = 9092
    """TCP port of the Kafka protocol listener: 9092, the port every Kafka client and tutorial assumes;
    0 picks a free one."""
    kafka_listener: bool = True
    """Serve the Kafka protocol listener; `--no-kafka-listener` turns it off (and frees its port)."""
    http_port: int = 9094
    """TCP port of the HTTP endpoint: /metrics (Prometheus), /healthz and /readyz; 0 picks a free one."""
    http: bool = True
    """Serve the HTTP endpoint and keep metrics; `--no-http` turns both off (and frees its port)."""
    auto_create_topics: bool = True
    """Create an unknown topic when a produce request names it, as Kafka does."""
    default_partitions: int = 1
    """Partition count of auto-created topics, and of CreateTopic calls that ask for 0."""
    max_request_bytes: int = 100 * MiB
    """Largest request accepted; larger ones are refused with RESOURCE_EXHAUSTED."""
    fetch_max_bytes: int = 50 * MiB
    """Most bytes of batches one fetch answer (or one subscription message) carries."""
    produce_timeout_ms: int = 30_000
    """How long acks=all waits for an fsync when the request does not say."""
    shutdown_grace_ms: int = 10_000
    """How long calls in flight may take to finish on SIGTERM before they are cancelled."""
    flush_threads: int = 8
    """Worker threads for fsyncs (acks=all); each partition uses at most one at a time."""
    log_level: str = "INFO"
    """DEBUG also logs every refused request; INFO tells what the broker did."""
    topic_defaults: Mapping[str, str] = field(default_factory=dict)
    """Default per-topic settings under Kafka's names, for topics that do not set their own."""
    group_session_timeout_ms: int = 45_000
    """A consumer-group member not heard from for this long is removed and its partitions move on."""
    group_min_session_timeout_ms: int = 6_000
    """The shortest session timeout a member may ask for (Kafka's group.min.session.timeout.ms)."""
    group_max_session_timeout_ms: int = 1_800_000
    """The longest session timeout a member may ask for (Kafka's group.max.session.timeout.ms)."""
    group_heartbeat_interval_ms: int = 5_000
    """How often members are told to heartbeat; must be below the session timeout."""
    group_rebalance_timeout_ms: int = 300_000
    """How long a member may take to release revoked partitions, when its heartbeats do not say."""
    group_assignor: str = "uniform"
    """The server-side assignor of groups whose first member names none: uniform or range."""
    offsets_topic_partitions: int = 8
    """Partitions of the internal `__consumer_offsets` topic; used only when the broker first creates it."""
    max_partitions_per_topic: int = 1000
    """Most partitions one topic may have (CreateTopic, CreatePartitions; INVALID_PARTITIONS beyond).
    Each partition costs open files and memory, so one request must not be able to take the broker down."""
    recover_metadata: bool = False
    """Rebuild a lost `meta.json` from the partition folders at start (command-line flag only: a lost
    topic list is an event to look at, not something to repair silently on every start)."""
    max_open_segments: int = 0
    """Segments that may hold their files open at once (six descriptors each); idle ones beyond it close
    and reopen on demand. 0: half the descriptor limit (raised to the hard limit at start) divided by six."""
    queued_max_response_bytes: int = 256 * MiB
    """Most bytes of batches in answers not yet taken by their clients, broker-wide (Kafka's habit of
    `queued.max.request.bytes`, for answers): past it, reads wait or get smaller answers. Each such byte
    costs two to three of memory while it waits (the serialized answer, gRPC core's copy)."""
    queued_max_response_bytes_per_connection: int = 64 * MiB
    """The same bound per client connection, so one slow reader cannot take the broker-wide budget."""
    connections_max_idle_ms: int = 600_000
    """Close a connection with no call for this long (Kafka's connections.max.idle.ms)."""
    keepalive_time_ms: int = 60_000
    """Ping each connection that has calls after this much silence from it ..."""
    keepalive_timeout_ms: int = 20_000
    """... and close it if the ping is not answered within this: a client that stopped reading lets go."""
    share_record_lock_duration_ms: int = 30_000
    """How long a share-group member holds a record it acquired before it is released again (Kafka's
    group.share.record.lock.duration.ms); a group's share.record.lock.duration.ms overrides it."""
    share_delivery_count_limit: int = 5
    """Deliveries of one record to a share group before it is archived (group.share.delivery.count.limit)."""
    share_partition_max_record_locks: int = 2000
    """Most records in flight per share-partition: the queue's prefetch (group.share.partition.max.record.locks)."""
    share_session_timeout_ms: int = 45_000
    """A share-group member not heard from for this long is removed and its records released
    (group.share.session.timeout.ms)."""
    share_heartbeat_interval_ms: int = 5_000
    """How often share-group members are told to heartbeat (group.share.heartbeat.interval.ms); below the
    session timeout."""
    tls_cert: str = ""
    """PEM certificate chain both listeners serve TLS with (with `tls_key`); empty: plaintext."""
    tls_key: str = ""
    """PEM private key of `tls_cert`."""
    tls_client_ca: str = ""
    """PEM CA certificates that client certificates must be signed by: set, both listeners require one
    (mutual TLS) and its subject is the connection's principal."""
    require_auth: bool = False
    """Authenticate every call (SCRAM users, or mTLS certificates) and authorize it against the ACLs."""
    super_users: str = ""
    """Comma-separated principals (`User:admin,User:ops`) that every ACL check lets through, and the only
    ones that may manage users and ACLs while `require_auth` is on."""
    max_producer_bindings: int = 100_000
    """Idempotent producer ids whose owning principal is kept (in `producer-owners.jsonl`); past that the
    binding unused longest goes (see `broker.auth.producer_owners` for what that costs)."""
    broker_id: int = -1
    """This broker's id in its cluster (`--broker-id`); -1 with no `etcd`: a single broker."""
    etcd: str = ""
    """Comma-separated etcd endpoints (`http://127.0.0.1:2379`); set, the broker joins that cluster."""
    cluster_root: str = "/logstore"
    """The etcd key prefix of the cluster: one cluster per prefix, so clusters may share an etcd."""
    advertised_host: str = ""
    """The host clients and other brokers are told to reach this broker at; empty: `host`."""
    broker_session_timeout_ms: int = 6_000
    """A broker not heard from by etcd for this long is dead: its lease expires, its partitions move
    (Kafka's broker.session.timeout.ms). Also the controller lease."""
    replica_lag_time_max_ms: int = 10_000
    """A follower not caught up for this long leaves the ISR (Kafka's replica.lag.time.max.ms)."""
    default_replication_factor: int = 1
    """Replicas of a topic created without a replication factor (Kafka's default.replication.factor)."""
    min_insync_replicas: int = 1
    """acks=all needs at least this many in-sync replicas (Kafka's min.insync.replicas)."""
    internal_replication_factor: int = 3
    """Replicas of the internal topics (`__consumer_offsets`, share state), at most the live brokers
    when first created (Kafka's offsets.topic.replication.factor)."""
    unclean_leader_election: bool = False
    """Let an out-of-sync replica lead when no in-sync one is alive (loses acknowledged records)."""
    leader_imbalance_check_interval_ms: int = 300_000
    """How often the controller moves leadership back to each partition's preferred (first) replica when it
    is alive and in sync, after failovers moved it (Kafka's auto.leader.rebalance.enable with
    leader.imbalance.check.interval.seconds); 0 turns it off."""

    def __post_init__(self) -> None:
        _check_range("port", self.port, 0, 65535)
        _check_range("kafka_port", self.kafka_port, 0, 65535)
        if self.serves_kafka and self.kafka_port == self.port != 0:
            raise SettingsError(
                f"kafka_port and port are both {self.port}: the Kafka listener and the gRPC API need a port each"
            )
        _check_range("http_port", self.http_port, 0, 65535)
        if (
            self.http
            and self.http_port != 0
            and self.http_port in (self.port, self.kafka_port if self.serves_kafka else -1)
        ):
            raise SettingsError(
                f"http_port {self.http_port} is also the gRPC or Kafka port: the HTTP endpoint needs its own"
            )
        _check_range("default_partitions", self.default_partitions, 1, 10_000)
        _check_range(
            "max_request_bytes",
            self.max_request_bytes,
            64 * 1024,
            GRPC_MESSAGE_LIMIT - RESPONSE_HEADROOM_BYTES,
        )
        _check_range("fetch_max_bytes", self.fetch_max_bytes, 1, GRPC_MESSAGE_LIMIT - RESPONSE_HEADROOM_BYTES)
        _check_range("produce_timeout_ms", self.produce_timeout_ms, 1, 2**31 - 1)
        _check_range("shutdown_grace_ms", self.shutdown_grace_ms, 0, 2**31 - 1)
        _check_range("flush_threads", self.flush_threads, 1, 256)
        _check_range("group_session_timeout_ms", self.group_session_timeout_ms, 2, 2**31 - 1)
        _check_range("group_heartbeat_interval_ms", self.group_heartbeat_interval_ms, 1, 2**31 - 1)
        if self.group_heartbeat_interval_ms >= self.group_session_timeout_ms:
            raise SettingsError(
                f"group_heartbeat_interval_ms ({self.group_heartbeat_interval_ms}) must be smaller than "
                f"group_session_timeout_ms ({self.group_session_timeout_ms}), or members time out between "
                "heartbeats"
            )
        _check_range("group_min_session_timeout_ms", self.group_min_session_timeout_ms, 2, 2**31 - 1)
        _check_range(
            "group_max_session_timeout_ms",
            self.group_max_session_timeout_ms,
            self.group_min_session_timeout_ms,
            2**31 - 1,
        )
        _check_range("group_rebalance_timeout_ms", self.group_rebalance_timeout_ms, 1, 2**31 - 1)
        if self.group_assignor not in ASSIGNORS:
            raise SettingsError(
                f"group_assignor must be one of {', '.join(sorted(ASSIGNORS))}, not {self.group_assignor!r}"
            )
        _check_range("offsets_topic_partitions", self.offsets_topic_partitions, 1, 1000)
        _check_range("max_partitions_per_topic", self.max_partitions_per_topic, 1, MAX_PARTITIONS)
        for name in ("default_partitions", "offsets_topic_partitions"):
            if getattr(self, name) > self.max_partitions_per_topic:
                raise SettingsError(
                    f"{name} ({getattr(self, name)}) is more than max_partitions_per_topic "
                    f"({self.max_partitions_per_topic}); lower it or raise the limit"
                )
        _check_range("max_open_segments", self.max_open_segments, 0, 2**31 - 1)
        _check_range("max_producer_bindings", self.max_producer_bindings, 1, 100_000_000)
        _check_range("queued_max_response_bytes", self.queued_max_response_bytes, 64 * 1024, 2**48)
        _check_range(
            "queued_max_response_bytes_per_connection",
            self.queued_max_response_bytes_per_connection,
            64 * 1024,
            self.queued_max_response_bytes,
        )
        _check_range("connections_max_idle_ms", self.connections_max_idle_ms, 1, 2**31 - 1)
        _check_range("keepalive_time_ms", self.keepalive_time_ms, 1, 2**31 - 1)
        _check_range("keepalive_timeout_ms", self.keepalive_timeout_ms, 1, 2**31 - 1)
        for name, (low, high) in SHARE_RANGES.items():
            _check_range(name, getattr(self, name), low, high)
        if self.share_heartbeat_interval_ms >= self.share_session_timeout_ms:
            raise SettingsError(
                f"share_heartbeat_interval_ms ({self.share_heartbeat_interval_ms}) must be smaller than "
                f"share_session_timeout_ms ({self.share_session_timeout_ms}), or members time out between "
                "heartbeats"
            )
        for principal in self.super_user_list:
            kind, sep, name = principal.partition(":")
            if kind != "User" or not sep or not name or name == "*":
                raise SettingsError(f"super_users: {principal!r} is not a principal like User:admin")
        self._check_cluster()
        if self.log_level.upper() not in LOG_LEVELS:
            raise SettingsError(f"log_level must be one of {', '.join(LOG_LEVELS)}, not {self.log_level!r}")
        batch = self.topic_config().max_message_bytes
        if batch > self.max_batch_bytes:
            raise SettingsError(
                f"topic default max.message.bytes ({batch}) does not fit in a request of max_request_bytes "
                f"({self.max_request_bytes}); raise max_request_bytes to at least "
                f"{batch + REQUEST_FRAMING_BYTES} or lower max.message.bytes in topic_defaults"
            )

    def _check_cluster(self) -> None:
        if not self.etcd:
            if self.broker_id != -1:
                raise SettingsError(
                    "broker_id is set but etcd is not: a broker joins a cluster with --etcd URL"
                )
            return
        _check_range("broker_id", self.broker_id, 0, PRODUCER_ID_STRIDE - 1)  # ids interleave producer ids
        if self.tls_cert or self.require_auth:
            raise SettingsError(
                "a cluster (etcd) with TLS or require_auth is not supported yet: brokers replicate to each "
                "other over plaintext gRPC without credentials; run the cluster on a private network"
            )
        if self.host in ("0.0.0.0", "::", "") and not self.advertised_host:
            raise SettingsError(
                f"host {self.host!r} listens on every address: say which one clients and other brokers "
                "should connect to with --advertised-host"
            )
        for endpoint in self.etcd_endpoints:
            host, sep, port = endpoint.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise SettingsError(f"etcd endpoint {endpoint!r} is not http://HOST:PORT")
        if not self.cluster_root.startswith("/") or self.cluster_root.endswith("/"):
            raise SettingsError(
                f"cluster_root {self.cluster_root!r} must start with '/' and not end with one"
            )
        _check_range("broker_session_timeout_ms", self.broker_session_timeout_ms, 1000, 600_000)
        _check_range("replica_lag_time_max_ms", self.replica_lag_time_max_ms, 100, 2**31 - 1)
        _check_range("default_replication_factor", self.default_replication_factor, 1, 64)
        _check_range("min_insync_replicas", self.min_insync_replicas, 1, 64)
        _check_range("internal_replication_factor", self.internal_replication_factor, 1, 64)
        _check_range(
            "leader_imbalance_check_interval_ms", self.leader_imbalance_check_interval_ms, 0, 2**31 - 1
        )

    @property
    def clustered(self) -> bool:
        """Whether the broker joins an etcd-coordinated cluster."""
        return bool(self.etcd)

    def advertised(self, port: int) -> str:
        """The address to advertise for a listener bound at `port`."""
        host = self.advertised_host or self.host
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    @property
    def etcd_endpoints(self) -> tuple[str, ...]:
        """`etcd` split at commas, without the scheme."""
        return tuple(
            item.strip().removeprefix("http://").removeprefix("https://")
            for item in self.etcd.split(",")
            if item.strip()
        )

    @property
    def super_user_list(self) -> tuple[str, ...]:
        """`super_users` split at commas."""
        return tuple(p.strip() for p in self.super_users.split(",") if p.strip())

    @property
    def serves_kafka(self) -> bool:
        """Whether the broker runs its Kafka protocol listener."""
        return self.kafka_listener

    @property
    def max_batch_bytes(self) -> int:
        """The largest max.message.bytes a topic may have: one such batch must fit in a request."""
        return self.max_request_bytes - REQUEST_FRAMING_BYTES

    @property
    def max_send_bytes(self) -> int:
        """The largest answer: a fetch's batches (up to fetch_max_bytes, or one batch that fit in a request)
        plus the per-partition fields."""
        return max(self.max_request_bytes, self.fetch_max_bytes) + RESPONSE_HEADROOM_BYTES

    def group_config(self) -> CoordinatorConfig:
        """The consumer-group coordinator's defaults."""
        return CoordinatorConfig(
            session_timeout_ms=self.group_session_timeout_ms,
            heartbeat_interval_ms=self.group_heartbeat_interval_ms,
            rebalance_timeout_ms=self.group_rebalance_timeout_ms,
            min_session_timeout_ms=self.group_min_session_timeout_ms,
            max_session_timeout_ms=self.group_max_session_timeout_ms,
            assignor=self.group_assignor,
        )

    def share_config(self) -> ShareGroupConfig:
        """The share groups' defaults; a group's own configs override them."""
        return ShareGroupConfig(
            record_lock_duration_ms=self.share_record_lock_duration_ms,
            delivery_count_limit=self.share_delivery_count_limit,
            partition_max_record_locks=self.share_partition_max_record_locks,
            session_timeout_ms=self.share_session_timeout_ms,
            heartbeat_interval_ms=self.share_heartbeat_interval_ms,
        )

    def server_tls(self) -> ServerTls | None:
        """The certificates `tls_cert`, `tls_key` and `tls_client_ca` name, read and checked (None for
        plaintext); raises TlsError naming the flag."""
        return load_tls(self.tls_cert, self.tls_key, self.tls_client_ca)

    def topic_config(self) -> TopicConfig:
        try:
            return TopicConfig.from_mapping(self.topic_defaults)
        except InvalidConfigError as exc:
            raise SettingsError(f"topic_defaults: {exc}") from None


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}
_FLAG_ONLY = ("recover_metadata",)
"""Settings taken from the command line only, never from the environment or the config file."""
_SCALARS: dict[str, type] = {
    name: type(f.default)
    for name, f in _FIELDS.items()
    if name != "topic_defaults" and name not in _FLAG_ONLY
}
_SCALARS["data_dir"] = Path


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high}, not {value}")


def _parse(name: str, value: Any, source: str) -> Any:
    """Turn a value from a file or the environment into the field's type, naming the source on error."""
    wanted = _SCALARS[name]
    if wanted is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"{source}: {name} must be true or false, not {value!r}")
    if wanted is int:
        if isinstance(value, bool):
            raise SettingsError(f"{source}: {name} must be an integer, not {value!r}")
        try:
            return int(str(value).strip())
        except ValueError:
            raise SettingsError(f"{source}: {name} must be an integer, not {value!r}") from None
    if wanted is Path:
        return Path(str(value))
    return str(value)


def _from_file(path: Path) -> dict[str, Any]:
    try:
        document = tomllib.loads(path.read_text())
    except OSError as exc:
        raise SettingsError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {path} is not valid TOML: {exc}") from None
    values: dict[str, Any] = {}
    for raw_key, value in document.items():
        key = raw_key.replace("-", "_")
        if key == "topic_defaults":
            if not isinstance(value, dict):
                raise SettingsError(f"{path}: topic_defaults must be a table of Kafka topic settings")
            values[key] = {
                str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in value.items()
            }
        elif key in _FLAG_ONLY:
            raise SettingsError(f"{path}: {raw_key} is a command-line flag only (--{key.replace('_', '-')})")
        elif key in _SCALARS:
            values[key] = _parse(key, value, str(path))
        else:
            raise SettingsError(f"{path}: unknown setting {raw_key!r}; known settings: {', '.join(_FIELDS)}")
    return values


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    return {
        name: _parse(name, env[ENV_PREFIX + name.upper()], f"environment variable {ENV_PREFIX}{name.upper()}")
        for name in _SCALARS
        if ENV_PREFIX + name.upper() in env
    }


def load(flags: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Merge the sources: `flags` (already typed, only those given) > `env` > the config file > defaults."""
    flags = dict(flags or {})
    env = os.environ if env is None else env
    config_path = flags.pop("config", None) or env.get(ENV_PREFIX + "CONFIG")
    values: dict[str, Any] = _from_file(Path(config_path)) if config_path else {}
    values.update(_from_env(env))
    topic_flags = flags.pop("topic_defaults", None)
    if topic_flags:
        values["topic_defaults"] = {**values.get("topic_defaults", {}), **topic_flags}
    values.update(flags)
    return Settings(**values)


# --- command line ---------------------------------------------------------------------------------------


def _topic_setting(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(
            f"expected KEY=VALUE (for example retention.ms=86400000), not {text!r}"
        )
    return key.strip(), value.strip()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `serve` flags. Every flag defaults to 'not given', so env vars and the file can fill it in."""
    given = argparse.SUPPRESS
    parser.add_argument("--config", type=Path, default=given, help="TOML config file (env LOGSTORE_CONFIG)")
    parser.add_argument("--data-dir", type=Path, default=given, help="data directory (default ./data)")
    parser.add_argument("--host", default=given, help="interface to listen on (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=given, help="gRPC API's TCP port, 0 for any free one (default 9093)"
    )
    parser.add_argument(
        "--kafka-port",
        type=int,
        default=given,
        help="Kafka protocol listener's TCP port, 0 for any free one (default 9092)",
    )
    parser.add_argument(
        "--kafka-listener",
        action=argparse.BooleanOptionalAction,
        default=given,
        help="serve the Kafka protocol on --kafka-port (default on; --no-kafka-listener: gRPC only)",
    )
    parser.add_argument(
        "--http-port",
        type=int,
        default=given,
        help="HTTP port of /metrics, /healthz and /readyz, 0 for any free one (default 9094)",
    )
    parser.add_argument(
        "--http",
        action=argparse.BooleanOptionalAction,
        default=given,
        help="serve /metrics, /healthz and /readyz on --http-port and keep metrics (default on; --no-http: off)",
    )
    parser.add_argument(
        "--auto-create-topics",
        action=argparse.BooleanOptionalAction,
        default=given,
        help="create unknown topics on produce (default on)",
    )
    parser.add_argument("--default-partitions", type=int, default=given, help="partitions of new topics (1)")
    parser.add_argument("--max-request-bytes", type=int, default=given, help="largest request (100 MiB)")
    parser.add_argument(
        "--fetch-max-bytes", type=int, default=given, help="most bytes per fetch answer (50 MiB)"
    )
    parser.add_argument("--produce-timeout-ms", type=int, default=given, help="acks=all fsync wait (30000)")
    parser.add_argument("--shutdown-grace-ms", type=int, default=given, help="time to finish calls (10000)")
    parser.add_argument("--flush-threads", type=int, default=given, help="threads for fsync (8)")
    parser.add_argument(
        "--group-session-timeout-ms", type=int, default=given, help="remove silent group members (45000)"
    )
    parser.add_argument(
        "--group-min-session-timeout-ms",
        type=int,
        default=given,
        help="shortest session timeout a consumer may ask for (6000)",
    )
    parser.add_argument(
        "--group-max-session-timeout-ms",
        type=int,
        default=given,
        help="longest session timeout a consumer may ask for (1800000)",
    )
    parser.add_argument(
        "--group-heartbeat-interval-ms", type=int, default=given, help="member heartbeat pace (5000)"
    )
    parser.add_argument(
        "--group-rebalance-timeout-ms", type=int, default=given, help="time to release partitions (300000)"
    )
    parser.add_argument(
        "--group-assignor", choices=sorted(ASSIGNORS), default=given, help="default group assignor (uniform)"
    )
    parser.add_argument(
        "--offsets-topic-partitions", type=int, default=given, help="__consumer_offsets partitions (8)"
    )
    parser.add_argument(
        "--max-partitions-per-topic", type=int, default=given, help="most partitions of one topic (1000)"
    )
    parser.add_argument(
        "--recover-metadata",
        action="store_true",
        default=given,
        help="rebuild a lost meta.json from the partition folders (default configs, retention off), then start",
    )
    parser.add_argument(
        "--max-open-segments", type=int, default=given, help="segments with open files, 0 for auto (0)"
    )
    parser.add_argument(
        "--queued-max-response-bytes", type=int, default=given, help="unread answers, broker-wide (256 MiB)"
    )
    parser.add_argument(
        "--queued-max-response-bytes-per-connection",
        type=int,
        default=given,
        help="unread answers per connection (64 MiB)",
    )
    parser.add_argument(
        "--connections-max-idle-ms", type=int, default=given, help="close connections idle this long (600000)"
    )
    parser.add_argument(
        "--keepalive-time-ms", type=int, default=given, help="ping silent connections (60000)"
    )
    parser.add_argument(
        "--keepalive-timeout-ms", type=int, default=given, help="close if the ping is not answered (20000)"
    )
    for name, (low, high) in SHARE_RANGES.items():
        default = _FIELDS[name].default
        parser.add_argument(
            "--" + name.replace("_", "-"),
            type=int,
            default=given,
            help=f"share-group default, {low}..{high} ({default})",
        )
    parser.add_argument(
        "--tls-cert",
        metavar="PEM",
        default=given,
        help="serve TLS on both listeners with this certificate chain",
    )
    parser.add_argument("--tls-key", metavar="PEM", default=given, help="the private key of --tls-cert")
    parser.add_argument(
        "--tls-client-ca",
        metavar="PEM",
        default=given,
        help="require client certificates signed by this CA (mutual TLS; needs --tls-cert)",
    )
    parser.add_argument(
        "--require-auth",
        action=argparse.BooleanOptionalAction,
        default=given,
        help="authenticate every call and authorize it against the ACLs (default off)",
    )
    parser.add_argument(
        "--super-users",
        metavar="User:NAME[,User:NAME...]",
        default=given,
        help="principals every ACL check lets through; the only ones that may manage users and ACLs",
    )
    parser.add_argument(
        "--max-producer-bindings",
        type=int,
        default=given,
        help="producer ids whose owning principal is remembered across restarts (100000)",
    )
    cluster = parser.add_argument_group("cluster (with --etcd)")
    cluster.add_argument(
        "--broker-id", type=int, default=given, help="this broker's id in the cluster (needs --etcd)"
    )
    cluster.add_argument(
        "--etcd",
        metavar="http://HOST:PORT[,...]",
        default=given,
        help="join the cluster whose metadata this etcd keeps (no flag: a single broker, no etcd)",
    )
    cluster.add_argument(
        "--cluster-root", metavar="PREFIX", default=given, help="the cluster's etcd key prefix (/logstore)"
    )
    cluster.add_argument(
        "--advertised-host",
        metavar="HOST",
        default=given,
        help="the host clients and brokers are told to connect to (default: --host)",
    )
    cluster.add_argument(
        "--broker-session-timeout-ms",
        type=int,
        default=given,
        help="a broker silent to etcd this long is dead and its partitions move (6000)",
    )
    cluster.add_argument(
        "--replica-lag-time-max-ms",
        type=int,
        default=given,
        help="a follower not caught up for this long leaves the ISR (10000)",
    )
    cluster.add_argument(
        "--default-replication-factor",
        type=int,
        default=given,
        help="replicas of a topic created without a replication factor (1)",
    )
    cluster.add_argument(
        "--min-insync-replicas",
        type=int,
        default=given,
        help="in-sync replicas acks=all needs, for topics that do not set min.insync.replicas (1)",
    )
    cluster.add_argument(
        "--internal-replication-factor",
        type=int,
        default=given,
        help="replicas of __consumer_offsets and the share-state topic, at most the live brokers (3)",
    )
    cluster.add_argument(
        "--unclean-leader-election",
        action=argparse.BooleanOptionalAction,
        default=given,
        help="let an out-of-sync replica lead when no in-sync one is alive; loses records (off)",
    )
    cluster.add_argument(
        "--leader-imbalance-check-interval-ms",
        type=int,
        default=given,
        help="how often the controller moves leadership back to preferred replicas; 0: never (300000)",
    )
    parser.add_argument("--log-level", choices=LOG_LEVELS, type=str.upper, default=given, help="(INFO)")
    parser.add_argument(
        "--topic-default",
        dest="topic_defaults",
        metavar="KEY=VALUE",
        type=_topic_setting,
        action="append",
        default=given,
        help="default topic setting, repeatable (for example --topic-default retention.ms=86400000)",
    )


def from_arguments(namespace: argparse.Namespace) -> Settings:
    """Settings from parsed `serve` flags (other attributes of the namespace are ignored)."""
    flags = {key: value for key, value in vars(namespace).items() if key in _FIELDS or key == "config"}
    if "topic_defaults" in flags:
        flags["topic_defaults"] = dict(flags["topic_defaults"])
    return load(flags)
