"""Who a gRPC call's TLS client certificate says its caller is.

With mutual TLS (`--tls-client-ca`), gRPC verifies the client's certificate in the handshake and puts
what it found in the call's auth context (`context.auth_context()`, a dict of lists of bytes):
`x509_subject` (the subject's distinguished name, RFC 2253, most specific first), `x509_common_name`,
`x509_pem_cert`, `transport_security_type` (`ssl`). `peer_principal` names the caller from it as
Kafka's default principal builder would (`User:CN=alice,O=Example`), the same name the Kafka listener
puts in its connection context, so one ACL covers both listeners.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import grpc

SUBJECT = "x509_subject"


def principal_from_auth_context(auth: Mapping[str, Iterable[bytes]]) -> str | None:
    """`User:<subject>` of a verified client certificate, None without one (plaintext, or TLS without
    a client certificate)."""
    for subject in auth.get(SUBJECT, ()):
        return "User:" + subject.decode("utf-8", "replace")
    return None


def peer_principal(context: grpc.aio.ServicerContext[object, object]) -> str | None:
    """The call's mTLS principal (see the module's docstring)."""
    return principal_from_auth_context(context.auth_context())
