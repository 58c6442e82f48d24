"""The broker process: open the data directory, serve gRPC, stop cleanly on SIGTERM or SIGINT.

Start: open (and if need be recover) every partition, register the logstore.v1 services, standard health
checking and server reflection, then listen. Stop: report NOT_SERVING, refuse new calls, let calls in
flight finish (long-polls answer, subscriptions end), append queued acks=0 data, flush, write the
clean-shutdown marker, exit 0.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import signal
import sys

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from logstore.broker.auth.security import Security
from logstore.broker.auth.store import SecurityStore
from logstore.broker.console import Console
from logstore.broker.domain.cluster_info import SingleBroker
from logstore.broker.domain.core import BrokerCore
from logstore.broker.domain.groups.offset_store import OFFSETS_TOPIC, OFFSETS_TOPIC_CONFIG
from logstore.broker.domain.share.state_store import STATE_TOPIC, STATE_TOPIC_CONFIG
from logstore.broker.kafka import KafkaListener
from logstore.broker.malloc import keep_large_buffers, release_free_memory
from logstore.broker.observability import DISABLED, BrokerMetrics, HttpEndpoint, Readiness, StateCollector
from logstore.broker.observability.grpc_connections import open_connections, server_ids
from logstore.broker.replication.node import ClusterNode
from logstore.broker.service import SERVICE_NAMES, add_services
from logstore.broker.service.answers import AnswerBudget
from logstore.broker.settings import PRODUCER_ID_STRIDE, Settings, SettingsError
from logstore.broker.tls import ServerTls, TlsError, exposure_warning

from logstore.errors import LogStoreError
from logstore.manager import LogManager

log = logging.getLogger("logstore.broker")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class BindError(OSError):
    """The broker could not listen on the address it was given."""


def grpc_options(settings: Settings) -> list[tuple[str, int]]:
    """Channel options that keep gRPC's size limits in line with the broker's own, and let go of
    connections that went idle or silent (their unread answers with them)."""
    return [
        ("grpc.max_receive_message_length", settings.max_request_bytes),
        ("grpc.max_send_message_length", settings.max_send_bytes),
        # Without this, a second broker on the same port would silently share it.
        ("grpc.so_reuseport", 0),
        ("grpc.max_connection_idle_ms", settings.connections_max_idle_ms),
        # Ping connections with calls; one whose client stopped reading cannot answer and is closed.
        ("grpc.keepalive_time_ms", settings.keepalive_time_ms),
        ("grpc.keepalive_timeout_ms", settings.keepalive_timeout_ms),
        # Any ping (gRPC also sends its own to size flow-control windows) left unanswered this long
        # closes the connection; only one ping is in flight at a time, so without this a keepalive
        # ping could wait behind an unanswered one for gRPC's default minute.
        ("grpc.http2.ping_timeout_ms", settings.keepalive_timeout_ms),
        # Keep pinging a connection whose calls have had nothing to send for a while (an idle
        # subscription); gRPC stops after two such pings by default.
        ("grpc.http2.max_pings_without_data", 0),
    ]


def server_credentials(tls: ServerTls) -> grpc.ServerCredentials:
    """The gRPC listener's TLS: the broker's pair, and with a client CA a client certificate required.

    A service reads the verified client certificate from ``context.auth_context()``:
    ``x509_subject`` (its distinguished name, RFC 2253), ``x509_common_name`` and ``x509_pem_cert``
    (``broker/service/principal.py`` turns it into the connection's ``User:...`` principal)."""
    return grpc.ssl_server_credentials(
        [(tls.private_key, tls.cert_chain)],
        root_certificates=tls.client_ca,
        require_client_auth=tls.requires_client_cert,
    )


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


class BrokerServer:
    """One broker: a LogManager, the domain over it, a grpc.aio server and the Kafka protocol listener in front.

    Not thread-safe: `start` and `stop` run on the broker's event loop (EmbeddedBroker hands them over).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port: int | None = None
        self.core: BrokerCore | None = None
        self.answers: AnswerBudget | None = None
        """Bytes in answers not yet taken by clients (None until started)."""
        self._server: grpc.aio.Server | None = None
        self._health: health.aio.HealthServicer | None = None
        self.security: Security | None = None
        """Users, ACLs and super-users (None until started)."""
        self.kafka: KafkaListener | None = None
        """The Kafka protocol listener, when the settings ask for one."""
        self.metrics: BrokerMetrics = BrokerMetrics() if settings.http else DISABLED
        """What the listeners count; `metrics.auth_failures` is the hook for refused logins."""
        self.readiness = Readiness()
        self.http: HttpEndpoint | None = None
        """/metrics, /healthz and /readyz, unless `--no-http`."""
        self.console: Console | None = None
        """The web console on the HTTP endpoint (/api/, /console/), unless `--no-http`."""
        self._stopped = False
        self.tls: ServerTls | None = None
        """The certificates both listeners serve, None for plaintext (read at start)."""
        self.cluster: ClusterNode | None = None
        """This broker's membership of its etcd cluster (`--etcd`); None for a single broker."""

    @property
    def address(self) -> str:
        assert self.port is not None, "the server is not started"
        return _address(self.settings.host, self.port)

    @property
    def require_auth(self) -> bool:
        """Whether every call must log in (`--require-auth`); the console reads it too."""
        return self.settings.require_auth

    async def start(self) -> None:
        settings = self.settings
        self.tls = settings.server_tls()  # first: a bad certificate stops the start before anything binds
        if settings.http:
            await self._start_http()
        try:  # on a thread, so /healthz answers (and /readyz says "starting") during a long recovery
            manager = await asyncio.to_thread(
                LogManager,
                settings.data_dir,
                default_config=settings.topic_config(),
                max_partitions=settings.max_partitions_per_topic,
                recover_metadata=settings.recover_metadata,
                recovered_configs={OFFSETS_TOPIC: OFFSETS_TOPIC_CONFIG, STATE_TOPIC: STATE_TOPIC_CONFIG},
                max_open_segments=settings.max_open_segments or None,
                on_fsync=self.metrics.observe_fsync if self.metrics.enabled else None,
            )
        except BaseException:
            await self._stop_http()
            raise
        try:
            self._report_start(manager)
            self.security = Security(
                SecurityStore(settings.data_dir),
                settings.super_user_list,
                producer_limit=settings.max_producer_bindings,
            )
            self.security.on_failure = self._count_login_failure
            self._report_security(self.security)
            self.core = BrokerCore(
                manager,
                auto_create_topics=settings.auto_create_topics,
                default_partitions=settings.default_partitions,
                max_batch_bytes=settings.max_batch_bytes,
                flush_threads=settings.flush_threads,
                group_config=settings.group_config(),
                offsets_topic_partitions=settings.offsets_topic_partitions,
                share_config=settings.share_config(),
                clustered=settings.clustered,
                producer_id_space=(PRODUCER_ID_STRIDE, settings.broker_id) if settings.clustered else (1, 0),
            )
            if self.metrics.enabled:
                self.metrics.registry.register(StateCollector(self.core))
            servers_before = server_ids()
            server = grpc.aio.server(options=grpc_options(settings))
            self.answers = AnswerBudget(
                settings.queued_max_response_bytes,
                settings.queued_max_response_bytes_per_connection,
                release_memory=release_free_memory,
            )
            add_services(
                server,
                self.core,
                produce_timeout_ms=settings.produce_timeout_ms,
                fetch_max_bytes=settings.fetch_max_bytes,
                answers=self.answers,
                metrics=self.metrics,
                security=self.security,
                require_auth=settings.require_auth,
                replicas=lambda: self.cluster.replicas if self.cluster is not None else None,
            )
            self._health = health.aio.HealthServicer()
            health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
            reflection.enable_server_reflection(
                (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
            )
            wanted = _address(settings.host, settings.port)
            try:
                if self.tls is None:
                    self.port = server.add_insecure_port(wanted)
                else:
                    self.port = server.add_secure_port(wanted, server_credentials(self.tls))
            except RuntimeError as exc:
                raise BindError(
                    f"cannot listen on {wanted}: {exc}; is another process using the port?"
                ) from None
            await server.start()
            self._server = server
            ours = server_ids() - servers_before
            self.metrics.count_connections("grpc", lambda: open_connections(ours))
            if settings.serves_kafka:
                await self._start_kafka()
            if settings.clustered:
                await self._join_cluster()
        except BaseException:
            if self.cluster is not None:
                await self.cluster.stop()
                self.cluster = None
            if self._server is not None:
                await self._server.stop(0)
                self._server = None
            if self.kafka is not None:
                await self.kafka.stop(0)
            await self._stop_http()
            manager.close()
            raise
        if isinstance(self.core.cluster, SingleBroker):
            self.core.cluster.endpoints = {item["name"]: item["address"] for item in self.listeners()}
        for name in ("", *SERVICE_NAMES):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self.readiness.state = "ready"
        security = "plaintext" if self.tls is None else self.tls.describe()
        log.info(
            "logstore broker listening on %s (gRPC API, %s; data dir %s)",
            self.address,
            security,
            settings.data_dir,
        )
        self._warn_if_exposed()

    async def _join_cluster(self) -> None:
        """Register in etcd with the addresses clients and brokers should use, and start following."""
        assert self.core is not None and self.port is not None
        settings = self.settings
        endpoints = {"grpc": settings.advertised(self.port)}
        if self.kafka is not None and self.kafka.port is not None:
            endpoints["kafka"] = settings.advertised(self.kafka.port)
        if self.http is not None and self.http.port is not None:
            endpoints["http"] = settings.advertised(self.http.port)
        self.cluster = ClusterNode(self.core, settings, endpoints)
        await self.cluster.start()

    async def _start_http(self) -> None:
        settings = self.settings
        self.console = Console(self, settings.data_dir)
        self.http = HttpEndpoint(
            self.metrics.registry,
            self.readiness,
            host=settings.host,
            port=settings.http_port,
            extend=self.console.extend,
            ssl_context=self.tls.ssl_context() if self.tls is not None else None,
        )
        try:
            await self.http.start()
        except OSError as exc:
            self.http = None
            raise BindError(
                f"cannot serve HTTP (/metrics) on {_address(settings.host, settings.http_port)}: "
                f"{exc.strerror}; is another process using the port? (--no-http turns it off)"
            ) from None
        assert self.http.port is not None
        log.info(
            "HTTP endpoint on %s (/metrics, /healthz, /readyz; web console at /console/)",
            _address(settings.host, self.http.port),
        )

    def listeners(self) -> list[dict[str, str]]:
        """Name and address of each listener that is bound (for the console's overview)."""
        host = self.settings.host
        bound = [("grpc", self.port), ("kafka", self.kafka.port if self.kafka else None)]
        bound.append(("http", self.http.port if self.http else None))
        return [{"name": name, "address": _address(host, port)} for name, port in bound if port is not None]

    async def _stop_http(self) -> None:
        if self.http is not None:
            await self.http.stop()
            self.http = None

    async def _start_kafka(self) -> None:
        assert self.core is not None and self.answers is not None
        settings = self.settings
        self.kafka = KafkaListener(
            self.core,
            host=settings.host,
            port=settings.kafka_port,
            max_request_bytes=settings.max_request_bytes,
            produce_timeout_ms=settings.produce_timeout_ms,
            fetch_max_bytes=settings.fetch_max_bytes,
            connections_max_idle_ms=settings.connections_max_idle_ms,
            answers=self.answers,
            ssl_context=self.tls.ssl_context() if self.tls is not None else None,
            metrics=self.metrics,
            security=self.security,
            require_auth=settings.require_auth,
        )
        try:
            await self.kafka.start()
        except OSError as exc:
            raise BindError(
                f"cannot listen for Kafka clients on {_address(settings.host, settings.kafka_port)}: "
                f"{exc.strerror}; is another process using the port?"
            ) from None
        assert self.kafka.port is not None
        log.info("Kafka protocol listener on %s", _address(settings.host, self.kafka.port))

    def _warn_if_exposed(self) -> None:
        ports = [f"gRPC {self.port}"]
        if self.kafka is not None:
            ports.append(f"Kafka {self.kafka.port}")
        if self.http is not None:
            ports.append(f"HTTP {self.http.port}, metrics and console")
        warning = exposure_warning(
            self.settings.host, ports, self.tls, authenticated=self.settings.require_auth
        )
        if warning is not None:
            log.warning("INSECURE: %s", warning)

    def _count_login_failure(self, listener: str, mechanism: str) -> None:
        self.metrics.auth_failures.labels(listener=listener, mechanism=mechanism).inc()

    def _report_security(self, security: Security) -> None:
        users, acls = len(security.store.users), len(security.store.bindings)
        if not self.settings.require_auth:
            if users or acls:
                log.warning(
                    "%d users and %d ACLs are defined but not enforced: start with --require-auth",
                    users,
                    acls,
                )
            return
        log.info(
            "authentication and authorization on: %d users, %d ACLs, super-users %s",
            users,
            acls,
            ", ".join(security.super_users) or "none",
        )
        if not security.super_users:
            log.warning("no --super-users: no one can manage users and ACLs through the broker")
        if not users:
            log.warning(
                "no users are defined, so only mTLS clients can log in; create one on the stopped broker: "
                "logstore users add NAME --password-stdin --data-dir %s",
                self.settings.data_dir,
            )

    def _report_start(self, manager: LogManager) -> None:
        topics = manager.topics()
        partitions = sum(info.partitions for info in topics)
        if not topics:
            log.info("opened %s: 0 topics", self.settings.data_dir)
        else:
            truncated = sum(info.truncated_bytes for info in manager.recovery)
            shutdown = (
                "was clean"
                if manager.clean_shutdown
                else f"was not clean: every partition was re-checked, {truncated} bytes truncated"
            )
            log.info(
                "opened %s: %d topics, %d partitions; previous shutdown %s",
                self.settings.data_dir,
                len(topics),
                partitions,
                shutdown,
            )
        log.info(
            "open files limit %d: at most %d segments keep their files open (max_open_segments)",
            resource.getrlimit(resource.RLIMIT_NOFILE)[0],
            manager.open_segments.limit,
        )
        for info in manager.recovery:
            if info.truncated_bytes or info.segments_dropped:
                log.warning(
                    "recovery of %s-%d truncated %d bytes and dropped %d segments; log end offset is now %d",
                    info.topic,
                    info.partition,
                    info.truncated_bytes,
                    info.segments_dropped,
                    info.log_end_offset,
                )
        for topic in topics:
            if topic.config.max_message_bytes > self.settings.max_batch_bytes:
                log.warning(
                    "topic %s allows batches of %d bytes (max.message.bytes) but requests are limited to %d "
                    "bytes (max_request_bytes): its largest batches cannot be produced",
                    topic.name,
                    topic.config.max_message_bytes,
                    self.settings.max_request_bytes,
                )

    async def stop(self) -> None:
        """Stop serving and close the data directory cleanly. Safe to call twice."""
        if self._stopped or self._server is None or self.core is None:
            return
        self._stopped = True
        self.readiness.state = "stopping"
        assert self._health is not None
        await self._health.enter_graceful_shutdown()
        if self.cluster is not None:  # first: hand leadership over while the listeners still answer
            await self.cluster.stop()
        self.core.begin_shutdown()
        if self.answers is not None:
            self.answers.close()
        await self._server.stop(self.settings.shutdown_grace_ms / 1000)
        if self.kafka is not None:
            await self.kafka.stop(self.settings.shutdown_grace_ms / 1000)
        await self.core.close()
        await self._stop_http()
        log.info("stopped cleanly; data directory %s closed", self.settings.data_dir)


async def serve(settings: Settings) -> int:
    """Run a broker until SIGTERM or SIGINT, then stop it cleanly."""
    server = BrokerServer(settings)
    await server.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal(signum: int) -> None:
        if stop.is_set():
            log.warning("already stopping; send SIGKILL to stop at once (the next start will recover)")
            return
        log.info("received %s: finishing calls in flight, then stopping", signal.Signals(signum).name)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        await stop.wait()
    finally:
        await server.stop()
    return 0


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT, stream=sys.stderr)
    logging.getLogger("logstore").setLevel(level.upper())


def raise_open_files_limit() -> None:
    """Lift the soft descriptor limit to the hard one, as a server should (a soft 1024 is meant for
    interactive programs); the budget of open segments is derived from the result."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == hard:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):  # RLIM_INFINITY above fs.nr_open, or a sandbox: keep what we have
        log.debug("could not raise the open files limit from %s to %s", soft, hard)


def run(settings: Settings) -> int:
    """Entry point of `logstore serve` and `python -m logstore.broker`: returns the process exit code."""
    configure_logging(settings.log_level)
    raise_open_files_limit()
    if not keep_large_buffers():
        log.debug("could not tune the C library's allocator; large calls will cost more page faults")
    try:
        return asyncio.run(serve(settings))
    except (LogStoreError, BindError, TlsError) as exc:
        log.error("cannot start: %s", exc)
        return 1


def main(argv: list[str] | None = None) -> int:
    """`python -m logstore.broker`: the same flags as `logstore serve`."""
    import argparse

    from logstore.broker.settings import add_arguments, from_arguments

    parser = argparse.ArgumentParser(prog="python -m logstore.broker", description="Run a logstore broker.")
    add_arguments(parser)
    try:
        settings = from_arguments(parser.parse_args(argv))
    except SettingsError as exc:
        parser.error(str(exc))
    return run(settings)
