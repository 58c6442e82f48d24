"""SCRAM-SHA-256/512 (RFC 5802, RFC 7677) credentials and the server's side of the exchange, and PLAIN.

Pure: no I/O, no clock, no randomness of its own (the caller passes the salt and the server nonce), so
the RFC's test vectors replay exactly. The broker stores a `ScramCredential` per user and mechanism: the
salt, the iteration count, StoredKey and ServerKey; never the password, nor anything a client could log
in with (StoredKey is H(ClientKey), and a proof needs ClientKey itself).

    SaltedPassword = PBKDF2-HMAC(password, salt, iterations)
    ClientKey = HMAC(SaltedPassword, "Client Key"); StoredKey = H(ClientKey)
    ServerKey = HMAC(SaltedPassword, "Server Key")

Every comparison of secrets is `hmac.compare_digest`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

DEFAULT_ITERATIONS = 4096
"""RFC 7677's minimum, and Kafka's default for `kafka-configs --add-config SCRAM-SHA-256=[...]`."""
MIN_ITERATIONS = 4096
MAX_ITERATIONS = 1_000_000
"""Above this a single log-in (or a PLAIN check of an uncached password) would stall the broker."""
SALT_BYTES = 32


class Mechanism(Enum):
    """A SCRAM mechanism, by its SASL name."""

    SCRAM_SHA_256 = "SCRAM-SHA-256"
    SCRAM_SHA_512 = "SCRAM-SHA-512"

    @property
    def hash_name(self) -> str:
        return "sha256" if self is Mechanism.SCRAM_SHA_256 else "sha512"

    @classmethod
    def parse(cls, name: str) -> Mechanism:
        try:
            return cls(name.upper())
        except ValueError:
            known = ", ".join(m.value for m in cls)
            raise ScramError(f"unknown SCRAM mechanism {name!r}; known: {known}") from None


class ScramError(ValueError):
    """The client's message breaks the protocol, or its proof does not check out."""


@dataclass(frozen=True)
class ScramCredential:
    """What the broker keeps of a password for one mechanism."""

    mechanism: Mechanism
    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes


def _hmac(mechanism: Mechanism, key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, mechanism.hash_name).digest()


def _h(mechanism: Mechanism, data: bytes) -> bytes:
    return hashlib.new(mechanism.hash_name, data).digest()


def salted_password(mechanism: Mechanism, password: str, salt: bytes, iterations: int) -> bytes:
    """Hi(Normalize(password), salt, i) of RFC 5802 (passwords are taken as UTF-8, without SASLprep,
    as Kafka's clients send them)."""
    return hashlib.pbkdf2_hmac(mechanism.hash_name, password.encode(), salt, iterations)


def make_credential(
    mechanism: Mechanism, password: str, salt: bytes, iterations: int = DEFAULT_ITERATIONS
) -> ScramCredential:
    """The credential to store for `password` (the caller draws `salt` from `secrets`)."""
    _check_iterations(iterations)  # before the expensive PBKDF2
    return credential_from_salted(
        mechanism, salt, salted_password(mechanism, password, salt, iterations), iterations
    )


def _check_iterations(iterations: int) -> None:
    if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
        raise ScramError(
            f"iterations must be between {MIN_ITERATIONS} and {MAX_ITERATIONS}, not {iterations}"
        )


def credential_from_salted(
    mechanism: Mechanism, salt: bytes, salted: bytes, iterations: int
) -> ScramCredential:
    """The credential for a SaltedPassword computed by the client (Kafka's AlterUserScramCredentials
    sends salt, iterations and SaltedPassword, never the password)."""
    _check_iterations(iterations)
    if not salt:
        raise ScramError("the salt must not be empty")
    if len(salted) != hashlib.new(mechanism.hash_name).digest_size:
        raise ScramError(
            f"a {mechanism.value} salted password has {hashlib.new(mechanism.hash_name).digest_size} bytes, "
            f"not {len(salted)}"
        )
    client_key = _hmac(mechanism, salted, b"Client Key")
    return ScramCredential(
        mechanism=mechanism,
        salt=salt,
        iterations=iterations,
        stored_key=_h(mechanism, client_key),
        server_key=_hmac(mechanism, salted, b"Server Key"),
    )


def verify_password(credential: ScramCredential, password: str) -> bool:
    """Whether `password` is the one `credential` was made from (PLAIN, and Basic over gRPC).

    Costs one PBKDF2 of the credential's iterations whatever the answer, so a dummy credential for an
    unknown user costs what a real one does."""
    salted = salted_password(credential.mechanism, password, credential.salt, credential.iterations)
    client_key = _hmac(credential.mechanism, salted, b"Client Key")
    return hmac.compare_digest(_h(credential.mechanism, client_key), credential.stored_key)


def parse_plain(message: bytes) -> tuple[str, str, str]:
    """RFC 4616's `[authzid] NUL authcid NUL passwd` -> (authzid, username, password)."""
    try:
        text = message.decode()
    except UnicodeDecodeError:
        raise ScramError("the PLAIN message is not UTF-8") from None
    parts = text.split("\0")
    if len(parts) != 3 or not parts[1]:
        raise ScramError("the PLAIN message is not authzid NUL username NUL password")
    return parts[0], parts[1], parts[2]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise ScramError(f"the {what} is not base64") from None


def _attributes(message: str) -> list[tuple[str, str]]:
    pairs = []
    for part in message.split(","):
        if len(part) < 2 or part[1] != "=":
            raise ScramError(f"malformed SCRAM attribute {part[:20]!r}")
        pairs.append((part[0], part[2:]))
    return pairs


def _saslname(text: str) -> str:
    """RFC 5802's saslname: '=2C' is ',', '=3D' is '=', and no other '=' may appear."""
    out = text.replace("=2C", ",").replace("=3D", "=")
    if "=" in text.replace("=2C", "").replace("=3D", ""):
        raise ScramError("the user name has a bare '=' (it must be sent as =3D)")
    return out


class ScramServer:
    """One SCRAM exchange, server side: `first(client_first)` -> server-first, then `final(client_final)`
    -> server-final; afterwards `username` is the authenticated user.

    An unknown user is answered exactly like a known one, from `dummy(username)` (a credential with a
    salt derived from the name, which no proof can match), so neither the answers nor their cost tell
    an outsider which users exist. Not thread-safe: one exchange per connection, in order.
    """

    def __init__(
        self,
        mechanism: Mechanism,
        lookup: Callable[[str, Mechanism], ScramCredential | None],
        dummy: Callable[[str, Mechanism], ScramCredential],
        server_nonce: str,
    ) -> None:
        self.mechanism = mechanism
        self._lookup = lookup
        self._dummy = dummy
        self._server_nonce = server_nonce
        self._state = "client-first"
        self._credential: ScramCredential | None = None
        self._known = False
        self._candidate = ""
        self._client_first_bare = ""
        self._server_first = ""
        self._nonce = ""
        self._gs2_header = ""
        self.username: str | None = None
        """The authenticated user, once `final` has accepted the proof."""

    @property
    def done(self) -> bool:
        return self._state == "done"

    @property
    def started(self) -> bool:
        """Whether the client-first message has been taken."""
        return self._state != "client-first"

    @property
    def claimed_user(self) -> str | None:
        """The user name the client-first message claimed (for a failed log-in's log line)."""
        return self._candidate or None

    def first(self, client_first: bytes) -> bytes:
        if self._state != "client-first":
            raise ScramError("the SCRAM exchange has already started")
        try:
            text = client_first.decode()
        except UnicodeDecodeError:
            raise ScramError("the client-first message is not UTF-8") from None
        flag, sep, rest = text.partition(",")
        authzid, sep2, bare = rest.partition(",")
        if not sep or not sep2:
            raise ScramError("the client-first message has no GS2 header")
        if flag.startswith("p="):
            raise ScramError("channel binding is not supported; use the 'n' GS2 flag")
        if flag not in ("n", "y"):
            raise ScramError(f"unknown GS2 flag {flag[:10]!r}")
        attributes = _attributes(bare)
        if len(attributes) < 2 or attributes[0][0] != "n" or attributes[1][0] != "r":
            raise ScramError("the client-first message must start with n=<user>,r=<nonce>")
        if attributes[0][1] == "" or attributes[1][1] == "":
            raise ScramError("the client-first message has an empty user name or nonce")
        username = _saslname(attributes[0][1])
        if authzid and _saslname(authzid.removeprefix("a=")) != username:
            raise ScramError("an authorization id other than the user name is not supported")
        self._gs2_header = f"{flag},{authzid},"
        self._client_first_bare = bare
        self._nonce = attributes[1][1] + self._server_nonce
        found = self._lookup(username, self.mechanism)
        self._known = found is not None
        self._credential = found if found is not None else self._dummy(username, self.mechanism)
        self._candidate = username
        self._server_first = (
            f"r={self._nonce},s={_b64(self._credential.salt)},i={self._credential.iterations}"
        )
        self._state = "client-final"
        return self._server_first.encode()

    def final(self, client_final: bytes) -> bytes:
        if self._state != "client-final":
            raise ScramError("the client-final message came before the client-first one")
        self._state = "failed"
        assert self._credential is not None
        try:
            text = client_final.decode()
        except UnicodeDecodeError:
            raise ScramError("the client-final message is not UTF-8") from None
        without_proof, sep, proof_text = text.rpartition(",p=")
        if not sep:
            raise ScramError("the client-final message has no proof")
        attributes = dict(_attributes(without_proof))
        channel = _unb64(attributes.get("c", ""), "channel binding")
        if not hmac.compare_digest(channel, self._gs2_header.encode()):
            raise ScramError("the channel binding does not repeat the GS2 header")
        if not hmac.compare_digest(attributes.get("r", "").encode(), self._nonce.encode()):
            raise ScramError("the nonce does not match the server's")
        proof = _unb64(proof_text, "proof")
        credential = self._credential
        auth_message = f"{self._client_first_bare},{self._server_first},{without_proof}".encode()
        signature = _hmac(credential.mechanism, credential.stored_key, auth_message)
        if len(proof) != len(signature):
            raise ScramError("the proof has the wrong length")
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        matches = hmac.compare_digest(_h(credential.mechanism, client_key), credential.stored_key)
        if not (matches and self._known):
            raise ScramError("authentication failed")
        self._state = "done"
        self.username = self._candidate
        server_signature = _hmac(credential.mechanism, credential.server_key, auth_message)
        return f"v={_b64(server_signature)}".encode()
