"""TLS and mutual TLS on both listeners, with certificates made for each test (`logstore.bench.certs`):
our clients, kafka-python and confluent-kafka, the CLI, and the refusals each must give."""

from __future__ import annotations

import asyncio
import base64
import http.client
import socket
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import grpc
import pytest
from confluent_kafka import Consumer as ConfluentConsumer
from confluent_kafka import KafkaException
from confluent_kafka import Producer as ConfluentProducer
from confluent_kafka.admin import AdminClient
from cryptography import x509
from cryptography.x509.oid import NameOID
from kafka import KafkaConsumer, KafkaProducer
from logstore.bench.certs import CertificateAuthority, Pair
from logstore.broker.embedded import EmbeddedBroker
from logstore.broker.server import server_credentials
from logstore.broker.service.principal import principal_from_auth_context
from logstore.broker.tls import ServerTls, TlsError, exposure_warning
from logstore.broker.tls import load as load_tls
from logstore.client import Admin, Consumer, Producer
from logstore.client.aio import AsyncConsumer, AsyncProducer
from logstore.client.shared.errors import BrokerUnavailableError
from logstore.client.shared.security import Security

from tests.conftest import StartBroker

ALICE = x509.Name(
    [
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "payments"),
        x509.NameAttribute(NameOID.COMMON_NAME, "alice"),
    ]
)
ALICE_PRINCIPAL = "User:CN=alice,OU=payments,O=Example"
"""Kafka's default principal builder names a certificate by its subject, most specific RDN first."""


@dataclass(frozen=True)
class Pki:
    ca: CertificateAuthority
    server: Pair
    alice: Pair
    """A client certificate signed by `ca`."""
    stranger_ca: CertificateAuthority
    """A CA the broker does not know, and that did not sign the broker's certificate."""
    stranger: Pair
    """A client certificate signed by `stranger_ca`."""

    @property
    def cafile(self) -> str:
        return str(self.ca.cert)

    def broker_settings(self, mutual: bool = False) -> dict[str, Any]:
        settings = {"tls_cert": str(self.server.cert), "tls_key": str(self.server.key)}
        if mutual:
            settings["tls_client_ca"] = str(self.ca.cert)
        return settings

    def alice_options(self) -> dict[str, Any]:
        return {
            "security_protocol": "SSL",
            "ssl_cafile": self.cafile,
            "ssl_certfile": str(self.alice.cert),
            "ssl_keyfile": str(self.alice.key),
        }


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path)


def make_pki(tmp_path: Path) -> Pki:
    """A CA, the broker's certificate, alice's client certificate, and a stranger's, made now."""
    directory = tmp_path / "pki"
    ca = CertificateAuthority.create(directory)
    stranger_ca = CertificateAuthority.create(directory / "stranger", "stranger CA")
    return Pki(
        ca,
        ca.server(directory),
        ca.issue(directory, ALICE, client=True),
        stranger_ca,
        stranger_ca.issue(directory / "stranger", "mallory", client=True),
    )


@pytest.fixture
def tls_broker(start_broker: StartBroker, pki: Pki) -> EmbeddedBroker:
    return start_broker(**pki.broker_settings())


@pytest.fixture
def mtls_broker(start_broker: StartBroker, pki: Pki) -> EmbeddedBroker:
    return start_broker(**pki.broker_settings(mutual=True))


# --- gRPC: our clients ----------------------------------------------------------------------------------


def test_a_client_without_the_ca_fails_at_once_naming_certificate_verification(
    tls_broker: EmbeddedBroker, pki: Pki
) -> None:
    for cafile in (None, str(pki.stranger_ca.cert)):
        admin = Admin(tls_broker.address, security_protocol="SSL", ssl_cafile=cafile)
        with admin, pytest.raises(BrokerUnavailableError) as refused:
            admin.list_topics()
        message = str(refused.value)
        assert "CERTIFICATE_VERIFY_FAILED" in message and "ssl_cafile must be the CA" in message, message


def test_a_plaintext_client_of_a_tls_broker_is_told_the_broker_may_serve_tls(
    tls_broker: EmbeddedBroker,
) -> None:
    with (
        Admin(tls_broker.address) as admin,
        pytest.raises(BrokerUnavailableError, match="security_protocol='SSL'"),
    ):
        admin.list_topics()


def test_a_consumer_that_cannot_complete_the_handshake_says_so_instead_of_waiting_quietly(
    tls_broker: EmbeddedBroker, pki: Pki
) -> None:
    with Admin(tls_broker.address, security_protocol="SSL", ssl_cafile=pki.cafile) as admin:
        admin.create_topic("quiet", 1)
    consumer = Consumer(
        "quiet",
        bootstrap=tls_broker.address,
        security_protocol="SSL",
        request_timeout_ms=500,
        consumer_timeout_ms=60_000,
    )
    with consumer, pytest.raises(BrokerUnavailableError, match="CERTIFICATE_VERIFY_FAILED"):
        next(iter(consumer))


def test_with_the_ca_records_are_produced_and_consumed_over_tls(tls_broker: EmbeddedBroker, pki: Pki) -> None:
    secure: dict[str, Any] = {"security_protocol": "SSL", "ssl_cafile": pki.cafile}
    with Admin(tls_broker.address, **secure) as admin:
        admin.create_topic("orders", 2)
    with Producer(tls_broker.address, acks="all", **secure) as producer:
        sent = [producer.send("orders", b"v%d" % i, key=b"k%d" % (i % 7)) for i in range(200)]
        producer.flush()
    assert all(future.get(10).offset >= 0 for future in sent)
    with Consumer(
        "orders",
        bootstrap=tls_broker.address,
        group_id="billing",
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
        **secure,
    ) as consumer:
        values: list[bytes | None] = []
        for record in consumer:
            values.append(record.value)
            if len(values) == 200:
                break
        consumer.commit()
    assert sorted(v or b"" for v in values) == sorted(b"v%d" % i for i in range(200))
    with Admin(tls_broker.address, **secure) as admin:
        assert sum(p.committed_offset for p in admin.describe_group("billing").offsets) == 200


def test_the_asyncio_clients_produce_and_consume_over_tls(tls_broker: EmbeddedBroker, pki: Pki) -> None:
    secure: dict[str, Any] = {"security_protocol": "SSL", "ssl_cafile": pki.cafile}

    async def run() -> list[bytes | None]:
        async with AsyncProducer(tls_broker.address, **secure) as producer:
            for i in range(20):
                await producer.send("events", b"e%d" % i)
        async with AsyncConsumer(
            "events", bootstrap_servers=tls_broker.address, auto_offset_reset="earliest", **secure
        ) as consumer:
            return [(await consumer.getone()).value for _ in range(20)]

    assert asyncio.run(run()) == [b"e%d" % i for i in range(20)]


def test_mutual_tls_refuses_a_client_without_a_certificate_and_serves_one_with_it(
    mtls_broker: EmbeddedBroker, pki: Pki
) -> None:
    strangers: tuple[dict[str, Any], ...] = (
        {"security_protocol": "SSL", "ssl_cafile": pki.cafile},
        {**pki.alice_options(), "ssl_certfile": str(pki.stranger.cert), "ssl_keyfile": str(pki.stranger.key)},
    )
    for options in strangers:
        with Admin(mtls_broker.address, **options) as admin, pytest.raises(BrokerUnavailableError):
            admin.list_topics()
    with Admin(mtls_broker.address, **pki.alice_options()) as admin:
        admin.create_topic("ledger", 1)
        with Producer(mtls_broker.address, **pki.alice_options()) as producer:
            assert producer.send("ledger", b"entry").get(10).offset == 0
        assert admin.describe_topics(["ledger"])[0].partitions[0].log_end_offset == 1


# --- gRPC: what a call carries ----------------------------------------------------------------------------


@dataclass
class Seen:
    method: str
    metadata: dict[str, str]
    principal: str | None


class Recorder(grpc.GenericRpcHandler):
    """Answers every call UNIMPLEMENTED after noting its method, metadata and mTLS principal."""

    def __init__(self) -> None:
        self.calls: list[Seen] = []

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        method = handler_call_details.method

        def answer(request: bytes, context: grpc.ServicerContext) -> bytes:
            metadata = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
            principal = principal_from_auth_context(
                cast("Mapping[str, Iterable[bytes]]", context.auth_context())
            )
            self.calls.append(Seen(method, metadata, principal))
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "recorded")
            raise AssertionError("abort returns only by raising")

        return grpc.unary_unary_rpc_method_handler(answer)


@pytest.fixture
def recorder(pki: Pki) -> Iterator[tuple[str, Recorder]]:
    """A gRPC server with the broker's mutual-TLS credentials that records what each call carries."""
    tls = load_tls(str(pki.server.cert), str(pki.server.key), str(pki.ca.cert))
    assert isinstance(tls, ServerTls)
    handler = Recorder()
    server = grpc.server(futures.ThreadPoolExecutor(2), handlers=[handler])
    port = server.add_secure_port("127.0.0.1:0", server_credentials(tls))
    server.start()
    yield f"127.0.0.1:{port}", handler
    server.stop(0)


def test_a_grpc_call_under_mutual_tls_names_its_caller_as_kafka_does(
    recorder: tuple[str, Recorder], pki: Pki
) -> None:
    address, seen = recorder
    with Admin(address, **pki.alice_options()) as admin, pytest.raises(Exception, match="recorded"):
        admin.list_topics()
    assert [call.principal for call in seen.calls] == [ALICE_PRINCIPAL]


def test_sasl_clients_send_basic_credentials_on_every_call_and_kind_of_stub(
    recorder: tuple[str, Recorder], pki: Pki
) -> None:
    address, seen = recorder
    options: dict[str, Any] = {
        **pki.alice_options(),
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "alice",
        "sasl_plain_password": "pa:ss wörd",
    }
    expected = "Basic " + base64.b64encode("alice:pa:ss wörd".encode()).decode()
    with Admin(address, **options) as admin:
        for call in (admin.list_topics, admin.list_groups):  # AdminService, GroupService stubs
            with pytest.raises(Exception, match="recorded"):
                call()

    async def over_aio() -> None:
        channel = Security(**options).aio_channel(address, [])
        with pytest.raises(grpc.RpcError):
            await channel.unary_unary("/logstore.v1.ProduceService/Produce")(b"")  # type: ignore[arg-type]  # raw bytes
        await channel.close()

    asyncio.run(over_aio())
    assert [call.method for call in seen.calls] == [
        "/logstore.v1.AdminService/ListTopics",
        "/logstore.v1.GroupService/ListGroups",
        "/logstore.v1.ProduceService/Produce",
    ]
    assert all(call.metadata.get("authorization") == expected for call in seen.calls), seen.calls
    with Admin(address, **pki.alice_options()) as admin, pytest.raises(Exception, match="recorded"):
        admin.list_topics()
    assert "authorization" not in seen.calls[-1].metadata  # SSL without SASL sends no credentials


def test_security_options_are_checked_when_the_client_is_made(pki: Pki) -> None:
    refusals: dict[str, dict[str, Any]] = {
        "security_protocol must be one of": {"security_protocol": "TLS"},
        "ssl_cafile needs security_protocol='SSL'": {"ssl_cafile": pki.cafile},
        "ssl_certfile and ssl_keyfile go together": {
            "security_protocol": "SSL",
            "ssl_certfile": str(pki.alice.cert),
        },
        "needs sasl_plain_username and sasl_plain_password": {"security_protocol": "SASL_SSL"},
        "sasl_mechanism must be one of": {
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "GSSAPI",
            "sasl_plain_username": "a",
            "sasl_plain_password": "b",
        },
        "sasl_plain_username needs security_protocol='SASL_PLAINTEXT'": {"sasl_plain_username": "a"},
        "ssl_cafile /nowhere.pem: cannot read it": {"security_protocol": "SSL", "ssl_cafile": "/nowhere.pem"},
    }
    for message, options in refusals.items():
        with pytest.raises(ValueError, match=message):
            Producer("127.0.0.1:9", **options)
    with pytest.raises(ValueError, match="needs security_protocol='SSL'"):
        Consumer("t", bootstrap="127.0.0.1:9", channel_credentials=grpc.ssl_channel_credentials())


# --- the broker's settings --------------------------------------------------------------------------------


def test_unusable_tls_settings_stop_the_start_naming_the_flag(start_broker: StartBroker, pki: Pki) -> None:
    cert, key = str(pki.server.cert), str(pki.server.key)
    refusals = {
        "--tls-key is missing": {"tls_cert": cert},
        "--tls-client-ca needs --tls-cert and --tls-key": {"tls_client_ca": pki.cafile},
        "--tls-cert /nowhere.pem: cannot read it": {"tls_cert": "/nowhere.pem", "tls_key": key},
        "--tls-key .* holds no PEM PRIVATE KEY": {"tls_cert": cert, "tls_key": cert},
        "do not make a usable pair": {"tls_cert": cert, "tls_key": str(pki.alice.key)},
    }
    for message, settings in refusals.items():
        with pytest.raises(TlsError, match=message):
            start_broker(**settings)


# --- the Kafka listener -----------------------------------------------------------------------------------


def test_kafka_python_and_confluent_kafka_produce_and_consume_over_ssl(
    tls_broker: EmbeddedBroker, pki: Pki
) -> None:
    producer = KafkaProducer(
        bootstrap_servers=tls_broker.kafka_address, security_protocol="SSL", ssl_cafile=pki.cafile
    )
    try:
        for i in range(50):
            producer.send("kafka-tls", b"kp%d" % i)
        producer.flush(30)
    finally:
        producer.close(30)
    confluent = ConfluentProducer(
        {
            "bootstrap.servers": tls_broker.kafka_address,
            "security.protocol": "SSL",
            "ssl.ca.location": pki.cafile,
        }
    )
    for i in range(50):
        confluent.produce("kafka-tls", b"cf%d" % i)
    assert confluent.flush(30) == 0
    consumer = KafkaConsumer(
        "kafka-tls",
        bootstrap_servers=tls_broker.kafka_address,
        security_protocol="SSL",
        ssl_cafile=pki.cafile,
        auto_offset_reset="earliest",
        consumer_timeout_ms=10_000,
    )
    try:
        by_kafka_python = [record.value for _, record in zip(range(100), consumer, strict=False)]
    finally:
        consumer.close()
    assert by_kafka_python == [b"kp%d" % i for i in range(50)] + [b"cf%d" % i for i in range(50)]
    reader = ConfluentConsumer(
        {
            "bootstrap.servers": tls_broker.kafka_address,
            "security.protocol": "SSL",
            "ssl.ca.location": pki.cafile,
            "group.id": "tls-readers",
            "auto.offset.reset": "earliest",
        }
    )
    try:
        reader.subscribe(["kafka-tls"])
        by_confluent: list[bytes | None] = []
        for _ in range(200):  # one message per poll; an empty poll waits up to a second
            message = reader.poll(1.0)
            if message is not None and message.error() is None:
                by_confluent.append(message.value())
            if len(by_confluent) == 100:
                break
    finally:
        reader.close()
    assert by_confluent == by_kafka_python


def test_kafka_clients_without_the_ca_are_refused(tls_broker: EmbeddedBroker, pki: Pki) -> None:
    wrong_ca = str(pki.stranger_ca.cert)
    admin = AdminClient(
        {
            "bootstrap.servers": tls_broker.kafka_address,
            "security.protocol": "SSL",
            "ssl.ca.location": wrong_ca,
        }
    )
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=3)
    # What kafka-python does underneath (its own refusal leaks the socket, so it is not used here).
    host, port = tls_broker.kafka_address.rsplit(":", 1)
    context = ssl.create_default_context(cafile=wrong_ca)
    with (
        socket.create_connection((host, int(port)), timeout=10) as raw,
        pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"),
    ):
        context.wrap_socket(raw, server_hostname=host).close()
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        ssl.create_default_context(cafile=pki.cafile).wrap_socket(raw, server_hostname=host).close()


def test_mutual_tls_on_the_kafka_listener_names_the_connection_by_its_certificate(
    mtls_broker: EmbeddedBroker, pki: Pki
) -> None:
    without_cert = AdminClient(
        {
            "bootstrap.servers": mtls_broker.kafka_address,
            "security.protocol": "SSL",
            "ssl.ca.location": pki.cafile,
        }
    )
    with pytest.raises(KafkaException):
        without_cert.list_topics(timeout=3)
    producer = KafkaProducer(
        bootstrap_servers=mtls_broker.kafka_address,
        security_protocol="SSL",
        ssl_cafile=pki.cafile,
        ssl_certfile=str(pki.alice.cert),
        ssl_keyfile=str(pki.alice.key),
    )
    try:
        assert producer.send("mtls", b"signed").get(30).offset == 0
        listener = mtls_broker.server.kafka
        assert listener is not None
        principals = mtls_broker.run(lambda: {c._ctx.principal for c in listener._connections if c._ctx})
    finally:
        producer.close(30)
    assert principals == {ALICE_PRINCIPAL}


# --- the command line ---------------------------------------------------------------------------------------


def logstore(
    *args: str, env: dict[str, str] | None = None, stdin: bytes = b""
) -> subprocess.CompletedProcess[bytes]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "logstore.bench.cli", *args],
        input=stdin,
        capture_output=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_the_cli_over_ssl_with_flags_or_environment_and_one_line_when_the_ca_is_missing(
    tls_broker: EmbeddedBroker, pki: Pki
) -> None:
    at = ("--bootstrap", tls_broker.address)
    flags = ("--security-protocol", "SSL", "--ssl-cafile", pki.cafile)
    created = logstore("topics", "create", "cli-tls", "--partitions", "1", *at, *flags)
    assert created.returncode == 0, created.stderr.decode()
    env = {"LOGSTORE_SECURITY_PROTOCOL": "SSL", "LOGSTORE_SSL_CAFILE": pki.cafile}
    produced = logstore("produce", "cli-tls", *at, env=env, stdin=b"one\ntwo\n")
    assert produced.returncode == 0, produced.stderr.decode()
    consumed = logstore("consume", "cli-tls", "--from-beginning", "--max-messages", "2", *at, *flags)
    assert consumed.stdout == b"one\ntwo\n", consumed.stderr.decode()
    refused = logstore("topics", "list", *at, "--security-protocol", "SSL")
    err = refused.stderr.decode()
    assert refused.returncode != 0 and len(err.strip().splitlines()) == 1, err
    assert "CERTIFICATE_VERIFY_FAILED" in err and "--ssl-cafile must be the CA" in err, err


def test_the_cli_takes_the_sasl_password_from_the_environment_or_a_file_never_a_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    from logstore.client.console.common import add_bootstrap, security_options

    parser = argparse.ArgumentParser()
    add_bootstrap(parser)
    password_file = tmp_path / "password"
    password_file.write_text("from-file\n")
    sasl = ["--security-protocol", "sasl_plaintext", "--sasl-username", "alice"]
    from_file = security_options(
        parser.parse_args([*sasl, "--sasl-password-file", str(password_file)]), env={}
    )
    assert (
        from_file["sasl_plain_password"] == "from-file" and from_file["security_protocol"] == "SASL_PLAINTEXT"
    )
    from_env = security_options(parser.parse_args(sasl), env={"LOGSTORE_SASL_PASSWORD": "from-env"})
    assert from_env["sasl_plain_password"] == "from-env"
    by_env = security_options(
        parser.parse_args([]),
        env={
            "LOGSTORE_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "LOGSTORE_SASL_MECHANISM": "scram-sha-256",
            "LOGSTORE_SASL_USERNAME": "bob",
            "LOGSTORE_SASL_PASSWORD": "secret",
        },
    )
    assert by_env == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "bob",
        "sasl_plain_password": "secret",
    }
    with pytest.raises(SystemExit):  # refused, not taken for an abbreviation of --sasl-password-file
        parser.parse_args([*sasl, "--sasl-password", "hunter2"])
    refusal = capsys.readouterr().err
    assert "--sasl-password is refused" in refusal and "hunter2" not in refusal
    with pytest.raises(ValueError, match=r"needs --sasl-username and \$LOGSTORE_SASL_PASSWORD"):
        security_options(parser.parse_args(["--security-protocol", "SASL_SSL"]), env={})


def test_a_broker_reachable_beyond_this_machine_without_client_authentication_is_warned_about(
    pki: Pki,
) -> None:
    tls = load_tls(str(pki.server.cert), str(pki.server.key), "")
    mutual = load_tls(str(pki.server.cert), str(pki.server.key), pki.cafile)
    ports = ["gRPC 9093", "Kafka 9092"]
    for host in ("127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"):
        assert exposure_warning(host, ports, None) is None, host
    plaintext = exposure_warning("0.0.0.0", ports, None)
    assert plaintext is not None
    assert "0.0.0.0 (gRPC 9093, Kafka 9092) in plaintext" in plaintext
    assert "read, write and delete every topic" in plaintext
    assert "--tls-cert and --tls-key" in plaintext and "--tls-client-ca" in plaintext
    encrypted = exposure_warning("10.0.0.5", ports, tls)
    assert encrypted is not None and "with TLS but without client authentication" in encrypted
    assert exposure_warning("broker.example.com", ports, mutual) is None


def test_perf_produce_and_consume_run_over_tls(
    tls_broker: EmbeddedBroker, pki: Pki, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from logstore.bench.perf.cli import main as perf

    secure = ("--bootstrap", tls_broker.address, "--security-protocol", "SSL", "--ssl-cafile", pki.cafile)
    quiet = ("--json", "--reporting-interval", "0")
    assert perf(["produce", *secure, *quiet, "--topic", "perf-tls", "--num-records", "2000"]) == 0
    produced = json.loads(capsys.readouterr().out)
    assert produced["log_records"] == 2000 and produced["errors"] == 0
    own = ("--own-broker", "--own-broker-tls", *quiet, "--topic", "own-tls", "--num-records", "2000")
    assert perf(["consume", *own]) == 0, capsys.readouterr().err
    consumed = json.loads(capsys.readouterr().out)
    assert consumed["records"] == 2000 and consumed["ceilings"]["grpc_calls"] > 0
    assert perf(["produce", *secure[:2], *quiet, "--topic", "perf-tls", "--num-records", "10"]) != 0
    assert "--security-protocol='SSL'" in capsys.readouterr().err  # plaintext against TLS: told which flag


def test_every_kind_of_call_goes_through_with_sasl_credentials_attached(broker: EmbeddedBroker) -> None:
    """The credentials interceptor wraps futures (the producer), long-polls (the fetcher), group
    heartbeats and server streams (tail) alike: with it, every client still does its job. This broker
    checks no credentials (that is the authorization helper's part); it only must not be harmed."""
    from logstore.client import TopicPartition, tail

    sasl: dict[str, Any] = {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_plain_username": "alice",
        "sasl_plain_password": "secret",
    }
    with Admin(broker.address, **sasl) as admin:
        admin.create_topic("sasl", 1)
    with Producer(broker.address, **sasl) as producer:
        for i in range(10):
            producer.send("sasl", b"s%d" % i)
    with Consumer(
        "sasl",
        bootstrap=broker.address,
        group_id="g",
        auto_offset_reset="earliest",
        consumer_timeout_ms=10_000,
        **sasl,
    ) as consumer:
        assert [r.value for _, r in zip(range(10), consumer, strict=False)] == [b"s%d" % i for i in range(10)]
    with tail(
        bootstrap=broker.address, partitions=[TopicPartition("sasl", 0)], start="earliest", **sasl
    ) as live:
        assert [r.value for _, r in zip(range(10), live, strict=False)] == [b"s%d" % i for i in range(10)]


def test_the_tls_settings_come_from_flags_environment_or_the_config_file(tmp_path: Path) -> None:
    import argparse

    from logstore.broker.settings import add_arguments, from_arguments, load

    config = tmp_path / "broker.toml"
    config.write_text('tls_cert = "file.pem"\ntls-key = "file.key"\n')
    from_file = load({"config": config}, env={})
    assert (from_file.tls_cert, from_file.tls_key, from_file.tls_client_ca) == ("file.pem", "file.key", "")
    from_env = load(
        {"config": config}, env={"LOGSTORE_TLS_CERT": "env.pem", "LOGSTORE_TLS_CLIENT_CA": "ca.pem"}
    )
    assert (from_env.tls_cert, from_env.tls_key, from_env.tls_client_ca) == ("env.pem", "file.key", "ca.pem")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    flags = parser.parse_args(["--tls-cert", "flag.pem", "--tls-key", "flag.key", "--tls-client-ca", "c.pem"])
    from_flags = from_arguments(flags)
    assert (from_flags.tls_cert, from_flags.tls_key, from_flags.tls_client_ca) == (
        "flag.pem",
        "flag.key",
        "c.pem",
    )


def test_the_http_port_serves_https_with_the_brokers_certificate(
    tls_broker: EmbeddedBroker, pki: Pki
) -> None:
    """/metrics and the console over TLS as the other listeners: with the CA it answers; plain HTTP gets
    no answer."""
    assert tls_broker.http_url.startswith("https://")
    trusting = ssl.create_default_context(cafile=pki.cafile)
    with urllib.request.urlopen(tls_broker.http_url + "/metrics", context=trusting, timeout=10) as answer:
        assert answer.status == 200 and b"logstore_" in answer.read()
    plain = tls_broker.http_url.replace("https://", "http://")
    with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):
        urllib.request.urlopen(plain + "/healthz", timeout=10).read()


def test_under_mutual_tls_the_http_port_wants_a_client_certificate_too(
    mtls_broker: EmbeddedBroker, pki: Pki
) -> None:
    trusting = ssl.create_default_context(cafile=pki.cafile)
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(mtls_broker.http_url + "/healthz", context=trusting, timeout=10).read()
    trusting.load_cert_chain(str(pki.alice.cert), str(pki.alice.key))
    with urllib.request.urlopen(mtls_broker.http_url + "/healthz", context=trusting, timeout=10) as answer:
        assert answer.status == 200
