"""DescribeUserScramCredentials (50) and AlterUserScramCredentials (51) over the broker's user store: the
same `users.json` that `logstore users` and the gRPC admin calls manage.

With --require-auth only super-users may use them (CLUSTER_AUTHORIZATION_FAILED otherwise, the gRPC
admin calls' rule); without it, like Kafka without an authorizer, anyone may. The client sends the
salt, the iteration count and SaltedPassword (KIP-554), never the password; the broker keeps the
StoredKey and ServerKey derived from them, as for a password set with `logstore users`. Deleting a
user's last mechanism removes the user. Errors are Kafka's: an unknown mechanism is
UNSUPPORTED_SASL_MECHANISM, an unusable credential (empty name, iterations out of range, a salted
password of the wrong length) UNACCEPTABLE_CREDENTIAL, a user and mechanism named twice
DUPLICATE_RESOURCE, the deletion of a credential that does not exist RESOURCE_NOT_FOUND. A user's
alterations succeed or fail together.
"""

from __future__ import annotations

from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.primitive import i8, i32
from logstore.broker.auth.scram import Mechanism, ScramCredential, ScramError, credential_from_salted
from logstore.broker.auth.security import Security
from logstore.broker.auth.store import check_username
from logstore.broker.kafka.api_versions import NO_THROTTLE
from logstore.broker.kafka.codec import build, element, response_type
from logstore.broker.kafka.context import RequestContext
from logstore.broker.kafka.errors import error_code, error_message
from logstore.broker.kafka.versions import ALTER_USER_SCRAM_CREDENTIALS, DESCRIBE_USER_SCRAM_CREDENTIALS

from logstore.errors import LogStoreError

MECHANISMS = {Mechanism.SCRAM_SHA_256: 1, Mechanism.SCRAM_SHA_512: 2}
_BY_CODE = {v: k for k, v in MECHANISMS.items()}


def _admitted(ctx: RequestContext, what: str) -> tuple[Security | None, ErrorCode, str | None]:
    """(the broker's Security, NONE, None) when this connection may `what`, else the error."""
    auth = ctx.auth
    if auth is None or auth.security is None:
        return None, ErrorCode.security_disabled, "this broker keeps no users"
    if auth.required:
        assert auth.who is not None, "a request was handled before its connection logged in"
        try:
            auth.security.require_super_user(auth.who, what)
        except LogStoreError as exc:
            return None, error_code(exc), error_message(exc)
    return auth.security, ErrorCode.none, None


def describe_user_scram_credentials(request: Any, version: int, ctx: RequestContext) -> Any:
    cls = response_type(DESCRIBE_USER_SCRAM_CREDENTIALS, version)
    result_cls = element(cls, "results")
    info_cls = element(result_cls, "credential_infos")
    security, code, message = _admitted(ctx, "describe SCRAM credentials")
    if security is None:  # as Kafka's getErrorResponse: the error at the top and for each user asked
        refused = tuple(
            build(result_cls, user=u.name, error_code=code, error_message=message, credential_infos=())
            for u in request.users or ()
        )
        return build(cls, throttle_time=NO_THROTTLE, error_code=code, error_message=message, results=refused)
    users = security.store.users
    asked = [u.name for u in request.users] if request.users else sorted(users)
    results = []
    for name in dict.fromkeys(asked):
        if asked.count(name) > 1:
            code, message = (
                ErrorCode.duplicate_resource,
                "Cannot describe SCRAM credentials for the same user twice in a single request",
            )
        elif name not in users:
            code, message = (
                ErrorCode.resource_not_found,
                "Attempt to describe a user credential that does not exist",
            )
        else:
            code, message = ErrorCode.none, None
        infos = tuple(
            build(info_cls, mechanism=i8(MECHANISMS[m]), iterations=i32(c.iterations))
            for m, c in sorted(users.get(name, {}).items(), key=lambda item: MECHANISMS[item[0]])
            if code is ErrorCode.none
        )
        results.append(
            build(result_cls, user=name, error_code=code, error_message=message, credential_infos=infos)
        )
    return build(
        cls, throttle_time=NO_THROTTLE, error_code=ErrorCode.none, error_message=None, results=tuple(results)
    )


class _Unacceptable(Exception):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def _mechanism(code: int) -> Mechanism:
    mechanism = _BY_CODE.get(code)
    if mechanism is None:
        raise _Unacceptable(ErrorCode.unsupported_sasl_mechanism, f"Unknown SCRAM mechanism {code}")
    return mechanism


def _user(name: str) -> str:
    try:
        return check_username(name)
    except LogStoreError as exc:
        raise _Unacceptable(ErrorCode.unacceptable_credential, str(exc)) from None


def alter_user_scram_credentials(request: Any, version: int, ctx: RequestContext) -> Any:
    cls = response_type(ALTER_USER_SCRAM_CREDENTIALS, version)
    result_cls = element(cls, "results")
    names = list(dict.fromkeys([d.name for d in request.deletions] + [u.name for u in request.upsertions]))
    security, code, message = _admitted(ctx, "alter SCRAM credentials")
    if security is None:
        refused = tuple(build(result_cls, user=n, error_code=code, error_message=message) for n in names)
        return build(cls, throttle_time=NO_THROTTLE, results=refused)
    failed: dict[str, _Unacceptable] = {}
    seen: set[tuple[str, Mechanism]] = set()
    deletions: dict[str, list[Mechanism]] = {}
    upsertions: dict[str, list[ScramCredential]] = {}

    def once(name: str, mechanism: Mechanism) -> None:
        if (name, mechanism) in seen:
            raise _Unacceptable(
                ErrorCode.duplicate_resource, "A user credential cannot be altered twice in the same request"
            )
        seen.add((name, mechanism))

    for deletion in request.deletions:
        try:
            mechanism = _mechanism(deletion.mechanism)
            once(_user(deletion.name), mechanism)
            if mechanism not in security.store.users.get(deletion.name, {}):
                raise _Unacceptable(
                    ErrorCode.resource_not_found, "Attempt to delete a user credential that does not exist"
                )
            deletions.setdefault(deletion.name, []).append(mechanism)
        except _Unacceptable as exc:
            failed.setdefault(deletion.name, exc)
    for upsertion in request.upsertions:
        try:
            mechanism = _mechanism(upsertion.mechanism)
            once(_user(upsertion.name), mechanism)
            try:
                credential = credential_from_salted(
                    mechanism,
                    bytes(upsertion.salt),
                    bytes(upsertion.salted_password),
                    int(upsertion.iterations),
                )
            except ScramError as exc:
                raise _Unacceptable(ErrorCode.unacceptable_credential, str(exc)) from None
            upsertions.setdefault(upsertion.name, []).append(credential)
        except _Unacceptable as exc:
            failed.setdefault(upsertion.name, exc)
    for name in failed:
        deletions.pop(name, None)
        upsertions.pop(name, None)
    stored_error: tuple[ErrorCode, str | None] | None = None
    try:
        security.alter_credentials(upsertions, deletions)
    except LogStoreError as exc:
        stored_error = error_code(exc), error_message(exc)
    results = []
    for name in names:
        if name in failed:
            results.append(
                build(result_cls, user=name, error_code=failed[name].code, error_message=str(failed[name]))
            )
        elif stored_error is not None:
            results.append(
                build(result_cls, user=name, error_code=stored_error[0], error_message=stored_error[1])
            )
        else:
            results.append(build(result_cls, user=name, error_code=ErrorCode.none, error_message=None))
    return build(cls, throttle_time=NO_THROTTLE, results=tuple(results))
