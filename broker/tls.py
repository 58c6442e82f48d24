"""The broker's transport security: the certificate files read once, as both listeners need them, and
the principal a client certificate names.

`--tls-cert` and `--tls-key` make both listeners (gRPC and Kafka) serve TLS; `--tls-client-ca` makes
them require a client certificate signed by that CA (mutual TLS). The gRPC credentials are built from
`ServerTls` in `broker/server.py` (the only place outside the service layer that touches grpc); the
Kafka listener wraps its sockets in `ServerTls.ssl_context()`.

A client certificate's subject becomes the connection's principal the way Kafka's default principal
builder names it: `User:` and the subject's distinguished name in RFC 2253 order, most specific first
(`User:CN=alice,OU=payments,O=Example`).
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class TlsError(ValueError):
    """A certificate, key or CA file cannot be used; the message names the file and the flag."""


@dataclass(frozen=True)
class ServerTls:
    """The PEM bytes of the broker's certificate chain, its private key and (for mutual TLS) the CA
    that client certificates must be signed by."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None
    cert_chain: bytes
    private_key: bytes
    client_ca: bytes | None

    @property
    def requires_client_cert(self) -> bool:
        return self.client_ca is not None

    def describe(self) -> str:
        """For the start-up log line."""
        return "mutual TLS" if self.requires_client_cert else "TLS"

    def ssl_context(self) -> ssl.SSLContext:
        """A server context for the Kafka listener: TLS 1.2 or later, the client certificate required
        (and verified against the client CA) when there is one."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(self.cert_file, self.key_file)
        except ssl.SSLError as exc:
            raise TlsError(
                f"--tls-cert {self.cert_file} and --tls-key {self.key_file} do not make a usable pair "
                f"({exc.reason or exc}): is the key the certificate's, and are both PEM?"
            ) from None
        if self.client_ca_file is not None:
            context.load_verify_locations(cafile=str(self.client_ca_file))
            context.verify_mode = ssl.CERT_REQUIRED
        return context


def load(cert: str, key: str, client_ca: str) -> ServerTls | None:
    """The TLS material the settings name, read and checked; None when TLS is off (no cert, no key).

    Raises TlsError naming the flag: a key without a certificate, a client CA without either, a file
    that cannot be read or holds no PEM block of the kind expected."""
    if not cert and not key:
        if client_ca:
            raise TlsError("--tls-client-ca needs --tls-cert and --tls-key: mutual TLS is TLS first")
        return None
    if not cert or not key:
        missing = "--tls-cert" if not cert else "--tls-key"
        raise TlsError(f"TLS needs both --tls-cert and --tls-key; {missing} is missing")
    chain = _read_pem(cert, "--tls-cert", b"CERTIFICATE")
    private_key = _read_pem(key, "--tls-key", b"PRIVATE KEY")
    ca = _read_pem(client_ca, "--tls-client-ca", b"CERTIFICATE") if client_ca else None
    tls = ServerTls(Path(cert), Path(key), Path(client_ca) if client_ca else None, chain, private_key, ca)
    tls.ssl_context()  # fail at start, naming the files, if the pair or the CA does not load
    return tls


def _read_pem(path: str, flag: str, kind: bytes) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise TlsError(f"{flag} {path}: cannot read it ({exc.strerror})") from None
    if b"-----BEGIN " not in data or kind not in data:
        raise TlsError(f"{flag} {path} holds no PEM {kind.decode()} block")
    return data


# --- principals -----------------------------------------------------------------------------------------

_SHORT_NAMES = {
    "commonName": "CN",
    "countryName": "C",
    "localityName": "L",
    "stateOrProvinceName": "ST",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "streetAddress": "STREET",
    "domainComponent": "DC",
    "userId": "UID",
}
"""RFC 2253's attribute keywords for the names `ssl.SSLSocket.getpeercert()` uses."""


def distinguished_name(subject: Sequence[Sequence[tuple[str, str]]]) -> str:
    """The RFC 2253 form of a `getpeercert()` subject (RDNs in certificate order), as Java's
    `X500Principal.getName()` writes it: the last RDN first, `+` inside a multi-valued one."""
    rdns = []
    for rdn in reversed(subject):
        rdns.append("+".join(f"{_SHORT_NAMES.get(name, name)}={_escape(value)}" for name, value in rdn))
    return ",".join(rdns)


def _escape(value: str) -> str:
    out = "".join("\\" + ch if ch in ',+"\\<>;' else ch for ch in value)
    if out.startswith(("#", " ")):
        out = "\\" + out
    if out.endswith(" ") and not out.endswith("\\ "):
        out = out[:-1] + "\\ "
    return out


def principal_of(peercert: dict[str, Any] | None) -> str | None:
    """`User:<distinguished name>` of a verified client certificate (Kafka's default principal for an
    SSL connection), or None when the client sent none."""
    if not peercert or "subject" not in peercert:
        return None
    return "User:" + distinguished_name(peercert["subject"])


# --- exposure -------------------------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    """Whether `host` is reachable from this machine only (127.0.0.0/8, ::1, localhost)."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def exposure_warning(
    host: str, ports: Sequence[str], tls: ServerTls | None, *, authenticated: bool = False
) -> str | None:
    """What a broker listening on `host` leaves open, and the flags that close it; None on loopback,
    when clients must show a certificate (mutual TLS), and with TLS and `--require-auth` together."""
    if is_loopback(host) or (tls is not None and (tls.requires_client_cert or authenticated)):
        return None
    where = f"{host} ({', '.join(ports)})"
    if tls is None and authenticated:
        return (
            f"listening on {where} with authentication but without TLS: passwords (PLAIN and gRPC's Basic "
            "credentials) and every record cross the network in plaintext. Serve TLS with --tls-cert and "
            "--tls-key, or listen on 127.0.0.1 (--host)"
        )
    if tls is None:
        exposed = (
            f"listening on {where} in plaintext, without TLS or authentication: anyone who can reach "
            "these ports can read, write and delete every topic and group, and see all traffic"
        )
    else:
        exposed = (
            f"listening on {where} with TLS but without client authentication: traffic is encrypted, "
            "but anyone who can reach these ports can read, write and delete every topic and group"
        )
    return (
        f"{exposed}. Serve TLS with --tls-cert and --tls-key, require client certificates with "
        "--tls-client-ca or users with --require-auth, or listen on 127.0.0.1 (--host)"
    )
