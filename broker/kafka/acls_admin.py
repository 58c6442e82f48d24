"""DescribeAcls (29), CreateAcls (30) and DeleteAcls (31) over the broker's ACL store: the same
`acls.json` that `logstore acls` and the gRPC admin calls manage, so an ACL made one way shows the others.

Only super-users may use them (the rule of the gRPC admin calls, `Security.require_super_user`); anyone
else gets CLUSTER_AUTHORIZATION_FAILED, as Kafka answers a principal without Describe (Alter) on the
cluster. A broker without --require-auth enforces no ACLs and answers SECURITY_DISABLED, as Kafka does
when no authorizer is configured.

Kafka's codes are mapped to `broker.auth.acl`'s model. What the model cannot hold is refused with
INVALID_REQUEST: a host other than ``*`` (ACLs here apply from every host), the DELEGATION_TOKEN and
USER resource types, the ClusterAction and token operations. Filters with those values are valid and
simply match nothing. UNKNOWN (0) anywhere is INVALID_REQUEST, as in Kafka.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.primitive import i8
from logstore.broker.auth.acl import (
    WILDCARD,
    AclBinding,
    AclError,
    AclFilter,
    Operation,
    PatternType,
    Permission,
    ResourceType,
)
from logstore.broker.auth.security import Security
from logstore.broker.kafka.api_versions import NO_THROTTLE
from logstore.broker.kafka.codec import build, element, response_type
from logstore.broker.kafka.context import RequestContext
from logstore.broker.kafka.errors import error_code, error_message
from logstore.broker.kafka.versions import CREATE_ACLS, DELETE_ACLS, DESCRIBE_ACLS

from logstore.errors import LogStoreError

UNKNOWN, ANY, MATCH = 0, 1, 2
"""Kafka's shared codes: UNKNOWN and ANY in every enum, MATCH in pattern-type filters only."""
RESOURCE_TYPES = {
    ResourceType.TOPIC: 2,
    ResourceType.GROUP: 3,
    ResourceType.CLUSTER: 4,
    ResourceType.TRANSACTIONAL_ID: 5,
}
KNOWN_RESOURCE_TYPES = frozenset({*RESOURCE_TYPES.values(), 6, 7})
"""Kafka's DELEGATION_TOKEN (6) and USER (7) are valid, but no ACL here has them."""
OPERATIONS = {
    Operation.ALL: 2,
    Operation.READ: 3,
    Operation.WRITE: 4,
    Operation.CREATE: 5,
    Operation.DELETE: 6,
    Operation.ALTER: 7,
    Operation.DESCRIBE: 8,
    Operation.DESCRIBE_CONFIGS: 10,
    Operation.ALTER_CONFIGS: 11,
    Operation.IDEMPOTENT_WRITE: 12,
}
KNOWN_OPERATIONS = frozenset({*OPERATIONS.values(), 9, 13, 14})
"""ClusterAction (9), CreateTokens (13) and DescribeTokens (14) are valid, but not held here."""
PATTERNS = {PatternType.LITERAL: 3, PatternType.PREFIXED: 4}
PERMISSIONS = {Permission.DENY: 2, Permission.ALLOW: 3}
ALL_HOSTS = "*"

_BY_CODE: dict[type[Any], dict[int, Any]] = {
    ResourceType: {v: k for k, v in RESOURCE_TYPES.items()},
    Operation: {v: k for k, v in OPERATIONS.items()},
    PatternType: {v: k for k, v in PATTERNS.items()},
    Permission: {v: k for k, v in PERMISSIONS.items()},
}


class Refused(Exception):
    """The request's ACL or filter cannot be served; carries Kafka's code and words."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def _invalid(message: str) -> Refused:
    return Refused(ErrorCode.invalid_request, message)


def refusal(ctx: RequestContext, what: str) -> tuple[Security | None, Refused | None]:
    """The broker's Security when this connection may `what`, else the answer's error."""
    auth = ctx.auth
    if auth is None or not auth.required or auth.security is None:
        return None, Refused(
            ErrorCode.security_disabled,
            "ACLs are not enforced: this broker runs without --require-auth (no authorizer); manage them "
            "with logstore acls, and start the broker with --require-auth to enforce them",
        )
    assert auth.who is not None, "a request was handled before its connection logged in"
    try:
        auth.security.require_super_user(auth.who, what)
    except LogStoreError as exc:
        return None, Refused(error_code(exc), str(error_message(exc)))
    return auth.security, None


# --- from Kafka's codes ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KafkaFilter:
    """A DescribeAcls or DeleteAcls filter: `base` holds the fields the model filters on; the resource
    name and pattern are matched here, since Kafka's MATCH (literal, ``*`` and prefixes that cover the
    name) is not one of the model's patterns. `nothing` is a valid filter no ACL here can match."""

    base: AclFilter
    name: str | None
    pattern: PatternType | None
    match: bool
    nothing: bool

    def matches(self, binding: AclBinding) -> bool:
        if self.nothing or not self.base.matches(binding):
            return False
        if not self.match and self.pattern is not None and self.pattern is not binding.pattern:
            return False
        if self.name is None:
            return True
        if not self.match or self.pattern is binding.pattern:
            return self.name == binding.resource_name
        if binding.pattern is PatternType.PREFIXED:
            return self.name.startswith(binding.resource_name)
        return binding.resource_name in (self.name, WILDCARD)


def _lookup(kind: type[Any], code: int, what: str) -> Any:
    if code == UNKNOWN:
        raise _invalid(f"the {what} is UNKNOWN (0)")
    return _BY_CODE[kind].get(code)


def _filter_field(kind: type[Any], code: int, known: Iterable[int], what: str) -> tuple[Any, bool]:
    """(the model's value or None for ANY, whether the code is valid but matches nothing here)."""
    if code == ANY:
        return None, False
    value = _lookup(kind, code, what)
    if value is None:
        if code not in known:
            raise _invalid(f"unknown {what} {code}")
        return None, True
    return value, False


def parse_filter(raw: Any) -> KafkaFilter:
    resource_type, no_type = _filter_field(
        ResourceType, raw.resource_type_filter, KNOWN_RESOURCE_TYPES, "resource type"
    )
    operation, no_operation = _filter_field(Operation, raw.operation, KNOWN_OPERATIONS, "operation")
    permission, _ = _filter_field(Permission, raw.permission_type, PERMISSIONS.values(), "permission type")
    pattern_code = int(raw.pattern_type_filter)
    match = pattern_code == MATCH
    pattern = None
    if pattern_code not in (ANY, MATCH):
        pattern, _ = _filter_field(PatternType, pattern_code, PATTERNS.values(), "pattern type")
    host = raw.host_filter
    return KafkaFilter(
        base=AclFilter(
            principal=raw.principal_filter,
            operation=operation,
            resource_type=resource_type,
            permission=permission,
        ),
        name=raw.resource_name_filter,
        pattern=pattern,
        match=match,
        nothing=no_type or no_operation or host not in (None, ALL_HOSTS),
    )


def _exact(kind: type[Any], code: int, what: str) -> Any:
    value = _lookup(kind, code, what)
    if value is None:
        if code == ANY or (kind is PatternType and code == MATCH):
            raise _invalid(f"an ACL names one {what}, not a filter's ANY or MATCH ({code})")
        raise _invalid(f"{what} {code} cannot be held by this broker's ACLs")
    return value


def parse_creation(raw: Any) -> AclBinding:
    if raw.host != ALL_HOSTS:
        raise _invalid(f"ACLs here apply from every host: the host must be '*', not {raw.host[:60]!r}")
    try:
        return AclBinding(
            principal=raw.principal,
            operation=_exact(Operation, raw.operation, "operation"),
            resource_type=_exact(ResourceType, raw.resource_type, "resource type"),
            resource_name=raw.resource_name,
            pattern=_exact(PatternType, raw.resource_pattern_type, "pattern type"),
            permission=_exact(Permission, raw.permission_type, "permission type"),
        )
    except AclError as exc:
        raise _invalid(str(exc)) from None


def _codes(binding: AclBinding) -> dict[str, Any]:
    """A binding's fields under the names DeleteAcls's matching ACLs use."""
    return {
        "resource_type": i8(RESOURCE_TYPES[binding.resource_type]),
        "resource_name": binding.resource_name,
        "pattern_type": i8(PATTERNS[binding.pattern]),
        "principal": binding.principal,
        "host": ALL_HOSTS,
        "operation": i8(OPERATIONS[binding.operation]),
        "permission_type": i8(PERMISSIONS[binding.permission]),
    }


def _exactly(binding: AclBinding) -> AclFilter:
    return AclFilter(
        binding.principal,
        binding.operation,
        binding.resource_type,
        binding.resource_name,
        binding.pattern,
        binding.permission,
    )


# --- the handlers ---------------------------------------------------------------------------------------


def describe_acls(request: Any, version: int, ctx: RequestContext) -> Any:
    cls = response_type(DESCRIBE_ACLS, version)
    resource_cls = element(cls, "resources")
    acl_cls = element(resource_cls, "acls")
    security, refused = refusal(ctx, "describe ACLs")
    try:
        if refused is not None:
            raise refused
        assert security is not None
        wanted = parse_filter(request)
    except Refused as exc:
        return build(
            cls, throttle_time=NO_THROTTLE, error_code=exc.code, error_message=str(exc), resources=()
        )
    by_resource: dict[tuple[ResourceType, str, PatternType], list[AclBinding]] = {}
    for binding in security.describe_acls(wanted.base):
        if wanted.matches(binding):
            key = (binding.resource_type, binding.resource_name, binding.pattern)
            by_resource.setdefault(key, []).append(binding)
    resources = []
    for (resource_type, name, pattern), bindings in sorted(
        by_resource.items(), key=lambda item: (RESOURCE_TYPES[item[0][0]], item[0][1], PATTERNS[item[0][2]])
    ):
        acls = tuple(
            build(
                acl_cls,
                principal=b.principal,
                host=ALL_HOSTS,
                operation=i8(OPERATIONS[b.operation]),
                permission_type=i8(PERMISSIONS[b.permission]),
            )
            for b in bindings
        )
        resources.append(
            build(
                resource_cls,
                resource_type=i8(RESOURCE_TYPES[resource_type]),
                resource_name=name,
                pattern_type=i8(PATTERNS[pattern]),
                acls=acls,
            )
        )
    return build(
        cls,
        throttle_time=NO_THROTTLE,
        error_code=ErrorCode.none,
        error_message=None,
        resources=tuple(resources),
    )


def create_acls(request: Any, version: int, ctx: RequestContext) -> Any:
    """Each creation is checked alone (a bad one fails, the others are made), then the good ones are
    written in one store update."""
    cls = response_type(CREATE_ACLS, version)
    result_cls = element(cls, "results")
    security, refused = refusal(ctx, "create ACLs")
    outcomes: list[AclBinding | Refused] = []
    for creation in request.creations:
        if refused is not None:
            outcomes.append(refused)
            continue
        try:
            outcomes.append(parse_creation(creation))
        except Refused as exc:
            outcomes.append(exc)
    made = [o for o in outcomes if isinstance(o, AclBinding)]
    if made:
        assert security is not None
        try:
            security.create_acls(made)
        except LogStoreError as exc:
            failed = Refused(error_code(exc), str(error_message(exc)))
            outcomes = [failed if isinstance(o, AclBinding) else o for o in outcomes]
    results = tuple(
        build(result_cls, error_code=ErrorCode.none, error_message=None)
        if isinstance(o, AclBinding)
        else build(result_cls, error_code=o.code, error_message=str(o))
        for o in outcomes
    )
    return build(cls, throttle_time=NO_THROTTLE, results=results)


def delete_acls(request: Any, version: int, ctx: RequestContext) -> Any:
    """Every ACL some filter matches goes, in one store update; each filter's result lists what it
    matched."""
    cls = response_type(DELETE_ACLS, version)
    result_cls = element(cls, "filter_results")
    matching_cls = element(result_cls, "matching_acls")
    security, refused = refusal(ctx, "delete ACLs")
    outcomes: list[list[AclBinding] | Refused] = []
    for raw in request.filters:
        if refused is not None:
            outcomes.append(refused)
            continue
        assert security is not None
        try:
            wanted = parse_filter(raw)
        except Refused as exc:
            outcomes.append(exc)
            continue
        outcomes.append([b for b in security.describe_acls(wanted.base) if wanted.matches(b)])
    doomed = list(dict.fromkeys(b for o in outcomes if isinstance(o, list) for b in o))
    if doomed:
        assert security is not None
        try:
            security.delete_acls(_exactly(b) for b in doomed)
        except LogStoreError as exc:
            failed = Refused(error_code(exc), str(error_message(exc)))
            outcomes = [failed if isinstance(o, list) else o for o in outcomes]
    results = []
    for o in outcomes:
        if isinstance(o, Refused):
            results.append(build(result_cls, error_code=o.code, error_message=str(o), matching_acls=()))
            continue
        matching = tuple(
            build(matching_cls, error_code=ErrorCode.none, error_message=None, **_codes(b)) for b in o
        )
        results.append(
            build(result_cls, error_code=ErrorCode.none, error_message=None, matching_acls=matching)
        )
    return build(cls, throttle_time=NO_THROTTLE, filter_results=tuple(results))
