"""SCRAM credentials and the server's exchange: RFC 7677's test vector, kafka-python's client as an
oracle for SHA-512, and the refusals (wrong proof, unknown user, replayed or reordered messages)."""

from __future__ import annotations

import base64

import pytest
from kafka.net.sasl.scram import ScramClient
from logstore.broker.auth.scram import (
    Mechanism,
    ScramCredential,
    ScramError,
    ScramServer,
    make_credential,
    parse_plain,
    verify_password,
)

# RFC 7677 section 3: user "user", password "pencil".
RFC_SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
RFC_CLIENT_FIRST = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
RFC_SERVER_NONCE = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
RFC_SERVER_FIRST = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
RFC_CLIENT_FINAL = (
    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
RFC_SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def _server(
    users: dict[str, ScramCredential], mechanism: Mechanism = Mechanism.SCRAM_SHA_256, nonce: str = "srv"
) -> ScramServer:
    def dummy(name: str, m: Mechanism) -> ScramCredential:
        return ScramCredential(m, b"s" * 16, 4096, b"\0" * 32, b"\0" * 32)

    return ScramServer(mechanism, lambda name, m: users.get(name), dummy, nonce)


def test_the_rfc_7677_exchange_replays_byte_for_byte() -> None:
    credential = make_credential(Mechanism.SCRAM_SHA_256, "pencil", RFC_SALT, 4096)
    server = _server({"user": credential}, nonce=RFC_SERVER_NONCE)
    assert server.first(RFC_CLIENT_FIRST) == RFC_SERVER_FIRST
    assert server.final(RFC_CLIENT_FINAL) == RFC_SERVER_FINAL
    assert server.done and server.username == "user"


def test_a_credential_holds_no_password_and_checks_only_the_right_one() -> None:
    credential = make_credential(Mechanism.SCRAM_SHA_256, "pencil", RFC_SALT, 4096)
    assert b"pencil" not in repr(credential).encode()
    assert verify_password(credential, "pencil")
    assert not verify_password(credential, "pencil ")
    assert not verify_password(credential, "")


@pytest.mark.parametrize("mechanism", list(Mechanism))
def test_kafka_pythons_client_logs_in_and_checks_the_servers_signature(mechanism: Mechanism) -> None:
    credential = make_credential(mechanism, "s3cret", b"0123456789abcdef", 4096)
    server = _server({"alice": credential}, mechanism, nonce="abcXYZ")
    client = ScramClient("alice", "s3cret", mechanism.value)
    client.process_server_first_message(server.first(client.first_message()))
    client.process_server_final_message(server.final(client.final_message()))  # raises on a bad signature
    assert server.username == "alice"


def test_a_wrong_password_and_an_unknown_user_are_refused_alike() -> None:
    credential = make_credential(Mechanism.SCRAM_SHA_256, "right", b"0123456789abcdef", 4096)
    for user, password in (("alice", "wrong"), ("mallory", "right")):
        server = _server({"alice": credential})
        client = ScramClient(user, password, "SCRAM-SHA-256")
        first = server.first(client.first_message())
        assert first.startswith(b"r=") and b",s=" in first and first.endswith(b",i=4096")
        client.process_server_first_message(first)
        with pytest.raises(ScramError, match=r"^authentication failed$"):
            server.final(client.final_message())
        assert server.username is None and not server.done


def test_messages_out_of_order_or_tampered_are_refused() -> None:
    credential = make_credential(Mechanism.SCRAM_SHA_256, "pencil", RFC_SALT, 4096)
    with pytest.raises(ScramError, match="before the client-first"):
        _server({"user": credential}).final(RFC_CLIENT_FINAL)
    server = _server({"user": credential}, nonce=RFC_SERVER_NONCE)
    server.first(RFC_CLIENT_FIRST)
    with pytest.raises(ScramError, match="already started"):
        server.first(RFC_CLIENT_FIRST)
    other_nonce = _server({"user": credential}, nonce="different")
    other_nonce.first(RFC_CLIENT_FIRST)
    with pytest.raises(ScramError, match="nonce"):
        other_nonce.final(RFC_CLIENT_FINAL)
    for bad in (b"p=tls-unique,,n=user,r=x", b"n,,r=x,n=user", b"n,,n=,r=x", b"garbage", b"\xff"):
        with pytest.raises(ScramError):
            _server({"user": credential}).first(bad)


def test_a_server_answers_one_exchange_only() -> None:
    credential = make_credential(Mechanism.SCRAM_SHA_256, "pencil", RFC_SALT, 4096)
    server = _server({"user": credential}, nonce=RFC_SERVER_NONCE)
    server.first(RFC_CLIENT_FIRST)
    server.final(RFC_CLIENT_FINAL)
    with pytest.raises(ScramError):
        server.final(RFC_CLIENT_FINAL)


def test_plain_messages_split_into_authzid_user_and_password() -> None:
    assert parse_plain(b"\0alice\0secret") == ("", "alice", "secret")
    assert parse_plain(b"alice\0alice\0") == ("alice", "alice", "")
    for bad in (b"alice", b"\0\0pw", b"\xff\0a\0b", b"a\0b\0c\0d"):
        with pytest.raises(ScramError):
            parse_plain(bad)


def test_iterations_are_bounded() -> None:
    with pytest.raises(ScramError, match="iterations"):
        make_credential(Mechanism.SCRAM_SHA_256, "pw", b"salt", 1000)
