"""Users and ACLs, stored in the data directory: `users.json` and `acls.json`.

Both are rewritten whole through `logstore.checkpoint.write_json_atomic` (temporary file, fsync,
rename, fsync of the directory), so a crash leaves the old or the new version, never a mix. The users
file holds SCRAM credentials (salt, iterations, StoredKey, ServerKey), never a password, and is made
readable by its owner only. The file names are fixed: no user name or ACL field is ever part of a path,
so no request can make the broker touch a file outside its data directory.

A file that cannot be read or does not parse refuses the start (`SecurityStoreError`, naming the file
and the way out) rather than serve with fewer users or permissions than were granted.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import os
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from logstore.broker.auth.acl import (
    AclBinding,
    AclError,
    AclFilter,
    Operation,
    PatternType,
    Permission,
    ResourceType,
)
from logstore.broker.auth.scram import (
    DEFAULT_ITERATIONS,
    SALT_BYTES,
    Mechanism,
    ScramCredential,
    ScramError,
    make_credential,
)
from logstore.broker.domain.errors import SecurityStoreError, UnknownUserError, UserExistsError

from logstore.checkpoint import read_json, write_json_atomic
from logstore.errors import InvalidRequestError

USERS_FILE = "users.json"
ACLS_FILE = "acls.json"
LOCK_FILE = ".lock"
"""The engine's lock file (`logstore.manager.LOCK_FILE`): the offline tools take it too."""
FORMAT_VERSION = 1
MAX_USERNAME_CHARS = 256
MAX_ACLS = 100_000
"""Bounds what the admin RPCs can make the broker hold and rewrite."""


def check_username(name: str) -> str:
    """A user name: 1 to 256 printable characters, not "*" (`User:*` is everyone); it is only ever a key
    inside `users.json`."""
    if not name or len(name) > MAX_USERNAME_CHARS or not name.isprintable() or name == "*":
        raise InvalidRequestError(
            f"a user name must have 1 to {MAX_USERNAME_CHARS} printable characters and not be '*', "
            f"not {name[:60]!r}"
        )
    return name


@dataclass(frozen=True)
class UserListing:
    """A user and the mechanisms it has credentials for (never the credentials)."""

    name: str
    mechanisms: tuple[tuple[Mechanism, int], ...]
    """(mechanism, iterations) pairs."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _credential_to_json(credential: ScramCredential) -> dict[str, Any]:
    return {
        "salt": _b64(credential.salt),
        "iterations": credential.iterations,
        "stored_key": _b64(credential.stored_key),
        "server_key": _b64(credential.server_key),
    }


def _credential_from_json(mechanism: Mechanism, value: Any) -> ScramCredential:
    return ScramCredential(
        mechanism=mechanism,
        salt=base64.b64decode(value["salt"], validate=True),
        iterations=int(value["iterations"]),
        stored_key=base64.b64decode(value["stored_key"], validate=True),
        server_key=base64.b64decode(value["server_key"], validate=True),
    )


def binding_to_json(binding: AclBinding) -> dict[str, str]:
    return {
        "principal": binding.principal,
        "operation": binding.operation.value,
        "resource_type": binding.resource_type.value,
        "resource_name": binding.resource_name,
        "pattern": binding.pattern.value,
        "permission": binding.permission.value,
    }


def binding_from_json(value: Any) -> AclBinding:
    return AclBinding(
        principal=str(value["principal"]),
        operation=Operation(value["operation"]),
        resource_type=ResourceType(value["resource_type"]),
        resource_name=str(value["resource_name"]),
        pattern=PatternType(value["pattern"]),
        permission=Permission(value["permission"]),
    )


def _damaged(path: Path, why: str) -> SecurityStoreError:
    return SecurityStoreError(
        f"{path} {why}; the broker will not start without the users and ACLs it holds. Restore it from a "
        f"backup, or move it aside to start with no {'users' if path.name == USERS_FILE else 'ACLs'} "
        f"(then recreate them offline: logstore {'users' if path.name == USERS_FILE else 'acls'} ... "
        f"--data-dir {path.parent})"
    )


def _load(path: Path, key: str) -> Any:
    if not path.exists():
        return None
    try:
        document = read_json(path)
    except OSError as exc:
        raise _damaged(path, f"cannot be read ({exc.strerror})") from None
    except ValueError:
        raise _damaged(path, "is not valid JSON") from None
    if not isinstance(document, dict) or document.get("version") != FORMAT_VERSION or key not in document:
        raise _damaged(path, f"is not a version {FORMAT_VERSION} {key} file")
    return document[key]


class SecurityStore:
    """The users and ACLs of one data directory, in memory and on disk.

    Not thread-safe: the broker calls it from its event loop only; the offline tools hold the data
    directory's lock (`offline`) while they use it.
    """

    def __init__(self, data_dir: Path, salt: Callable[[int], bytes] = secrets.token_bytes) -> None:
        self.data_dir = Path(data_dir)
        self._salt = salt
        self.users: dict[str, dict[Mechanism, ScramCredential]] = {}
        self.bindings: list[AclBinding] = []
        self.generation = 0
        """Grows with every change, so caches of decisions and verified passwords know to let go."""
        self._load_users()
        self._load_acls()

    # --- loading ----------------------------------------------------------------------------------------

    def _load_users(self) -> None:
        path = self.data_dir / USERS_FILE
        raw = _load(path, "users")
        if raw is None:
            return
        try:
            for name, credentials in dict(raw).items():
                check_username(name)
                self.users[name] = {
                    Mechanism(mechanism): _credential_from_json(Mechanism(mechanism), value)
                    for mechanism, value in dict(credentials).items()
                }
        except (KeyError, TypeError, ValueError, binascii.Error, InvalidRequestError) as exc:
            raise _damaged(path, f"holds an invalid user entry ({exc})") from None

    def _load_acls(self) -> None:
        path = self.data_dir / ACLS_FILE
        raw = _load(path, "acls")
        if raw is None:
            return
        try:
            self.bindings = list(dict.fromkeys(binding_from_json(value) for value in raw))
        except (KeyError, TypeError, ValueError, AclError) as exc:
            raise _damaged(path, f"holds an invalid ACL ({exc})") from None

    def _save_users(self) -> None:
        document = {
            "version": FORMAT_VERSION,
            "users": {
                name: {m.value: _credential_to_json(c) for m, c in credentials.items()}
                for name, credentials in sorted(self.users.items())
            },
        }
        write_json_atomic(self.data_dir / USERS_FILE, document, mode=0o600)
        self.generation += 1

    def _save_acls(self) -> None:
        document = {"version": FORMAT_VERSION, "acls": [binding_to_json(b) for b in self.bindings]}
        write_json_atomic(self.data_dir / ACLS_FILE, document, mode=0o600)
        self.generation += 1

    # --- users ------------------------------------------------------------------------------------------

    def credential(self, name: str, mechanism: Mechanism) -> ScramCredential | None:
        return self.users.get(name, {}).get(mechanism)

    def list_users(self) -> list[UserListing]:
        return [
            UserListing(
                name, tuple((m, c.iterations) for m, c in sorted(creds.items(), key=lambda i: i[0].value))
            )
            for name, creds in sorted(self.users.items())
        ]

    def set_user(
        self,
        name: str,
        password: str,
        mechanisms: Sequence[Mechanism] = tuple(Mechanism),
        iterations: int = DEFAULT_ITERATIONS,
        *,
        create: bool,
    ) -> UserListing:
        """Create a user (`create`, refused if it exists) or replace an existing user's credentials."""
        check_username(name)
        if not password:
            raise InvalidRequestError("the password must not be empty")
        if create and name in self.users:
            raise UserExistsError(f"user {name!r} exists already; change its password with AlterUser")
        if not create and name not in self.users:
            raise UnknownUserError(f"no user {name!r}; create it first")
        if not mechanisms:
            raise InvalidRequestError("name at least one SCRAM mechanism")
        try:
            credentials = {
                m: make_credential(m, password, self._salt(SALT_BYTES), iterations)
                for m in dict.fromkeys(mechanisms)
            }
        except ScramError as exc:
            raise InvalidRequestError(str(exc)) from None
        self.users[name] = credentials
        self._save_users()
        return self.list_users()[sorted(self.users).index(name)]

    def alter_credentials(
        self,
        upsertions: dict[str, list[ScramCredential]],
        deletions: dict[str, list[Mechanism]],
    ) -> None:
        """Set and remove credentials of several users in one write (Kafka's AlterUserScramCredentials;
        the caller has checked each user's alterations). A user left with no credential is gone."""
        for name, mechanisms in deletions.items():
            for mechanism in mechanisms:
                if mechanism not in self.users.get(name, {}):
                    raise UnknownUserError(f"user {name!r} has no {mechanism.value} credential to delete")
        for name in upsertions:
            check_username(name)
        for name, mechanisms in deletions.items():
            for mechanism in mechanisms:
                del self.users[name][mechanism]
            if not self.users[name]:
                del self.users[name]
        for name, credentials in upsertions.items():
            self.users.setdefault(name, {}).update((c.mechanism, c) for c in credentials)
        if upsertions or deletions:
            self._save_users()

    def delete_user(self, name: str) -> None:
        if name not in self.users:
            raise UnknownUserError(f"no user {name!r}")
        del self.users[name]
        self._save_users()

    # --- ACLs -------------------------------------------------------------------------------------------

    def create_acls(self, bindings: Iterable[AclBinding]) -> None:
        """Add bindings (one already present is kept once)."""
        merged = list(dict.fromkeys([*self.bindings, *bindings]))
        if len(merged) > MAX_ACLS:
            raise InvalidRequestError(f"at most {MAX_ACLS} ACLs may be defined")
        if merged != self.bindings:
            self.bindings = merged
            self._save_acls()

    def describe_acls(self, filter: AclFilter) -> list[AclBinding]:
        return [b for b in self.bindings if filter.matches(b)]

    def delete_acls(self, filters: Iterable[AclFilter]) -> list[AclBinding]:
        """Remove every binding some filter matches; returns them."""
        wanted = list(filters)
        removed = [b for b in self.bindings if any(f.matches(b) for f in wanted)]
        if removed:
            self.bindings = [b for b in self.bindings if b not in removed]
            self._save_acls()
        return removed


class OfflineStore:
    """A stopped broker's store, opened by `logstore users|acls --data-dir DIR`: holds the data
    directory's lock while open, so a running broker (or a second tool) keeps it out.

    Not thread-safe: one command at a time.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self._fd = -1

    def __enter__(self) -> SecurityStore:
        if not self.data_dir.is_dir():
            raise SecurityStoreError(f"{self.data_dir} is not a directory; give the broker's --data-dir")
        fd = os.open(self.data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise SecurityStoreError(
                f"{self.data_dir} is in use by a running broker; stop it first, or manage users and ACLs "
                "through the broker (leave out --data-dir)"
            ) from None
        self._fd = fd
        try:
            return SecurityStore(self.data_dir)
        except BaseException:
            self.__exit__()
            raise

    def __exit__(self, *_: object) -> None:
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1
